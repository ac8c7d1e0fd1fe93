#pragma once
// Activation jets (docs/design.md §3): forward tangents of orders 1–2 and their reverse passes, with
// σ', σ'', σ''' evaluated once per element by the primal pass and kept (`derivatives`, [3 × size]:
// σ' | σ'' | σ'''), so the queries that follow at the same point never evaluate σ again.
// Layout: y0 is [size] (features × examples); tangents and adjoints are [size × m], direction-major.
// A null tangent or adjoint pointer means "identically zero".
#include <cstdint>

#include "cflow/runtime/device.h"
#include "cflow/engine/model.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // a0 = σ(y0); derivatives = [σ'(y0) | σ''(y0) | σ'''(y0)]
  template <class T>
  void activation_forward(const Device& dev, Activation act, std::int64_t size, const T* y0, T* a0,
                          T* derivatives);
  // a1 = σ' y1;  a2 = σ' y2 + σ'' y1²  (order 2)
  template <class T>
  void activation_tangents(const Device& dev, int order, std::int64_t size, std::int64_t m, const T* derivatives,
                           const T* y1, const T* y2, T* a1, T* a2);
  // Order 0: yb0 = σ' ab0 (m = 1).  Order 1: yb1 = σ' ab1;  yb0 = σ' ab0 + σ'' y1 ab1.
  // Order 2: yb2 = σ' ab2;  yb1 = σ' ab1 + 2σ'' y1 ab2;  yb0 = σ' ab0 + σ'' y1 ab1 + (σ'' y2 + σ''' y1²) ab2.
  template <class T>
  void activation_reverse(const Device& dev, int order, std::int64_t size, std::int64_t m, const T* derivatives,
                          const T* y1, const T* y2, const T* ab0, const T* ab1, const T* ab2, T* yb0, T* yb1,
                          T* yb2);
)
}  // namespace cflow
