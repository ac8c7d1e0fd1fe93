#pragma once
// Layer-owned scratch that follows the chunk size: grown on demand, never shrunk.
#include "cflow/runtime/buffer.h"
#include "kernels/elementwise.h"

namespace cflow {

// At least n elements of `buffer` (the old one is released first: peak memory). Contents are not kept.
template <class T>
T* grow(const Device& dev, Buffer<T>& buffer, index_t n) {
  if (buffer.size() < n) {
    buffer = Buffer<T>();
    buffer = Buffer<T>(dev, n);
  }
  return buffer.data();
}

// At least n ones in `buffer` (for reductions and broadcasts as GEMMs).
template <class T>
const T* ones(const Device& dev, Buffer<T>& buffer, index_t n) {
  if (buffer.size() < n) CFLOW_DISPATCH(dev, fill<T>, dev, n, T(1), grow(dev, buffer, n));
  return buffer.data();
}

}  // namespace cflow
