// One step of each process on networks of realistic size, per optimizer: the discrete step and the
// central-flow step (all its substeps), with the breakdown the experiment records (gradient,
// eigen-solve, third derivatives, SDCP) as counters in seconds per step, the oracle work per step
// (hvps, quads, jets, gradients, lobpcg_iterations), x_grad (step time over one value_grad at a
// fresh point, measured in the same benchmark) and the device traffic of the last (steady-state) step.
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"

namespace cflow::bench {
namespace {

struct Case {
  std::string name;
  ModelSpec spec;
  OptimizerSpec optimizer;
  ProcessKind process;
};

void BM_ExperimentStep(benchmark::State& state, Case c) {
  const Device& dev = bench_device();
  const index_t n = 1000;
  const RandomData data = random_data(c.spec, n, 0);
  const std::vector<float> x(data.inputs.begin(), data.inputs.end()), y(data.targets.begin(), data.targets.end());
  Network<float> net(dev, c.spec, x, y);
  const auto w0 = net.initial_parameters(0);
  Buffer<float> w_a(dev, std::span<const float>(w0)), w_b(dev, std::span<const float>(net.initial_parameters(1))),
      grad(dev, net.dim());
  const double grad_seconds = median_seconds([&] {
    std::swap(w_a, w_b);
    net.value_grad(w_a.data(), grad.data());
    dev.synchronize();
  });
  ExperimentSettings settings;
  settings.optimizer = c.optimizer;
  settings.processes = {c.process};
  settings.eig.tolerance = 1e-4;  // float32
  Experiment<float> experiment(net, [&](const float* w) { return net.evaluate(w); }, {}, w0, settings);
  std::vector<std::pair<std::string, double>> totals;  // seconds per phase, then the oracle work
  DeviceTraffic last;
  const double seconds = timed_loop(state, [&] {
    const StepRecord r = experiment.step();
    const ProcessRecord& p = r.processes.front().second;
    last = p.traffic;
    std::vector<std::pair<std::string, double>> step = p.seconds;
    step.insert(step.end(), p.work.begin(), p.work.end());
    if (totals.empty()) totals = step;
    else
      for (std::size_t i = 0; i < step.size(); ++i) totals[i].second += step[i].second;
  });
  for (const auto& [phase, total] : totals) state.counters[phase] = total / double(state.iterations());
  state.counters["x_grad"] = seconds / grad_seconds;
  report_traffic(state, last);
}

void add_case(const Case& c) {
  benchmark::RegisterBenchmark(c.name.c_str(), BM_ExperimentStep, c)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(3);
}

void register_experiment_benchmarks() {
  ModelSpec mlp;
  mlp.input = {784, 1, 1};
  mlp.classes = 4;
  ModelSpec cnn = mlp;
  cnn.arch = Architecture::cnn;
  cnn.width = 32;
  cnn.input = {1, 28, 28};
  std::vector<std::pair<std::string, ModelSpec>> models;
  for (index_t width : {256, 1024}) {
    mlp.width = width;
    models.emplace_back("mlp_w" + std::to_string(width), mlp);
  }
  models.emplace_back("cnn_w32", cnn);
  const std::vector<std::pair<std::string, OptimizerSpec>> optimizers{
      {"gd", {OptimizerKind::gd, 0.05, 0.99, 0.0, false}},
      {"scalar-rmsprop", {OptimizerKind::scalar_rmsprop, 2e-4, 0.99, 1e-7, true}},
      {"rmsprop", {OptimizerKind::rmsprop, 2e-5, 0.99, 1e-7, true}}};
  for (const auto& [model_name, model] : models)
    for (const auto& [opt_name, opt] : optimizers)
      for (ProcessKind process : {ProcessKind::discrete, ProcessKind::central})
        add_case({model_name + "_n1000/f32/" + opt_name + "/" + to_string(process), model, opt, process});
  // Width scaling of every process under GD (the GPU sizes; slow on a CPU: select with a filter).
  for (index_t width : {512, 2048, 4096}) {
    mlp.width = width;
    for (ProcessKind process : {ProcessKind::discrete, ProcessKind::central, ProcessKind::stable})
      add_case({"mlp_w" + std::to_string(width) + "_n1000/f32/gd/" + to_string(process), mlp, optimizers[0].second,
                process});
  }
  mlp.width = 1024;
  add_case({"mlp_w1024_n1000/f32/gd/stable", mlp, optimizers[0].second, ProcessKind::stable});
}
const bool registered = (register_experiment_benchmarks(), true);

}  // namespace
}  // namespace cflow::bench
