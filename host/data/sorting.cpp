// The sorting task (include/cflow/data/dataset.h): next-token prediction on a random sequence
// followed by its sorted version, counted on the sorted half only.
#include <algorithm>

#include "cflow/data/dataset.h"

namespace cflow {

Dataset make_sorting(std::size_t n, int vocab_size, int length, std::uint64_t seed, DataSplit split) {
  CFLOW_REQUIRE(vocab_size >= 2 && length >= 1, "sorting: vocab_size must be >= 2 and length >= 1");
  std::mt19937_64 rng = random_stream(seed, split == DataSplit::train ? "sorting/train" : "sorting/test");
  const int tokens = 2 * length - 1;  // the inputs drop the last token, the labels the first
  Dataset data;
  data.n = n;
  data.channels = tokens;
  data.height = data.width = 1;
  data.classes.count = vocab_size;
  data.positions = tokens;
  data.inputs.reserve(n * std::size_t(tokens));
  data.labels.reserve(n * std::size_t(tokens));
  std::vector<int> sequence(2 * std::size_t(length));
  for (std::size_t i = 0; i < n; ++i) {
    for (int t = 0; t < length; ++t) sequence[std::size_t(t)] = int(uniform_below(std::uint64_t(vocab_size), rng));
    std::copy_n(sequence.begin(), length, sequence.begin() + length);
    std::sort(sequence.begin() + length, sequence.end());
    for (int t = 0; t < tokens; ++t) {
      data.inputs.push_back(double(sequence[std::size_t(t)]));
      data.labels.push_back(t < length - 1 ? kMaskedLabel : sequence[std::size_t(t) + 1]);
    }
  }
  return data;
}

}  // namespace cflow
