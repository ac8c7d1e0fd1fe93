// Processes on lanes (docs/design.md §7.10): each process's oracle, evaluators and scratch on its own
// lane of the device, the prepare() calls at once on host threads with overlap. On the CPU backend the
// records are the same bits with overlap on, off, and with every process sharing one device; each
// lane counts its own process's traffic; a failing process stops alone.
#include <omp.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "cflow/engine/network.h"
#include "cflow/flow/experiment.h"
#include "host/run/lane_oracles.h"
#include "host/runtime/lane_threads.h"
#include "test_support.h"

namespace cflow {
namespace {

using Oracles = Experiment<double>::Oracles;

// The default MLP's and a CNN's layers at tiny sizes.
ModelSpec tiny(Architecture arch) {
  ModelSpec spec;
  spec.arch = arch;
  spec.classes = 3;
  if (arch == Architecture::cnn) spec.input = {1, 4, 4};
  else spec.input = {6, 1, 1};
  spec.width = arch == Architecture::cnn ? 2 : 5;
  return spec;
}

Network<double> network(const Device& dev, const ModelSpec& spec, index_t n = 9) {
  const auto x = testing::random_vector<double>(std::size_t(spec.input.size() * n), 1);
  std::vector<double> y(std::size_t(spec.classes * n), 0.0);
  for (index_t i = 0; i < n; ++i) y[std::size_t(i * spec.classes + i % spec.classes)] = 1;
  return Network<double>(dev, spec, x, y);
}

ExperimentSettings settings(OptimizerKind optimizer) {
  ExperimentSettings s;
  s.optimizer = {optimizer, optimizer == OptimizerKind::gd ? 0.05 : 1e-3, 0.99, 0.1, true};
  s.processes = {ProcessKind::discrete, ProcessKind::central, ProcessKind::stable, ProcessKind::midpoint};
  s.eig.initial_k = 2;
  s.eig.tolerance = 1e-6;
  s.eig.max_iterations = 10;
  s.eig.frequency = 2;        // full solves and Rayleigh refreshes
  s.flow.sdcp_threshold = 0;  // every tracked direction critical: d3 and the SDCP run
  s.flow.central_nsubsteps = 2;
  s.flow.stable_min_nsubsteps = 2;
  return s;
}

// A lane's oracles from the network bound to it, as `cflow run` builds them (host/run/lane_oracles.h).
Oracles oracles_on(const Network<double>& net, const Device& lane) { return run::RunNetworks<double>{&net}.on(lane); }

// Everything a run logs, and the final state.
struct Trajectory {
  std::vector<StepRecord> steps;
  Checkpoint final;
};

enum class Mode { shared, lanes, overlap };

Trajectory run(const ModelSpec& spec, OptimizerKind optimizer, Mode mode, int steps = 3, int threads = 1,
               index_t n = 9) {
  const Device dev = Device::open("cpu", threads);  // the workers must take this count, not OpenMP's default
  Network<double> net = network(dev, spec, n);
  ExperimentSettings s = settings(optimizer);
  s.overlap = mode == Mode::overlap;
  const auto w0 = net.initial_parameters(0);
  auto evaluate = [&](const double* w) { return net.evaluate(w); };
  std::optional<Experiment<double>> e;
  if (mode == Mode::shared)
    e.emplace(net, evaluate, Experiment<double>::Evaluate{}, w0, s);
  else
    e.emplace(net, [&](const Device& lane) { return oracles_on(net, lane); }, w0, s);
  Trajectory t;
  for (int i = 0; i < steps; ++i) t.steps.push_back(e->step());
  t.final = e->checkpoint();
  return t;
}

void expect_same_bits(const Trajectory& a, const Trajectory& b) {
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (std::size_t i = 0; i < a.steps.size(); ++i) {
    const StepRecord &x = a.steps[i], &y = b.steps[i];
    ASSERT_EQ(x.processes.size(), y.processes.size());
    for (std::size_t p = 0; p < x.processes.size(); ++p) {
      const ProcessRecord &r = x.processes[p].second, &q = y.processes[p].second;
      SCOPED_TRACE("step " + std::to_string(i) + ", " + to_string(x.processes[p].first));
      EXPECT_FALSE(r.stopped);
      EXPECT_EQ(r.train_loss, q.train_loss);
      EXPECT_EQ(r.grad_norm_sq, q.grad_norm_sq);
      EXPECT_EQ(r.effective_eigs, q.effective_eigs);
      EXPECT_EQ(r.hessian_eigs, q.hessian_eigs);
      EXPECT_EQ(r.predicted_variances, q.predicted_variances);
      EXPECT_EQ(r.grad_sq_selected, q.grad_sq_selected);
    }
    EXPECT_EQ(x.distances, y.distances);
    EXPECT_EQ(x.deltas, y.deltas);
  }
  EXPECT_EQ(a.final.arrays, b.final.arrays);  // w, ν, the eigen-solvers' bases of every process
}

void expect_overlap_changes_no_bit(const ModelSpec& spec, OptimizerKind optimizer) {
  const Trajectory shared = run(spec, optimizer, Mode::shared);
  ASSERT_FALSE(shared.steps.back().deltas.empty());  // the central flow has Σ directions: deltas compared
  SCOPED_TRACE("lanes without overlap");
  expect_same_bits(shared, run(spec, optimizer, Mode::lanes));
  SCOPED_TRACE("lanes with overlap, one host thread taking them in turn");
  expect_same_bits(shared, run(spec, optimizer, Mode::overlap));
  // As many threads as processes: a host thread per lane at once (as on CUDA), each lane at one thread.
  SCOPED_TRACE("lanes with overlap, a host thread each");
  expect_same_bits(shared, run(spec, optimizer, Mode::overlap, 3, int(settings(optimizer).processes.size())));
}

TEST(Lanes, MlpRecordsAreTheSameBitsWithOverlapOnAndOff) {
  expect_overlap_changes_no_bit(tiny(Architecture::mlp), OptimizerKind::gd);
}

TEST(Lanes, CnnRecordsAreTheSameBitsWithOverlapOnAndOff) {
  expect_overlap_changes_no_bit(tiny(Architecture::cnn), OptimizerKind::rmsprop);  // rmsprop: raw-Hessian trackers too
}

// Under overlap the processes share the device's threads, each lane max(1, threads / processes): with
// 2 threads and 4 processes each runs as a 1-thread device does in sequence. At this size (d ≈ 11,000,
// 64 examples) the thread count changes the bits (OpenBLAS splits long dot products across threads),
// so a lane that kept both threads would fail the comparison.
TEST(Lanes, OverlapSplitsTheThreadsAmongTheProcesses) {
  ModelSpec spec = tiny(Architecture::mlp);
  spec.input = {160, 1, 1};
  spec.width = 48;
  const Trajectory one_thread = run(spec, OptimizerKind::gd, Mode::lanes, 2, 1, 64);
  const Trajectory two_threads = run(spec, OptimizerKind::gd, Mode::lanes, 2, 2, 64);
  ASSERT_NE(one_thread.final.arrays, two_threads.final.arrays) << "the thread count no longer matters at this size";
  expect_same_bits(one_thread, run(spec, OptimizerKind::gd, Mode::overlap, 2, 2, 64));
}

// Each process's traffic comes from its own lane: the same figures whether the processes run one
// after another or at once (a shared counter differenced around each prepare() would mix them), and
// the experiment's device sees only the cross-process reads (a distance per pair, the deltas).
TEST(Lanes, EachProcessCountsItsTrafficOnItsOwnLane) {
  const Device dev = Device::open("cpu", 1);
  Network<double> net = network(dev, tiny(Architecture::mlp));
  ExperimentSettings s = settings(OptimizerKind::gd);
  std::vector<std::vector<DeviceTraffic>> per_process;  // [overlap off, on][process]
  for (const bool overlap : {false, true}) {
    s.overlap = overlap;
    Experiment<double> e(net, [&](const Device& lane) { return oracles_on(net, lane); }, net.initial_parameters(0), s);
    for (int i = 0; i < 2; ++i) e.step();
    const DeviceTraffic before = dev.traffic();
    const StepRecord r = e.step();
    const DeviceTraffic parent = dev.traffic() - before;
    const std::int64_t processes = std::int64_t(r.processes.size());
    EXPECT_EQ(parent.device_to_host, processes * (processes - 1) / 2 + 1);
    EXPECT_EQ(parent.allocations, 0);
    per_process.emplace_back();
    for (const auto& [kind, record] : r.processes) {
      EXPECT_GT(record.traffic.device_to_host, 0) << to_string(kind);
      per_process.back().push_back(record.traffic);
    }
  }
  for (std::size_t p = 0; p < per_process[0].size(); ++p) {
    const DeviceTraffic &off = per_process[0][p], &on = per_process[1][p];
    EXPECT_EQ(off.allocations, on.allocations);
    EXPECT_EQ(off.device_to_host_bytes, on.device_to_host_bytes);
    EXPECT_EQ(off.host_to_device_bytes, on.host_to_device_bytes);
    EXPECT_EQ(off.synchronizations, on.synchronizations);
  }
}

// An objective on a lane that fails: a cflow::Error from the `fail_at`-th HVP query on.
class FailingObjective final : public Objective<double> {
 public:
  FailingObjective(std::shared_ptr<Objective<double>> inner, int fail_at, bool as_error)
      : inner_(std::move(inner)), fail_at_(fail_at), as_error_(as_error) {}
  index_t dim() const override { return inner_->dim(); }
  const Device& device() const override { return inner_->device(); }
  double value_grad(const double* w, double* g) override { return inner_->value_grad(w, g); }
  void hvp(const double* w, const double* V, index_t m, double* HV) override {
    if (++calls_ >= fail_at_) {
      if (as_error_) throw Error("injected failure");
      throw std::runtime_error("injected bug");
    }
    inner_->hvp(w, V, m, HV);
  }
  std::vector<double> quad(const double* w, const double* U, index_t m) override { return inner_->quad(w, U, m); }
  void d3_pairs(const double* w, const double* U, index_t k, index_t first, index_t count, double* D,
                double* quads) override {
    inner_->d3_pairs(w, U, k, first, count, D, quads);
  }
  bool diagonal_jets_held(const double* w, const double* U, index_t k) override {
    return inner_->diagonal_jets_held(w, U, k);
  }

 private:
  std::shared_ptr<Objective<double>> inner_;
  int fail_at_, calls_ = 0;
  bool as_error_;
};

// Under overlap a process whose step throws a cflow::Error stops with the reason, and the others go
// on with the bits they have without it; any other exception leaves step() as it does without overlap.
TEST(Lanes, AFailureUnderOverlapStopsOnlyThatProcess) {
  const Device dev = Device::open("cpu", 1);
  Network<double> net = network(dev, tiny(Architecture::mlp));
  ExperimentSettings s = settings(OptimizerKind::gd);
  s.overlap = true;
  const Trajectory healthy = run(tiny(Architecture::mlp), OptimizerKind::gd, Mode::overlap);
  for (const bool as_error : {true, false}) {
    int lanes = 0;
    Experiment<double> e(
        net,
        [&](const Device& lane) {
          Oracles o = oracles_on(net, lane);
          if (lanes++ == 1) o.objective = std::make_shared<FailingObjective>(o.objective, 1, as_error);  // central
          return o;
        },
        net.initial_parameters(0), s);
    if (!as_error) {
      EXPECT_THROW(e.step(), std::runtime_error);
      continue;
    }
    for (std::size_t i = 0; i < healthy.steps.size(); ++i) {
      const StepRecord r = e.step();
      for (std::size_t p = 0; p < r.processes.size(); ++p) {
        const ProcessRecord& got = r.processes[p].second;
        EXPECT_EQ(got.stopped, p == 1) << to_string(r.processes[p].first);
        if (p == 1) continue;
        EXPECT_EQ(got.effective_eigs, healthy.steps[i].processes[p].second.effective_eigs);
        EXPECT_EQ(got.train_loss, healthy.steps[i].processes[p].second.train_loss);
      }
    }
    const auto status = e.status();
    EXPECT_TRUE(status[1].stopped);
    EXPECT_NE(status[1].reason.find("injected failure"), std::string::npos) << status[1].reason;
    for (std::size_t p : {0u, 2u, 3u}) EXPECT_FALSE(status[p].stopped) << status[p].reason;
  }
}

// Fewer workers than lanes (a CPU with fewer threads than processes): every lane runs once per run(),
// on a worker bound to that lane's thread count, longest expected job first; an error is rethrown for the
// lowest lane whose job threw.
TEST(LaneThreads, FewerWorkersTakeEveryLaneOnceLongestFirst) {
  const Device dev = Device::open("cpu", 1);
  const std::vector<Device> lanes = {dev.lane(1), dev.lane(2), dev.lane(3)};
  LaneThreads workers(lanes, 1);
  std::mutex mutex;
  std::vector<std::size_t> order;
  std::vector<int> threads_seen;
  const std::vector<int> milliseconds = {1, 200, 100};  // far apart: a loaded machine oversleeps
  const std::function<void(std::size_t)> job = [&](std::size_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds[i]));
    std::lock_guard lock(mutex);
    order.push_back(i);
    threads_seen.push_back(omp_get_max_threads());
  };
  workers.run(job);
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2})) << "no durations yet: lane order";
  order.clear();
  threads_seen.clear();
  workers.run(job);
  EXPECT_EQ(order, (std::vector<std::size_t>{1, 2, 0})) << "longest expected job first";
  EXPECT_EQ(threads_seen, (std::vector<int>{2, 3, 1})) << "each job on its own lane's thread count";

  LaneThreads two(lanes, 2);
  std::vector<int> runs(lanes.size(), 0);
  const std::function<void(std::size_t)> failing = [&](std::size_t i) {
    {
      std::lock_guard lock(mutex);
      ++runs[i];
    }
    if (i > 0) throw Error("lane " + std::to_string(i));
  };
  try {
    two.run(failing);
    ADD_FAILURE() << "no error rethrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lane 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(runs, (std::vector<int>{1, 1, 1}));
  EXPECT_THROW(LaneThreads(lanes, 4), Error);
}

}  // namespace
}  // namespace cflow
