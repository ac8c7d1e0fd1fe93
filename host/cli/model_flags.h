#pragma once
// Model flags shared by the subcommands that build a network (--arch, --width, --depth, --act,
// --loss, --classes, --no-bias, --heads, --patch, --output-scale).
#include <CLI/CLI.hpp>

#include <string>

#include "cflow/engine/model.h"

namespace cflow::cli {

struct ModelOptions {
  std::string arch = "mlp";
  index_t width = 256;
  int depth = 2;
  std::string activation = "gelu";
  std::string loss = "mse";
  std::string classes = "4";  // N ≥ 2 or "binary"
  bool no_bias = false;
  index_t heads = ModelSpec{}.heads, patch = ModelSpec{}.patch;
  double output_scale = ModelSpec{}.output_scale;

  void register_options(CLI::App& cmd);
  // The model for an input shape; throws cflow::Error naming a bad value.
  ModelSpec spec(TensorShape input) const;
};

// Random-data input shape for checks: 10 features for an MLP, a 2×8×8 image for a CNN.
TensorShape gradcheck_input_shape(const ModelOptions& options);
std::string describe(const ModelSpec& spec);
void warn_if_not_smooth(const ModelSpec& spec);

}  // namespace cflow::cli
