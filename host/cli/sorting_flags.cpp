#include "host/cli/sorting_flags.h"

#include "host/run/config.h"

namespace cflow::cli {

void SortingFlags::register_options(CLI::App& cmd) {
  cmd.add_option("--vocab-size", vocab_size, "sorting: tokens 0 .. N-1")->capture_default_str()->check(
      CLI::Range(2, 1 << 16));
  cmd.add_option("--length", length, "sorting: tokens to sort")->capture_default_str()->check(CLI::Range(1, 1 << 12));
}

void require_transformer_with_sorting(const std::string& arch, const std::string& data) {
  if (const std::string why = sequence_task_mismatch(arch, data); !why.empty()) throw run::ConfigError(why);
}

ModelSpec sorting_spec(ModelOptions model, const SortingFlags& flags, std::uint64_t seed) {
  model.classes = std::to_string(flags.vocab_size);
  return model.spec(make_sorting(1, flags.vocab_size, flags.length, seed, DataSplit::train).shape());
}

RandomData sorting_data(const ModelSpec& spec, const SortingFlags& flags, index_t n, std::uint64_t seed) {
  const Dataset task = make_sorting(std::size_t(n), flags.vocab_size, flags.length, seed, DataSplit::train);
  return {task.inputs, make_targets(task, spec.loss), counted_positions(task)};
}

}  // namespace cflow::cli
