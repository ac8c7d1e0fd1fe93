#pragma once
// Layer-owned scratch that follows the chunk size: grown on demand, never shrunk.
#include "cflow/runtime/buffer.h"

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

}  // namespace cflow
