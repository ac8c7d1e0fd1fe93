#pragma once
// The derivative oracle every process talks to (docs/design.md §3). Implemented by the network engine and
// by analytic test objectives. All pointers are device pointers; d = dim().
#include <memory>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/engine/pairs.h"

namespace cflow {

// Loss and accuracy of a model at a point, on a data set (train or test).
struct Evaluation {
  double loss = 0;      // mean loss
  double accuracy = 0;  // fraction of examples classified correctly
};

template <class T>
class Objective {
 public:
  virtual ~Objective() = default;
  virtual index_t dim() const = 0;
  virtual const Device& device() const = 0;
  // L(w), and ∇L(w) into grad (d).
  virtual T value_grad(const T* w, T* grad) = 0;
  // HV for a block V of m directions (d × m, column-major) into HV (d × m).
  virtual void hvp(const T* w, const T* V, index_t m, T* HV) = 0;
  // u_jᵀ H u_j for each column of U (d × m), returned on the host.
  virtual std::vector<T> quad(const T* w, const T* U, index_t m) = 0;
  // ∇_w(u_iᵀ H(w) u_j) for the pairs first, …, first + count − 1 (in the order of cflow::pair_index)
  // of the k columns of U, into D (d × count). The central flow streams the pairs in groups so its
  // memory grows like k·d, not k²·d (docs/design.md §6.10, §7). Unless quads is null, also u_iᵀHu_i
  // for the k columns into quads (host, k): the order-2 jets along u_i that the pass differentiates
  // carry them, so the central flow's Rayleigh refresh need not ask quad() (docs/design.md §3, §6.4).
  virtual void d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) = 0;
  // Whether d3_pairs on a part of the pairs at (w, U, k) would reuse the diagonal jets ∇q(u_i) of an
  // earlier part at the same w and U instead of computing them again (Network keeps the last ones,
  // watched like its primal pass: docs/design.md §6.10, §7); what CountingObjective counts.
  virtual bool diagonal_jets_held(const T* /*w*/, const T* /*U*/, index_t /*k*/) { return false; }
  // The same objective bound to `lane` (Device::lane) with its own scratch, sharing what is read-only
  // (the model, the data on the device): what lets processes advance on their own streams
  // (docs/design.md §7.10). nullptr when it cannot be bound elsewhere; the processes then share it.
  virtual std::unique_ptr<Objective<T>> on_lane(const Device& /*lane*/) const { return nullptr; }
  // All pairs i ≤ j, into D (d × k(k+1)/2).
  void d3(const T* w, const T* U, index_t k, T* D) { d3_pairs(w, U, k, 0, pair_count(k), D, nullptr); }
};

}  // namespace cflow
