// Model configuration: names, parsing, and the layer sequence of each architecture.
#include "cflow/runtime/error.h"
#include "cflow/engine/model.h"
#include "host/engine/layer.h"

namespace cflow {
Activation parse_activation(std::string_view name) { return parse_choice("activation", name, kActivationChoices); }
LossKind parse_loss(std::string_view name) { return parse_choice("loss", name, kLossChoices); }
Architecture parse_architecture(std::string_view name) {
  return parse_choice("architecture", name, kArchitectureChoices);
}
std::string to_string(Activation act) { return choice_name(act, kActivationChoices); }
std::string to_string(LossKind loss) { return choice_name(loss, kLossChoices); }
std::string to_string(Architecture arch) { return choice_name(arch, kArchitectureChoices); }

ModelSpec model_spec(const ModelSettings& settings, TensorShape input) {
  ModelSpec spec;
  spec.arch = parse_architecture(settings.arch);
  spec.width = settings.width;
  spec.depth = settings.depth;
  spec.activation = parse_activation(settings.activation);
  spec.bias = settings.bias;
  spec.input = input;
  spec.classes = settings.classes;
  spec.heads = settings.heads;
  spec.patch = settings.patch;
  spec.output_scale = settings.output_scale;
  if (spec.arch == Architecture::transformer) spec.positions = input.size();
  spec.loss = parse_loss(settings.loss);
  return spec;
}

std::optional<std::string> model_shape_error(const ModelSpec& spec) {
  const bool attention = spec.arch == Architecture::vit || spec.arch == Architecture::transformer;
  if (attention && (spec.heads < 1 || spec.width % spec.heads != 0))
    return "--heads " + std::to_string(spec.heads) + " must divide --width " + std::to_string(spec.width) +
           " (each head gets width/heads features); choose a divisor of the width";
  const TensorShape image = spec.input;
  if (spec.arch == Architecture::vit && (spec.patch < 1 || image.height % spec.patch != 0 || image.width % spec.patch != 0))
    return "--patch " + std::to_string(spec.patch) + " must divide the image height and width (" +
           std::to_string(image.height) + "×" + std::to_string(image.width) + "); choose a common divisor";
  return std::nullopt;
}

template <class T>
LayerStack<T> build_layers(const ModelSpec& spec) {
  CFLOW_REQUIRE(spec.width >= 1 && spec.classes >= 1 && spec.input.size() >= 1, "model sizes must be positive");
  LayerStack<T> layers;
  index_t offset = 0;
  auto shape = [&] { return layers.back()->output_shape(); };
  auto add = [&](std::unique_ptr<Layer<T>> layer) {
    offset += layer->parameter_count();
    layers.push_back(std::move(layer));
  };
  if (spec.arch == Architecture::mlp) {
    CFLOW_REQUIRE(spec.depth >= 0, "MLP depth must be non-negative");
    TensorShape in = spec.input;  // flatten is free: an example's column is already NCHW order
    for (int l = 0; l < spec.depth; ++l) {
      add(make_linear<T>(in, spec.width, spec.bias, offset));
      add(make_activation<T>(shape(), spec.activation));
      in = shape();
    }
    add(make_linear<T>(in, spec.classes * spec.positions, spec.bias, offset));  // C outputs per position
  } else if (spec.arch == Architecture::resnet) {
    add_resnet<T>(spec, layers, offset);
  } else if (spec.arch == Architecture::vit) {
    add_vit<T>(spec, layers, offset);
  } else if (spec.arch == Architecture::transformer) {
    add_transformer<T>(spec, layers, offset);
  } else {
    CFLOW_REQUIRE(spec.input.height % 4 == 0 && spec.input.width % 4 == 0,
                  "the CNN pools twice by 2: input height and width must be divisible by 4");
    add(make_conv2d<T>(spec.input, spec.width, false, offset));
    add(make_activation<T>(shape(), spec.activation));
    add(make_avgpool2<T>(shape()));
    add(make_conv2d<T>(shape(), 2 * spec.width, false, offset));
    add(make_activation<T>(shape(), spec.activation));
    add(make_avgpool2<T>(shape()));
    add(make_linear<T>(shape(), 4 * spec.width, false, offset));
    add(make_activation<T>(shape(), spec.activation));
    add(make_linear<T>(shape(), spec.classes, true, offset));
  }
  return layers;
}
template LayerStack<float> build_layers<float>(const ModelSpec&);
template LayerStack<double> build_layers<double>(const ModelSpec&);

}  // namespace cflow
