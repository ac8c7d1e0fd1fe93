#include "host/cli/model_flags.h"

#include <cstdio>
#include <iostream>

#include "cflow/data/dataset.h"
#include "host/run/config.h"

namespace cflow::cli {

void ModelOptions::register_options(CLI::App& cmd) {
  cmd.add_option("--arch", arch, joined_choice_names(kArchitectureChoices, " | "))
      ->capture_default_str()
      ->check(CLI::IsMember(choice_names(kArchitectureChoices)));
  cmd.add_option("--width", width, "MLP hidden width; CNN and ResNet base channels; ViT features")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--depth", depth, "MLP hidden layers; ResNet blocks per stage; ViT blocks")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--act", activation, joined_choice_names(kActivationChoices, " | "))
      ->capture_default_str()
      ->check(CLI::IsMember(choice_names(kActivationChoices)));
  cmd.add_option("--loss", loss, joined_choice_names(kLossChoices, " | "))
      ->capture_default_str()
      ->check(CLI::IsMember(choice_names(kLossChoices)));
  cmd.add_option("--classes", classes, "number of classes N >= 2, or 'binary' (one output)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              parse_class_choice(text);
              return "";
            } catch (const Error&) {
              return "expected an integer >= 2 or 'binary', got '" + text + "'";
            }
          },
          "N|binary"));
  cmd.add_flag("--no-bias", no_bias, "MLP layers without biases");
  cmd.add_option("--heads", heads, "ViT and transformer attention heads (must divide --width)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--patch", patch, "ViT patch side (must divide the image height and width)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--output-scale", output_scale, "transformer: multiplies the head's initial weights (reference: 0)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

ModelSpec ModelOptions::spec(TensorShape input) const {
  ModelSpec spec = model_spec(
      {arch, activation, loss, width, depth, !no_bias, parse_class_choice(classes).outputs(), heads, patch, output_scale},
      input);
  if (const auto error = model_shape_error(spec)) throw run::ConfigError(*error);
  return spec;
}

TensorShape gradcheck_input_shape(const ModelOptions& options) {
  return options.arch == "mlp" ? TensorShape{10, 1, 1} : TensorShape{2, 8, 8};
}

namespace {
std::string shortest(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}
}  // namespace

std::string describe(const ModelSpec& s) {
  std::string text = to_string(s.arch) + " width " + std::to_string(s.width);
  if (s.arch == Architecture::mlp) text += " depth " + std::to_string(s.depth) + (s.bias ? "" : " no-bias");
  if (s.arch == Architecture::resnet) text += " depth " + std::to_string(s.depth);
  if (s.arch == Architecture::vit)
    text += " depth " + std::to_string(s.depth) + " heads " + std::to_string(s.heads) + " patch " +
            std::to_string(s.patch);
  if (s.arch == Architecture::transformer)
    text += " depth " + std::to_string(s.depth) + " heads " + std::to_string(s.heads) + " output-scale " +
            shortest(s.output_scale) + ", " + std::to_string(s.positions) + " positions";
  return text + ", " + to_string(s.activation) + ", " + to_string(s.loss) + ", " +
         (s.classes == 1 ? std::string("binary") : std::to_string(s.classes) + " classes");
}

void warn_if_not_smooth(const ModelSpec& s) {
  if (!is_smooth(s.activation))
    std::cerr << "warning: " << to_string(s.activation)
              << " has a zero second derivative almost everywhere; central flows assume a smooth network\n";
}

}  // namespace cflow::cli
