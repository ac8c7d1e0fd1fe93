// `cflow run --init-from`: a run branched from another run's checkpoint (host/run/plan.h) continues it
// bit for bit, --init-process starts every process from one, mismatched settings are refused;
// --checkpoint-steps keeps chosen checkpoints (0: the initial point); per-process eigen settings
// reach their process and survive a resume. Tiny moons runs through the built binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "cli_support.h"
#include "host/run/checkpoint.h"
#include "host/run/session.h"

namespace cflow::run {
namespace {

using namespace cflow::cli_test;
using cli_test::Dataset;  // not cflow::Dataset
using json = nlohmann::ordered_json;

// tiny() without plots and output; a flag of tiny's given in `extra` (--runs, --width, --lr)
// replaces tiny's value (CLI11 takes a flag once).
std::vector<std::string> quiet_tiny(std::vector<std::string> extra) {
  extra.insert(extra.end(), {"--no-plots", "--quiet"});
  std::vector<std::string> args = tiny({});
  for (auto flag = args.begin(); flag != args.end(); ++flag) {
    const auto given = std::find(extra.begin(), extra.end(), *flag);
    if (!flag->starts_with("--") || given == extra.end()) continue;
    *(flag + 1) = *(given + 1);
    extra.erase(given, given + 2);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Rows [from, from + count) of a dataset, as raw bytes.
std::vector<char> rows_of(const Dataset& ds, std::size_t from, std::size_t count) {
  const std::size_t row = ds.bytes.size() / ds.dims[0];
  return {ds.bytes.begin() + std::ptrdiff_t(from * row), ds.bytes.begin() + std::ptrdiff_t((from + count) * row)};
}

std::vector<std::int64_t> checkpoint_steps_in(const fs::path& run) {
  std::vector<std::int64_t> steps;
  for (const fs::path& file : list_checkpoints(run / kCheckpointFolder)) steps.push_back(*checkpoint_step(file));
  return steps;
}

json json_of(const fs::path& file) { return json::parse(read_text(file)); }

// A run in `out` (checkpoints every 2 steps) that crashes (--test-crash-after in `extra`), then
// resumed to its end.
void crash_and_resume(std::vector<std::string> extra, const fs::path& out) {
  extra.insert(extra.end(), {"--checkpoint-every", "2", "--out", out.string()});
  EXPECT_EQ(run_cflow(quiet_tiny(extra), out.parent_path(), "crashed").code, cflow::run::kTestCrashExit);
  const Result resumed = run_cflow({"run", "--resume", out.string(), "--quiet"}, out.parent_path(), "resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
}

// Every series of `branch` (but wall times, and the smoothed series, which smooth over another range)
// equals the origin's rows from `first` on, bit for bit.
void expect_continues(const fs::path& origin, const fs::path& branch, std::size_t first, const std::string& prefix = "") {
  const auto whole = read_all(origin / "data.h5");
  const auto data = read_all(branch / "data.h5");
  for (const auto& [path, ds] : data) {
    if (path.find("/times/") != std::string::npos || path.starts_with("smoothed/") || !path.starts_with(prefix))
      continue;
    ASSERT_TRUE(whole.count(path)) << path;
    const std::size_t count = ds.dims[0];
    ASSERT_EQ(whole.at(path).dims[0], first + count) << path;
    EXPECT_TRUE(rows_of(ds, 0, count) == rows_of(whole.at(path), first, count)) << branch << ": " << path << " differs";
  }
}

// A run with `origin_flags` in dir/origin, then one branched from it with `branch_flags` in dir/branch;
// true when both exit 0.
bool origin_and_branch(const TempDir& dir, std::vector<std::string> origin_flags,
                       std::vector<std::string> branch_flags) {
  const fs::path origin = dir / "origin";
  origin_flags.insert(origin_flags.end(), {"--out", origin.string()});
  branch_flags.insert(branch_flags.end(), {"--init-from", origin.string(), "--out", (dir / "branch").string()});
  const Result o = run_cflow(quiet_tiny(origin_flags), dir.path(), "origin");
  EXPECT_EQ(o.code, 0) << o.err;
  const Result b = o.code == 0 ? run_cflow(quiet_tiny(branch_flags), dir.path(), "branch") : o;
  EXPECT_EQ(b.code, 0) << b.err;
  return o.code == 0 && b.code == 0;
}

// The origin: 10 steps, a checkpoint every 4 steps (the newest two kept) and one kept at step 3.
// A branch at --init-step 5 starts from step 3 and equals the origin from there, and so does a
// branch that crashed and was resumed.
TEST(RunBranch, ContinuesTheOriginBitForBitFromTheCheckpointAtOrBeforeInitStep) {
  TempDir dir;
  const fs::path origin = dir / "origin";
  ASSERT_EQ(run_cflow(quiet_tiny({"--steps", "10", "--checkpoint-every", "4", "--checkpoint-steps", "3", "--out",
                                  origin.string()}),
                      dir.path(), "origin")
                .code,
            0);
  EXPECT_EQ(checkpoint_steps_in(origin), (std::vector<std::int64_t>{3, 8, 10}));  // 4 pruned, 3 kept

  const fs::path branch = dir / "branch";
  const Result r = run_cflow(tiny({"--steps", "10", "--no-plots", "--init-from", origin.string(), "--init-step", "5",
                                   "--out", branch.string()}),
                             dir.path(), "branch");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("branching  from " + origin.string() + " at step 3 (step-000000003.ckpt)"), std::string::npos)
      << r.out;
  const json config = json_of(branch / "config.json");
  EXPECT_EQ(config["origin"]["step"], 3);
  EXPECT_EQ(config["origin"]["process"], "own");
  EXPECT_EQ(config["origin"]["settings_digest"],
            read_checkpoint(checkpoint_path(origin / kCheckpointFolder, 3)).meta["settings_digest"]);
  EXPECT_EQ(json_of(branch / "summary.json")["first_step"], 3);
  expect_continues(origin, branch, 3);

  const fs::path crashed = dir / "crashed";
  crash_and_resume({"--steps", "10", "--init-from", origin.string(), "--init-step", "3", "--test-crash-after", "4"},
                   crashed);
  expect_continues(origin, crashed, 3);
}

// --checkpoint-steps 0 keeps the initial point (after the warm start): a branch from it is the
// origin's run from its first step on, bit for bit, every process included.
TEST(RunBranch, CheckpointStepZeroKeepsTheInitialPointToBranchFrom) {
  TempDir dir;
  const fs::path origin = dir / "origin", branch = dir / "branch";
  ASSERT_TRUE(origin_and_branch(dir, {"--steps", "4", "--warm-start", "1", "--checkpoint-steps", "0"},
                                {"--steps", "4", "--warm-start", "1", "--init-step", "0"}));
  EXPECT_EQ(checkpoint_steps_in(origin), (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(json_of(branch / "config.json")["origin"]["step"], 0);
  expect_continues(origin, branch, 0);
}

// --init-process central: the discrete process starts at the central flow's point (distance 0,
// the same loss), and the central flow continues the origin's.
TEST(RunBranch, InitProcessStartsEveryProcessFromThatProcess) {
  TempDir dir;
  const fs::path origin = dir / "origin", branch = dir / "branch";
  ASSERT_TRUE(origin_and_branch(dir, {"--runs", "discrete,central", "--steps", "6", "--checkpoint-every", "4"},
                                {"--runs", "discrete,central", "--steps", "6", "--init-step", "4", "--init-process",
                                 "central"}));
  EXPECT_EQ(json_of(branch / "config.json")["origin"]["process"], "central");
  const auto whole = read_all(origin / "data.h5");
  const auto data = read_all(branch / "data.h5");
  EXPECT_EQ(column_of(data.at("distances/central-discrete"))[0], 0.0);
  EXPECT_EQ(column_of(data.at("discrete/train_loss"))[0], column_of(whole.at("central/train_loss"))[4]);
  EXPECT_NE(column_of(data.at("discrete/train_loss"))[0], column_of(whole.at("discrete/train_loss"))[4]);
  expect_continues(origin, branch, 4, "central/");
}

TEST(RunBranch, AnotherModelAMissingProcessOrTooFewStepsAreRefusedWithExit2) {
  TempDir dir;
  const fs::path origin = dir / "origin";
  ASSERT_EQ(run_cflow(quiet_tiny({"--runs", "discrete", "--steps", "2", "--out", origin.string()}), dir.path(), "origin")
                .code,
            0);
  auto branch = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--init-from", origin.string(), "--out", (dir / "branch").string()});
    return run_cflow(quiet_tiny(extra), dir.path(), "branch");
  };
  Result r = branch({"--runs", "discrete", "--steps", "4", "--width", "16"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("width is 16 here but 8 in the origin"), std::string::npos) << r.err;
  r = branch({"--runs", "discrete,central", "--steps", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("the origin has no central process (it ran discrete)"), std::string::npos) << r.err;
  r = branch({"--runs", "discrete", "--steps", "2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--steps 2: a branch continues the origin's step numbers from 2"), std::string::npos) << r.err;
  r = branch({"--runs", "discrete", "--steps", "4", "--init-step", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no usable checkpoint at or before step 1"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "branch" / "config.json"));
  EXPECT_EQ(branch({"--runs", "discrete", "--steps", "4", "--lr", "1.2"}).code, 0);  // the optimizer's lr may change
}

// --central-eig-frequency 3: the central flow solves (LOBPCG iterations) only at steps 0, 3, 6, the
// discrete process at every step; a resume keeps the setting.
TEST(RunBranch, PerProcessEigenFrequencyReachesItsProcessAndSurvivesAResume) {
  TempDir dir;
  const fs::path out = dir / "run";
  crash_and_resume({"--runs", "discrete,central", "--steps", "8", "--central-eig-frequency", "3", "--test-crash-after",
                    "5"},
                   out);
  const json settings = json_of(out / "config.json")["settings"];
  EXPECT_EQ(settings["central-eig-frequency"], 3);
  EXPECT_EQ(settings["discrete-eig-frequency"], "global");
  const auto data = read_all(out / "data.h5");
  const std::vector<double> central = column_of(data.at("central/work/lobpcg_iterations"));
  const std::vector<double> discrete = column_of(data.at("discrete/work/lobpcg_iterations"));
  ASSERT_EQ(central.size(), 8u);
  for (std::size_t step = 0; step < 8; ++step) {
    EXPECT_EQ(central[step] > 0, step % 3 == 0) << "central, step " << step;
    EXPECT_GT(discrete[step], 0) << "discrete, step " << step;
  }
}

// --central-eig-every-substep: a full solve at every substep, whatever the central eig frequency.
TEST(RunBranch, CentralEigEverySubstepSolvesAtEveryStep) {
  TempDir dir;
  const fs::path out = dir / "run";
  ASSERT_EQ(run_cflow(quiet_tiny({"--runs", "central", "--steps", "3", "--central-eig-frequency", "3",
                                  "--central-eig-every-substep", "--out", out.string()}),
                      dir.path())
                .code,
            0);
  const std::vector<double> iterations = column_of(read_all(out / "data.h5").at("central/work/lobpcg_iterations"));
  for (std::size_t step = 0; step < iterations.size(); ++step) EXPECT_GT(iterations[step], 0) << step;
  EXPECT_EQ(json_of(out / "config.json")["settings"]["central-eig-every-substep"], true);
}

}  // namespace
}  // namespace cflow::run
