#pragma once
// A parameter-free layer that is a linear map A of its input (pooling): every jet component and every
// adjoint component goes through the same map, yk = A xk and x̄k = Aᵀȳk (docs/design.md §3); a null
// (zero) tangent or adjoint stays zero.
#include "host/engine/layer.h"

namespace cflow {

template <class T>
class LinearMapLayer : public Layer<T> {
 public:
  void forward(const JetPass<T>& p, const T* x, T* y) const override { apply(p, p.examples, x, y); }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    for (int k = 0; k < p.order; ++k) {
      if (x.tangent[k])
        apply(p, p.examples * p.directions, x.tangent[k], y.tangent[k]);
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
        adjoint(p, columns, yb.component[k], xb->component[k]);
      else
        p.dev.set_zero(xb->component[k], sizeof(T) * std::size_t(input_size() * columns));
    }
  }

 protected:
  // y = A x and x = Aᵀ y (overwritten) for `columns` columns.
  virtual void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const = 0;
  virtual void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const = 0;
  virtual index_t input_size() const = 0;
};

}  // namespace cflow
