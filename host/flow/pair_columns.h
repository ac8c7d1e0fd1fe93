#pragma once
// The central flow's per-pair columns — ∇(u_aᵀHu_b) or u_a⊙u_b for the k(k+1)/2 pairs a ≤ b, d × k(k+1)/2
// in all — held one group of pairs at a time, so the substep's memory grows like group·d, not k²·d
// (docs/design.md §6.10, §7). With one group every product is the one of the whole matrix (the same
// BLAS calls on the same operands), so results do not depend on the grouping until it splits the pairs;
// a split changes only the order of the sums over pairs, i.e. rounding.
#include <algorithm>
#include <functional>
#include <vector>

#include "cflow/engine/pairs.h"
#include "cflow/runtime/buffer.h"

namespace cflow {

// The pairs 0 … pairs − 1 of k directions in consecutive groups of `size` (the last one shorter).
struct PairGroups {
  index_t pairs = 0, size = 0;
  // At most `group` pairs per group; group ≤ 0: all pairs in one group.
  PairGroups(index_t k, index_t group)
      : pairs(pair_count(k)), size(std::max<index_t>(1, group <= 0 ? pairs : std::min(group, pairs))) {}
  index_t count() const { return (pairs + size - 1) / size; }
  index_t first(index_t g) const { return g * size; }
  index_t length(index_t g) const { return std::min(size, pairs - first(g)); }
};

// A = [A_0 … A_{G−1}] (d × pairs), produced group by group by `fill`, and S = diag(s)·A for the s of
// the last gram().
template <class T>
class PairColumns {
 public:
  using Fill = std::function<void(index_t first, index_t count, T* columns)>;
  using Visit = std::function<void(index_t first, index_t count, const T* columns)>;
  PairColumns(const Device& dev, index_t d, const PairGroups& groups, Fill fill);

  // AᵀS (pairs × pairs, column-major, on the host) for s (device, d). visit runs once per group, in
  // ascending order, while A_g is held. fill runs G(G + 1)/2 times for G groups.
  std::vector<double> gram(const T* s, const Visit& visit = {});
  // out = A·weights + beta·out (scaled: S·weights, with the s of the last gram, still alive).
  // weights: device, pairs. From the last group down, so the group gram() held last is not refilled.
  void times(const T* weights, T beta, T* out) { accumulate(false, weights, beta, out); }
  void times_scaled(const T* weights, T beta, T* out) { accumulate(true, weights, beta, out); }
  // A_g (d × groups.length(g)), filled unless it is the group held.
  const T* hold(index_t g);

 private:
  const T* hold_scaled(index_t g);
  void accumulate(bool scaled, const T* weights, T beta, T* out);

  Device dev_;
  index_t d_;
  PairGroups groups_;
  Fill fill_;
  Buffer<T> columns_, scaled_;  // A_held and S_scaled, d × groups.size each (scaled_ from the first gram on)
  const T* s_ = nullptr;
  index_t held_ = -1, scaled_group_ = -1;
};

// The fill of the columns u_a ⊙ u_b of U (d × k, device).
template <class T>
typename PairColumns<T>::Fill pair_products_of(const Device& dev, index_t d, index_t k, const T* U);

}  // namespace cflow
