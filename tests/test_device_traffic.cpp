// Steady-state device traffic of every process (docs/design.md §7): after warm-up (each kind of
// step run once) a step allocates nothing from the backend, sends less than 64 KiB to the host and no parameter-sized
// array (the figure does not grow with d). Counted on the CPU backend at the call sites the CUDA
// backend shares, so it holds for both.
#include <cmath>

#include "cflow/flow/experiment.h"
#include "cflow/engine/network.h"
#include "test_support.h"

namespace cflow {
namespace {

constexpr std::int64_t kMaxDeviceToHostBytes = 64 * 1024;

struct Traffic {
  index_t d = 0;
  std::vector<std::pair<ProcessKind, DeviceTraffic>> per_process;  // summed over the steady steps
};

// Six steps of every process on a small network of width `width`; the traffic of steps 4 and 5.
// With eig.frequency 2 the warm-up steps 0-3 hold a cold full solve (step 0), the first warm full
// solve (step 2: the warm Rayleigh-Ritz and the history block need buffers step 0 did not) and two
// Rayleigh refreshes; steps 4 and 5 are one of each again, so each kind of step has run before.
Traffic steady_traffic(const Device& dev, ModelSpec spec, index_t width, const OptimizerSpec& optimizer) {
  spec.width = width;
  const index_t n = 9;
  const auto x = testing::random_vector<double>(std::size_t(spec.input.size() * n), 1);
  std::vector<double> y(std::size_t(spec.classes * n), 0.0);
  for (index_t i = 0; i < n; ++i) y[std::size_t(i * spec.classes + i % spec.classes)] = 1;
  Network<double> net(dev, spec, x, y);
  ExperimentSettings s;
  s.optimizer = optimizer;
  s.processes = {ProcessKind::discrete, ProcessKind::midpoint, ProcessKind::stable, ProcessKind::central};
  s.eig.initial_k = 2;
  s.eig.tolerance = 1e-6;
  s.eig.max_iterations = 10;
  s.eig.frequency = 2;  // both a full solve and a Rayleigh refresh in the steady steps
  s.flow.sdcp_threshold = 0;  // every tracked eigenvalue critical: the SDCP and d3 run
  s.flow.central_nsubsteps = 2;
  s.flow.stable_min_nsubsteps = 2;
  Experiment<double> e(net, [&](const double* w) { return net.evaluate(w); },
                       [&](const double* w) { return net.evaluate(w); }, net.initial_parameters(0), s);
  Traffic t{net.dim(), {}};
  for (int step = 0; step < 6; ++step) {
    const StepRecord r = e.step();
    if (step < 4) continue;
    for (const auto& [kind, record] : r.processes) {
      EXPECT_FALSE(record.stopped) << to_string(kind) << " stopped at step " << step;
      if (step == 4) t.per_process.emplace_back(kind, DeviceTraffic{});
      for (auto& [k, total] : t.per_process)
        if (k == kind) total += record.traffic;
    }
  }
  return t;
}

void expect_steady_state_is_device_resident(const ModelSpec& spec, index_t narrow, index_t wide) {
  const Device dev = Device::open("cpu");
  const std::vector<OptimizerSpec> optimizers{{OptimizerKind::gd, 0.05, 0.99, 0.0, false},
                                              {OptimizerKind::scalar_rmsprop, 1e-3, 0.99, 0.1, true},
                                              {OptimizerKind::rmsprop, 1e-3, 0.99, 0.1, true}};
  for (const OptimizerSpec& optimizer : optimizers) {
    SCOPED_TRACE(to_string(optimizer.kind));
    const Traffic small = steady_traffic(dev, spec, narrow, optimizer);
    const Traffic large = steady_traffic(dev, spec, wide, optimizer);
    ASSERT_GT(large.d, 3 * small.d);
    ASSERT_EQ(small.per_process.size(), 4u);
    for (std::size_t i = 0; i < small.per_process.size(); ++i) {
      const auto& [kind, a] = small.per_process[i];
      const DeviceTraffic& b = large.per_process.at(i).second;
      SCOPED_TRACE(to_string(kind));
      EXPECT_EQ(a.allocations, 0);
      EXPECT_EQ(b.allocations, 0);
      EXPECT_LT(b.device_to_host_bytes / 2, kMaxDeviceToHostBytes);
      // One parameter-sized download per step adds (d_large − d_small)·8 bytes per step; what may
      // grow (more LOBPCG iterations on the wider model) crosses as k×k matrices.
      const std::int64_t one_vector = 2 * (large.d - small.d) * std::int64_t(sizeof(double));
      EXPECT_LT(b.device_to_host_bytes - a.device_to_host_bytes, one_vector / 2)
          << "d = " << small.d << ": " << a.device_to_host_bytes << " B, d = " << large.d << ": "
          << b.device_to_host_bytes << " B over two steps";
      EXPECT_LT(b.host_to_device_bytes - a.host_to_device_bytes, one_vector / 2);
    }
  }
}

TEST(DeviceTraffic, MlpStepsAllocateNothingAndDownloadNoParameterVector) {
  ModelSpec mlp;
  mlp.input = {6, 1, 1};
  mlp.classes = 3;
  expect_steady_state_is_device_resident(mlp, 4, 48);
}

TEST(DeviceTraffic, CnnStepsAllocateNothingAndDownloadNoParameterVector) {
  ModelSpec cnn;
  cnn.arch = Architecture::cnn;
  cnn.input = {1, 4, 4};
  cnn.classes = 3;
  expect_steady_state_is_device_resident(cnn, 1, 6);
}

// The arena hands a released block back out instead of allocating, and counts host transfers.
TEST(DeviceTraffic, CachingArenaReusesReleasedBlocksAndTransfersAreCounted) {
  const Device dev = Device::open("cpu");
  const DeviceTraffic start = dev.traffic();
  { Buffer<double> a(dev, 1000); }
  const DeviceTraffic after_first = dev.traffic() - start;
  EXPECT_EQ(after_first.allocations, 1);
  EXPECT_GE(after_first.allocated_bytes, 8000);
  Buffer<double> b(dev, 999);  // same size class
  EXPECT_EQ((dev.traffic() - start).allocations, 1);
  EXPECT_GE(dev.cached_bytes(), 0u);
  Buffer<double> c(dev, std::vector<double>(10, 1.0));
  const auto host = c.to_host();
  const DeviceTraffic t = dev.traffic() - start;
  EXPECT_EQ(t.host_to_device_bytes, 80);
  EXPECT_EQ(t.device_to_host_bytes, 80);
  EXPECT_EQ(t.synchronizations, 2);
  EXPECT_EQ(host, std::vector<double>(10, 1.0));
}

}  // namespace
}  // namespace cflow
