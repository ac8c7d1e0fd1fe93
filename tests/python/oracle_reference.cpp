// The C++ side of tests/python/test_oracle.py: prints, as JSON, tiny problems (random data of
// cflow::random_data, as `cflow hessian --data random` draws it; the transformer's sequences of
// cflow::make_sorting, as `cflow run --data sorting` draws them) with what the C++ API answers on
// them — initial parameters, value_grad, hvp, quad, d3 and the top Hessian eigenvalues — in float64
// and float32. The Python binding must give the same bits on the same inputs. JSON numbers are
// printed round-trip exact.
#include <nlohmann/json.hpp>

#include <iostream>
#include <random>
#include <span>
#include <vector>

#include "cflow/data/dataset.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "cflow/solvers/dense_hessian.h"

namespace {

using cflow::index_t;

struct Case {
  const char* name;
  cflow::ModelSpec spec;
  index_t n;
  std::uint64_t seed;
  index_t directions;  // columns of U
  int top;             // eigenpairs
  int vocab_size = 0, length = 0;  // the transformer's sorting task; 0: random data
};

template <class T>
nlohmann::json answers(const Case& c, const cflow::RandomData& data, const std::vector<double>& U64) {
  const cflow::Device dev = cflow::Device::open("cpu");
  const std::vector<T> X(data.inputs.begin(), data.inputs.end()), Y(data.targets.begin(), data.targets.end());
  const std::vector<T> U(U64.begin(), U64.end());
  const std::vector<T> counted(data.counted.begin(), data.counted.end());  // only the transformer masks
  cflow::Network<T> net = c.vocab_size == 0 ? cflow::Network<T>(dev, c.spec, X, Y)
                                            : cflow::Network<T>(dev, c.spec, X, Y, counted);
  const index_t d = net.dim(), m = c.directions;
  const std::vector<T> w0 = net.initial_parameters(c.seed);
  cflow::Buffer<T> w(dev, std::span<const T>(w0)), grad(dev, d), Ud(dev, std::span<const T>(U)), HU(dev, d * m),
      D(dev, d * cflow::pair_count(m));
  const T value = net.value_grad(w.data(), grad.data());
  net.hvp(w.data(), Ud.data(), m, HU.data());
  const std::vector<T> quad = net.quad(w.data(), Ud.data(), m);
  net.d3(w.data(), Ud.data(), m, D.data());
  cflow::HessianSpectrumOptions options;  // cflow hessian's and cflow.Oracle.top_eigs's defaults
  options.lobpcg = {.k = c.top, .tolerance = sizeof(T) == 8 ? 1e-8 : 1e-4, .max_iterations = 200,
                    .seed = unsigned(c.seed)};
  const cflow::HessianSpectrum<T> spectrum = cflow::hessian_spectrum<T>(net, w.data(), options);
  return {{"w", w0},
          {"value", value},
          {"grad", grad.to_host()},
          {"hvp", HU.to_host()},
          {"quad", quad},
          {"d3", D.to_host()},
          {"eigenvalues", spectrum.solution.eigenvalues},
          {"eigenvectors", spectrum.solution.U.to_host()}};
}

cflow::RandomData problem_data(const Case& c) {
  if (c.vocab_size == 0) return cflow::random_data(c.spec, c.n, c.seed);
  const cflow::Dataset task = cflow::make_sorting(std::size_t(c.n), c.vocab_size, c.length, c.seed,
                                                  cflow::DataSplit::train);
  return {task.inputs, cflow::make_targets(task, c.spec.loss), cflow::counted_positions(task)};
}

// The transformer of the sorting task (its classes the vocabulary, its input and positions the
// task's tokens), as `cflow run --arch transformer --data sorting` builds it.
Case sorting_case(const char* name, cflow::ModelSettings settings, int vocab_size, int length, index_t n,
                  std::uint64_t seed) {
  settings.classes = vocab_size;
  const cflow::TensorShape tokens = cflow::make_sorting(1, vocab_size, length, seed, cflow::DataSplit::train).shape();
  return {name, cflow::model_spec(settings, tokens), n, seed, 2, 1, vocab_size, length};
}

nlohmann::json problem(const Case& c) {
  const cflow::RandomData data = problem_data(c);
  cflow::Network<double> shapes(cflow::Device::open("cpu"), c.spec, data.inputs, data.targets);
  std::mt19937_64 rng(c.seed + 7);
  std::normal_distribution<double> normal;
  std::vector<double> U(std::size_t(shapes.dim() * c.directions));
  for (double& x : U) x = normal(rng);
  const cflow::ModelSpec& s = c.spec;
  return {{"name", c.name},
          {"model",
           {{"arch", cflow::to_string(s.arch)},
            {"width", s.width},
            {"depth", s.depth},
            {"activation", cflow::to_string(s.activation)},
            {"loss", cflow::to_string(s.loss)},
            {"classes", s.classes == 1 ? "binary" : std::to_string(s.classes)},
            {"input_shape", {s.input.channels, s.input.height, s.input.width}},
            {"bias", s.bias},
            {"heads", s.heads},
            {"patch", s.patch},
            {"output_scale", s.output_scale},
            {"vocab_size", c.vocab_size},
            {"length", c.length}}},
          {"n", c.n},
          {"seed", c.seed},
          {"inputs", data.inputs},
          {"targets", data.targets},
          {"counted", data.counted},
          {"U", U},
          {"directions", c.directions},
          {"top", c.top},
          {"float64", answers<double>(c, data, U)},
          {"float32", answers<float>(c, data, U)}};
}

}  // namespace

int main() {
  using cflow::Activation, cflow::Architecture, cflow::LossKind;
  const Case cases[] = {
      {"mlp-mse", {.arch = Architecture::mlp, .width = 8, .depth = 2, .activation = Activation::gelu,
                   .input = {10, 1, 1}, .classes = 3, .loss = LossKind::mse}, 16, 0, 3, 2},
      {"cnn-ce-binary", {.arch = Architecture::cnn, .width = 2, .activation = Activation::tanh,
                         .input = {2, 8, 8}, .classes = 1, .loss = LossKind::ce}, 8, 3, 2, 1},
      {"vit-ce", {.arch = Architecture::vit, .width = 8, .depth = 1, .heads = 2, .patch = 4,
                  .input = {2, 8, 8}, .classes = 3, .loss = LossKind::ce}, 6, 5, 2, 1},
      sorting_case("transformer-sorting", {.arch = "transformer", .activation = "gelu", .loss = "ce", .width = 8,
                                           .depth = 1, .heads = 2, .output_scale = 1.0}, 4, 3, 6, 2),
  };
  nlohmann::json out = nlohmann::json::array();
  for (const Case& c : cases) out.push_back(problem(c));
  std::cout << out.dump() << "\n";
}
