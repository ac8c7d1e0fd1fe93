// A layer applied to every token of a sequence alike (docs/design.md §3.10): an example is
// [features × tokens], each token's features contiguous, so a chunk of nb examples is, to the
// per-token layer, a chunk of nb·tokens examples of `features` each, and so are the tangents and
// adjoints of every direction. The wrapper only rescales the pass (and its ones vector).
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "host/engine/scratch.h"

namespace cflow {
namespace {

template <class T>
class TokenWise final : public Layer<T> {
 public:
  TokenWise(std::unique_ptr<Layer<T>> per_token, index_t tokens) : inner_(std::move(per_token)), tokens_(tokens) {
    CFLOW_REQUIRE(tokens_ >= 1, "token-wise layer: the token count must be positive");
  }

  TensorShape output_shape() const override { return {inner_->output_shape().size() * tokens_, 1, 1}; }
  index_t parameter_count() const override { return inner_->parameter_count(); }
  void initialize(std::mt19937_64& rng, T* slice) const override { inner_->initialize(rng, slice); }

  void forward(const JetPass<T>& p, const T* x, T* y) const override { inner_->forward(per_token(p), x, y); }
  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    inner_->forward_tangents(per_token(p), x, y);
  }
  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>& y, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    inner_->reverse(per_token(p), x, y, yb, xb);
  }

 private:
  JetPass<T> per_token(const JetPass<T>& p) const {
    const index_t columns = p.examples * tokens_;
    return {p.dev, p.order, columns, p.directions, p.w, p.V, p.G, p.ld, ones(p.dev, ones_, columns)};
  }

  std::unique_ptr<Layer<T>> inner_;
  index_t tokens_;
  mutable Buffer<T> ones_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_token_linear(index_t features, index_t tokens, index_t outputs, bool bias,
                                            index_t offset, double initial_weight_scale) {
  return std::make_unique<TokenWise<T>>(
      make_linear<T>(TensorShape{features, 1, 1}, outputs, bias, offset, initial_weight_scale), tokens);
}
template std::unique_ptr<Layer<float>> make_token_linear<float>(index_t, index_t, index_t, bool, index_t, double);
template std::unique_ptr<Layer<double>> make_token_linear<double>(index_t, index_t, index_t, bool, index_t, double);

}  // namespace cflow
