// The C++ side of tests/python/test_oracle.py: prints, as JSON, tiny problems (random data of
// cflow::random_data, as `cflow hessian --data random` draws it) with what the C++ API answers on
// them — initial parameters, value_grad, hvp, quad, d3 and the top Hessian eigenvalues — in float64
// and float32. The Python binding must give the same bits on the same inputs. JSON numbers are
// printed round-trip exact.
#include <nlohmann/json.hpp>

#include <iostream>
#include <random>
#include <span>
#include <vector>

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
};

template <class T>
nlohmann::json answers(const Case& c, const cflow::RandomData& data, const std::vector<double>& U64) {
  const cflow::Device dev = cflow::Device::open("cpu");
  const std::vector<T> X(data.inputs.begin(), data.inputs.end()), Y(data.targets.begin(), data.targets.end());
  const std::vector<T> U(U64.begin(), U64.end());
  cflow::Network<T> net(dev, c.spec, X, Y);
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

nlohmann::json problem(const Case& c) {
  const cflow::RandomData data = cflow::random_data(c.spec, c.n, c.seed);
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
            {"bias", s.bias}}},
          {"n", c.n},
          {"seed", c.seed},
          {"inputs", data.inputs},
          {"targets", data.targets},
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
  };
  nlohmann::json out = nlohmann::json::array();
  for (const Case& c : cases) out.push_back(problem(c));
  std::cout << out.dump() << "\n";
}
