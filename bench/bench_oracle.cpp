// The derivative oracle on networks of realistic size: value_grad, hvp, quad and d3, each reported
// as time, as a multiple of value_grad (x_grad) and of one GEMM of the network's hidden size
// (x_gemm), both baselines measured in the same benchmark. hvp also reports its cost per direction
// relative to the gradient (per_dir_x_grad), the number the batched-HVP target is about.
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "cflow/runtime/blas.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"

namespace cflow::bench {
namespace {

enum class Query { value_grad, hvp, quad, d3 };

template <class T>
struct Fixture {
  Fixture(const Problem& p)
      : net(make(p)),
        w(bench_device(), std::span<const T>(net.initial_parameters(1))),
        w_other(bench_device(), std::span<const T>(net.initial_parameters(2))),
        grad(bench_device(), net.dim()) {}

  static Network<T> make(const Problem& p) {
    const RandomData data = random_data(p.spec, p.n, 0);
    const std::vector<T> x(data.inputs.begin(), data.inputs.end()), y(data.targets.begin(), data.targets.end());
    return Network<T>(bench_device(), p.spec, x, y);
  }
  // Forward and backward at a fresh point: alternate between two points so the primal cache
  // never hides the forward pass.
  void fresh_gradient() {
    std::swap(w, w_other);
    net.value_grad(w.data(), grad.data());
    bench_device().synchronize();
  }

  Network<T> net;
  Buffer<T> w, w_other, grad;
};

// One GEMM shaped like a hidden layer of the network: (width × n) = (width × width)(width × n).
template <class T>
double hidden_gemm_seconds(index_t width, index_t n) {
  const Device& dev = bench_device();
  Buffer<T> A(dev, width * width), B(dev, width * n), C(dev, width * n);
  fill_random(A, 3);
  fill_random(B, 4);
  return median_seconds([&] {
    blas::gemm<T>(dev, blas::Op::T, blas::Op::N, width, n, width, T(1), A.data(), width, B.data(), width, T(0),
                  C.data(), width);
    dev.synchronize();
  });
}

template <class T>
void BM_Oracle(benchmark::State& state, Problem problem, Query query) {
  const index_t m = state.range(0);
  Fixture<T> f(problem);
  const Device& dev = bench_device();
  const index_t d = f.net.dim();
  const double grad_seconds = median_seconds([&] { f.fresh_gradient(); });
  const double gemm_seconds = hidden_gemm_seconds<T>(problem.spec.width, problem.n);
  const index_t outputs = query == Query::d3 ? pair_count(m) : m;
  Buffer<T> V(dev, d * m), out(dev, d * outputs);
  fill_random(V, 5);
  f.net.value_grad(f.w.data(), f.grad.data());  // primal cached at w, as in an eigen-solve
  const double seconds = timed_loop(state, [&] {
    switch (query) {
      case Query::value_grad: f.fresh_gradient(); break;
      case Query::hvp: f.net.hvp(f.w.data(), V.data(), m, out.data()); break;
      case Query::quad: f.net.quad(f.w.data(), V.data(), m); break;
      case Query::d3: f.net.d3(f.w.data(), V.data(), m, out.data()); break;
    }
    dev.synchronize();
  });
  state.counters["x_grad"] = seconds / grad_seconds;
  state.counters["x_gemm"] = seconds / gemm_seconds;
  state.counters["gemm_GFLOP/s"] = 2.0 * double(problem.spec.width) * double(problem.spec.width) * double(problem.n) / gemm_seconds * 1e-9;
  if (query == Query::hvp) state.counters["per_dir_x_grad"] = seconds / (double(m) * grad_seconds);
  if (query == Query::d3) state.counters["per_jet_x_grad"] = seconds / (double(outputs) * grad_seconds);
}

void register_mlp_benchmarks() {
  for (index_t width : {256, 1024}) {
    const Problem p = mlp(width);
    const std::string base = "mlp_w" + std::to_string(width) + "_n1000";
    auto add = [&](const std::string& precision, auto bench, Query q, const std::string& name,
                   std::vector<int64_t> args) {
      auto* b = benchmark::RegisterBenchmark((base + "/" + precision + "/" + name).c_str(), bench, p, q);
      for (int64_t a : args) b->Arg(a);
      b->UseManualTime()->Unit(benchmark::kMillisecond);
    };
    for (const std::string precision : {"f32", "f64"}) {
      auto bench = precision == "f32" ? BM_Oracle<float> : BM_Oracle<double>;
      add(precision, bench, Query::value_grad, "value_grad", {1});
      add(precision, bench, Query::hvp, "hvp", {1, 4, 16});
      add(precision, bench, Query::quad, "quad", {1, 4});
      add(precision, bench, Query::d3, "d3", {1, 3});
    }
  }
}
// Another architecture, n = 200, float32 (the ResNet and the ViT on 1×28×28 inputs, the transformer on
// 15-token sequences): the ratios of each query to value_grad, the numbers to compare with the MLP's.
void register_ratio_benchmarks(const std::string& base, const Problem& p) {
  auto add = [&](Query q, const std::string& name, std::vector<int64_t> args) {
    auto* b = benchmark::RegisterBenchmark((base + "/f32/" + name).c_str(), BM_Oracle<float>, p, q);
    for (int64_t a : args) b->Arg(a);
    b->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  add(Query::value_grad, "value_grad", {1});
  add(Query::hvp, "hvp", {1, 4});
  add(Query::quad, "quad", {1});
  add(Query::d3, "d3", {1, 3});
}
const bool registered =
    (register_mlp_benchmarks(), register_ratio_benchmarks("resnet_w8_d1_n200", resnet(8, 1)),
     register_ratio_benchmarks("vit_w16_d1_h2_p7_n200", vit(16, 1, 2, 7)),
     register_ratio_benchmarks("transformer_w32_d1_h2_t15_n200", transformer(32, 1, 2)), true);

}  // namespace
}  // namespace cflow::bench
