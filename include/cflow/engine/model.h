#pragma once
// What network and loss to build: the configuration the derivative engine is composed from.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/runtime/choice.h"

namespace cflow {

using index_t = std::int64_t;

enum class Activation { gelu, tanh, silu, softplus, relu, identity };
enum class LossKind { mse, ce };
enum class Architecture { mlp, cnn, resnet, vit, transformer };

// The names of the choices, as the CLI flags, config files and logs spell them.
inline constexpr ChoiceTable<Activation, 6> kActivationChoices{{{"gelu", Activation::gelu},
                                                                {"tanh", Activation::tanh},
                                                                {"silu", Activation::silu},
                                                                {"softplus", Activation::softplus},
                                                                {"relu", Activation::relu},
                                                                {"identity", Activation::identity}}};
inline constexpr ChoiceTable<LossKind, 2> kLossChoices{{{"mse", LossKind::mse}, {"ce", LossKind::ce}}};
inline constexpr ChoiceTable<Architecture, 5> kArchitectureChoices{{{"mlp", Architecture::mlp},
                                                                    {"cnn", Architecture::cnn},
                                                                    {"resnet", Architecture::resnet},
                                                                    {"vit", Architecture::vit},
                                                                    {"transformer", Architecture::transformer}}};

// Per-example input layout, NCHW (so a column of the [features × n] input matrix is one example
// in PyTorch's flatten order). Vectors are channels × 1 × 1.
struct TensorShape {
  index_t channels = 1, height = 1, width = 1;
  index_t size() const { return channels * height * width; }
};

struct ModelSpec {
  Architecture arch = Architecture::mlp;
  index_t width = 256;  // MLP hidden width; CNN and ResNet base channel count (the reference's CNN: 32); ViT features
  int depth = 2;        // MLP hidden layers; ResNet basic blocks per stage; ViT and transformer blocks
  index_t heads = 2;    // ViT and transformer attention heads (must divide the width)
  index_t patch = 4;    // ViT patch side (must divide the image height and width)
  // Transformer: multiplies the head's initial weights (the reference's weight_multiplier and its
  // default 0: the outputs start as the head's bias alone).
  double output_scale = 0.0;
  Activation activation = Activation::gelu;
  bool bias = true;     // MLP layer biases (the CNN's are fixed by its architecture)
  TensorShape input;
  index_t classes = 2;  // network outputs C; 1 means a binary task
  // Loss terms per example: 1, or a sequence model's tokens, each with its own C outputs (the
  // network outputs C × positions per example, docs/design.md §3.11).
  index_t positions = 1;
  LossKind loss = LossKind::mse;
};

Activation parse_activation(std::string_view name);  // throws cflow::Error naming the valid choices
LossKind parse_loss(std::string_view name);
Architecture parse_architecture(std::string_view name);
std::string to_string(Activation act);
std::string to_string(LossKind loss);
std::string to_string(Architecture arch);

// The model the settings name, as flags and config files spell them; throws cflow::Error naming a
// bad name. The one way every command builds its ModelSpec.
struct ModelSettings {
  std::string_view arch, activation, loss;
  index_t width = 0;
  int depth = 0;
  bool bias = true;
  index_t classes = 0;  // network outputs
  index_t heads = ModelSpec{}.heads, patch = ModelSpec{}.patch;
  double output_scale = ModelSpec{}.output_scale;
};
// The transformer's positions are its input tokens (input.size()); every other model has one.
ModelSpec model_spec(const ModelSettings& settings, TensorShape input);
// Sizes that do not fit together (a ViT patch that does not tile the image, heads that do not divide
// the width), as a message naming the flags and what to choose, or nothing. The commands report it as
// a usage error (exit 2) before anything is built; the layers keep their own checks.
std::optional<std::string> model_shape_error(const ModelSpec& spec);

// Activations whose second derivative vanishes almost everywhere break the flows' smoothness
// assumptions; callers warn about them.
inline bool is_smooth(Activation act) { return act != Activation::relu; }

}  // namespace cflow
