#pragma once
// A one-rank run's oracles for a process on its lane (docs/design.md §7.10): the training network,
// the test set's and the --log-outputs probe's, each bound to the lane, so the process computes and
// evaluates on its own stream and arena. What they hold per lane is what the memory estimate counts
// (host/run/memory_check.h: network_scratches, evaluation_bytes).
#include <cstdint>
#include <memory>
#include <vector>

#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"

namespace cflow::run {

template <class T>
struct RunNetworks {
  const Network<T>* train = nullptr;
  const Network<T>* test = nullptr;   // null: no test set
  const Network<T>* probe = nullptr;  // the first --log-outputs training examples; null: off

  // The oracles on `lane` (the one-rank sharded objective passes every query through to the shard's
  // network, and evaluations need no sum).
  typename Experiment<T>::Oracles on(const Device& lane) const;
};

// The shape of a step's logged outputs on K examples, row-major as Network::outputs writes them
// ([C × positions × K], an example per column): [K × C], or [K × positions × C] for sequences
// (docs/design.md §8).
std::vector<std::int64_t> outputs_shape(const ModelSpec& spec, std::int64_t examples);

// The probe's outputs at w, outputs_shape(spec, its examples) row-major.
template <class T>
typename Experiment<T>::Outputs outputs_of(std::shared_ptr<Network<T>> probe);

}  // namespace cflow::run
