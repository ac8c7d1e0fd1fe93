// The sharded oracle (include/cflow/engine/sharded_objective.h).
#include "cflow/engine/sharded_objective.h"

#include <algorithm>
#include <string>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"

namespace cflow {

template <class T>
ShardedObjective<T>::ShardedObjective(Objective<T>& shard, index_t shard_examples, index_t total_examples,
                                      Communicator& comm, int check_every)
    : shard_(shard),
      weight_(double(shard_examples) / double(total_examples)),
      comm_(comm),
      check_every_(check_every) {
  CFLOW_REQUIRE(shard_examples > 0 && shard_examples <= total_examples, "a shard holds 1 to n examples");
  CFLOW_REQUIRE(check_every >= 1, "check_every must be positive");
  if (comm_.size() > 1) fingerprint_.emplace(shard_.device(), dim());
}

template <class T>
void ShardedObjective<T>::sum_over_ranks(T* data, index_t count) {
  if (comm_.size() == 1) return;
  CFLOW_NVTX_RANGE("all_reduce");
  blas::scal<T>(shard_.device(), count, T(weight_), data);
  comm_.all_reduce_sum(shard_.device(), data, count);
}

template <class T>
void ShardedObjective<T>::check_lock_step(const T* w) {
  if (comm_.size() == 1 || gradient_queries_++ % check_every_ != 0) return;
  // A fingerprint of w, not w: kProbes scalars cross to the host, never d (docs/design.md §7.5).
  const std::uint64_t hash = fingerprint_->hash(w);
  const std::vector<std::uint64_t> hashes = comm_.all_gather(hash);
  for (std::size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) {
      throw CommError("the ranks are out of lock step: rank " + std::to_string(r) + " queried another w than rank 0 at " +
                  "gradient query " + std::to_string(gradient_queries_) +
                  " (do all ranks run the same cflow build, settings, backend and threads?); stopping");
    }
  }
}

template <class T>
T ShardedObjective<T>::value_grad(const T* w, T* grad) {
  check_lock_step(w);
  double loss = double(shard_.value_grad(w, grad));
  if (comm_.size() == 1) return T(loss);
  sum_over_ranks(grad, dim());
  loss *= weight_;
  comm_.all_reduce_sum(std::span<double>(&loss, 1));
  return T(loss);
}

template <class T>
void ShardedObjective<T>::hvp(const T* w, const T* V, index_t m, T* HV) {
  shard_.hvp(w, V, m, HV);
  sum_over_ranks(HV, dim() * m);
}

// values = Σ_r weight_r values_r for a few host values (m ≤ k_max quads).
template <class T>
void ShardedObjective<T>::sum_host_values(T* values, index_t m) {
  if (comm_.size() == 1) return;
  std::vector<double> sums(values, values + m);
  for (double& value : sums) value *= weight_;
  comm_.all_reduce_sum(sums);
  std::copy(sums.begin(), sums.end(), values);
}

template <class T>
std::vector<T> ShardedObjective<T>::quad(const T* w, const T* U, index_t m) {
  std::vector<T> values = shard_.quad(w, U, m);
  sum_host_values(values.data(), m);
  return values;
}

template <class T>
void ShardedObjective<T>::d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) {
  shard_.d3_pairs(w, U, k, first, count, D, quads);
  sum_over_ranks(D, dim() * count);
  if (quads) sum_host_values(quads, k);
}

Evaluation combine_shards(Communicator& comm, Evaluation shard, index_t shard_examples, index_t total_examples) {
  if (comm.size() == 1) return shard;
  const double weight = double(shard_examples) / double(total_examples);
  double values[2] = {shard.loss * weight, shard.accuracy * weight};
  comm.all_reduce_sum(values);
  return {values[0], values[1]};
}

template class ShardedObjective<float>;
template class ShardedObjective<double>;

}  // namespace cflow
