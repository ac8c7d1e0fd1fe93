#pragma once
// The oracle of a data-parallel run (docs/design.md §3, §7): each rank's engine answers for its shard
// of the training set (a mean over its n_r examples); weighted by n_r / n and summed over ranks in
// rank order (Communicator::all_reduce_sum), the answers are the means over all n examples, the same
// bits on every rank. The engine's kernels are untouched; with one rank every query is passed through.
//
// Every rank runs the same host logic on identical inputs, so the ranks stay in lock step without
// broadcasting decisions. That is checked: every `check_every`-th gradient query compares a
// fingerprint of w (a few dot products on the device, WeightFingerprint) across ranks and a mismatch
// stops the run with a CommError on every rank.
#include <optional>

#include "cflow/engine/network.h"
#include "cflow/engine/weight_fingerprint.h"
#include "cflow/runtime/comm.h"

namespace cflow {

template <class T>
class ShardedObjective final : public Objective<T> {
 public:
  ShardedObjective(Objective<T>& shard, index_t shard_examples, index_t total_examples, Communicator& comm,
                   int check_every = 10);

  index_t dim() const override { return shard_.dim(); }
  const Device& device() const override { return shard_.device(); }

  T value_grad(const T* w, T* grad) override;
  void hvp(const T* w, const T* V, index_t m, T* HV) override;
  std::vector<T> quad(const T* w, const T* U, index_t m) override;
  void d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) override;
  bool diagonal_jets_held(const T* w, const T* U, index_t k) override { return shard_.diagonal_jets_held(w, U, k); }

 private:
  void sum_over_ranks(T* data, index_t count);  // data = Σ_r weight_r data_r
  void sum_host_values(T* values, index_t m);
  void check_lock_step(const T* w);

  Objective<T>& shard_;
  double weight_;
  Communicator& comm_;
  int check_every_;
  std::int64_t gradient_queries_ = 0;
  std::optional<WeightFingerprint<T>> fingerprint_;  // in multi-rank runs only
};

// The whole set's loss and accuracy from each rank's evaluation of its shard of it.
Evaluation combine_shards(Communicator& comm, Evaluation shard, index_t shard_examples, index_t total_examples);

}  // namespace cflow
