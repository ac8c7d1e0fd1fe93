#pragma once
// Elementwise vector operations on device arrays.
#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  template <class T> void fill(const Device& dev, std::int64_t n, T value, T* x);
  // x = a x + b
  template <class T> void affine(const Device& dev, std::int64_t n, T a, T b, T* x);
  // z = x ⊙ y (z may alias x or y)
  template <class T> void multiply(const Device& dev, std::int64_t n, const T* x, const T* y, T* z);
  // x = max(x, a y)
  template <class T> void max_scaled(const Device& dev, std::int64_t n, T a, const T* y, T* x);
)
}  // namespace cflow
