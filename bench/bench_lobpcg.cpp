// Hessian eigen-solves on networks of realistic size, float32: block LOBPCG for the top k eigenpairs
// of the raw Hessian (P = I) from a random start (cold), and warm-started from the vectors converged
// at the previous point after one GD step (warm: what a run re-solving once per step pays).
// Reported: time per solve; counters iterations, hvp_calls (batched calls), hvps (Hessian-vector
// products), converged; x_grad = time / value_grad time and per_hvp_x_grad = time / (hvps ·
// value_grad time), the value_grad baseline measured in the same benchmark. The primal pass at the
// solve's point is cached before timing, as in a run where value_grad at w precedes the solve.
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "cflow/runtime/blas.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/solvers/lobpcg.h"
#include "cflow/engine/network.h"

namespace cflow::bench {
namespace {

enum class Start { cold, warm };

constexpr double kTolerance = 1e-4;  // float32: the relative residual reachable with margin
constexpr int kMaxIterations = 300;

template <class T>
Network<T> make_network(const Problem& p) {
  const RandomData data = random_data(p.spec, p.n, 0);
  const std::vector<T> x(data.inputs.begin(), data.inputs.end()), y(data.targets.begin(), data.targets.end());
  return Network<T>(bench_device(), p.spec, x, y);
}

template <class T>
void BM_Lobpcg(benchmark::State& state, Problem problem, Start start) {
  const int k = int(state.range(0));
  const Device& dev = bench_device();
  Network<T> net = make_network<T>(problem);
  const index_t d = net.dim();
  Buffer<T> w(dev, std::span<const T>(net.initial_parameters(1)));
  Buffer<T> w_other(dev, std::span<const T>(net.initial_parameters(2)));
  Buffer<T> grad(dev, d);

  // Baseline: forward and backward at a fresh point (alternating, so the primal cache never hides it).
  bool at_w = false;
  const double grad_seconds = median_seconds([&] {
    at_w = !at_w;
    net.value_grad(at_w ? w.data() : w_other.data(), grad.data());
    dev.synchronize();
  });

  const LobpcgOptions options{.k = k, .tolerance = kTolerance, .max_iterations = kMaxIterations, .seed = 1};
  net.value_grad(w.data(), grad.data());
  const T* point = w.data();
  LobpcgResult<T> previous;
  if (start == Start::warm) {
    // One GD step w' = w − η∇L(w) with η = 1/λ_max(w) (half the edge-of-stability step size), from
    // the vectors converged at w.
    previous = lobpcg<T>(dev, d, [&](const T* V, index_t m, T* HV) { net.hvp(w.data(), V, m, HV); }, nullptr,
                         options);
    if (!(previous.eigenvalues[0] > 0)) {
      state.SkipWithError("the top Hessian eigenvalue at initialization is not positive");
      return;
    }
    blas::axpy(dev, d, T(-1) / previous.eigenvalues[0], grad.data(), w.data());
    net.value_grad(w.data(), grad.data());
  }
  const BlockOperator<T> H = [&](const T* V, index_t m, T* HV) { net.hvp(point, V, m, HV); };

  LobpcgResult<T> result;
  const double seconds = timed_loop(state, [&] {
    result = start == Start::warm ? lobpcg<T>(dev, d, H, nullptr, options, previous.Y.data(), k)
                                  : lobpcg<T>(dev, d, H, nullptr, options);
    dev.synchronize();
  });
  state.counters["iterations"] = result.iterations;
  state.counters["hvp_calls"] = result.operator_calls;
  state.counters["hvps"] = result.operator_applications;
  state.counters["converged"] = result.converged ? 1 : 0;
  state.counters["x_grad"] = seconds / grad_seconds;
  state.counters["per_hvp_x_grad"] = seconds / (double(result.operator_applications) * grad_seconds);
  state.counters["params"] = double(d);
}

void register_lobpcg_benchmarks() {
  const std::vector<std::pair<std::string, Problem>> problems{
      {"mlp_w256_n1000", mlp(256)}, {"mlp_w1024_n1000", mlp(1024)}, {"cnn_w32_28x28_n1000", cnn(32)}};
  for (const auto& [name, problem] : problems)
    for (const Start start : {Start::cold, Start::warm}) {
      const std::string full = "lobpcg/" + name + "/f32/" + (start == Start::cold ? "cold" : "warm");
      benchmark::RegisterBenchmark(full.c_str(), BM_Lobpcg<float>, problem, start)
          ->ArgName("k")
          ->Arg(1)
          ->Arg(3)
          ->Arg(8)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
}
const bool registered = (register_lobpcg_benchmarks(), true);

}  // namespace
}  // namespace cflow::bench
