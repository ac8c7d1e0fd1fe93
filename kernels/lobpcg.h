#pragma once
// Diagonal scaling for the eigen-solver: the symmetric operator A = P^{-1/2} H P^{-1/2} and the
// generalized eigenvectors U = P^{-1/2} Y both divide the rows of a block by √p.
#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // out[i + j·rows] = in[i + j·rows] / √p[i] for a rows×cols column-major block (out may alias in).
  template <class T>
  void divide_rows_by_sqrt(const Device& dev, std::int64_t rows, std::int64_t cols, const T* p, const T* in,
                           T* out);
)
}  // namespace cflow
