#pragma once
// Bias broadcast: Y_b[r, c] += bias_b[r] for a batch of [rows × cols] matrices, bias_b at
// bias + b·bias_stride. (Bias gradients are reductions over examples and go through a GEMM with a
// ones vector: deterministic, no atomics.)
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  template <class T>
  void add_bias(const Device& dev, std::int64_t rows, std::int64_t cols, std::int64_t batch, const T* bias,
                std::int64_t bias_stride, T* Y);
)
}  // namespace cflow
