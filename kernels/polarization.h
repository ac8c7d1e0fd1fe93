#pragma once
// Polarization for third derivatives (docs/design.md §3): ∇(u_iᵀHu_j) = ½(∇q(u_i+u_j) − ∇q(u_i) − ∇q(u_j)),
// q(z) = zᵀHz, with pairs i ≤ j < k numbered as in cflow::pair_index.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // Z[:, pair(i,j) − first] = u_i (i = j) or u_i + u_j (i < j) for the pairs first … first + count − 1;
  // U is d × k, Z is d × count (a group of the k(k+1)/2 pairs: d3 streams them, docs/design.md §7).
  template <class T>
  void polarization_directions(const Device& dev, std::int64_t d, std::int64_t k, std::int64_t first,
                               std::int64_t count, const T* U, T* Z);
  // In place, for the pairs first ≤ pair(i,j) < first + count: Q[:, pair(i,j) − first] = ∇q(z_pair)
  // becomes ∇(u_iᵀHu_j). `diagonal` holds ∇q(u_i): in column pair(i,i) of Q itself when diagonal == Q
  // (Q holds every pair: first = 0), else in column i of a d × k matrix.
  template <class T>
  void polarization_combine(const Device& dev, std::int64_t d, std::int64_t k, std::int64_t first, std::int64_t count,
                            const T* diagonal, T* Q);
)
}  // namespace cflow
