// GroupNorm and LayerNorm: y = γ ⊙ (x − μ)/√(v + ε) + β per group of features, parameters (γ, β)
// (PyTorch order: weight then bias). The jets and their reverse are in kernels/norm.cu, derived in
// docs/design.md §3.7: normalization is a rational function of x, and the jets of order 2 and their
// reverse need the derivatives of s^{-1/2} to third order.
#include <numeric>

#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "host/engine/scratch.h"
#include "kernels/norm.h"

namespace cflow {
namespace {

constexpr double kEpsilon = 1e-5;  // PyTorch's default for both

template <class T>
class Norm final : public Layer<T> {
 public:
  Norm(TensorShape shape, NormGeometry geometry, T initial_scale, index_t offset)
      : shape_(shape), g_(geometry), initial_scale_(initial_scale), offset_(offset) {
    CFLOW_REQUIRE(g_.features() == shape.size(), "norm: the groups must cover the features");
  }

  TensorShape output_shape() const override { return shape_; }
  index_t parameter_count() const override { return 2 * g_.parameters(); }

  void initialize(std::mt19937_64&, T* slice) const override {
    for (index_t i = 0; i < parameter_count(); ++i) slice[i] = i < g_.parameters() ? initial_scale_ : T(0);
  }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    CFLOW_DISPATCH(p.dev, norm_forward<T>, p.dev, g_, p.examples, p.w + offset_, x, y);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    CFLOW_REQUIRE(x.tangent[0], "norm: a network starts with a parameterized layer, so x1 is never zero");
    CFLOW_DISPATCH(p.dev, norm_tangents<T>, p.dev, g_, p.order, p.examples, p.directions, p.w + offset_,
                   p.V + offset_, p.ld, x.primal, x.tangent[0], x.tangent[1], y.tangent[0], y.tangent[1]);
  }

  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    if (!xb && !p.G) return;
    const index_t nb = p.examples, m = p.directions;
    T* hprod = p.G ? grow(p.dev, hprod_, g_.features() * nb * m) : nullptr;
    const Adjoint<T> none;
    const Adjoint<T>& in = xb ? *xb : none;
    CFLOW_DISPATCH(p.dev, norm_reverse<T>, p.dev, g_, p.order, nb, m, p.w + offset_,
                   p.V ? p.V + offset_ : nullptr, p.ld, x.primal, x.tangent[0], x.tangent[1], yb.component[0],
                   yb.component[1], yb.component[2], in.component[0], in.component[1], in.component[2], hprod);
    if (p.G)
      CFLOW_DISPATCH(p.dev, norm_parameter_gradient<T>, p.dev, g_, nb, m, hprod, yb.component[0], p.G + offset_,
                     p.ld);
  }

 private:
  TensorShape shape_;
  NormGeometry g_;
  T initial_scale_;
  index_t offset_;
  mutable Buffer<T> hprod_;
};

}  // namespace

index_t group_norm_groups(index_t channels) { return std::gcd(channels, index_t(8)); }

template <class T>
std::unique_ptr<Layer<T>> make_group_norm(TensorShape shape, index_t groups, double initial_scale, index_t offset) {
  CFLOW_REQUIRE(groups >= 1 && shape.channels % groups == 0, "group norm: the group count must divide the channels");
  const index_t per_group = shape.channels / groups, pixels = shape.height * shape.width;
  return std::make_unique<Norm<T>>(shape, NormGeometry{groups, per_group * pixels, pixels, per_group, kEpsilon},
                                   T(initial_scale), offset);
}

template <class T>
std::unique_ptr<Layer<T>> make_layer_norm(index_t features, index_t tokens, index_t offset) {
  CFLOW_REQUIRE(features >= 1 && tokens >= 1, "layer norm: sizes must be positive");
  return std::make_unique<Norm<T>>(TensorShape{features * tokens, 1, 1},
                                   NormGeometry{tokens, features, 1, 0, kEpsilon}, T(1), offset);
}

template std::unique_ptr<Layer<float>> make_group_norm<float>(TensorShape, index_t, double, index_t);
template std::unique_ptr<Layer<double>> make_group_norm<double>(TensorShape, index_t, double, index_t);
template std::unique_ptr<Layer<float>> make_layer_norm<float>(index_t, index_t, index_t);
template std::unique_ptr<Layer<double>> make_layer_norm<double>(index_t, index_t, index_t);

}  // namespace cflow
