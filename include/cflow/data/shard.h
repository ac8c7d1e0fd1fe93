#pragma once
// Contiguous, deterministic shards of a data set for data-parallel runs (docs/design.md §7): rank r
// of R holds examples [⌊n r / R⌋, ⌊n (r + 1) / R⌋) of the loaded (selected, preprocessed, permuted)
// split — the same examples on every machine, since loading is itself deterministic.
#include <cstddef>

#include "cflow/data/dataset.h"

namespace cflow {

struct ShardRange {
  std::size_t first = 0;
  std::size_t count = 0;
};

ShardRange shard_range(std::size_t n, int rank, int ranks);

// The examples [range.first, range.first + range.count) of `data` (within its n).
Dataset examples_in(const Dataset& data, ShardRange range);

// The examples of `data` that rank `rank` of `ranks` holds. Throws DataError when a shard would be
// empty (fewer examples than ranks).
Dataset shard(const Dataset& data, int rank, int ranks);

}  // namespace cflow
