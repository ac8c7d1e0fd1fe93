// AvgPool2d(2): 2×2 windows, stride 2, no parameters. Pooling is linear in x, so every jet component
// and every adjoint component goes through the same map (docs/design.md §3); a null (zero) tangent stays null.
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "kernels/pool.h"

namespace cflow {
namespace {

template <class T>
class AvgPool2 final : public Layer<T> {
 public:
  explicit AvgPool2(TensorShape input) : in_(input) {
    CFLOW_REQUIRE(input.height >= 2 && input.width >= 2, "avgpool2: the input must be at least 2×2");
  }

  TensorShape output_shape() const override { return {in_.channels, in_.height / 2, in_.width / 2}; }

  void forward(const JetPass<T>& p, const T* x, T* y) const override { pool(p, p.examples, x, y); }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    for (int k = 0; k < p.order; ++k) {
      if (x.tangent[k])
        pool(p, p.examples * p.directions, x.tangent[k], y.tangent[k]);
      else
        y.tangent[k] = nullptr;
    }
  }

  void reverse(const JetPass<T>& p, const Jet<T>&, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    if (!xb) return;
    const index_t columns = p.examples * p.directions;  // z̄0 has m directions too for orders ≥ 1 (m = 1 for 0)
    for (int k = 0; k <= p.order; ++k) {
      if (yb.component[k])
        CFLOW_DISPATCH(p.dev, avgpool2_adjoint<T>, p.dev, in_.channels * columns, in_.height, in_.width,
                       yb.component[k], xb->component[k]);
      else
        p.dev.set_zero(xb->component[k], sizeof(T) * std::size_t(in_.size() * columns));
    }
  }

 private:
  void pool(const JetPass<T>& p, index_t columns, const T* x, T* y) const {
    CFLOW_DISPATCH(p.dev, avgpool2_forward<T>, p.dev, in_.channels * columns, in_.height, in_.width, x, y);
  }

  TensorShape in_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_avgpool2(TensorShape input) {
  return std::make_unique<AvgPool2<T>>(input);
}
template std::unique_ptr<Layer<float>> make_avgpool2<float>(TensorShape);
template std::unique_ptr<Layer<double>> make_avgpool2<double>(TensorShape);

}  // namespace cflow
