// Elementwise activation a = σ(y); its jets and reverse rules live in kernels/activation.cu.
#include <vector>

#include "host/engine/layer.h"
#include "kernels/activation.h"

namespace cflow {
namespace {

template <class T>
class ActivationLayer final : public Layer<T> {
 public:
  ActivationLayer(TensorShape shape, Activation act) : shape_(shape), act_(act) {}

  TensorShape output_shape() const override { return shape_; }
  index_t kept_size() const override { return 3 * shape_.size(); }

  void forward(const JetPass<T>& p, const T* y, T* a) const override {
    CFLOW_DISPATCH(p.dev, activation_forward<T>, p.dev, act_, size(p), y, a, keep(p, y));
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& y, Jet<T>& a) const override {
    CFLOW_REQUIRE(y.tangent[0], "activation: a network starts with a parameterized layer, so y1 is never zero");
    CFLOW_DISPATCH(p.dev, activation_tangents<T>, p.dev, p.order, size(p), p.directions, kept(p, y.primal),
                   y.tangent[0], y.tangent[1], a.tangent[0], a.tangent[1]);
  }

  void reverse(const JetPass<T>& p, const Jet<T>& y, const Jet<T>&, const Adjoint<T>& ab,
               Adjoint<T>* yb) const override {
    if (!yb) return;
    CFLOW_DISPATCH(p.dev, activation_reverse<T>, p.dev, p.order, size(p), p.directions, kept(p, y.primal), y.tangent[0],
                   y.tangent[1], ab.component[0], ab.component[1], ab.component[2], yb->component[0],
                   yb->component[1], yb->component[2]);
  }

 private:
  index_t size(const JetPass<T>& p) const { return shape_.size() * p.examples; }

  // σ', σ'', σ''' as the last forward at each primal input computed them (one input per chunk of the
  // network's cached primal; a block's scratch): the passes that follow at that input read them
  // (Layer's contract), so an HVP or a d3 at the cached point evaluates no σ.
  struct Kept {
    const T* input;
    index_t size;
    Buffer<T> derivatives;  // [3 × size]
  };
  T* keep(const JetPass<T>& p, const T* y) const {
    if (const T* found = lookup(p, y)) return const_cast<T*>(found);
    kept_.push_back({y, size(p), Buffer<T>(p.dev, 3 * size(p), Uninitialized{})});
    return kept_.back().derivatives.data();
  }
  const T* kept(const JetPass<T>& p, const T* y) const {
    const T* found = lookup(p, y);
    CFLOW_REQUIRE(found, "activation: a pass at a primal input its forward never saw (Layer's contract)");
    return found;
  }
  const T* lookup(const JetPass<T>& p, const T* y) const {
    for (const Kept& k : kept_)
      if (k.input == y && k.size == size(p)) return k.derivatives.data();
    return nullptr;
  }

  TensorShape shape_;
  Activation act_;
  mutable std::vector<Kept> kept_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_activation(TensorShape shape, Activation act) {
  return std::make_unique<ActivationLayer<T>>(shape, act);
}
template std::unique_ptr<Layer<float>> make_activation<float>(TensorShape, Activation);
template std::unique_ptr<Layer<double>> make_activation<double>(TensorShape, Activation);

}  // namespace cflow
