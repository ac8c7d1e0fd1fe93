#pragma once
// The sorting task in the checking commands (gradcheck, hessian): its flags, and the transformer
// that is the one model of that task (and the task the one data of that model).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "cflow/data/dataset.h"
#include "cflow/engine/gradcheck.h"
#include "host/cli/model_flags.h"

namespace cflow::cli {

struct SortingFlags {
  int vocab_size = DataSpec{}.vocab_size, length = DataSpec{}.length;

  void register_options(CLI::App& cmd);
};

// Throws run::ConfigError unless --arch transformer goes with --data sorting and only with it.
void require_transformer_with_sorting(const std::string& arch, const std::string& data);
// The transformer for the task's sequences (classes = the vocabulary); built before the data, so the
// sizes are checked before any allocation.
ModelSpec sorting_spec(ModelOptions model, const SortingFlags& flags, std::uint64_t seed);
// n training sequences of the task: inputs, one-hot targets and the counted (unmasked) positions.
RandomData sorting_data(const ModelSpec& spec, const SortingFlags& flags, index_t n, std::uint64_t seed);

}  // namespace cflow::cli
