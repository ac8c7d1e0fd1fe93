#pragma once
// Elementwise pieces of the central flow (docs/design.md §6): row scalings by the preconditioner, products
// of critical vectors, and the expected squared gradient under the oscillation covariance.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // out = 1 / x
  template <class T> void reciprocal(const Device& dev, std::int64_t n, const T* x, T* out);
  // out[r, c] = A[r, c] · s[r] for a d × cols matrix (out may alias A).
  template <class T>
  void scale_rows(const Device& dev, std::int64_t d, std::int64_t cols, const T* s, const T* A, T* out);
  // Z[:, pair(a, b) − first] = u_a ⊙ u_b for the pairs a ≤ b with first ≤ pair(a, b) < first + count
  // (U is d × k, Z is d × count).
  template <class T>
  void pair_products(const Device& dev, std::int64_t d, std::int64_t k, std::int64_t first, std::int64_t count,
                     const T* U, T* Z);
  // e = g ⊙ g + p ⊙ p ⊙ h: E[g⊙g] with h = diag(UΛXΛUᵀ) (so p²h = diag(HΣH) when HU = PUΛ).
  // out[i, c] = A[rows[i], c] for count rows of a d × cols matrix (out is count × cols).
  template <class T>
  void gather_rows(const Device& dev, std::int64_t d, std::int64_t cols, std::int64_t count, const std::int64_t* rows,
                   const T* A, T* out);
  template <class T>
  void expected_grad_sq(const Device& dev, std::int64_t d, const T* g, const T* p, const T* h, T* e);
)
}  // namespace cflow
