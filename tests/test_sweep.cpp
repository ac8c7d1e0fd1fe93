// `cflow sweep`: the spec (parsing, validation, stable ids) and the built binary end to end on tiny
// runs — a 2 × 2 grid with --jobs 2, an interrupted sweep continued to the same numbers, a failing
// point, --task, and the Slurm script submitted through stub sbatch/squeue.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host/sweep/process.h"
#include "host/sweep/spec.h"
#include "host/sweep/sweep_dir.h"

namespace cflow::sweep {
namespace {

namespace fs = std::filesystem;
using run::ConfigError;

// ---- helpers ---------------------------------------------------------------------------------------

fs::path fresh_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() / ("cflow_test_sweep_" + std::to_string(::getpid()) + "_" +
                                                    info->test_suite_name() + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

// The message of the ConfigError that parsing `text` throws ("" when it parses).
std::string spec_error(const std::string& text) {
  try {
    parse_spec(text, "spec.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> ids(const std::string& text) {
  std::vector<std::string> out;
  for (const Point& p : parse_spec(text, "spec.toml").points) out.push_back(p.id);
  return out;
}

// Runs `cflow ARGS`, stdout and stderr into DIR/<tag>.log; its exit status.
int cflow(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag,
          const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{CFLOW_CLI_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return wait_for(spawn({argv, env, dir / (tag + ".log"), false, {}}));
}

// sweep.csv as rows of column -> text.
std::vector<std::map<std::string, std::string>> read_csv(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  std::stringstream head(line);
  for (std::string cell; std::getline(head, cell, ',');) header.push_back(cell);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::map<std::string, std::string> row;
    std::stringstream cells(line + ",");  // no quoted cells in these sweeps
    for (std::size_t i = 0; i < header.size(); ++i) std::getline(cells, row[header[i]], ',');
    rows.push_back(row);
  }
  return rows;
}

// Tiny runs: moons, width 8, well under a second each; one thread each (a loaded machine makes
// OpenMP teams wait on each other).
const std::string kTinyBase = R"(
[base]
data = "moons"
n = 64
n-test = 0
runs = ["discrete", "central"]
checkpoint-every = 10
threads = 1
)";

const std::string kGrid2x2 = kTinyBase + "steps = 30\n[grid]\nwidth = [8, 12]\nlr = [0.05, 0.2]\n";

// ---- the spec ----------------------------------------------------------------------------------------

TEST(SweepSpec, GridIsACartesianProductLastAxisFastestThenZip) {
  const Spec spec = parse_spec(kTinyBase + "[grid]\nwidth = [8, 16]\nlr = [0.05, 0.1]\n[zip]\nseed = [1, 2]\n"
                               "depth = [1, 2]\n", "spec.toml");
  ASSERT_EQ(spec.points.size(), 8u);
  EXPECT_EQ(spec.axes, (std::vector<std::string>{"width", "lr", "seed", "depth"}));
  EXPECT_EQ(spec.name, "spec");
  const Point& p = spec.points[5];  // width 16, lr 0.05, zip entry 1
  EXPECT_EQ(p.config.width, 16);
  EXPECT_EQ(p.config.lr, 0.05);
  EXPECT_EQ(p.config.seed, 2u);
  EXPECT_EQ(p.config.depth, 2);
  EXPECT_EQ(p.config.data, "moons");
  EXPECT_EQ(p.id.substr(0, p.id.rfind('-')), "w16-lr0.05-s2-d2");
}

TEST(SweepSpec, UnknownKeyIsNamedWithItsSectionAndLine) {
  const std::string message = spec_error("[grid]\nwidht = [8, 16]\n");
  EXPECT_NE(message.find("[grid] widht (line 2)"), std::string::npos) << message;
  EXPECT_NE(message.find("unknown key"), std::string::npos) << message;
  EXPECT_NE(spec_error("[base]\nout = \"x\"\n").find("sets each point's run directory"), std::string::npos);
  EXPECT_NE(spec_error("lr = 0.1\n").find("unknown entry 'lr'"), std::string::npos);
}

TEST(SweepSpec, BadValueAndBadPointAreNamed) {
  EXPECT_NE(spec_error("[grid]\nlr = [0.1, -1]\n").find("[grid] lr (line 2): expected a number > 0, got '-1'"),
            std::string::npos);
  // n = 66 is not a multiple of the 4 Gaussian classes: only point 1 is bad.
  const std::string message = spec_error("[base]\ndata = \"gaussian\"\n[grid]\nn = [64, 66]\n");
  EXPECT_NE(message.find("point 1 (n66-"), std::string::npos) << message;
  EXPECT_NE(message.find("--n 66: expected a multiple of the 4 classes"), std::string::npos) << message;
}

TEST(SweepSpec, EmptyGridIsAnError) {
  EXPECT_NE(spec_error("[grid]\nlr = []\n").find("[grid] lr (line 2): the list is empty"), std::string::npos);
  EXPECT_NE(spec_error("[grid]\n").find("[grid] is empty"), std::string::npos);
  EXPECT_NE(spec_error("[grid]\nlr = 0.1\n").find("expected a list"), std::string::npos);
  EXPECT_NE(spec_error("[zip]\nlr = [0.1, 0.2]\nseed = [1]\n").find("need one length"), std::string::npos);
}

TEST(SweepSpec, DuplicatePointsAreAnError) {
  EXPECT_NE(spec_error("[grid]\nlr = [0.05, 5e-2]\n").find("points 0 and 1 are the same experiment"),
            std::string::npos);
  EXPECT_NE(spec_error("[base]\nlr = 0.1\n[grid]\nlr = [0.2]\n").find("already set"), std::string::npos);
}

// ---- ids -----------------------------------------------------------------------------------------------

TEST(SweepIds, StableAcrossSpellingOrderAndResumableBaseKeys) {
  const auto reference = ids("[base]\nn = 64\nsteps = 10\n[grid]\nwidth = [512]\nlr = [0.05]\nseed = [1]\n");
  // The same settings written another way: key order in [base], 5e-2, underscores.
  EXPECT_EQ(ids("[base]\nsteps = 10\nn = 64\n[grid]\nwidth = [512]\nlr = [5e-2]\nseed = [1]\n"), reference);
  // A longer run of the same experiment keeps its id, so raising steps continues the points.
  EXPECT_EQ(ids("[base]\nn = 64\nsteps = 99\n[grid]\nwidth = [512]\nlr = [0.05]\nseed = [1]\n"), reference);
  // Any other change is another experiment.
  EXPECT_NE(ids("[base]\nn = 128\nsteps = 10\n[grid]\nwidth = [512]\nlr = [0.05]\nseed = [1]\n"), reference);
  EXPECT_NE(ids("[base]\nn = 64\nsteps = 10\n[grid]\nwidth = [512]\nlr = [0.05]\nseed = [2]\n")[0].substr(15),
            reference[0].substr(15));
  // The id is a contract with existing sweep directories, so it is pinned: the hash is the top 32 bits
  // of the 64-bit FNV-1a of {"lr":0.05,"n":64,"seed":1,"width":512}, computed outside cflow (Python).
  EXPECT_EQ(reference[0], "w512-lr0.05-s1-8deb02ac");
}

// ---- the binary end to end ---------------------------------------------------------------------------

TEST(SweepCli, TwoByTwoGridWithTwoJobsFinishesAndCollectsFourRows) {
  const fs::path dir = fresh_dir();
  write_text(dir / "grid.toml", kGrid2x2);
  ASSERT_EQ(cflow({"sweep", (dir / "grid.toml").string(), "--out", (dir / "s").string(), "--jobs", "2"}, dir, "sweep"),
            0)
      << read_text(dir / "sweep.log");
  const auto rows = read_csv(dir / "s" / "sweep.csv");
  ASSERT_EQ(rows.size(), 4u);
  const Spec spec = SweepDir(dir / "s").load();
  EXPECT_EQ(spec.name, "grid");  // the stem of the spec file, kept in the copy
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rows[i].at("status"), "completed");
    EXPECT_EQ(rows[i].at("width"), spec.points[i].swept[0].text);
    const auto summary = nlohmann::json::parse(read_text(dir / "s/points" / spec.points[i].id / "run/summary.json"));
    EXPECT_EQ(std::stod(rows[i].at("final.discrete.train_loss")), summary["final"]["discrete"]["train_loss"].get<double>());
    EXPECT_EQ(summary["steps_done"], 30);
  }
  EXPECT_NE(read_text(dir / "sweep.log").find("sweep: 4/4 done, 0 running, 0 failed"), std::string::npos);
  // The plots of python/cflow_sweep.py (python3-matplotlib is a dependency; scripts/setup.sh).
  EXPECT_TRUE(fs::exists(dir / "s/report.html")) << read_text(dir / "s/plots.log");
  EXPECT_TRUE(fs::exists(dir / "s/plots/time_per_step_vs_width.png"));
  // Idempotent: a second run starts nothing.
  ASSERT_EQ(cflow({"sweep", (dir / "s").string(), "--no-plots"}, dir, "again"), 0);
  EXPECT_EQ(read_text(dir / "s/points" / spec.points[0].id / "log.txt").find("====", 2), std::string::npos);
}

TEST(SweepCli, InterruptedSweepContinuesToTheNumbersOfAnUninterruptedOne) {
  const fs::path dir = fresh_dir();
  const std::string text = kTinyBase + "steps = 600\n[grid]\nwidth = [8]\nlr = [0.05, 0.2]\n";
  write_text(dir / "spec.toml", text);
  const Spec spec = parse_spec(text, "spec.toml");
  const std::vector<std::string> args{"sweep", (dir / "spec.toml").string(), "--jobs", "2", "--no-plots", "--out"};
  auto with_out = [&](const std::string& out) {
    auto a = args;
    a.push_back((dir / out).string());
    return a;
  };
  ASSERT_EQ(cflow(with_out("whole"), dir, "whole"), 0) << read_text(dir / "whole.log");

  std::vector<std::string> argv{CFLOW_CLI_BINARY};
  for (const std::string& a : with_out("parts")) argv.push_back(a);
  const pid_t pid = spawn({argv, {}, dir / "first.log", false, {}});
  const fs::path first_checkpoints = dir / "parts/points" / spec.points[0].id / "run/checkpoints";
  for (int i = 0; i < 3000 && (!fs::exists(first_checkpoints) || fs::is_empty(first_checkpoints)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGINT);
  ASSERT_EQ(wait_for(pid), 130) << read_text(dir / "first.log");
  const auto interrupted = nlohmann::json::parse(read_text(first_checkpoints / "../summary.json"));
  EXPECT_EQ(interrupted["status"], "interrupted");
  EXPECT_LT(interrupted["steps_done"].get<int>(), 600);

  ASSERT_EQ(cflow(with_out("parts"), dir, "second"), 0) << read_text(dir / "second.log");
  EXPECT_NE(read_text(dir / "parts/points" / spec.points[0].id / "log.txt").find("--resume"), std::string::npos);
  const auto whole = read_csv(dir / "whole/sweep.csv"), parts = read_csv(dir / "parts/sweep.csv");
  ASSERT_EQ(whole.size(), 2u);
  ASSERT_EQ(parts.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    for (const std::string column : {"final.discrete.train_loss", "final.central.train_loss",
                                     "final_distance_central_discrete", "final.discrete.effective_sharpness"}) {
      EXPECT_EQ(parts[i].at(column), whole[i].at(column)) << column;
      EXPECT_FALSE(whole[i].at(column).empty()) << column;
    }
  }
}

TEST(SweepCli, FailingPointIsReportedWhileTheOthersFinish) {
  const fs::path dir = fresh_dir();
  // A tiny run, and one whose data folder does not exist.
  write_text(dir / "spec.toml", "[base]\nn = 64\nn-test = 0\nsteps = 5\nthreads = 1\nruns = [\"discrete\"]\n[zip]\n"
                                "data = [\"moons\", \"fashion-mnist\"]\ndata-dir = [\"\", \"/nonexistent/fashion-mnist\"]\n");
  EXPECT_EQ(cflow({"sweep", (dir / "spec.toml").string(), "--out", (dir / "s").string(), "--no-plots"}, dir, "sweep"),
            1);
  const std::string log = read_text(dir / "sweep.log");
  EXPECT_NE(log.find("point 1 (fashion-mnist-data-dir_nonexistent_fashion-mnist-"), std::string::npos) << log;
  EXPECT_NE(log.find("failed with exit code 1"), std::string::npos) << log;
  EXPECT_NE(log.find("/nonexistent/fashion-mnist"), std::string::npos) << log;  // the log's last lines
  const auto rows = read_csv(dir / "s/sweep.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "completed");
  EXPECT_EQ(rows[1].at("status"), "failed");
  EXPECT_EQ(rows[1].at("exit_code"), "1");
}

TEST(SweepCli, TaskRunsExactlyThatPoint) {
  const fs::path dir = fresh_dir();
  write_text(dir / "spec.toml", kGrid2x2);
  ASSERT_EQ(cflow({"sweep", (dir / "spec.toml").string(), "--out", (dir / "s").string(), "--task", "2"}, dir, "task"),
            0)
      << read_text(dir / "task.log");
  const Spec spec = SweepDir(dir / "s").load();
  for (const Point& p : spec.points)
    EXPECT_EQ(fs::exists(dir / "s/points" / p.id / "run/summary.json"), p.index == 2) << p.id;
  EXPECT_EQ(cflow({"sweep", (dir / "spec.toml").string(), "--out", (dir / "s").string(), "--task", "4"}, dir, "bad"),
            2);
}

TEST(SweepCli, SlurmScriptIsValidBashAndSubmittedAsAnArray) {
  const fs::path dir = fresh_dir();
  write_text(dir / "spec.toml", kGrid2x2);
  // Stubs: sbatch records its arguments and answers a job id; squeue says task 0 runs, 1 waits.
  fs::create_directories(dir / "bin");
  write_text(dir / "bin/sbatch", "#!/bin/sh\necho \"$@\" > " + (dir / "sbatch.args").string() + "\necho 4242\n");
  write_text(dir / "bin/squeue", "#!/bin/sh\necho \"$@\" > " + (dir / "squeue.args").string() +
                                     "\necho '0 RUNNING'\necho '1 PENDING'\n");
  for (const char* stub : {"bin/sbatch", "bin/squeue"}) fs::permissions(dir / stub, fs::perms::owner_all);
  const std::string path = "PATH=" + (dir / "bin").string() + ":" + std::getenv("PATH");
  ASSERT_EQ(cflow({"sweep", (dir / "spec.toml").string(), "--out", (dir / "s").string(), "--slurm", "--max-parallel",
                   "3", "--partition", "gpu", "--time", "01:00:00", "--no-submit"},
                  dir, "write", {path}),
            0);
  EXPECT_FALSE(fs::exists(dir / "sbatch.args"));
  const fs::path script = dir / "s/sweep.sbatch";
  EXPECT_EQ(std::system(("bash -n " + script.string()).c_str()), 0);
  const std::string text = read_text(script);
  for (const std::string line : {"#SBATCH --array=0-3%3\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=01:00:00\n",
                                 "--task \"$SLURM_ARRAY_TASK_ID\"\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;

  ASSERT_EQ(cflow({"sweep", (dir / "spec.toml").string(), "--out", (dir / "s").string(), "--slurm"}, dir, "submit",
                  {path}),
            0)
      << read_text(dir / "submit.log");
  EXPECT_EQ(read_text(dir / "sbatch.args"), "--parsable " + fs::absolute(script).string() + "\n");
  EXPECT_NE(read_text(script).find("#SBATCH --array=0-3%4\n"), std::string::npos);
  EXPECT_EQ(read_text(dir / "s/slurm/job_id"), "4242\n");
  ASSERT_EQ(cflow({"sweep", (dir / "s").string(), "--status"}, dir, "status", {path}), 0);
  EXPECT_NE(read_text(dir / "squeue.args").find("-j 4242"), std::string::npos);
  const std::string status = read_text(dir / "status.log");
  EXPECT_NE(status.find("4 points: 2 pending 1 queued 1 running"), std::string::npos) << status;
}

}  // namespace
}  // namespace cflow::sweep
