// CPU↔CUDA parity in float64 (docs/design.md §7): the same seed gives the same numbers on both
// backends to 1e-10 relative — oracle queries on an MLP and a CNN, LOBPCG's top three eigenvalues,
// five experiment steps of discrete + central. The MLP is large enough (width × n > 65,536 × 256)
// that its elementwise kernels wrap the grid-stride loop. Skips, saying why, without a usable GPU.
#include <algorithm>
#include <cmath>

#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"
#include "cflow/solvers/lobpcg.h"
#include "test_support.h"

namespace cflow {
namespace {

constexpr double kRelative = 1e-10;

// max |a − b| ≤ kRelative · max |b|.
void expect_close(const std::vector<double>& a, const std::vector<double>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0, error = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    error = std::max(error, std::abs(a[i] - b[i]));
  }
  EXPECT_LE(error, kRelative * scale) << what << ": max difference " << error << ", scale " << scale;
}

struct Problem {
  ModelSpec spec;
  index_t n;
};

Problem wide_mlp() {  // 1040 × 16,200 = 16.8M activations > 65,536 × 256
  ModelSpec spec;
  spec.input = {16, 1, 1};
  spec.width = 1040;
  spec.depth = 1;
  spec.classes = 4;
  return {spec, 16200};
}
Problem small_cnn() {
  ModelSpec spec;
  spec.arch = Architecture::cnn;
  spec.input = {1, 8, 8};
  spec.width = 4;
  spec.classes = 3;
  return {spec, 48};
}

Network<double> make_network(const Device& dev, const Problem& p) {
  const auto x = testing::random_vector<double>(std::size_t(p.spec.input.size() * p.n), 1);
  std::vector<double> y(std::size_t(p.spec.classes * p.n), 0.0);
  for (index_t i = 0; i < p.n; ++i) y[std::size_t(i * p.spec.classes + i % p.spec.classes)] = 1;
  return Network<double>(dev, p.spec, x, y);
}

// Every oracle query at the same point and directions, as host vectors.
std::vector<std::pair<std::string, std::vector<double>>> oracle_answers(const Device& dev, const Problem& p) {
  Network<double> net = make_network(dev, p);
  const index_t d = net.dim(), k = 2;
  Buffer<double> w(dev, std::span<const double>(net.initial_parameters(3)));
  Buffer<double> U(dev, std::span<const double>(testing::random_vector<double>(std::size_t(d * k), 5)));
  Buffer<double> grad(dev, d), HU(dev, d * k), D(dev, d * k * (k + 1) / 2);
  std::vector<std::pair<std::string, std::vector<double>>> out;
  out.emplace_back("value", std::vector<double>{net.value_grad(w.data(), grad.data())});
  out.emplace_back("grad", grad.to_host());
  net.hvp(w.data(), U.data(), k, HU.data());
  out.emplace_back("hvp", HU.to_host());
  out.emplace_back("quad", net.quad(w.data(), U.data(), k));
  net.d3(w.data(), U.data(), k, D.data());
  out.emplace_back("d3", D.to_host());
  return out;
}

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda_available(&why)) GTEST_SKIP() << "CPU-CUDA parity needs a CUDA GPU: " << why;
    cpu_.emplace(Device::open("cpu"));
    gpu_.emplace(Device::open("cuda"));
  }
  const Device& cpu() const { return *cpu_; }
  const Device& gpu() const { return *gpu_; }

  void expect_oracle_parity(const Problem& p) const {
    const auto a = oracle_answers(gpu(), p), b = oracle_answers(cpu(), p);
    for (std::size_t i = 0; i < a.size(); ++i) expect_close(a[i].second, b[i].second, a[i].first);
  }

 private:
  std::optional<Device> cpu_, gpu_;
};

TEST_F(CudaParity, OracleQueriesOnAWideMlpAgree) { expect_oracle_parity(wide_mlp()); }
TEST_F(CudaParity, OracleQueriesOnACnnAgree) { expect_oracle_parity(small_cnn()); }

TEST_F(CudaParity, LobpcgTopThreeEigenvaluesAgree) {
  Problem p = small_cnn();
  auto top3 = [&](const Device& dev) {
    Network<double> net = make_network(dev, p);
    Buffer<double> w(dev, std::span<const double>(net.initial_parameters(3)));
    LobpcgOptions o;
    o.k = 3;
    o.tolerance = 1e-9;
    const auto r = lobpcg<double>(
        dev, net.dim(), [&](const double* V, index_t m, double* HV) { net.hvp(w.data(), V, m, HV); }, nullptr, o);
    EXPECT_TRUE(r.converged);
    return r.eigenvalues;
  };
  expect_close(top3(gpu()), top3(cpu()), "top-3 eigenvalues");
}

TEST_F(CudaParity, FiveExperimentStepsOfDiscreteAndCentralAgree) {
  Problem p = small_cnn();
  auto run = [&](const Device& dev) {
    Network<double> net = make_network(dev, p);
    ExperimentSettings s;
    s.processes = {ProcessKind::discrete, ProcessKind::central};
    s.eig.initial_k = 2;
    s.flow.sdcp_threshold = 0;  // the tracked eigenvalues are critical: the SDCP and d3 run
    Experiment<double> e(net, [&](const double* w) { return net.evaluate(w); }, {}, net.initial_parameters(0), s);
    std::vector<double> out;
    for (int step = 0; step < 5; ++step) {
      const StepRecord r = e.step();
      for (const auto& [kind, record] : r.processes) {
        out.push_back(record.train_loss);
        out.push_back(record.grad_norm_sq);
        out.insert(out.end(), record.effective_eigs.begin(), record.effective_eigs.end());
        if (kind == ProcessKind::central) out.push_back(record.predicted_loss);
      }
      for (const auto& [name, distance] : r.distances) out.push_back(distance);
    }
    return out;
  };
  expect_close(run(gpu()), run(cpu()), "experiment records");
}

}  // namespace
}  // namespace cflow
