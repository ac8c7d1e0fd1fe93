// The memory estimate `cflow run` checks before it starts (host/run/memory_check.h, docs/design.md §7)
// bounds what the device really holds: the backend's bytes (allocated − freed through the caching
// arena, which keeps every block it ever took) after a few steps of a discrete run and a central flow
// with k critical directions, and is not wildly above it, for every --central-pair-group; and the
// grouping (host/flow/pair_columns.h) changes the trajectory by rounding only while it lowers that peak.
#include <algorithm>
#include <cmath>
#include <optional>

#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"
#include "host/run/config.h"
#include "host/run/lane_oracles.h"
#include "host/run/memory_check.h"
#include "test_support.h"

namespace cflow {
namespace {

// A few steps of discrete + central (every tracked direction critical, so d3 and the SDCP run on k
// directions) with the pairs streamed `pair_group` at a time: the bytes the arena held and the state.
template <class T>
struct GroupedRun {
  double held = 0, estimate = 0;
  index_t d = 0;
  Checkpoint state;
  std::vector<double> central_jets;  // work/jets of the central flow, per step
};

template <class T>
GroupedRun<T> run_grouped(index_t width, int k, OptimizerKind optimizer, index_t pair_group, double lr = 0.05,
                          ProcessKind flow = ProcessKind::central, int stationary_memory = 5) {
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
  s.optimizer = {optimizer, lr, 0.99, 0.0, false};
  s.processes = {ProcessKind::discrete, flow};
  s.flow.stationary.memory = stationary_memory;
  s.eig.initial_k = s.eig.k_max = k;
  s.eig.tolerance = 1e-6;
  s.eig.max_iterations = 10;
  s.flow.sdcp_threshold = 0;
  s.flow.central_nsubsteps = 2;
  s.flow.pair_group = pair_group;
  GroupedRun<T> run;
  {
    Experiment<T> e(net, [&](const T* w) { return net.evaluate(w); }, [&](const T* w) { return net.evaluate(w); },
                    net.initial_parameters(0), s);
    for (int step = 0; step < 3; ++step)
      for (const auto& [kind, record] : e.step().processes)
        for (const auto& [name, count] : record.work)
          if (kind == flow && name == "jets") run.central_jets.push_back(count);
    run.state = e.checkpoint();
  }
  const DeviceTraffic used = dev.traffic() - start;
  run.held = double(used.allocated_bytes - used.freed_bytes);
  run.estimate = run::network_bytes(
      spec, double(n), double(sizeof(T)),
      run::process_copies({"discrete", to_string(flow)}, k, NetworkOptions{}.max_directions, pair_group,
                          stationary_memory));
  run.d = net.dim();
  return run;
}

template <class T>
void expect_estimate_bounds_peak(index_t width, int k, index_t pair_group = 0) {
  SCOPED_TRACE("width " + std::to_string(width) + ", k " + std::to_string(k) + ", group " +
               std::to_string(pair_group) + ", " + std::to_string(sizeof(T) * 8) + " bit");
  const GroupedRun<T> run = run_grouped<T>(width, k, OptimizerKind::gd, pair_group);
  EXPECT_GE(run.estimate, run.held) << "d = " << run.d;
  EXPECT_LE(run.estimate, 2 * run.held) << "d = " << run.d;
}

TEST(MemoryEstimate, BoundsTheArenasPeakWithinAFactorTwo) {
  expect_estimate_bounds_peak<double>(64, 2);
  expect_estimate_bounds_peak<double>(64, 5);
  expect_estimate_bounds_peak<float>(96, 4);
}

// The stationary flow holds Anderson's history and its fixed point's vectors besides the central
// flow's columns (2·memory + 24 vectors): without them the estimate falls below the arena's peak.
TEST(MemoryEstimate, BoundsTheArenasPeakWithTheStationaryFlowsHistory) {
  for (int memory : {5, 20}) {
    SCOPED_TRACE("memory " + std::to_string(memory));
    const GroupedRun<double> run =
        run_grouped<double>(64, 2, OptimizerKind::rmsprop, 0, 1e-3, ProcessKind::stationary, memory);
    EXPECT_GE(run.estimate, run.held) << "d = " << run.d;
    EXPECT_LE(run.estimate, 2 * run.held) << "d = " << run.d;
  }
}

// Random inputs and one-hot targets of `n` examples, seeded.
template <class T>
Network<T> random_network(const Device& dev, const ModelSpec& spec, index_t n, std::uint64_t seed) {
  const auto x = testing::random_vector<double>(std::size_t(spec.input.size() * n), seed);
  std::vector<T> y(std::size_t(spec.classes * n), T(0));
  for (index_t i = 0; i < n; ++i) y[std::size_t(i * spec.classes + i % spec.classes)] = T(1);
  return Network<T>(dev, spec, std::vector<T>(x.begin(), x.end()), y);
}

// A one-rank run as `cflow run` builds it: every process on its lane with the training, test and
// --log-outputs networks bound to it (host/run/lane_oracles.h), the parent networks beside them.
// Returns the bytes the parent and the lanes held (allocated − freed) after three steps.
template <class T>
double held_with_lanes(const ModelSpec& spec, index_t n, index_t n_test, index_t outputs,
                       const ExperimentSettings& s) {
  const Device dev = Device::open("cpu", 1);  // tiny: one thread, whatever the machine's load
  const DeviceTraffic start = dev.traffic();
  std::vector<Device> lanes;
  Network<T> train = random_network<T>(dev, spec, n, 1);
  std::optional<Network<T>> test, probe;
  if (n_test > 0) test.emplace(random_network<T>(dev, spec, n_test, 2));
  if (outputs > 0) probe.emplace(random_network<T>(dev, spec, outputs, 1));
  const run::RunNetworks<T> networks{&train, test ? &*test : nullptr, probe ? &*probe : nullptr};
  Experiment<T> e(train, [&](const Device& lane) {
    lanes.push_back(lane);
    return networks.on(lane);
  }, train.initial_parameters(0), s);
  for (int step = 0; step < 3; ++step) e.step();
  DeviceTraffic used = dev.traffic() - start;
  for (const Device& lane : lanes) used += lane.traffic();
  return double(used.allocated_bytes - used.freed_bytes);
}

// With lanes (one rank, docs/design.md §7.10) each process keeps its own arena's blocks, and its
// lane's test-set and --log-outputs networks hold their primal passes over all their examples: the
// estimate counts both (process_copies with own arenas, held_examples_bytes). Without the own
// arenas' copies RMSProp's central flow at k = 6 falls below the peak, without the held examples
// the 2048-example test set does.
TEST(MemoryEstimate, BoundsTheArenasPeakWithLanesATestSetAndLoggedOutputs) {
  struct Case {
    OptimizerKind optimizer;
    std::string flow;
    int k, memory;
    index_t n_test, outputs;
  };
  const Case cases[] = {{OptimizerKind::gd, "central", 2, 5, 0, 0},
                        {OptimizerKind::rmsprop, "central", 6, 5, 0, 0},
                        {OptimizerKind::gd, "central", 2, 5, 2048, 8},
                        {OptimizerKind::rmsprop, "stationary", 2, 20, 256, 8}};
  ModelSpec spec;
  spec.input = {6, 1, 1};
  spec.classes = 3;
  spec.width = 64;
  const index_t n = 8;
  for (const Case& x : cases) {
    SCOPED_TRACE(x.flow + ", k " + std::to_string(x.k) + ", test examples " + std::to_string(x.n_test) +
                 ", outputs " + std::to_string(x.outputs));
    ExperimentSettings s;
    s.optimizer = {x.optimizer, x.optimizer == OptimizerKind::gd ? 0.05 : 1e-3, 0.99, 0.0, false};
    s.processes = {ProcessKind::discrete, parse_process(x.flow)};
    s.eig.initial_k = s.eig.k_max = x.k;
    s.eig.tolerance = 1e-6;
    s.eig.max_iterations = 10;
    s.flow.sdcp_threshold = 0;
    s.flow.central_nsubsteps = 2;
    s.flow.stationary.memory = x.memory;
    run::RunConfig c;
    c.runs = {"discrete", x.flow};
    c.eig_max_k = x.k;
    c.stationary_memory = x.memory;
    c.dtype = "f64";
    c.n_test = x.n_test;
    c.log_outputs = x.outputs;
    const double held = held_with_lanes<double>(spec, n, x.n_test, x.outputs, s);
    const double estimate = run::run_bytes(c, spec, run::run_examples(c, double(n), double(x.n_test)));
    EXPECT_GE(estimate, held);
    EXPECT_LE(estimate, 2 * held);
  }
}

TEST(MemoryEstimate, BoundsTheArenasPeakForEveryPairGroup) {
  expect_estimate_bounds_peak<double>(64, 3, 1);  // G = 1 at k = 5 would make 120 d3 passes per substep
  expect_estimate_bounds_peak<double>(64, 5, 4);
  expect_estimate_bounds_peak<float>(96, 4, 3);
}

// Grouping the k(k+1)/2 = 10 pairs (k = 4) evaluates the same d3 columns, products and Gram entries
// (each an inner product over d, by the same BLAS on the same operands); it changes only how the sums
// over pairs in ẇ, E[g⊙g] and the polarization are split across gemv calls, i.e. the rounding of sums
// of ≤ 10 terms. Three steps keep the trajectory (every process's w and ν) within 1e-12 relative
// (float64); the eigen-solver's warm-start block is left out (its vectors only need the tolerance).
// GD exercises D and P⁻¹D; RMSProp (lr small enough not to diverge) also the products u_a⊙u_b in its
// preconditioner's rate.
void expect_groups_agree(OptimizerKind optimizer, double lr) {
  const int k = 4;
  const GroupedRun<double> all = run_grouped<double>(32, k, optimizer, 0, lr);
  for (index_t group : {1, 2}) {
    SCOPED_TRACE("group " + std::to_string(group));
    const GroupedRun<double> grouped = run_grouped<double>(32, k, optimizer, group, lr);
    ASSERT_EQ(grouped.state.arrays.size(), all.state.arrays.size());
    for (std::size_t i = 0; i < all.state.arrays.size(); ++i) {
      const auto& [name, want] = all.state.arrays[i];
      if (!name.ends_with("/w") && !name.ends_with("/nu")) continue;
      const std::vector<double>& got = grouped.state.arrays[i].second;
      ASSERT_EQ(got.size(), want.size()) << name;
      double diff = 0, norm = 0;
      for (std::size_t j = 0; j < want.size(); ++j) {
        diff = std::max(diff, std::abs(got[j] - want[j]));
        norm = std::max(norm, std::abs(want[j]));
      }
      EXPECT_LE(diff, 1e-12 * std::max(norm, 1.0)) << name;
    }
    EXPECT_LT(grouped.held, all.held) << "streaming the pairs must lower the peak";
    // Jets per substep: all P pairs in one pass, or the groups' refills (docs/design.md §6.10) plus the
    // k diagonal jets once, kept for every group at the same w and U. A refresh substep whose guessed
    // critical set the refresh refutes (§6.4) adds its first pass: P, or G + k.
    const index_t P = pair_count(k), N = (P + group - 1) / group, passes = N * (N + 1) / 2 + N - 2;
    ASSERT_EQ(all.central_jets.size(), grouped.central_jets.size());
    for (std::size_t step = 0; step < all.central_jets.size(); ++step) {
      const double refuted = (all.central_jets[step] - 2 * P) / double(P);  // 2 substeps
      EXPECT_TRUE(refuted == 0 || refuted == 1) << step;
      EXPECT_EQ(grouped.central_jets[step], 2 * (passes * group + k) + refuted * double(group + k)) << step;
    }
  }
}

TEST(CentralPairGroups, GdTrajectoryAgreesWithOneGroupToRoundingAndHoldsLess) {
  expect_groups_agree(OptimizerKind::gd, 0.05);
}

TEST(CentralPairGroups, RmspropTrajectoryAgreesWithOneGroupToRoundingAndHoldsLess) {
  expect_groups_agree(OptimizerKind::rmsprop, 0.002);
}

}  // namespace
}  // namespace cflow
