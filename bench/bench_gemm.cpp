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

}  // namespace
}  // namespace cflow::bench
