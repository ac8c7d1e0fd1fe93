// Run by test_mpi under `mpirun -np R` (not a test on its own): every rank builds the whole training
// set's network and its own shard's, and checks that the sharded oracle (value_grad, hvp, quad, d3,
// evaluation) equals the single-process one to 1e-12 relative, and holds the same bits on every rank.
// Prints one line per query on rank 0; exits 1 when a check fails.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string_view>

#include "cflow/data/dataset.h"
#include "cflow/data/shard.h"
#include "cflow/engine/sharded_objective.h"
#include "cflow/engine/weight_fingerprint.h"

namespace cflow {
namespace {

constexpr double kTolerance = 1e-12;

std::vector<double> random_values(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1, 1);
  std::vector<double> v(n);
  for (double& x : v) x = uniform(rng);
  return v;
}

// ‖a − b‖∞ / ‖a‖∞
double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double difference = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference = std::max(difference, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(a[i]));
  }
  return difference / scale;
}

class Checks {
 public:
  explicit Checks(Communicator& comm) : comm_(comm) {}

  void compare(const char* query, const std::vector<double>& whole, const std::vector<double>& sharded) {
    const double relative = relative_difference(whole, sharded);
    const std::uint64_t hash = std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(sharded.data()), sharded.size() * sizeof(double)));
    const std::vector<std::uint64_t> hashes = comm_.all_gather(hash);
    const bool same_bits = std::all_of(hashes.begin(), hashes.end(), [&](std::uint64_t h) { return h == hashes[0]; });
    const bool ok = relative <= kTolerance && same_bits;
    if (comm_.rank() == 0 || !ok)
      std::printf("rank %d of %d: %-10s relative difference %.3g%s%s\n", comm_.rank(), comm_.size(), query, relative,
                  same_bits ? "" : ", ranks differ", ok ? "" : "  FAILED");
    failures_ += !ok;
  }
  int failures() const { return failures_; }

 private:
  Communicator& comm_;
  int failures_ = 0;
};

// The lock-step check sends a fingerprint of w to the host, never w (docs/design.md §7.5): a
// value_grad that checks (every 2nd) downloads exactly kProbes scalars more than one that does not.
int check_lock_step_traffic(Communicator& comm, const Device& dev, Network<double>& local, index_t shard_examples,
                            index_t total_examples, const Buffer<double>& W) {
  ShardedObjective<double> sharded(local, shard_examples, total_examples, comm, 2);
  Buffer<double> grad(dev, W.size());
  auto download = [&] {
    const DeviceTraffic before = dev.traffic();
    sharded.value_grad(W.data(), grad.data());
    return (dev.traffic() - before).device_to_host_bytes;
  };
  const std::int64_t checked = download(), unchecked = download();
  const std::int64_t expected = comm.size() > 1 ? WeightFingerprint<double>::kProbes * index_t(sizeof(double)) : 0;
  const bool ok = checked - unchecked == expected;
  if (comm.rank() == 0 || !ok)
    std::printf("rank %d of %d: lock-step check downloads %lld B (expected %lld B, d = %lld)%s\n", comm.rank(),
                comm.size(), static_cast<long long>(checked - unchecked), static_cast<long long>(expected),
                static_cast<long long>(W.size()), ok ? "" : "  FAILED");
  return ok ? 0 : 1;
}

int check() {
  Communicator& comm = Communicator::world();
  const Device dev = Device::open("cpu", 1);
  DataSpec data_spec;
  data_spec.name = "moons";
  data_spec.n_train = 31;  // uneven shards for R = 2 (15, 16) and R = 3 (10, 10, 11)
  data_spec.n_test = 8;
  data_spec.classes = parse_class_choice("2");
  const DataSplits data = load_dataset(data_spec);
  ModelSpec spec;
  spec.width = 6;
  spec.input = data.train.shape();
  spec.loss = LossKind::ce;
  const Dataset part = shard(data.train, comm.rank(), comm.size());
  Network<double> whole(dev, spec, data.train.inputs, make_targets(data.train, spec.loss));
  Network<double> local(dev, spec, part.inputs, make_targets(part, spec.loss));
  ShardedObjective<double> sharded(local, index_t(part.n), index_t(data.train.n), comm, 1);
  if (comm.size() > 1 && local.examples() >= whole.examples()) return std::puts("the shard is the whole set"), 1;

  const index_t d = whole.dim(), m = 3, k = 2;
  std::vector<double> w = whole.initial_parameters(3);
  for (double& x : w) x *= 1.5;  // out of the activations' linear regime
  const Buffer<double> W(dev, std::span<const double>(w));
  const Buffer<double> V(dev, std::span<const double>(random_values(std::size_t(d * m), 5)));
  Buffer<double> a(dev, d * pair_count(k)), b(dev, d * pair_count(k));
  auto head = [](const Buffer<double>& buffer, index_t count) {
    std::vector<double> v = buffer.to_host();
    v.resize(std::size_t(count));
    return v;
  };
  Checks checks(comm);
  const double loss_whole = whole.value_grad(W.data(), a.data());
  const double loss_sharded = sharded.value_grad(W.data(), b.data());
  checks.compare("loss", {loss_whole}, {loss_sharded});
  checks.compare("gradient", head(a, d), head(b, d));
  whole.hvp(W.data(), V.data(), m, a.data());
  sharded.hvp(W.data(), V.data(), m, b.data());
  checks.compare("hvp", head(a, d * m), head(b, d * m));
  checks.compare("quad", whole.quad(W.data(), V.data(), m), sharded.quad(W.data(), V.data(), m));
  whole.d3(W.data(), V.data(), k, a.data());
  sharded.d3(W.data(), V.data(), k, b.data());
  checks.compare("d3", head(a, d * pair_count(k)), head(b, d * pair_count(k)));
  const Evaluation e_whole = whole.evaluate(W.data());
  const Evaluation e_sharded = combine_shards(comm, local.evaluate(W.data()), index_t(part.n), index_t(data.train.n));
  checks.compare("evaluation", {e_whole.loss, e_whole.accuracy}, {e_sharded.loss, e_sharded.accuracy});
  const int traffic_failures = check_lock_step_traffic(comm, dev, local, index_t(part.n), index_t(data.train.n), W);
  return checks.failures() == 0 && traffic_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace cflow

int main() {
  try {
    return cflow::check();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_oracle_check: %s\n", e.what());
    return 1;
  }
}
