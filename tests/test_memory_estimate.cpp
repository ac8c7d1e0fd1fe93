// The memory estimate `cflow run` checks before it starts (host/run/memory_check.h, docs/design.md §7)
// bounds what the device really holds: the backend's bytes (allocated − freed through the caching
// arena, which keeps every block it ever took) after a few steps of a discrete run and a central flow
// with k critical directions, and is not wildly above it.
#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"
#include "host/run/memory_check.h"
#include "test_support.h"

namespace cflow {
namespace {

template <class T>
void expect_estimate_bounds_peak(index_t width, int k) {
  SCOPED_TRACE("width " + std::to_string(width) + ", k " + std::to_string(k) + ", " + std::to_string(sizeof(T) * 8) +
               " bit");
  const Device dev = Device::open("cpu");
  const DeviceTraffic start = dev.traffic();
  ModelSpec spec;
  spec.input = {6, 1, 1};
  spec.classes = 3;
  spec.width = width;
  const index_t n = 8;
  const auto x = testing::random_vector<double>(std::size_t(spec.input.size() * n), 1);
  std::vector<T> y(std::size_t(spec.classes * n), T(0));
  for (index_t i = 0; i < n; ++i) y[std::size_t(i * spec.classes + i % spec.classes)] = T(1);
  const std::vector<T> xt(x.begin(), x.end());
  Network<T> net(dev, spec, xt, y);
  ExperimentSettings s;
  s.optimizer = {OptimizerKind::gd, 0.05, 0.99, 0.0, false};
  s.processes = {ProcessKind::discrete, ProcessKind::central};
  s.eig.initial_k = s.eig.k_max = k;
  s.eig.tolerance = 1e-6;
  s.eig.max_iterations = 10;
  s.flow.sdcp_threshold = 0;  // every tracked eigenvalue critical: d3 and the SDCP run on k directions
  s.flow.central_nsubsteps = 2;
  {
    Experiment<T> e(net, [&](const T* w) { return net.evaluate(w); }, [&](const T* w) { return net.evaluate(w); },
                    net.initial_parameters(0), s);
    for (int step = 0; step < 3; ++step) e.step();
  }
  const DeviceTraffic used = dev.traffic() - start;
  const double held = double(used.allocated_bytes - used.freed_bytes);
  const double estimate =
      run::network_bytes(spec, double(n), double(sizeof(T)),
                         run::process_copies({"discrete", "central"}, k, NetworkOptions{}.max_directions));
  EXPECT_GE(estimate, held) << "d = " << net.dim();
  EXPECT_LE(estimate, 2 * held) << "d = " << net.dim();
}

TEST(MemoryEstimate, BoundsTheArenasPeakWithinAFactorTwo) {
  expect_estimate_bounds_peak<double>(64, 2);
  expect_estimate_bounds_peak<double>(64, 5);
  expect_estimate_bounds_peak<float>(96, 4);
}

}  // namespace
}  // namespace cflow
