// Fixed position embeddings added to the tokens, y = x + E with E [D × T] (docs/design.md §3.10):
// an affine map whose linear part is the identity, so tangents and adjoints pass unchanged.
//   2-D sin-cos (the simple ViT's posemb_sincos_2d, temperature 10⁴): for the patch at grid row r,
//     column c and i < D/4, ω_i = 10⁴^(−i/(D/4 − 1)) (ω_0 = 1 when D = 4), the features are
//     [sin(cω), cos(cω), sin(rω), cos(rω)], D/4 each;
//   1-D sinusoidal (Vaswani et al.): E[2i, t] = sin(t ω_i), E[2i + 1, t] = cos(t ω_i), ω_i = 10⁴^(−2i/D).
// The tables are computed on the host once (construction data, like initialization) and copied to
// the device on first use.
#include <cmath>
#include <span>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer_linear_map.h"
#include "kernels/bias.h"

namespace cflow {
namespace {

constexpr double kTemperature = 10000.0;

template <class T>
class AddPositions final : public LinearMapLayer<T> {
 public:
  AddPositions(index_t features, index_t tokens, std::vector<double> table)
      : D_(features), T_(tokens), table_(std::move(table)) {}

  TensorShape output_shape() const override { return {D_ * T_, 1, 1}; }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    apply(p, p.examples, x, y);
    if (positions_.size() == 0) {
      const std::vector<T> rounded(table_.begin(), table_.end());
      positions_ = Buffer<T>(p.dev, std::span<const T>(rounded));
    }
    CFLOW_DISPATCH(p.dev, add_bias<T>, p.dev, D_ * T_, p.examples, 1, positions_.data(), 0, y);
  }

 private:
  void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const override {
    blas::copy<T>(p.dev, D_ * T_ * columns, x, y);
  }
  void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const override { apply(p, columns, y, x); }
  index_t input_size() const override { return D_ * T_; }

  index_t D_, T_;
  std::vector<double> table_;
  mutable Buffer<T> positions_;
};

}  // namespace

std::vector<double> sincos_positions_2d(index_t features, index_t rows, index_t columns) {
  CFLOW_REQUIRE(features % 4 == 0 && features >= 4,
                "2-D sin-cos position embeddings need a feature count divisible by 4 (choose --width accordingly)");
  const index_t quarter = features / 4;
  std::vector<double> table(std::size_t(features * rows * columns));
  for (index_t t = 0; t < rows * columns; ++t)
    for (index_t i = 0; i < quarter; ++i) {
      const double omega = quarter > 1 ? std::pow(kTemperature, -double(i) / double(quarter - 1)) : 1.0;
      const double along[2] = {double(t % columns) * omega, double(t / columns) * omega};
      for (int axis = 0; axis < 2; ++axis) {
        table[std::size_t(t * features + (2 * axis) * quarter + i)] = std::sin(along[axis]);
        table[std::size_t(t * features + (2 * axis + 1) * quarter + i)] = std::cos(along[axis]);
      }
    }
  return table;
}

std::vector<double> sinusoidal_positions(index_t features, index_t tokens) {
  std::vector<double> table(std::size_t(features * tokens));
  for (index_t t = 0; t < tokens; ++t)
    for (index_t f = 0; f < features; ++f) {
      const double angle = double(t) * std::pow(kTemperature, -double(f - f % 2) / double(features));
      table[std::size_t(t * features + f)] = f % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  return table;
}

template <class T>
std::unique_ptr<Layer<T>> make_positions(index_t features, index_t tokens, std::vector<double> table) {
  CFLOW_REQUIRE(index_t(table.size()) == features * tokens, "position embedding: the table must be [features × tokens]");
  return std::make_unique<AddPositions<T>>(features, tokens, std::move(table));
}
template std::unique_ptr<Layer<float>> make_positions<float>(index_t, index_t, std::vector<double>);
template std::unique_ptr<Layer<double>> make_positions<double>(index_t, index_t, std::vector<double>);

}  // namespace cflow
