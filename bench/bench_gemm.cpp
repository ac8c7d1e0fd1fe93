// The GEMM baseline: what the backend's BLAS reaches on square products, the yardstick every oracle
// benchmark is compared with. Device: CFLOW_BENCH_DEVICE (auto | cpu | cuda), default auto.
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "cflow/runtime/blas.h"

namespace cflow::bench {
namespace {

template <class T>
void BM_Gemm(benchmark::State& state) {
  const Device& dev = bench_device();
  const index_t n = state.range(0);
  Buffer<T> A(dev, n * n), B(dev, n * n), C(dev, n * n);
  fill_random(A, 1);
  fill_random(B, 2);
  for (auto _ : state) {
    blas::gemm<T>(dev, blas::Op::N, blas::Op::N, n, n, n, T(1), A.data(), n, B.data(), n, T(0), C.data(), n);
    dev.synchronize();
  }
  report_flops(state, 2.0 * double(n) * n * n);
}
BENCHMARK(BM_Gemm<float>)->Name("gemm/f32")->RangeMultiplier(2)->Range(256, 4096)->UseRealTime();
BENCHMARK(BM_Gemm<double>)->Name("gemm/f64")->RangeMultiplier(2)->Range(256, 4096)->UseRealTime();

// A Gram matrix Xᵀ X of a block of m vectors of length d: LOBPCG's Rayleigh–Ritz and orthonormalization
// products. Memory-bound (it reads the block once), so it reports GB/s read beside the time.
template <class T>
void BM_Gram(benchmark::State& state) {
  const Device& dev = bench_device();
  const index_t d = state.range(0), m = state.range(1);
  Buffer<T> X(dev, d * m), C(dev, m * m);
  fill_random(X, 3);
  for (auto _ : state) {
    blas::gemm<T>(dev, blas::Op::T, blas::Op::N, m, m, d, T(1), X.data(), d, X.data(), d, T(0), C.data(), m);
    dev.synchronize();
  }
  state.counters["GB/s"] = benchmark::Counter(double(d) * m * sizeof(T) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void gram_shapes(benchmark::internal::Benchmark* b) {
  for (index_t m : {3, 12, 60}) b->Args({1 << 21, m});
  for (index_t m : {3, 12}) b->Args({1 << 24, m});
}
BENCHMARK(BM_Gram<float>)->Name("gram/f32")->Apply(gram_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gram<double>)->Name("gram/f64")->Apply(gram_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cflow::bench
