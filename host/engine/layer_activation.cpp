// Elementwise activation a = σ(y); its jets and reverse rules live in kernels/activation.cu.
#include "host/engine/layer.h"
#include "kernels/activation.h"

namespace cflow {
namespace {

template <class T>
class ActivationLayer final : public Layer<T> {
 public:
  ActivationLayer(TensorShape shape, Activation act) : shape_(shape), act_(act) {}

  TensorShape output_shape() const override { return shape_; }

  void forward(const JetPass<T>& p, const T* y, T* a) const override {
    CFLOW_DISPATCH(p.dev, activation_forward<T>, p.dev, act_, size(p), y, a);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& y, Jet<T>& a) const override {
    CFLOW_REQUIRE(y.tangent[0], "activation: a network starts with a parameterized layer, so y1 is never zero");
    CFLOW_DISPATCH(p.dev, activation_tangents<T>, p.dev, act_, p.order, size(p), p.directions, y.primal,
                   y.tangent[0], y.tangent[1], a.tangent[0], a.tangent[1]);
  }

  void reverse(const JetPass<T>& p, const Jet<T>& y, const Jet<T>&, const Adjoint<T>& ab,
               Adjoint<T>* yb) const override {
    if (!yb) return;
    CFLOW_DISPATCH(p.dev, activation_reverse<T>, p.dev, act_, p.order, size(p), p.directions, y.primal, y.tangent[0],
                   y.tangent[1], ab.component[0], ab.component[1], ab.component[2], yb->component[0],
                   yb->component[1], yb->component[2]);
  }

 private:
  index_t size(const JetPass<T>& p) const { return shape_.size() * p.examples; }
  TensorShape shape_;
  Activation act_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_activation(TensorShape shape, Activation act) {
  return std::make_unique<ActivationLayer<T>>(shape, act);
}
template std::unique_ptr<Layer<float>> make_activation<float>(TensorShape, Activation);
template std::unique_ptr<Layer<double>> make_activation<double>(TensorShape, Activation);

}  // namespace cflow
