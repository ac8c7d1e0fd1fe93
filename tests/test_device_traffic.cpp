// Steady-state device traffic of every process (docs/design.md §7): after warm-up (each kind of
// step run once) a step allocates nothing from the backend, sends less than 64 KiB to the host and no parameter-sized
// array (the figure does not grow with d), every read-back through the lane's pinned staging area (no
// pageable transfer) and no more of them on a wider model. Counted on the CPU backend at the call sites the CUDA
// backend shares, so it holds for both; each process on its own lane (docs/design.md §7.10), with its
// step on its own host thread, so each figure is that process's alone.
#include <algorithm>
#include <cmath>

#include "cflow/flow/central_flow.h"
#include "cflow/flow/experiment.h"
#include "cflow/flow/optimizer.h"
#include "cflow/engine/network.h"
#include "cflow/engine/weight_fingerprint.h"
#include "cflow/runtime/blas.h"
#include "test_support.h"

namespace cflow {
namespace {

constexpr std::int64_t kMaxDeviceToHostBytes = 64 * 1024;
// Host waits per steady step besides those of LOBPCG iterations, and per LOBPCG iteration (the
// Gram and projection matrices down, the Ritz coefficients up, the Cholesky/eigen infos).
constexpr double kSyncsPerStep = 44, kSyncsPerLobpcgIteration = 10;
// Device→host transfers likewise: each is a read-back the host waits for, so the same bounds.
constexpr double kTransfersPerStep = kSyncsPerStep, kTransfersPerLobpcgIteration = kSyncsPerLobpcgIteration;

struct Traffic {
  index_t d = 0;
  std::vector<std::pair<ProcessKind, DeviceTraffic>> per_process;  // summed over the steady steps
  std::vector<double> lobpcg_iterations;                            // per process, summed likewise
};

double lobpcg_iterations(const ProcessRecord& r) {
  for (const auto& [name, count] : r.work)
    if (name == std::string("lobpcg_iterations")) return count;
  return 0;
}

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
  s.overlap = true;  // every process on its own lane and host thread: its traffic is its lane's
  const auto on_lane = [&](const Device& lane) {
    auto bound = std::make_shared<Network<double>>(net.bound_to(lane));
    const auto evaluate = [bound](const double* w) { return bound->evaluate(w); };
    return Experiment<double>::Oracles{bound, evaluate, evaluate, {}};
  };
  Experiment<double> e(net, on_lane, net.initial_parameters(0), s);
  Traffic t{net.dim(), {}, {}};
  for (int step = 0; step < 6; ++step) {
    const StepRecord r = e.step();
    if (step < 4) continue;
    for (const auto& [kind, record] : r.processes) {
      EXPECT_FALSE(record.stopped) << to_string(kind) << " stopped at step " << step;
      if (step == 4) {
        t.per_process.emplace_back(kind, DeviceTraffic{});
        t.lobpcg_iterations.push_back(0);
      }
      for (std::size_t i = 0; i < t.per_process.size(); ++i)
        if (t.per_process[i].first == kind) {
          t.per_process[i].second += record.traffic;
          t.lobpcg_iterations[i] += lobpcg_iterations(record);
        }
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
      // Every read-back of a step goes through the staging area; a whole-vector download (pageable
      // memory: Buffer::to_host_pageable, Device::copy_to_host) belongs to checkpoints, not to a step.
      EXPECT_EQ(a.pageable_transfers, 0);
      EXPECT_EQ(b.pageable_transfers, 0);
      EXPECT_LT(b.device_to_host_bytes / 2, kMaxDeviceToHostBytes);
      // One parameter-sized download per step adds (d_large − d_small)·8 bytes per step; what may
      // grow (more LOBPCG iterations on the wider model) crosses as k×k matrices.
      const std::int64_t one_vector = 2 * (large.d - small.d) * std::int64_t(sizeof(double));
      EXPECT_LT(b.device_to_host_bytes - a.device_to_host_bytes, one_vector / 2)
          << "d = " << small.d << ": " << a.device_to_host_bytes << " B, d = " << large.d << ": "
          << b.device_to_host_bytes << " B over two steps";
      EXPECT_LT(b.host_to_device_bytes - a.host_to_device_bytes, one_vector / 2);
      // Waits: the host decides only where it must (a loss and ‖g‖² per gradient for the divergence
      // check, the k × k matrices of each LOBPCG iteration and Rayleigh refresh); every logged
      // scalar crosses in a few gathered transfers. The figure does not grow with d beyond what the
      // wider model's extra LOBPCG iterations bring (each costs at most kSyncsPerLobpcgIteration; one
      // with fewer iterations must not wait more).
      const double extra_iterations = std::max(0.0, large.lobpcg_iterations[i] - small.lobpcg_iterations[i]);
      const double wide_waits = double(b.synchronizations) - kSyncsPerLobpcgIteration * large.lobpcg_iterations[i];
      EXPECT_LE(wide_waits / 2, kSyncsPerStep) << b.synchronizations << " waits over two steps";
      EXPECT_LE(double(b.synchronizations), double(a.synchronizations) + kSyncsPerLobpcgIteration * extra_iterations)
          << "d = " << small.d << ": " << a.synchronizations << " waits, " << small.lobpcg_iterations[i]
          << " LOBPCG iterations; d = " << large.d << ": " << b.synchronizations << ", "
          << large.lobpcg_iterations[i];
      // The number of transfers does not grow with d either, beyond the wider model's extra iterations.
      const double wide_transfers = double(b.device_to_host) - kTransfersPerLobpcgIteration * large.lobpcg_iterations[i];
      EXPECT_LE(wide_transfers / 2, kTransfersPerStep) << b.device_to_host << " transfers over two steps";
      EXPECT_LE(double(b.device_to_host), double(a.device_to_host) + kTransfersPerLobpcgIteration * extra_iterations)
          << "d = " << small.d << ": " << a.device_to_host << " transfers; d = " << large.d << ": " << b.device_to_host;
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

// A read-back goes through the device's pinned staging area: one transfer and one wait, no pageable
// transfer; the area grows (one allocation each time) only for a read larger than any before, and
// is kept. A whole-vector download is the pageable exception, counted as such; blas::dot and nrm2
// read their scalar back through the staging area too.
TEST(DeviceTraffic, ReadBacksGoThroughTheStagingAreaWhichGrowsRarelyAndWholeVectorsArePageable) {
  const Device dev = Device::open("cpu");
  const std::vector<double> values = testing::random_vector<double>(5000, 7);
  const Buffer<double> v(dev, values);
  const auto read = [&](index_t count) {
    const DeviceTraffic before = dev.traffic();
    std::vector<double> host(static_cast<std::size_t>(count));
    v.download(host);
    EXPECT_TRUE(std::equal(host.begin(), host.end(), values.begin())) << count << " values";
    return dev.traffic() - before;
  };
  const DeviceTraffic first = read(3);
  EXPECT_EQ(first.allocations, 1) << "the staging area is made on the first read-back";
  EXPECT_EQ(first.device_to_host, 1);
  EXPECT_EQ(first.device_to_host_bytes, 24);
  EXPECT_EQ(first.synchronizations, 1);
  EXPECT_EQ(first.pageable_transfers, 0);
  for (const index_t count : {index_t(3), index_t(1), index_t(500)}) {
    const DeviceTraffic again = read(count);
    EXPECT_EQ(again.allocations, 0) << count << " values fit the area";
    EXPECT_EQ(again.pageable_transfers, 0);
  }
  const DeviceTraffic larger = read(5000);
  EXPECT_EQ(larger.allocations, 1) << "a read larger than any before grows the area";
  EXPECT_EQ(larger.frees, 1) << "and returns the old one";
  EXPECT_EQ(read(4000).allocations, 0);

  DeviceTraffic before = dev.traffic();
  EXPECT_EQ(v.to_host_pageable(), values);
  const DeviceTraffic whole = dev.traffic() - before;
  EXPECT_EQ(whole.pageable_transfers, 1);
  EXPECT_EQ(whole.pageable_bytes, 5000 * 8);
  EXPECT_EQ(whole.device_to_host, 1);

  blas::dot<double>(dev, 5000, v.data(), v.data());  // its device scalar's block, once
  before = dev.traffic();
  const double dot = blas::dot<double>(dev, 5000, v.data(), v.data());
  const double norm = blas::nrm2<double>(dev, 5000, v.data());
  const DeviceTraffic scalars = dev.traffic() - before;
  double expected = 0;
  for (double x : values) expected += x * x;
  EXPECT_NEAR(dot, expected, 1e-12 * expected);
  EXPECT_NEAR(norm, std::sqrt(expected), 1e-12 * std::sqrt(expected));
  EXPECT_EQ(scalars.device_to_host, 2);
  EXPECT_EQ(scalars.device_to_host_bytes, 16);
  EXPECT_EQ(scalars.synchronizations, 2);
  EXPECT_EQ(scalars.pageable_transfers, 0);
  EXPECT_EQ(scalars.allocations, 0);
}

// The ranks' lock-step check (ShardedObjective, docs/design.md §7) compares WeightFingerprint
// hashes: equal w give equal fingerprints, also from another instance (as on another rank), any one
// changed entry gives another, the fingerprint is linear in w (the dot products it claims to be),
// and what crosses to the host is kProbes scalars whatever d is.
TEST(DeviceTraffic, LockStepFingerprintDownloadsNoParameterVectorAndSeesOneChangedEntry) {
  const Device dev = Device::open("cpu");
  for (const index_t d : {index_t(40), index_t(4000)}) {
    const std::vector<double> host = testing::random_vector<double>(std::size_t(d), 11);
    Buffer<double> w(dev, host), shift(dev, testing::random_vector<double>(std::size_t(d), 12)), sum(dev, host);
    blas::axpy<double>(dev, d, 1.0, shift.data(), sum.data());
    WeightFingerprint<double> mine(dev, d), theirs(dev, d);
    double first = 0;
    w.download(std::span<double>(&first, 1));  // the device's first read-back makes its staging area
    const DeviceTraffic before = dev.traffic();
    const std::uint64_t hash = mine.hash(w.data());
    const DeviceTraffic traffic = dev.traffic() - before;
    EXPECT_EQ(traffic.device_to_host_bytes, WeightFingerprint<double>::kProbes * index_t(sizeof(double))) << "d = " << d;
    EXPECT_EQ(traffic.allocations, 0) << "d = " << d;
    EXPECT_EQ(theirs.hash(w.data()), hash);
    const std::vector<double> a = mine.of(w.data()), b = mine.of(shift.data()), a_plus_b = mine.of(sum.data());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a_plus_b[i], a[i] + b[i], 1e-12 * double(d));
    if (d > 40) continue;  // every single-entry change on the small vector
    for (index_t i = 0; i < d; ++i) {
      std::vector<double> changed = host;
      changed[std::size_t(i)] += 0.25;
      Buffer<double> other(dev, changed);
      EXPECT_NE(mine.hash(other.data()), hash) << "entry " << i;
    }
  }
}

// The network's primal cache is keyed on (pointer, write version): after every write path the
// processes use to move a point, a query at the same pointer sees the new w (its answer equals a
// fresh network's), and a query at an unchanged point costs no synchronization.
struct CacheProbe {
  Device dev = Device::open("cpu");
  ModelSpec spec;
  std::vector<double> x, y;
  CacheProbe() {
    spec.input = {5, 1, 1};
    spec.classes = 2;
    spec.width = 4;
    x = testing::random_vector<double>(std::size_t(5 * 7), 3);
    y.assign(std::size_t(2 * 7), 0.0);
    for (index_t i = 0; i < 7; ++i) y[std::size_t(2 * i + i % 2)] = 1;
  }
  // Loss and gradient at the host point w from a network that has never seen another point.
  std::pair<double, std::vector<double>> fresh(const std::vector<double>& w) {
    Network<double> net(dev, spec, x, y);
    Buffer<double> at(dev, w), grad(dev, net.dim());
    const double loss = net.value_grad(at.data(), grad.data());
    return {loss, grad.to_host()};
  }
};

TEST(NetworkCache, EveryWritePathThatMovesAPointInvalidatesTheCachedPrimalPass) {
  CacheProbe probe;
  const Device& dev = probe.dev;
  Network<double> net(dev, probe.spec, probe.x, probe.y);
  const index_t d = net.dim();
  Buffer<double> w(dev, net.initial_parameters(0)), grad(dev, d), g(dev, d);
  Buffer<double> other(dev, net.initial_parameters(1)), half(dev, std::vector<double>{0.5});
  net.value_grad(other.data(), g.data());  // g: a gradient to step along
  OptimizerState<double> gd(dev, {OptimizerKind::gd, 0.1, 0.99, 0.0, false}, d);
  OptimizerState<double> rms(dev, {OptimizerKind::rmsprop, 0.01, 0.99, 1e-3, true}, d);
  rms.update(g.data());
  const std::vector<std::pair<std::string, std::function<void()>>> writes{
      {"Buffer::upload", [&] { w.upload(testing::random_vector<double>(std::size_t(d), 5)); }},
      {"Buffer::copy_from", [&] { w.copy_from(other); }},
      {"blas::copy", [&] { blas::copy<double>(dev, d, g.data(), w.data()); }},
      {"blas::axpy", [&] { blas::axpy<double>(dev, d, 0.5, g.data(), w.data()); }},
      {"blas::scal", [&] { blas::scal<double>(dev, d, 0.9, w.data()); }},
      {"gemv (move along pairs)",
       [&] { blas::gemv<double>(dev, blas::Op::N, d, 1, 1.0, g.data(), d, half.data(), 1.0, w.data()); }},
      {"OptimizerState::step, GD", [&] { gd.step(w.data(), g.data()); }},
      {"OptimizerState::step, RMSProp kernel", [&] { rms.step(w.data(), g.data()); }},
      {"stable_flow_substep", [&] { stable_flow_substep(dev, rms, w.data(), g.data(), d, 0.5); }}};
  for (const auto& [name, write] : writes) {
    SCOPED_TRACE(name);
    net.value_grad(w.data(), grad.data());  // caches the primal pass at w
    const std::vector<double> before = w.to_host();
    write();
    const std::vector<double> after = w.to_host();
    ASSERT_NE(before, after) << "the write path did not change w";
    const double loss = net.value_grad(w.data(), grad.data());
    const auto [expected_loss, expected_grad] = probe.fresh(after);
    EXPECT_EQ(loss, expected_loss);
    EXPECT_EQ(grad.to_host(), expected_grad);
  }
}

// A write bumps the version of each watched range it overlaps, and only those; so does a release.
TEST(NetworkCache, WritesAndReleasesBumpTheVersionsOfTheRangesTheyOverlap) {
  const Device dev = Device::open("cpu");
  auto a = std::make_unique<Buffer<double>>(dev, 100);
  Buffer<double> b(dev, 100);
  const std::uint64_t v = dev.watch(a->data(), a->bytes());
  EXPECT_NE(v, 0u);
  EXPECT_EQ(dev.watch(a->data(), a->bytes()), v);
  EXPECT_EQ(dev.version(a->data(), 8), 0u) << "another range is not watched";
  b.set_zero();
  blas::axpy<double>(dev, 100, 1.0, a->data(), b.data());
  EXPECT_EQ(dev.version(a->data(), a->bytes()), v) << "writes elsewhere leave the version";
  blas::scal<double>(dev, 1, 2.0, a->data() + 99);  // the last element only
  const std::uint64_t after_write = dev.version(a->data(), a->bytes());
  EXPECT_GT(after_write, v);
  const double* block = a->data();
  a.reset();  // the block goes back to the arena and may come back as another buffer
  EXPECT_GT(dev.version(block, 100 * sizeof(double)), after_write);
}

TEST(NetworkCache, AQueryAtTheCachedPointCostsNoSynchronization) {
  CacheProbe probe;
  Network<double> net(probe.dev, probe.spec, probe.x, probe.y);
  const index_t d = net.dim();
  Buffer<double> w(probe.dev, net.initial_parameters(0)), grad(probe.dev, d), HV(probe.dev, d);
  net.value_grad(w.data(), grad.data());
  const DeviceTraffic before = probe.dev.traffic();
  net.hvp(w.data(), grad.data(), 1, HV.data());  // the hvp itself waits for nothing
  const DeviceTraffic t = probe.dev.traffic() - before;
  EXPECT_EQ(t.synchronizations, 0);
  EXPECT_EQ(t.device_to_host, 0);
}

// Every process, every optimizer: a few steps with the network comparing each cache hit against a
// copy of the cached point on the device (NetworkOptions::verify_cache throws on a stale hit).
TEST(NetworkCache, NoProcessIsServedAStalePrimalPass) {
  CacheProbe probe;
  NetworkOptions verify;
  verify.verify_cache = true;
  Network<double> net(probe.dev, probe.spec, probe.x, probe.y, verify);
  for (const OptimizerSpec& optimizer : {OptimizerSpec{OptimizerKind::gd, 0.05, 0.99, 0.0, false},
                                         OptimizerSpec{OptimizerKind::rmsprop, 1e-3, 0.99, 0.1, true}}) {
    SCOPED_TRACE(to_string(optimizer.kind));
    ExperimentSettings s;
    s.optimizer = optimizer;
    s.processes = {ProcessKind::discrete, ProcessKind::midpoint, ProcessKind::stable, ProcessKind::central};
    if (optimizer.kind == OptimizerKind::rmsprop) s.processes.push_back(ProcessKind::stationary);
    s.eig.initial_k = 2;
    s.eig.tolerance = 1e-6;
    s.eig.max_iterations = 10;
    s.eig.frequency = 2;
    s.flow.sdcp_threshold = 0;
    s.flow.central_nsubsteps = 2;
    s.flow.stable_min_nsubsteps = 2;
    Experiment<double> e(net, [&](const double* w) { return net.evaluate(w); }, nullptr, net.initial_parameters(0), s);
    for (int step = 0; step < 4; ++step)
      for (const auto& [kind, record] : e.step().processes) EXPECT_FALSE(record.stopped) << to_string(kind);
  }
}

}  // namespace
}  // namespace cflow
