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
  // In place: Q[:, pair(i,j)] = ∇q(z_pair) becomes ∇(u_iᵀHu_j).
  template <class T>
  void polarization_combine(const Device& dev, std::int64_t d, std::int64_t k, T* Q);
)
}  // namespace cflow
