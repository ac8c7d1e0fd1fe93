// The reference's minimal.py run, one step at a time: an MLP of width 256 on 3,072 inputs (CIFAR-10's
// size), 4 classes, n = 1000, GD, discrete + central + stable, 3 eigenvalues, float32. Reports the
// time per experiment step (all three processes) and the steady-state device traffic of the step.
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"

namespace cflow::bench {
namespace {

void BM_Minimal(benchmark::State& state) {
  const Device& dev = bench_device();
  Problem p = mlp(256);
  p.spec.input = {3, 32, 32};
  const RandomData data = random_data(p.spec, p.n, 0);
  const std::vector<float> x(data.inputs.begin(), data.inputs.end()), y(data.targets.begin(), data.targets.end());
  Network<float> net(dev, p.spec, x, y);
  ExperimentSettings settings;
  settings.optimizer = {OptimizerKind::gd, 0.05, 0.99, 0.0, false};
  settings.processes = {ProcessKind::discrete, ProcessKind::central, ProcessKind::stable};
  settings.eig.initial_k = 3;
  settings.eig.k_max = 3;
  settings.eig.tolerance = 1e-4;  // float32
  Experiment<float> experiment(net, [&](const float* w) { return net.evaluate(w); }, {}, net.initial_parameters(0),
                               settings);
  DeviceTraffic last;
  timed_loop(state, [&] {
    last = DeviceTraffic{};
    for (const auto& [kind, record] : experiment.step().processes) last += record.traffic;
  });
  report_traffic(state, last);
}
BENCHMARK(BM_Minimal)->Name("minimal/mlp_w256_n1000_in3072/f32/gd")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace cflow::bench
