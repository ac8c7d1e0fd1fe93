// Model configuration: names, parsing, and the layer sequence of each architecture.
#include <array>
#include <utility>

#include "cflow/runtime/error.h"
#include "cflow/engine/model.h"
#include "host/engine/layer.h"

namespace cflow {
namespace {

template <class E, std::size_t N>
E parse_choice(std::string_view what, std::string_view name, const std::array<std::pair<const char*, E>, N>& table) {
  std::string valid;
  for (const auto& [key, value] : table) {
    if (name == key) return value;
    valid += (valid.empty() ? "" : ", ") + std::string(key);
  }
  throw Error("unknown " + std::string(what) + " '" + std::string(name) + "' (valid: " + valid + ")");
}

template <class E, std::size_t N>
std::string choice_name(E value, const std::array<std::pair<const char*, E>, N>& table) {
  for (const auto& [key, v] : table)
    if (v == value) return key;
  return "?";
}

constexpr std::array<std::pair<const char*, Activation>, 6> kActivations{{{"gelu", Activation::gelu},
                                                                          {"tanh", Activation::tanh},
                                                                          {"silu", Activation::silu},
                                                                          {"softplus", Activation::softplus},
                                                                          {"relu", Activation::relu},
                                                                          {"identity", Activation::identity}}};
constexpr std::array<std::pair<const char*, LossKind>, 2> kLosses{{{"mse", LossKind::mse}, {"ce", LossKind::ce}}};
constexpr std::array<std::pair<const char*, Architecture>, 3> kArchitectures{
    {{"mlp", Architecture::mlp}, {"cnn", Architecture::cnn}, {"resnet", Architecture::resnet}}};

}  // namespace

Activation parse_activation(std::string_view name) { return parse_choice("activation", name, kActivations); }
LossKind parse_loss(std::string_view name) { return parse_choice("loss", name, kLosses); }
Architecture parse_architecture(std::string_view name) { return parse_choice("architecture", name, kArchitectures); }
std::string to_string(Activation act) { return choice_name(act, kActivations); }
std::string to_string(LossKind loss) { return choice_name(loss, kLosses); }
std::string to_string(Architecture arch) { return choice_name(arch, kArchitectures); }

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
    add(make_linear<T>(in, spec.classes, spec.bias, offset));
  } else if (spec.arch == Architecture::resnet) {
    add_resnet<T>(spec, layers, offset);
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
