// Data-parallel runs (docs/design.md §7) under `mpirun --oversubscribe -np R`, R = 2 and 3 (uneven
// shards), CPU backend, float64, one thread per rank: the sharded oracle equals the single-process
// one; a run's data.h5 equals the single-process run's; a killed or hung rank stops the others with a
// message, as do ranks that drift out of lock step; resume after SIGINT is bitwise. Skipped, saying why, without mpirun or an MPI build.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "cflow/data/shard.h"
#include "cli_support.h"

namespace cflow::cli_test {
namespace {

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
#if !CFLOW_WITH_MPI
    GTEST_SKIP() << "cflow was built without MPI (CFLOW_MPI=OFF or libopenmpi-dev missing)";
#endif
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "mpirun not found (install openmpi-bin)";
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::setenv("CFLOW_COMM_TIMEOUT", "60", 1);  // a test that hangs fails in a minute
  }

 public:
  // mpirun's arguments for R ranks of `command` (as root too, more ranks than cores), and more.
  static std::vector<std::string> mpirun(int ranks, std::vector<std::string> command) {
    std::vector<std::string> args{"--allow-run-as-root", "--oversubscribe", "-x", "OMP_NUM_THREADS", "-x",
                                  "CFLOW_COMM_TIMEOUT"};
    append(args, {"-np", std::to_string(ranks)});
    append(args, command);
    return args;
  }
  static void append(std::vector<std::string>& args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
  }
  static Result run_mpi(int ranks, std::vector<std::string> command, const TempDir& dir, const std::string& tag) {
    return finish(spawn("mpirun", mpirun(ranks, std::move(command)), dir.path(), tag));
  }
};

// Shards tile the examples in order, contiguously, with sizes that differ by at most one.
TEST(Shards, TileTheExamplesInRankOrder) {
  for (std::size_t n = 1; n <= 40; ++n) {
    for (int ranks = 1; ranks <= 7; ++ranks) {
      std::size_t next = 0, smallest = n, largest = 0;
      for (int r = 0; r < ranks; ++r) {
        const ShardRange range = shard_range(n, r, ranks);
        EXPECT_EQ(range.first, next) << n << " " << r << "/" << ranks;
        next += range.count;
        smallest = std::min(smallest, range.count);
        largest = std::max(largest, range.count);
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1u);
    }
  }
}

TEST(Shards, HoldTheirExamplesAndRefuseEmptyShards) {
  DataSpec spec;
  spec.name = "gaussian";
  spec.n_train = 12;
  spec.n_test = 2;
  spec.classes = parse_class_choice("2");
  spec.dim = 2;
  const DataSplits data = load_dataset(spec);
  const cflow::Dataset part = shard(data.train, 1, 3);  // examples 4..7
  ASSERT_EQ(part.n, 4u);
  EXPECT_EQ(part.labels, std::vector<int>(data.train.labels.begin() + 4, data.train.labels.begin() + 8));
  EXPECT_EQ(part.inputs, std::vector<double>(data.train.inputs.begin() + 8, data.train.inputs.begin() + 16));
  EXPECT_THROW(shard(data.test, 0, 3), DataError);  // 2 examples, 3 ranks
}

// Rank counts 2 and 3: uneven shards of the odd example counts below.
class MpiRanks : public Mpi, public ::testing::WithParamInterface<int> {};

// A tiny run with an odd example count: moons, MLP of width 8, float64, one thread.
std::vector<std::string> tiny(std::vector<std::string> extra) {
  std::vector<std::string> args{CFLOW_CLI_BINARY, "run", "--data", "moons", "--n", "33", "--n-test", "17",
                                "--width", "8", "--lr", "1.5", "--dtype", "f64", "--threads", "1", "--device", "cpu",
                                "--runs", "discrete,central,stable", "--no-plots", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST_P(MpiRanks, ShardedOracleEqualsTheSingleProcessOne) {
  TempDir dir;
  const Result r = run_mpi(GetParam(), {MPI_ORACLE_CHECK}, dir, "oracle");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("d3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lock-step check downloads 16 B"), std::string::npos) << r.out;  // 2 float64 probes, not w
}

// Every number of two data.h5 files agrees to 1e-9 relative to its row (a step): |x − y| ≤ 1e-9 max|x_row|,
// NaN where the other is NaN; non-float datasets bit for bit. Excepted: wall times, and the SDCP
// residual, which is rounding noise (~1e-17) whose digits are not the run's numbers, and the oracle work
// counts (work/*): a shard sum rounds differently from the single sum, so a LOBPCG residual that sits at
// the tolerance may take one iteration more or less (the eigenvalues still agree to 1e-9). The deltas are
// compared in magnitude: they are coordinates along eigenvectors, whose sign is arbitrary.
void expect_same_numbers(const fs::path& a, const fs::path& b) {
  const auto first = read_all(a), second = read_all(b);
  ASSERT_EQ(first.size(), second.size());
  for (const auto& [path, ds] : first) {
    ASSERT_TRUE(second.count(path)) << path;
    ASSERT_EQ(second.at(path).dims, ds.dims) << path;
    if (path.find("/times/") != std::string::npos || path.find("/work/") != std::string::npos ||
        path.find("sdcp_residual") != std::string::npos)
      continue;
    if (!ds.is_float) {
      EXPECT_TRUE(second.at(path).bytes == ds.bytes) << path;
      continue;
    }
    const bool signless = path == "deltas";
    const std::vector<double> x = as_doubles(ds), y = as_doubles(second.at(path));
    const std::size_t columns = ds.dims[0] == 0 ? 1 : x.size() / ds.dims[0];  // values per row, any rank
    for (std::size_t row = 0; row < ds.dims[0]; ++row) {
      double scale = 0;
      for (std::size_t i = row * columns; i < (row + 1) * columns; ++i)
        if (std::isfinite(x[i])) scale = std::max(scale, std::abs(x[i]));
      for (std::size_t i = row * columns; i < (row + 1) * columns; ++i) {
        ASSERT_EQ(std::isnan(x[i]), std::isnan(y[i])) << path << "[" << i << "]";
        if (std::isnan(x[i])) continue;
        const double difference = signless ? std::abs(std::abs(x[i]) - std::abs(y[i])) : std::abs(x[i] - y[i]);
        ASSERT_LE(difference, 1e-9 * scale) << path << "[" << i << "]: " << x[i] << " vs " << y[i];
      }
    }
  }
}

TEST_P(MpiRanks, RunMatchesTheSingleProcessRun) {
  TempDir dir;
  // --log-outputs 20 of 33 examples spans the shards of 2 and 3 ranks: rank 0 computes them alone (docs/design.md §8).
  const auto args = tiny({"--steps", "20", "--log-outputs", "20", "--out", (dir / "single").string()});
  ASSERT_EQ(finish(spawn(args[0], {args.begin() + 1, args.end()}, dir.path(), "single")).code, 0);
  const Result r = run_mpi(GetParam(), tiny({"--steps", "20", "--log-outputs", "20", "--out", (dir / "ranks").string()}),
                           dir, "ranks");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");  // --quiet, and only rank 0 would speak
  expect_same_numbers(dir / "single" / "data.h5", dir / "ranks" / "data.h5");
  const auto config = nlohmann::json::parse(read_text(dir / "ranks" / "config.json"));
  EXPECT_EQ(config["ranks"], GetParam());
  EXPECT_EQ(config["data"]["train_examples"], 33);
}

// Waits for `pid` at most `seconds`; kills it and fails when it hangs.
int exit_within(pid_t pid, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      ADD_FAILURE() << "still running after " << seconds << " s: it hangs";
      return wait_exit(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The ranks mpirun started (its children), in rank order.
std::vector<pid_t> ranks_of(pid_t mpirun, int expected) {
  std::vector<pid_t> pids;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (int(pids.size()) < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::istringstream children(read_text("/proc/" + std::to_string(mpirun) + "/task/" + std::to_string(mpirun) +
                                          "/children"));
    pids.assign(std::istream_iterator<pid_t>(children), std::istream_iterator<pid_t>());
  }
  return pids;
}

void wait_for_file(const fs::path& file) {
  wait_for(file);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

// Two ranks (MPMD) of a long tiny run into dir/run, rank 1 with `rank1_extra` flags; their exit
// status (failing the test if they hang) and mpirun's stderr.
Result run_unequal_pair(const TempDir& dir, const std::vector<std::string>& rank1_extra) {
  const std::string out = (dir / "run").string();
  std::vector<std::string> args = Mpi::mpirun(1, tiny({"--steps", "100000", "--out", out}));
  Mpi::append(args, {":", "-np", "1"});
  Mpi::append(args, tiny({"--steps", "100000", "--out", out}));
  Mpi::append(args, rank1_extra);
  const Spawned s = spawn("mpirun", args, dir.path(), "pair");
  Result r;
  r.code = exit_within(s.pid, 120);
  r.err = read_text(s.err);
  return r;
}

TEST_F(Mpi, ACrashedRankEndsTheRun) {
  TempDir dir;
  const Result r = run_unequal_pair(dir, {"--test-crash-after", "5"});  // rank 1 exits abruptly
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("exit code"), std::string::npos) << r.err;  // the launcher ended the job
  EXPECT_GE(read_all(dir / "run" / "data.h5").size(), 1u);        // what was logged stays readable
}

TEST_F(Mpi, RanksOutOfLockStepStopWithAMessage) {
  TempDir dir;
  const Result r = run_unequal_pair(dir, {"--seed", "1"});  // as a rank with other inputs would
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("out of lock step"), std::string::npos) << r.err;
}

TEST_F(Mpi, AHungRankTimesOutWithAMessage) {
  TempDir dir;
  ::setenv("CFLOW_COMM_TIMEOUT", "3", 1);
  const Spawned s =
      spawn("mpirun", mpirun(2, tiny({"--steps", "100000", "--out", (dir / "run").string()})), dir.path(), "hung");
  const std::vector<pid_t> ranks = ranks_of(s.pid, 2);
  ASSERT_EQ(ranks.size(), 2u);
  wait_for_file(dir / "run" / "data.h5");
  kill(ranks.back(), SIGSTOP);  // alive but silent: only the timeout can notice
  EXPECT_NE(exit_within(s.pid, 120), 0);
  EXPECT_NE(read_text(s.err).find("no answer from the other ranks in 3 s"), std::string::npos) << read_text(s.err);
  const auto summary = nlohmann::json::parse(read_text(dir / "run" / "summary.json"));
  EXPECT_EQ(summary["status"], "failed");
}

TEST_F(Mpi, ResumeAfterSigintIsBitwiseAndNeedsTheSameRanks) {
  TempDir dir;
  const int ranks = 2;
  // Long enough (a few seconds) that the signal, sent once data.h5 exists, lands before the end.
  const std::vector<std::string> common{"--steps", "400", "--checkpoint-every", "0"};
  auto with = [&](const std::string& out) {
    auto args = tiny({"--out", (dir / out).string()});
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  ASSERT_EQ(run_mpi(ranks, with("whole"), dir, "whole").code, 0);
  const Spawned s = spawn("mpirun", mpirun(ranks, with("stopped")), dir.path(), "stopped");
  const std::vector<pid_t> pids = ranks_of(s.pid, ranks);
  ASSERT_EQ(int(pids.size()), ranks);
  wait_for_file(dir / "stopped" / "data.h5");
  kill(pids.back(), SIGINT);  // one rank's signal stops them all at the same step
  exit_within(s.pid, 120);
  const auto summary = nlohmann::json::parse(read_text(dir / "stopped" / "summary.json"));
  ASSERT_EQ(summary["status"], "interrupted") << "the run ended before the signal; make it longer";

  const std::vector<std::string> resume{CFLOW_CLI_BINARY, "run", "--resume", (dir / "stopped").string(), "--quiet"};
  const Result other = run_mpi(ranks + 1, resume, dir, "other");
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.err.find("resumes only with as many"), std::string::npos) << other.err;
  ASSERT_EQ(run_mpi(ranks, resume, dir, "resumed").code, 0);
  const auto whole = read_all(dir / "whole" / "data.h5"), resumed = read_all(dir / "stopped" / "data.h5");
  ASSERT_EQ(whole.size(), resumed.size());
  for (const auto& [path, ds] : whole) {
    if (path.find("/times/") != std::string::npos) continue;  // wall times differ from run to run
    EXPECT_TRUE(resumed.at(path).bytes == ds.bytes) << path << " differs";
  }
}

// Only rank 0 takes the run directory's lock; when another process holds it, every rank stops with
// exit 2 before anything is written, and only rank 0 says why.
TEST_F(Mpi, ALockedRunDirectoryStopsEveryRank) {
  TempDir dir;
  const fs::path out = dir / "run";
  fs::create_directories(out);
  const int fd = ::open((out / ".cflow.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const Result r = run_mpi(2, tiny({"--steps", "5", "--out", out.string()}), dir, "locked");
  ::close(fd);
  EXPECT_EQ(r.code, 2) << r.err;
  const std::string refusal = "in use by another cflow run";
  const std::size_t first = r.err.find(refusal);
  EXPECT_NE(first, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(refusal, first + 1), std::string::npos) << r.err;  // rank 0 alone
  EXPECT_FALSE(fs::exists(out / "config.json"));
}

// lr 1e4: every process stops within a few steps on every rank (the ranks compute the same values,
// so they make the same decision), and the run ends with exit 3 rather than hanging in a collective.
TEST_F(Mpi, ADivergingRunEndsOnEveryRankWithExit3) {
  TempDir dir;
  const Result r = run_mpi(2,
                           {CFLOW_CLI_BINARY, "run", "--data", "moons", "--n", "33", "--n-test", "17", "--width", "8",
                            "--lr", "1e4", "--dtype", "f64", "--threads", "1", "--device", "cpu", "--runs",
                            "discrete,central", "--steps", "100000", "--out", (dir / "run").string(), "--no-plots",
                            "--quiet"},
                           dir, "diverged");
  EXPECT_EQ(r.code, 3) << r.err;
  const auto summary = nlohmann::json::parse(read_text(dir / "run" / "summary.json"));
  EXPECT_EQ(summary["status"], "diverged");
  EXPECT_LT(summary["steps_done"].get<std::int64_t>(), 20);
}

INSTANTIATE_TEST_SUITE_P(Ranks, MpiRanks, ::testing::Values(2, 3), [](const auto& param_info) {
  return "np" + std::to_string(param_info.param);
});

}  // namespace
}  // namespace cflow::cli_test
