#pragma once
// A d-independent fingerprint of a parameter vector for the ranks' lock-step check (docs/design.md §7):
// kProbes dot products pᵢᵀw with fixed pseudo-random probe vectors kept on the device, computed by one
// GEMV into a device buffer; only those kProbes scalars cross to the host, never w itself (§7.5).
//
// Equal w (the same bits) on the same backend and threads gives the same bits: the GEMV is
// deterministic (no atomics in reductions). Different w give different fingerprints except with
// negligible probability: for δ = w − w' ≠ 0 the probes, drawn from a fixed seed independently of
// how the ranks' w came to differ, satisfy pᵢᵀδ = 0 only on a hyperplane of measure zero, and all
// kProbes of them at once with probability the product of those. One limit is rounding: a δ far below
// the rounding error of pᵢᵀw (say one ulp in a single entry) can vanish from the rounded sums; ranks
// out of lock step diverge, so such a drift is caught at a later check once it has grown.
#include <cstdint>
#include <vector>

#include "cflow/runtime/buffer.h"

namespace cflow {

template <class T>
class WeightFingerprint {
 public:
  static constexpr index_t kProbes = 2;  // d × 2 probe values on the device; more would not help the rounding limit above

  // Probes for vectors of length d, drawn once from a fixed seed (the same on every rank).
  WeightFingerprint(const Device& dev, index_t d);

  // The kProbes scalars pᵢᵀw for the device vector w (length d); one transfer of kProbes values.
  std::vector<T> of(const T* w);
  // Their bit patterns hashed into one word, for Communicator::all_gather.
  std::uint64_t hash(const T* w);

 private:
  Buffer<T> probes_;  // d × kProbes, column-major: column i is pᵢ
  Buffer<T> values_;  // kProbes
};

}  // namespace cflow
