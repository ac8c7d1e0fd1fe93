#pragma once
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "cflow/buffer.h"

namespace cflow::bench {

// The device every benchmark in this binary runs on, chosen once from CFLOW_BENCH_DEVICE.
inline const Device& bench_device() {
  static const Device dev = [] {
    const char* spec = std::getenv("CFLOW_BENCH_DEVICE");
    Device d = Device::open(spec ? spec : "auto");
    benchmark::AddCustomContext("cflow_device", d.description());
    return d;
  }();
  return dev;
}

template <class T>
void fill_random(Buffer<T>& buffer, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1, 1);
  std::vector<T> host(std::size_t(buffer.size()));
  for (auto& x : host) x = T(dist(rng));
  buffer.upload(host);
}

inline void report_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

}  // namespace cflow::bench
