// Shards of a data set (include/cflow/data/shard.h).
#include "cflow/data/shard.h"

#include <string>

namespace cflow {

ShardRange shard_range(std::size_t n, int rank, int ranks) {
  CFLOW_REQUIRE(ranks >= 1 && rank >= 0 && rank < ranks, "bad rank or rank count");
  const std::size_t first = n * std::size_t(rank) / std::size_t(ranks);
  const std::size_t end = n * std::size_t(rank + 1) / std::size_t(ranks);
  return {first, end - first};
}

Dataset shard(const Dataset& data, int rank, int ranks) {
  if (data.n < std::size_t(ranks)) {
    throw DataError("a split of " + std::to_string(data.n) + " examples cannot be shared by " + std::to_string(ranks) +
                    " ranks (each needs at least one): use more examples or fewer ranks");
  }
  return examples_in(data, shard_range(data.n, rank, ranks));
}

Dataset examples_in(const Dataset& data, ShardRange range) {
  CFLOW_REQUIRE(range.first + range.count <= data.n, "an example range beyond the data set");
  Dataset part = data;
  part.n = range.count;
  const auto inputs = data.inputs.begin() + std::ptrdiff_t(range.first * data.features());
  part.inputs.assign(inputs, inputs + std::ptrdiff_t(range.count * data.features()));
  const auto labels = data.labels.begin() + std::ptrdiff_t(range.first) * data.positions;
  part.labels.assign(labels, labels + std::ptrdiff_t(range.count) * data.positions);
  return part;
}

}  // namespace cflow
