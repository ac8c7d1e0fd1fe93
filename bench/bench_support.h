#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/engine/model.h"

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

// Median wall time in seconds of `fn` (which must synchronize the device) over `repeats` runs
// after one warm-up: the in-run baselines that ratios are measured against.
template <class Fn>
double median_seconds(Fn&& fn, int repeats = 3) {
  fn();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Runs the benchmark loop with manual timing of `fn` and returns the mean seconds per iteration.
template <class Fn>
double timed_loop(benchmark::State& state, Fn&& fn) {
  double total = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    total += seconds;
  }
  return total / double(std::max<benchmark::IterationCount>(state.iterations(), 1));
}

// The problems the suites share: n = 1000 examples of Fashion-MNIST's shape, 4 classes.
struct Problem {
  ModelSpec spec;
  index_t n;
};
inline Problem mlp(index_t width) {
  ModelSpec spec;
  spec.arch = Architecture::mlp;
  spec.width = width;
  spec.input = {784, 1, 1};
  spec.classes = 4;
  return {spec, 1000};
}
inline Problem cnn(index_t width) {
  Problem p = mlp(width);
  p.spec.arch = Architecture::cnn;
  p.spec.input = {1, 28, 28};
  return p;
}

// The ResNet on fewer examples: its forward pass costs far more per example than the MLP's.
inline Problem resnet(index_t width, int depth) {
  Problem p = cnn(width);
  p.spec.arch = Architecture::resnet;
  p.spec.depth = depth;
  p.n = 200;
  return p;
}
inline Problem vit(index_t width, int depth, index_t heads, index_t patch) {
  Problem p = resnet(width, depth);
  p.spec.arch = Architecture::vit;
  p.spec.heads = heads;
  p.spec.patch = patch;
  return p;
}

// The causal transformer on the sorting task's shape (vocabulary 4, length 8: sequences of 15 tokens,
// a loss term at every position), n = 200 sequences.
inline Problem transformer(index_t width, int depth, index_t heads) {
  Problem p = mlp(width);
  p.spec.arch = Architecture::transformer;
  p.spec.depth = depth;
  p.spec.heads = heads;
  p.spec.input = {15, 1, 1};
  p.spec.positions = 15;
  p.n = 200;
  return p;
}

// A steady-state step's DeviceTraffic beside its time (allocations, bytes each way, host waits).
inline void report_traffic(benchmark::State& state, const DeviceTraffic& step) {
  state.counters["allocations"] = double(step.allocations);
  state.counters["h2d_bytes"] = double(step.host_to_device_bytes);
  state.counters["d2h_bytes"] = double(step.device_to_host_bytes);
  state.counters["syncs"] = double(step.synchronizations);
}

inline void report_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}

}  // namespace cflow::bench
