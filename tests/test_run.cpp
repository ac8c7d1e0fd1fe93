// `cflow run`: settings (flags, TOML, validation), checkpoint files, the data.h5 layout, and the built
// binary end to end — a tiny run, resume equal to an uninterrupted run bit for bit, SIGINT.
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cflow/data/dataset.h"
#include "cflow/engine/network.h"
#include "cli_support.h"
#include "host/run/checkpoint.h"
#include "host/run/config.h"
#include "host/run/output.h"
#include "host/run/session.h"
#include "host/run/summary.h"

namespace cflow::run {
namespace {

namespace fs = std::filesystem;

// ---- helpers ---------------------------------------------------------------------------------------

using namespace cflow::cli_test;
using cli_test::Dataset;  // not cflow::Dataset

// Rows of a [rows x cols] float dataset that hold at least one finite value.
std::int64_t written_rows(const Dataset& ds) {
  const std::vector<double> v = as_doubles(ds);
  const std::size_t cols = ds.dims.size() == 2 ? ds.dims[1] : 1;
  std::int64_t rows = 0;
  for (std::size_t r = 0; r < ds.dims[0]; ++r) {
    bool any = false;
    for (std::size_t c = 0; c < cols; ++c) any = any || std::isfinite(v[r * cols + c]);
    rows += any;
  }
  return rows;
}

bool python_can_plot() {
  return std::system("/usr/bin/python3 -c 'import h5py, matplotlib, numpy' >/dev/null 2>&1") == 0;
}

// ---- settings ----------------------------------------------------------------------------------------

struct Parsed {
  CLI::App app{"test"};
  RunFlags flags;
  CLI::App* cmd = nullptr;
  Parsed() { cmd = app.add_subcommand("run"); }
};

RunConfig parse(std::vector<std::string> args, Parsed& p) {
  register_flags(*p.cmd, p.flags);
  args.insert(args.begin(), "run");
  std::reverse(args.begin(), args.end());  // CLI11 takes argv in reverse order from a vector
  p.app.parse(args);
  return resolve(p.flags);
}

RunConfig parse(std::vector<std::string> args) {
  Parsed p;
  return parse(std::move(args), p);
}

std::string config_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RunConfig, DefaultsAreTheDefaultExperiment) {
  const RunConfig c = parse({});
  EXPECT_EQ(c.data, "fashion-mnist");
  EXPECT_EQ(c.classes, "4");
  EXPECT_EQ(c.arch, "mlp");
  EXPECT_EQ(c.opt, "gd");
  EXPECT_EQ(c.runs, (std::vector<std::string>{"discrete", "central", "stable"}));
  const ExperimentSettings s = c.experiment_settings();
  EXPECT_EQ(s.optimizer.kind, OptimizerKind::gd);
  EXPECT_EQ(s.optimizer.lr, c.lr);
  EXPECT_EQ(s.eig.tolerance, 1e-4);  // f32 default
  EXPECT_EQ(s.flow.central_nsubsteps, FlowSettings{}.central_nsubsteps);
  EXPECT_EQ(parse({"--data", "moons"}).classes, "2");
  EXPECT_EQ(parse({"--data", "sorting", "--arch", "transformer", "--vocab-size", "6"}).classes, "6");
}

TEST(RunConfig, FlagsSetEveryKindOfValue) {
  const RunConfig c = parse({"--lr", "0.1", "--runs", "discrete,central", "--n-test", "all", "--eig-tol", "1e-6",
                             "--bias-correction", "--opt", "rmsprop", "--classes", "binary", "--seed", "7",
                             "--dtype", "f64", "--device", "cuda:1", "--no-plots"});
  EXPECT_EQ(c.lr, 0.1);
  EXPECT_EQ(c.runs, (std::vector<std::string>{"discrete", "central"}));
  EXPECT_EQ(c.n_test, kAllTestExamples);
  EXPECT_EQ(c.eig_tolerance(), 1e-6);
  EXPECT_TRUE(c.bias_correction);
  EXPECT_TRUE(c.no_plots);
  EXPECT_EQ(c.optimizer_spec().kind, OptimizerKind::rmsprop);
  EXPECT_TRUE(c.class_choice().binary);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.device, "cuda:1");
  EXPECT_EQ(c.processes(), (std::vector<ProcessKind>{ProcessKind::discrete, ProcessKind::central}));
}

TEST(RunConfig, BadValuesNameTheFlagAndTheValidRange) {
  auto expect = [](std::vector<std::string> args, std::vector<std::string> parts) {
    const std::string message = config_error(args);
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  expect({"--lr", "-1"}, {"--lr", "a number > 0", "'-1'"});
  expect({"--lr", "fast"}, {"--lr", "a number > 0"});
  expect({"--beta2", "1"}, {"--beta2", "(0, 1)"});
  expect({"--steps", "0"}, {"--steps", ">= 1"});
  expect({"--runs", "discrete,sideways"}, {"--runs", "discrete, central, stable, midpoint"});
  expect({"--runs", "discrete,discrete"}, {"--runs", "at most once"});
  expect({"--opt", "adam"}, {"--opt", "gd, scalar-rmsprop, rmsprop"});
  expect({"--classes", "1"}, {"--classes", ">= 2"});
  expect({"--device", "tpu"}, {"--device", "auto, cpu, cuda or cuda:N"});
  expect({"--n", "1001"}, {"--n 1001", "multiple", "4 classes"});
  expect({"--data", "moons", "--classes", "3"}, {"--classes 3", "moons"});
  expect({"--arch", "cnn", "--data", "gaussian"}, {"--arch cnn", "image data"});
  expect({"--arch", "resnet", "--data", "moons"}, {"--arch resnet", "image data"});
  expect({"--arch", "transformer"}, {"--arch transformer", "expected --data sorting", "got --data fashion-mnist"});
  expect({"--data", "sorting"}, {"--data sorting", "expected --arch transformer", "got --arch mlp"});
  expect({"--data", "sorting", "--arch", "transformer", "--classes", "3"}, {"--classes 3", "--vocab-size"});
  expect({"--data", "sorting", "--arch", "transformer", "--vocab-size", "1"},
         {"--vocab-size", "an integer in [2, 65536]", "got '1'"});
  expect({"--data", "cifar10"}, {"--data-dir", "cifar-10-binary"});
  expect({"--eig-initial-k", "30"}, {"--eig-initial-k", "--eig-max-k"});
  expect({"--runs", "discrete,stationary"}, {"--runs stationary", "--opt rmsprop", "got --opt gd"});
  expect({"--opt", "scalar-rmsprop", "--runs", "stationary"}, {"--runs stationary", "got --opt scalar-rmsprop"});
  expect({"--stationary-tol", "0"}, {"--stationary-tol", "(0, 1)"});
  expect({"--stationary-max-iterations", "0"}, {"--stationary-max-iterations", ">= 1"});
  expect({"--stationary-memory", "-1"}, {"--stationary-memory", "[0, 50]"});
}

TEST(RunConfig, UnknownFlagIsAParseError) {
  Parsed p;
  EXPECT_THROW(parse({"--learning-rate", "0.1"}, p), CLI::ParseError);
}

TEST(RunConfig, TomlFileAndFlagsOverrideIt) {
  TempDir dir;
  const fs::path file = dir / "run.toml";
  std::ofstream(file) << "lr = 0.2\nsteps = 7\nruns = [\"discrete\", \"central\"]\nbias_correction = true\n"
                         "[eig]\nfrequency = 3\ntrack-threshold = 1.25\n[model]\nwidth = 32\n";
  const RunConfig c = parse({"--config", file.string(), "--lr", "0.3"});
  EXPECT_EQ(c.lr, 0.3);  // the flag wins
  EXPECT_EQ(c.steps, 7);
  EXPECT_EQ(c.runs, (std::vector<std::string>{"discrete", "central"}));
  EXPECT_TRUE(c.bias_correction);
  EXPECT_EQ(c.eig_frequency, 3);
  EXPECT_EQ(c.eig_track_threshold, 1.25);
  EXPECT_EQ(c.width, 32);
}

TEST(RunConfig, TomlErrorsNameTheFileTheKeyAndTheLine) {
  RunConfig c;
  try {
    apply_toml_text(c, "lr = 0.1\nlearning_rate = 0.2\n", "my.toml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("my.toml"), std::string::npos) << m;
    EXPECT_NE(m.find("learning_rate"), std::string::npos) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  }
  try {
    apply_toml_text(c, "[eig]\nfrequency = 0\n", "my.toml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("eig.frequency"), std::string::npos) << m;
    EXPECT_NE(m.find(">= 1"), std::string::npos) << m;
  }
  EXPECT_THROW(apply_toml_text(c, "lr = = 3\n", "my.toml"), ConfigError);
  EXPECT_THROW(apply_toml_text(c, "resume = \"x\"\n", "my.toml"), ConfigError);
}

TEST(RunConfig, JsonRoundTripKeepsEverySetting) {
  const RunConfig c = parse({"--lr", "0.123456789012345", "--runs", "stable,midpoint", "--n-test", "all",
                             "--eig-tol", "3e-7", "--seed", "18446744073709551615", "--no-bias"});
  const auto json = to_json(c);
  EXPECT_EQ(json.size(), keys().size());
  const RunConfig back = from_json(json, "config.json");
  EXPECT_EQ(to_json(back), json);
  EXPECT_EQ(back.lr, 0.123456789012345);
  EXPECT_EQ(back.seed, 18446744073709551615ull);
}

// One key per process and eigen setting, generated from the key table: a flag and a [<process>.eig]
// TOML table give the same settings, which reach that process only and round-trip through JSON.
TEST(RunConfig, PerProcessEigenKeysOverrideTheGlobalOnesForTheirProcess) {
  const RunConfig flags = parse({"--central-eig-frequency", "3", "--central-eig-tol", "1e-6", "--eig-initial-k", "2",
                                 "--discrete-eig-track-threshold", "1.25", "--central-eig-every-substep"});
  const ExperimentSettings s = flags.experiment_settings();
  EXPECT_EQ(s.eig_of(ProcessKind::central).frequency, 3);
  EXPECT_EQ(s.eig_of(ProcessKind::central).tolerance, 1e-6);
  EXPECT_EQ(s.eig_of(ProcessKind::central).initial_k, 2);  // the global value where not overridden
  EXPECT_EQ(s.eig_of(ProcessKind::discrete).frequency, 1);
  EXPECT_EQ(s.eig_of(ProcessKind::discrete).track_threshold, 1.25);
  EXPECT_EQ(s.eig_of(ProcessKind::stable).track_threshold, EigenSettings{}.track_threshold);
  EXPECT_EQ(s.eig_of(ProcessKind::stable).tolerance, 1e-4);  // f32 auto
  EXPECT_TRUE(s.flow.central_eig_every_substep);

  TempDir dir;
  const fs::path file = dir / "run.toml";
  std::ofstream(file) << "eig-initial-k = 2\ncentral-eig-every-substep = true\n[central.eig]\nfrequency = 3\n"
                         "tol = 1e-6\n[discrete]\neig-track-threshold = 1.25\n";
  EXPECT_EQ(to_json(parse({"--config", file.string()})), to_json(flags));

  const auto json = to_json(flags);
  EXPECT_EQ(json["central-eig-frequency"], 3);
  EXPECT_EQ(json["stable-eig-frequency"], "global");
  EXPECT_EQ(to_json(from_json(json, "config.json")), json);
  EXPECT_EQ(from_json(json, "config.json").experiment_settings().eig_of(ProcessKind::central).frequency, 3);
  // 'global' clears an override from the TOML file.
  EXPECT_EQ(parse({"--config", file.string(), "--central-eig-frequency", "global"})
                .experiment_settings()
                .eig_of(ProcessKind::central)
                .frequency,
            1);
}

TEST(RunConfig, BadPerProcessEigenValuesNameTheirFlag) {
  std::string message = config_error({"--central-eig-frequency", "0"});
  EXPECT_NE(message.find("--central-eig-frequency: expected an integer"), std::string::npos) << message;
  EXPECT_NE(message.find("'global'"), std::string::npos) << message;
  message = config_error({"--midpoint-eig-initial-k", "30", "--eig-max-k", "20"});
  EXPECT_NE(message.find("--midpoint-eig-initial-k 30: expected at most --eig-max-k (20)"), std::string::npos)
      << message;
  message = config_error({"--checkpoint-steps", "100,x"});
  EXPECT_NE(message.find("--checkpoint-steps: expected a comma-separated list of step numbers"), std::string::npos)
      << message;
  message = config_error({"--checkpoint-steps", "-1"});
  EXPECT_NE(message.find("step numbers >= 0"), std::string::npos) << message;
  EXPECT_EQ(parse({"--checkpoint-steps", "300,0,100,300"}).checkpoint_steps, (std::vector<std::int64_t>{0, 100, 300}));
}

TEST(RunConfig, ProfileStepsTakeARangeAndTf32OnlyFloat32) {
  const RunConfig c = parse({"--profile-steps", "10:12"});
  EXPECT_EQ(c.profile_first, 10);
  EXPECT_EQ(c.profile_last, 12);
  EXPECT_EQ(to_json(c)["profile-steps"], "10:12");
  EXPECT_EQ(from_json(to_json(c), "config.json").profile_last, 12);
  EXPECT_EQ(parse({}).profile_first, -1);
  for (const char* bad : {"12:10", "10", "a:b", "-1:2", "1:"}) {
    const std::string message = config_error({"--profile-steps", bad});
    EXPECT_NE(message.find("--profile-steps: expected A:B"), std::string::npos) << bad << ": " << message;
  }
  EXPECT_TRUE(parse({"--tf32"}).tf32);
  EXPECT_EQ(to_json(parse({"--tf32"}))["tf32"], true);
  const std::string message = config_error({"--tf32", "--dtype", "f64"});
  EXPECT_NE(message.find("--tf32: TF32 applies to float32 GEMMs"), std::string::npos) << message;
}

// ---- checkpoints ------------------------------------------------------------------------------------

Checkpoint sample_checkpoint(std::int64_t step) {
  Checkpoint c;
  c.step = step;
  c.arrays = {{"discrete/w", {1.5, -2.25, std::nan(""), 1e-300}}, {"discrete/t", {double(step)}}, {"empty", {}}};
  return c;
}

TEST(Checkpoint, RoundTripsAndKeepsTheNewestTwo) {
  TempDir dir;
  const fs::path folder = dir / "checkpoints";
  for (std::int64_t step : {3, 6, 9}) write_checkpoint(folder, sample_checkpoint(step), {{"backend", "cpu"}});
  const std::vector<fs::path> files = list_checkpoints(folder);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[1].filename(), "step-000000009.ckpt");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(folder)) ++entries;
  EXPECT_EQ(entries, 2u) << "a temporary file was left behind";
  const CheckpointFile back = read_checkpoint(files[1]);
  EXPECT_EQ(back.checkpoint.step, 9);
  EXPECT_EQ(back.meta["backend"], "cpu");
  const Checkpoint expected = sample_checkpoint(9);
  ASSERT_EQ(back.checkpoint.arrays.size(), expected.arrays.size());
  for (std::size_t i = 0; i < expected.arrays.size(); ++i) {
    EXPECT_EQ(back.checkpoint.arrays[i].first, expected.arrays[i].first);
    ASSERT_EQ(back.checkpoint.arrays[i].second.size(), expected.arrays[i].second.size());
    EXPECT_EQ(std::memcmp(back.checkpoint.arrays[i].second.data(), expected.arrays[i].second.data(),
                          expected.arrays[i].second.size() * sizeof(double)),
              0);
  }
}

TEST(Checkpoint, DamagedFilesAreNamedAndSkipped) {
  TempDir dir;
  const fs::path folder = dir / "checkpoints";
  write_checkpoint(folder, sample_checkpoint(4), {});
  const fs::path newest = write_checkpoint(folder, sample_checkpoint(8), {});
  {  // flip one byte of the data
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-12, std::ios::end);
    f.put('\x7f');
  }
  try {
    read_checkpoint(newest);
    FAIL() << "damage not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(newest.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  std::vector<std::string> skipped;
  const auto latest = latest_checkpoint(folder, &skipped);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->checkpoint.step, 4);
  EXPECT_EQ(skipped.size(), 1u);
  fs::resize_file(newest, 30);
  EXPECT_THROW(read_checkpoint(newest), Error);
  std::ofstream(dir / "not.ckpt") << "hello, world, this is not a checkpoint file at all";
  EXPECT_THROW(read_checkpoint(dir / "not.ckpt"), Error);
}

// ---- data.h5 layout ---------------------------------------------------------------------------------

TEST(RunOutput, LayoutIsDeclaredNaNFilledAndWrittenRowByRow) {
  TempDir dir;
  ExperimentSettings settings;
  settings.processes = {ProcessKind::discrete, ProcessKind::central, ProcessKind::stable, ProcessKind::midpoint};
  const int k_max = 5;
  const fs::path file = dir / "data.h5";
  {
    RunLog log = RunLog::create(file, 6, 10);
    declare(log, series_layout(settings, k_max));
    StepRecord record;
    record.step = 10;
    for (ProcessKind kind : settings.processes) {
      ProcessRecord p;
      p.train_loss = 1.0;
      p.effective_eigs = {2.5, 1.5};
      p.hessian_eigs = {50, 30};
      p.grad_sq_selected.assign(25, 0.5);
      p.state.values = {{"opt.t", 1.0}, {"opt.lr", 0.05}};
      p.state.vectors = {{"opt.nu_selected_idx", std::vector<double>(25, 0.1)}};
      p.seconds = {{"total", 0.01}, {"eig", 0.005}};
      if (kind == ProcessKind::central) {
        p.predicted_loss = 1.1;
        p.predicted_variances = {0.1};
        p.predicted_grad_sq_selected.assign(25, 0.7);
      }
      record.processes.emplace_back(kind, p);
    }
    record.distances = {{"central-discrete", 0.5}, {"discrete-stable", 0.25}};
    record.deltas = {0.3};
    declare(log, state_layout(record));
    log.start_swmr();
    StepWriter writer(log);
    writer.write(record);
    record.step = 11;
    writer.write(record);
    EXPECT_TRUE(writer.take_undeclared().empty());
    log.close();
  }
  const auto data = read_all(file);
  std::map<std::string, std::int64_t> expected_cols{{"deltas", k_max}};
  for (const char* p : {"discrete", "central", "stable", "midpoint"}) {
    for (const char* name : {"train_loss", "train_acc", "test_loss", "test_acc", "grad_norm_sq", "opt.t", "opt.lr"})
      expected_cols[std::string(p) + "/" + name] = 0;
    expected_cols[std::string(p) + "/effective_hessian_eigs"] = k_max;
    expected_cols[std::string(p) + "/hessian_eigs"] = k_max;
    expected_cols[std::string(p) + "/grad_sq_selected_idx"] = 25;
    expected_cols[std::string(p) + "/opt.nu_selected_idx"] = 25;
    for (const char* phase : {"grad_and_value", "eig", "d3", "sdcp", "total"})
      expected_cols[std::string(p) + "/times/" + phase] = 0;
    for (const char* count : {"gradients", "hvps", "quads", "jets", "lobpcg_iterations"})
      expected_cols[std::string(p) + "/work/" + count] = 0;
  }
  for (const char* name : {"predicted_loss", "predicted_grad_norm_sq", "sigma_trace", "sdcp_residual", "substeps"})
    expected_cols[std::string("central/") + name] = 0;
  expected_cols["central/predicted_variances"] = k_max;
  expected_cols["central/predicted_grad_sq_selected_idx"] = 25;
  expected_cols["stable/substeps"] = 0;
  for (const char* pair : {"central-discrete", "central-midpoint", "central-stable", "discrete-midpoint",
                           "discrete-stable", "midpoint-stable"})
    expected_cols[std::string("distances/") + pair] = 0;
  for (const auto& [path, cols] : expected_cols) {
    ASSERT_TRUE(data.count(path)) << path << " missing";
    const Dataset& ds = data.at(path);
    ASSERT_EQ(ds.dims.size(), cols == 0 ? 1u : 2u) << path;
    EXPECT_EQ(ds.dims[0], 6u) << path;
    if (cols) {
      EXPECT_EQ(std::int64_t(ds.dims[1]), cols) << path;
    }
    EXPECT_TRUE(ds.is_float) << path;
  }
  EXPECT_EQ(data.size(), expected_cols.size() + 1) << "unexpected datasets";  // + step
  const Dataset& steps = data.at("step");
  std::vector<std::int64_t> step_values(6);
  std::memcpy(step_values.data(), steps.bytes.data(), steps.bytes.size());
  EXPECT_EQ(step_values, (std::vector<std::int64_t>{10, 11, 12, 13, 14, 15}));
  // Rows 0 and 1 written, the rest NaN; a short row leaves its last columns NaN.
  const std::vector<double> eigs = as_doubles(data.at("discrete/effective_hessian_eigs"));
  EXPECT_EQ(eigs[0], 2.5);
  EXPECT_EQ(eigs[1], 1.5);
  EXPECT_TRUE(std::isnan(eigs[2]) && std::isnan(eigs[4]));
  for (std::size_t i = 2 * k_max; i < eigs.size(); ++i) EXPECT_TRUE(std::isnan(eigs[i])) << i;
  const std::vector<double> loss = as_doubles(data.at("central/train_loss"));
  EXPECT_EQ(loss[1], 1.0);
  EXPECT_TRUE(std::isnan(loss[2]));
  EXPECT_TRUE(std::isnan(as_doubles(data.at("central/test_loss"))[0]));  // NaN stays NaN
  EXPECT_EQ(as_doubles(data.at("stable/times/total"))[1], 0.01);
  EXPECT_EQ(written_rows(data.at("stable/times/d3")), 0);
  EXPECT_EQ(written_rows(data.at("distances/central-discrete")), 2);
  EXPECT_EQ(written_rows(data.at("distances/central-midpoint")), 0);
  EXPECT_EQ(read_series(file, "distances/discrete-stable")[1], 0.25);
  EXPECT_TRUE(read_series(file, "no/such/series").empty());
}

// ---- the binary ----------------------------------------------------------------------------------------

TEST(RunCommand, BadFlagsExitWith2AndNameTheFlag) {
  TempDir dir;
  Result r = run_cflow({"run", "--learning-rate", "0.1"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--learning-rate"), std::string::npos) << r.err;
  r = run_cflow({"run", "--lr", "-0.5", "--out", (dir / "x").string()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--lr: expected a number > 0, got '-0.5'"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  r = run_cflow({"run", "--help"}, dir.path());
  EXPECT_EQ(r.code, 0);
  for (const Key& key : keys()) EXPECT_NE(r.out.find("--" + key.name + " "), std::string::npos) << key.name;
  std::size_t defaults = 0;
  for (std::size_t at = r.out.find("(default: "); at != std::string::npos; at = r.out.find("(default: ", at + 1))
    ++defaults;
  EXPECT_EQ(defaults, keys().size()) << r.out;
}

TEST(RunCommand, TransformerOnTheSortingTask) {
  TempDir dir;
  const Result r = run_cflow({"run", "--arch", "transformer", "--data", "sorting", "--steps", "3", "--n", "8",
                              "--n-test", "4", "--length", "3", "--width", "4", "--depth", "1", "--eig-max-k", "2",
                              "--eig-initial-k", "1", "--threads", "1", "--no-plots", "--quiet", "--log-outputs",
                              "2", "--out", (dir / "r").string()},
                             dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "r" / "summary.json"));
  // A sequence's outputs: 2 examples × 5 positions (2·length − 1 tokens) × 4 classes (the vocabulary).
  const auto data = read_all(dir / "r" / "data.h5");
  EXPECT_EQ(data.at("central/outputs").dims, (std::vector<hsize_t>{3, 2, 5, 4}));
  for (const double v : as_doubles(data.at("central/outputs"))) EXPECT_TRUE(std::isfinite(v));
}

TEST(RunCommand, MissingOrCorruptDataSaysWhatToDo) {
  TempDir dir;
  Result r = run_cflow({"run", "--data-dir", (dir / "nowhere").string(), "--out", (dir / "r").string()}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("install"), std::string::npos) << r.err;
  fs::create_directories(dir / "fm");
  std::ofstream(dir / "fm" / "train-images-idx3-ubyte") << "garbage";
  std::ofstream(dir / "fm" / "train-labels-idx1-ubyte") << "garbage";
  r = run_cflow({"run", "--data-dir", (dir / "fm").string(), "--out", (dir / "r").string()}, dir.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("train-"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "r" / "data.h5"));
}

TEST(RunCommand, TinyRunEndToEnd) {
  TempDir dir;
  const fs::path out = dir / "run";
  const bool plots = python_can_plot();
  std::vector<std::string> extra{"--steps", "20", "--out", out.string(), "--checkpoint-every", "8"};
  if (!plots) extra.push_back("--no-plots");
  const Result r = run_cflow(tiny(extra), dir.path());
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("EoS onset"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("distance central-discrete"), std::string::npos) << r.out;
  const auto config = nlohmann::ordered_json::parse(read_text(out / "config.json"));
  EXPECT_EQ(config["cflow_version"], CFLOW_VERSION);
  EXPECT_EQ(config["precision"], "float64");
  EXPECT_EQ(config["backend"], "cpu");
  EXPECT_TRUE(config.contains("git_commit"));
  EXPECT_EQ(config["settings"].size(), keys().size());
  EXPECT_EQ(config["settings"]["lr"], 1.5);
  EXPECT_EQ(config["settings"]["threads"], 1);
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "completed");
  EXPECT_EQ(summary["steps_done"], 20);
  for (const char* key : {"eos_onset_step", "predicted_loss_mean_relative_error", "final_distance_central_discrete",
                          "final_distance_stable_discrete", "wall_time_s"})
    EXPECT_TRUE(summary.contains(key)) << key;
  EXPECT_TRUE(summary["final_distance_central_discrete"].is_number());
  EXPECT_EQ(list_checkpoints(out / "checkpoints").size(), 2u);  // steps 16 and 20
  const auto data = read_all(out / "data.h5");
  EXPECT_EQ(data.at("step").dims[0], 20u);
  for (const auto& [path, ds] : data) {
    if (!ds.is_float || path == "deltas" || path.ends_with("predicted_variances") ||
        path.find("/times/") != std::string::npos)
      continue;
    EXPECT_EQ(written_rows(ds), 20) << path;
  }
  if (plots) {
    EXPECT_TRUE(fs::exists(out / "report.html"));
    EXPECT_TRUE(fs::exists(out / "plots" / "train_loss.png"));
    EXPECT_TRUE(fs::exists(out / "plots" / "effective_sharpness.png"));
  }
  // The directory now holds a run: a new run there is refused, resuming with another lr too.
  Result again = run_cflow(tiny({"--steps", "20", "--out", out.string(), "--no-plots"}), dir.path());
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  again = run_cflow({"run", "--resume", out.string(), "--lr", "0.3"}, dir.path());
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("--lr cannot change"), std::string::npos) << again.err;
}

TEST(RunCommand, MissingPythonIsAWarning) {
  TempDir dir;
  ::setenv("CFLOW_PYTHON", (dir / "no-such-python").c_str(), 1);
  const Result r = run_cflow(tiny({"--steps", "2", "--out", (dir / "run").string(), "--quiet"}), dir.path());
  ::unsetenv("CFLOW_PYTHON");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: no plots"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir / "run" / "summary.json"));
}

// summary.json's device_traffic: per process, the steady-state figures per step; --verbose prints them.
TEST(RunCommand, SummaryReportsSteadyStateDeviceTrafficPerProcess) {
  TempDir dir;
  const fs::path out = dir / "run";
  // k fixed at 2, all critical: a tracked or critical set growing to a size not seen before allocates.
  const Result r = run_cflow(tiny({"--steps", "5", "--eig-initial-k", "2", "--eig-max-k", "2", "--sdcp-threshold", "1e-6",
                                   "--out", out.string(), "--no-plots", "--verbose"}),
                             dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("device traffic per step"), std::string::npos) << r.out;
  const auto traffic = nlohmann::ordered_json::parse(read_text(out / "summary.json")).at("device_traffic");
  for (const std::string process : {"discrete", "central", "stable", "midpoint"}) {
    const auto& figures = traffic.at(process);
    EXPECT_EQ(figures.at("allocations").get<double>(), 0) << process;
    EXPECT_GT(figures.at("device_to_host_bytes").get<double>(), 0) << process;  // the logged scalars
    EXPECT_LT(figures.at("device_to_host_bytes").get<double>(), 64 * 1024) << process;
    EXPECT_GE(figures.at("host_to_device_bytes").get<double>(), 0) << process;
    EXPECT_GT(figures.at("synchronizations").get<double>(), 0) << process;
  }
}

// summary.json's threads: what each process's bits depend on (§7.10's rule), and the host threads.
TEST(RunCommand, SummaryRecordsTheThreadsTheProcessesRanWith) {
  TempDir dir;
  struct Case { std::string overlap; int per_process, host; };
  for (const Case& c : {Case{"auto", 1, 2}, Case{"off", 2, 1}}) {  // 4 processes on 2 threads
    const fs::path out = dir / ("run-" + c.overlap);
    auto args = tiny({"--steps", "1", "--overlap-processes", c.overlap, "--out", out.string(), "--no-plots", "--quiet"});
    *(std::find(args.begin(), args.end(), "--threads") + 1) = "2";
    const Result r = run_cflow(args, dir.path());
    ASSERT_EQ(r.code, 0) << r.err;
    const auto threads = nlohmann::ordered_json::parse(read_text(out / "summary.json")).at("threads");
    EXPECT_EQ(threads.at("per_process").get<int>(), c.per_process) << c.overlap;
    EXPECT_EQ(threads.at("host").get<int>(), c.host) << c.overlap;
  }
}

TEST(RunCommand, ResumeEqualsAnUninterruptedRunBitForBit) {
  TempDir dir;
  const std::vector<std::string> common{"--checkpoint-every", "3", "--no-plots", "--quiet", "--log-outputs", "3"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), common.begin(), common.end());
    return tiny(extra);
  };
  ASSERT_EQ(run_cflow(with({"--steps", "12", "--out", (dir / "whole").string()}), dir.path()).code, 0);
  // Crash after 7 steps (no flush, no checkpoint beyond step 6), then resume.
  EXPECT_EQ(run_cflow(with({"--steps", "12", "--out", (dir / "crashed").string(), "--test-crash-after", "7"}),
                      dir.path())
                .code,
            cflow::run::kTestCrashExit);
  const Result resumed = run_cflow({"run", "--resume", (dir / "crashed").string(), "--quiet"}, dir.path());
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  // A short run extended to 12 steps.
  ASSERT_EQ(run_cflow(with({"--steps", "5", "--out", (dir / "extended").string()}), dir.path()).code, 0);
  ASSERT_EQ(run_cflow({"run", "--resume", (dir / "extended").string(), "--steps", "12"}, dir.path(), "ext").code, 0);

  const auto whole = read_all(dir / "whole" / "data.h5");
  ASSERT_EQ(whole.at("central/outputs").dims, (std::vector<hsize_t>{12, 3, 2}));  // the 3-D series are covered
  for (const char* other : {"crashed", "extended"}) {
    const auto data = read_all(dir / other / "data.h5");
    ASSERT_EQ(data.size(), whole.size()) << other;
    for (const auto& [path, ds] : whole) {
      ASSERT_TRUE(data.count(path)) << other << ": " << path;
      if (path.find("/times/") != std::string::npos) continue;  // wall times differ from run to run
      EXPECT_EQ(data.at(path).dims, ds.dims) << other << ": " << path;
      EXPECT_TRUE(data.at(path).bytes == ds.bytes) << other << ": " << path << " differs";
    }
  }
  const auto config = nlohmann::ordered_json::parse(read_text(dir / "crashed" / "config.json"));
  EXPECT_EQ(config["resumes"].size(), 1u);
  EXPECT_EQ(config["resumes"][0]["from_step"], 6);
}

// A process that stopped keeps its reason through a resume (the checkpoint's notes), so the resumed
// run's summary.json still says why, not only that it stopped.
TEST(RunCommand, AStoppedProcessKeepsItsReasonThroughAResume) {
  TempDir dir;
  const fs::path out = dir / "run";
  // tiny()'s problem with the discrete process and a stable flow that stops at its first step.
  const std::vector<std::string> first{"run",      "--data",     "moons",           "--n",    "32",   "--n-test",
                                       "32",       "--width",    "8",               "--lr",   "1.5",  "--dtype",
                                       "f64",      "--threads",  "1",               "--runs", "discrete,stable",
                                       "--stable-max-seff",      "0.01",            "--steps", "3",   "--no-plots",
                                       "--quiet",  "--out",      out.string()};
  ASSERT_EQ(run_cflow(first, dir.path()).code, 0);
  const auto before = nlohmann::ordered_json::parse(read_text(out / "summary.json"))["processes"]["stable"];
  ASSERT_TRUE(before["stopped"].get<bool>());
  const std::string reason = before["reason"];
  EXPECT_NE(reason.find("above"), std::string::npos) << reason;
  ASSERT_EQ(run_cflow({"run", "--resume", out.string(), "--steps", "5", "--quiet", "--no-plots"}, dir.path(), "resume")
                .code,
            0);
  const auto after = nlohmann::ordered_json::parse(read_text(out / "summary.json"))["processes"]["stable"];
  EXPECT_TRUE(after["stopped"].get<bool>());
  EXPECT_EQ(after["reason"], reason);
}

// --log-outputs K: <process>/outputs [steps x K x C]; step 0 holds the forward of the model at the
// initial weights on the first K training examples, computed here through the Network API on the
// whole training set (not the run's K-example network); the processes share step 0 and part later.
TEST(RunCommand, LogOutputsRecordsTheLogitsOnTheFirstExamples) {
  TempDir dir;
  const std::int64_t K = 5, steps = 6;
  const Result r = run_cflow(tiny({"--steps", std::to_string(steps), "--out", (dir / "run").string(), "--no-plots",
                                   "--quiet", "--log-outputs", std::to_string(K)}),
                             dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto data = read_all(dir / "run" / "data.h5");
  const RunConfig c = parse({"--data", "moons", "--n", "32", "--n-test", "32", "--width", "8", "--dtype", "f64"});
  const DataSplits splits = load_dataset(c.data_spec());
  const ModelSpec spec = c.model_spec(splits.train.shape());
  const std::size_t C = std::size_t(spec.classes), row = std::size_t(K) * C;
  const Device dev = Device::open("cpu", 1);
  Network<double> whole(dev, spec, splits.train.inputs, make_targets(splits.train, spec.loss));
  const Buffer<double> w0(dev, std::span<const double>(whole.initial_parameters(c.seed)));
  Buffer<double> logits(dev, index_t(splits.train.n * C));
  whole.outputs(w0.data(), logits.data());  // [C x n]: example i's outputs at i·C
  const std::vector<double> expected = logits.to_host();

  const std::vector<double> discrete = as_doubles(data.at("discrete/outputs"));
  ASSERT_EQ(data.at("discrete/outputs").dims, (std::vector<hsize_t>{hsize_t(steps), hsize_t(K), C}));
  for (std::size_t j = 0; j < row; ++j) EXPECT_NEAR(discrete[j], expected[j], 1e-12 * (1 + std::abs(expected[j]))) << j;
  for (const char* process : {"central", "stable", "midpoint"}) {
    const std::vector<double> other = as_doubles(data.at(std::string(process) + "/outputs"));
    ASSERT_EQ(other.size(), discrete.size()) << process;
    for (std::size_t j = 0; j < row; ++j) EXPECT_EQ(other[j], discrete[j]) << process << " " << j;
  }
  const std::vector<double> central = as_doubles(data.at("central/outputs"));
  double last_gap = 0;
  for (std::size_t j = (steps - 1) * row; j < std::size_t(steps) * row; ++j) {
    ASSERT_TRUE(std::isfinite(discrete[j]) && std::isfinite(central[j])) << j;
    last_gap = std::max(last_gap, std::abs(discrete[j] - central[j]));
  }
  EXPECT_GT(last_gap, 0) << "GD and the central flow should part after step 0";

  const Result over = run_cflow(tiny({"--steps", "2", "--out", (dir / "over").string(), "--log-outputs", "33"}),
                                dir.path());
  EXPECT_EQ(over.code, 2);
  EXPECT_NE(over.err.find("--log-outputs 33"), std::string::npos) << over.err;
  EXPECT_NE(over.err.find("at most 32"), std::string::npos) << over.err;
}

TEST(RunCommand, SigintFlushesCheckpointsAndExits130) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Spawned s = spawn_cflow(tiny({"--steps", "100000", "--out", out.string(), "--checkpoint-every", "0",
                                      "--no-plots"}),
                                dir.path(), "long");
  // Wait until a few steps are logged (data.h5 appears after the first step).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(out / "data.h5") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {  // readable while the run goes (SWMR)
    const auto live = read_all(out / "data.h5");
    ASSERT_TRUE(live.count("discrete/train_loss"));
    EXPECT_EQ(live.at("discrete/train_loss").dims[0], 100000u);
  }
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  EXPECT_EQ(wait_exit(s.pid), 130) << read_text(s.err);
  EXPECT_NE(read_text(s.err).find("--resume"), std::string::npos);

  const auto latest = latest_checkpoint(out / "checkpoints");
  ASSERT_TRUE(latest);
  const std::int64_t steps = latest->checkpoint.step;
  EXPECT_GT(steps, 0);
  const auto data = read_all(out / "data.h5");
  EXPECT_EQ(data.at("step").dims[0], 100000u);
  EXPECT_EQ(written_rows(data.at("discrete/train_loss")), steps);  // every step flushed, nothing beyond
  EXPECT_EQ(written_rows(data.at("central/effective_hessian_eigs")), steps);
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "interrupted");
  EXPECT_EQ(summary["steps_done"], steps);
  EXPECT_EQ(summary["interrupted_by"], "SIGINT");
  // And it continues from there.
  const Result resumed = run_cflow({"run", "--resume", out.string(), "--steps", std::to_string(steps + 2), "--quiet"},
                                   dir.path(), "resume");
  EXPECT_EQ(resumed.code, 0) << resumed.err;
}

// An interrupt before the first step ends leaves no checkpoint, whenever it lands (start-up, between
// start-up and the first step, inside it): a checkpoint of step 0 would have no data.h5 beside it
// (that is made after the first step), and `cflow sweep` resumes every point that has a checkpoint.
// The first step is slow (a wider network's cold eigen-solve), so the interrupt lands before it ends.
TEST(RunCommand, AnInterruptBeforeTheFirstStepLeavesNoCheckpoint) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Spawned s = spawn_cflow({"run", "--data", "moons", "--n", "32", "--width", "128", "--lr", "1.5", "--dtype", "f64",
                                 "--threads", "1", "--device", "cpu", "--steps", "2", "--out", out.string(),
                                 "--no-plots", "--quiet"},
                                dir.path(), "first");
  wait_for(out / "config.json");
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  ASSERT_EQ(wait_exit(s.pid), 130) << read_text(s.err);
  ASSERT_FALSE(fs::exists(out / "data.h5")) << "the first step ended before the interrupt: make it slower";
  EXPECT_FALSE(latest_checkpoint(out / "checkpoints"));
  EXPECT_NE(read_text(s.err).find("no checkpoint yet"), std::string::npos) << read_text(s.err);
  const Result resumed = run_cflow({"run", "--resume", out.string(), "--quiet", "--no-plots"}, dir.path(), "resume");
  EXPECT_EQ(resumed.code, 2) << resumed.err;
  EXPECT_NE(resumed.err.find("start it again"), std::string::npos) << resumed.err;
}

// ---- run directories that cannot be silently corrupted (#17) ----------------------------------------

TEST(RunCommand, ALockedRunDirectoryRefusesASecondRunAndAResume) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Spawned first = spawn_cflow(tiny({"--steps", "100000", "--out", out.string(), "--no-plots", "--quiet"}),
                                    dir.path(), "first");
  wait_for(out / "config.json");
  const Result second = run_cflow(tiny({"--seed", "7", "--out", out.string(), "--no-plots"}), dir.path(), "second");
  EXPECT_EQ(second.code, 2) << second.err;
  EXPECT_NE(second.err.find("in use by another cflow run (process " + std::to_string(first.pid)), std::string::npos)
      << second.err;
  const Result resume = run_cflow({"run", "--resume", out.string(), "--quiet"}, dir.path(), "resume");
  EXPECT_EQ(resume.code, 2) << resume.err;
  EXPECT_NE(resume.err.find("in use"), std::string::npos) << resume.err;
  ASSERT_EQ(kill(first.pid, SIGKILL), 0);
  wait_exit(first.pid);
  // The kernel released the lock with the process: the run continues (and repairs data.h5) a few
  // steps past its newest checkpoint, however far the killed run got.
  std::int64_t checkpointed = 0;
  if (fs::exists(out / "checkpoints"))
    for (const auto& entry : fs::directory_iterator(out / "checkpoints")) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("step-", 0) == 0) checkpointed = std::max<std::int64_t>(checkpointed, std::atoll(name.c_str() + 5));
    }
  const std::string steps = std::to_string(checkpointed + 3);
  const Result after = run_cflow({"run", "--resume", out.string(), "--steps", steps, "--quiet"}, dir.path(), "after");
  EXPECT_TRUE(after.code == 0 || after.err.find("no usable checkpoint") != std::string::npos) << after.err;
  EXPECT_EQ(after.err.find("in use"), std::string::npos) << after.err;
}

TEST(RunCommand, ResumeRefusesAConfigJsonEditedAfterTheCheckpoint) {
  TempDir dir;
  const fs::path out = dir / "run";
  ASSERT_EQ(run_cflow(tiny({"--steps", "2", "--out", out.string(), "--no-plots", "--quiet"}), dir.path()).code, 0);
  auto config = nlohmann::ordered_json::parse(read_text(out / "config.json"));
  config["settings"]["lr"] = 1.6;
  config["settings"]["width"] = 9;
  std::ofstream(out / "config.json") << config.dump(2);
  const Result r = run_cflow({"run", "--resume", out.string(), "--steps", "4", "--quiet"}, dir.path());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("lr is 1.6 in config.json but 1.5 in the checkpoint"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("width is 9 in config.json but 8 in the checkpoint"), std::string::npos) << r.err;
}

TEST(RunCommand, ConfigNamingADirectoryAndUnknownCommandsExit2) {
  TempDir dir;
  Result r = run_cflow({"run", "--config", dir.path().string(), "--out", (dir / "x").string()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  r = run_cflow({"runn"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'runn' (did you mean 'run'?)"), std::string::npos) << r.err;
  r = run_cflow({"hessian", "--top", "0"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--top: expected a number > 0, got '0'"), std::string::npos) << r.err;
  for (const char* bad : {"nan", "-1"}) {
    r = run_cflow({"gradcheck", "--tolerance", bad}, dir.path());
    EXPECT_EQ(r.code, 2) << bad;
  }
  r = run_cflow({"run", "--lr", "--n", "100", "--out", (dir / "x").string()}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--lr needs a value (--lr X), but --n follows it"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  r = run_cflow({"hessian", "--classes", "1"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--classes: expected an integer >= 2 or 'binary', got '1'"), std::string::npos) << r.err;
}

TEST(RunCommand, ResumeSaysWhenEveryCheckpointIsDamaged) {
  TempDir dir;
  const fs::path out = dir / "run";
  ASSERT_EQ(run_cflow(tiny({"--steps", "4", "--checkpoint-every", "2", "--out", out.string(), "--no-plots", "--quiet"}),
                      dir.path())
                .code,
            0);
  const auto checkpoints = list_checkpoints(out / "checkpoints");
  ASSERT_EQ(checkpoints.size(), 2u);
  for (const fs::path& file : checkpoints) fs::resize_file(file, fs::file_size(file) / 2);
  const Result r = run_cflow({"run", "--resume", out.string(), "--steps", "6", "--quiet"}, dir.path());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("every checkpoint there is damaged"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("before its first checkpoint"), std::string::npos) << r.err;
}

// Random flag/value combinations from the key table (fixed seeds, tiny sizes), in four ctest
// entries of 100 combinations: every exit is 0, 1, 2 or 3, never a signal, and nothing is written
// outside --out (the runs start in the test's folder, so a relative path would land there too).
// Most combinations hold a value the key refuses; the others run two steps on eight examples.
class FuzzedFlags : public ::testing::TestWithParam<int> {};

// Makes `folder` the working directory while it lives.
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const fs::path& folder) : previous_(fs::current_path()) { fs::current_path(folder); }
  ~WorkingDirectory() { fs::current_path(previous_); }

 private:
  fs::path previous_;
};

TEST_P(FuzzedFlags, ExitCleanlyAndWriteOnlyIntoOut) {
  TempDir dir;
  std::mt19937 random(17 + unsigned(GetParam()));
  const std::vector<std::string> values{
      "0",      "1",       "-1",   "2",    "3",        "100",    "nan",   "inf",      "1e400", "abc",  "",
      "auto",   "all",     "moons", "gaussian", "discrete", "central,stable", "binary", "f64", "f32", "cpu",
      "cuda",   "cuda:7",  "0.5",  "1e-9", "1e-3",     "-0",     "0x10",  "1,2",      "gd",    "rmsprop", "mlp",
      "resnet", "tanh",    "true", " ",    "--",       "2.5e0"};
  // Sizes stay tiny and the run stays in its --out.
  const std::vector<std::string> fixed{"out", "data-dir", "n", "width", "steps", "data", "eig-max-k", "threads"};
  auto pick = [&](std::size_t n) { return std::size_t(random() % n); };
  const WorkingDirectory in_test_folder(dir.path());
  constexpr int kCombinations = 100;
  std::map<int, int> exits;
  for (int i = 0; i < kCombinations; ++i) {
    const fs::path out = dir / ("out" + std::to_string(i));
    std::vector<std::string> args{"run", "--data", "moons", "--n", "8", "--n-test", "0", "--width", "2", "--steps",
                                  "2", "--eig-max-k", "2", "--eig-initial-k", "1", "--threads", "1", "--no-plots",
                                  "--quiet", "--out", out.string()};
    const std::size_t flags = 1 + pick(3);
    for (std::size_t f = 0; f < flags; ++f) {
      const Key& key = keys()[pick(keys().size())];
      if (std::find(fixed.begin(), fixed.end(), key.name) != fixed.end()) continue;
      args.push_back("--" + key.name);
      if (!key.is_switch()) args.push_back(values[pick(values.size())]);
    }
    const Result r = run_cflow(args, dir.path(), "fuzz");
    EXPECT_TRUE(r.code >= 0 && r.code <= 3) << r.code << " from " << ::testing::PrintToString(args) << ": " << r.err;
    ++exits[r.code];
  }
  EXPECT_GT(exits[0], 0) << "no combination ran: the base command is broken";
  EXPECT_GT(exits[2], 0) << "no combination was refused";
  for (const auto& [code, count] : exits) RecordProperty("exit_" + std::to_string(code), count);
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name.rfind("out", 0) == 0 || name.rfind("fuzz.", 0) == 0) << "written outside --out: " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, FuzzedFlags, ::testing::Range(0, 4));

// lr 1e4 on the tiny problem: every process stops within a few steps; the run ends there.
TEST(RunCommand, ADivergingRunEndsAtOnceWithExit3AndSaysWhy) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Result r = run_cflow({"run", "--data", "moons", "--n", "32", "--n-test", "32", "--width", "8", "--dtype", "f64",
                              "--threads", "1", "--device", "cpu", "--runs", "discrete,central", "--eig-max-k", "2",
                              "--lr", "1e4", "--steps", "100000", "--out", out.string(), "--no-plots", "--quiet"},
                             dir.path());
  EXPECT_EQ(r.code, 3) << r.err;
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "diverged");
  EXPECT_LT(summary["steps_done"].get<std::int64_t>(), 20);
  const std::string reason = summary["processes"]["discrete"]["reason"];
  EXPECT_NE(reason.find("is not finite at step"), std::string::npos) << reason;
  EXPECT_NE(reason.find("stability limit 2/λ"), std::string::npos) << reason;
  EXPECT_TRUE(summary["predicted_loss_mean_relative_error"].is_null());  // too few compared steps
}

// #17's case: lr 100 puts every effective eigenvalue of step 0 far above the track threshold. The
// tracker's growth to k_max took 522 LOBPCG iterations there when it added one column per solve
// (seconds; minutes on a busy machine); doubling the growth step takes about a fifth of that. Every
// process stops within a few steps, with a reason that names no source file.
TEST(RunCommand, AFarDivergingRunStopsInAFewStepsWithReadableReasons) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Result r = run_cflow({"run", "--data", "moons", "--n", "100", "--width", "16", "--steps", "20", "--lr", "100",
                              "--threads", "1", "--out", out.string(), "--no-plots", "--quiet"},
                             dir.path());
  EXPECT_EQ(r.code, 3) << r.err;
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "diverged");
  EXPECT_LT(summary["steps_done"].get<std::int64_t>(), 5);
  const std::regex source_location(R"([A-Za-z_]+\.(cpp|h|cu):[0-9]+)");
  for (const auto& [process, status] : summary["processes"].items()) {
    EXPECT_TRUE(status["stopped"].get<bool>()) << process;
    const std::string reason = status["reason"];
    EXPECT_FALSE(reason.empty()) << process;
    EXPECT_FALSE(std::regex_search(reason, source_location)) << process << ": " << reason;
  }
  const auto data = read_all(out / "data.h5");
  EXPECT_LT(as_doubles(data.at("discrete/work/lobpcg_iterations"))[0], 250);
}

bool opens_without_swmr(const fs::path& file) {
  H5E_BEGIN_TRY {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
      H5Fclose(f);
      return true;
    }
  }
  H5E_END_TRY;
  return false;
}

TEST(RunCommand, RepairMakesAKilledRunReadableByAPlainReader) {
  TempDir dir;
  const fs::path out = dir / "run";
  run_cflow(tiny({"--steps", "10", "--out", out.string(), "--test-crash-after", "3", "--quiet"}), dir.path());
  ASSERT_TRUE(fs::exists(out / "data.h5"));
  EXPECT_FALSE(opens_without_swmr(out / "data.h5"));  // still marked open for writing
  const Result r = run_cflow({"repair", out.string()}, dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(opens_without_swmr(out / "data.h5"));
}


// A tolerance below what float64 reaches makes every full solve run its 100 iterations with k = 20,
// so nearly all of a step is eigen-solving (#17 case 5 had minutes of it); a SIGTERM there must end
// the run promptly (the solvers check the interrupt between iterations). The 60 s bound only
// catches a run that ignores the signal; it is not a timing measurement.
TEST(RunCommand, SigtermInsideAnEigenSolveEndsTheRun) {
  TempDir dir;
  const fs::path out = dir / "run";
  const Spawned s = spawn_cflow({"run", "--data", "moons", "--n", "100", "--width", "16", "--steps", "100000",
                                 "--lr", "0.01", "--dtype", "f64", "--eig-tol", "1e-30", "--eig-initial-k", "20",
                                 "--out", out.string(), "--no-plots", "--quiet"},
                                dir.path(), "long");
  wait_for(out / "config.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(kill(s.pid, SIGTERM), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (waitpid(s.pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (kill(s.pid, 0) == 0) {
    kill(s.pid, SIGKILL);
    wait_exit(s.pid);
    FAIL() << "the run ignored SIGTERM for a minute";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 143) << read_text(s.err);
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "interrupted");
  EXPECT_EQ(summary["interrupted_by"], "SIGTERM");
  for (const auto& entry : fs::directory_iterator(out))  // no temporary file left behind
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}


// Exit status of a shell command line (sh -c), with stderr into `err`.
int shell(const std::string& command, const fs::path& err) {
  const int status = std::system((command + " 2>'" + err.string() + "' >/dev/null").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Under `ulimit -v` (2 GB) so that a regression fails the test instead of taking the machine down.
TEST(RunCommand, AbsurdSizesAreRefusedBeforeAllocation) {
  TempDir dir;
  const std::string limit = "ulimit -v 2000000; exec '" + std::string(CFLOW_CLI_BINARY) + "' ";
  const fs::path err = dir / "err";
  EXPECT_EQ(shell(limit + "gradcheck --width 100000000", err), 2);
  std::string text = read_text(err);
  EXPECT_NE(text.find("GiB, more than the"), std::string::npos) << text;
  EXPECT_NE(text.find("lower --width or --n"), std::string::npos) << text;
  EXPECT_EQ(shell(limit + "gradcheck --n 2000000000", err), 2);
  EXPECT_EQ(shell(limit + "hessian --width 100000000", err), 2);
  EXPECT_EQ(shell(limit + "run --data moons --n 1000000 --width 4096 --quiet --out '" + (dir / "r").string() + "'", err),
            2);
  text = read_text(err);
  EXPECT_NE(text.find("--chunk"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(dir / "r"));  // nothing left behind
  // The refusal names the largest width that fits; one wider is refused too.
  const std::string run = limit + "run --data moons --n 64 --eig-max-k 20 --quiet --out '" + (dir / "r").string() + "'";
  EXPECT_EQ(shell(run + " --width 200000", err), 2);
  text = read_text(err);
  const std::string fits = "the largest --width that fits: ";
  ASSERT_NE(text.find(fits), std::string::npos) << text;
  const long widest = std::stol(text.substr(text.find(fits) + fits.size()));
  EXPECT_GT(widest, 100) << text;
  EXPECT_LT(widest, 200000) << text;
  EXPECT_EQ(shell(run + " --width " + std::to_string(widest + 1), err), 2) << read_text(err);
  EXPECT_FALSE(fs::exists(dir / "r"));
}

// --plan-memory GIB prints the estimate and the largest --width that fits GIB GiB, exits 0 and writes
// nothing; a smaller --central-pair-group fits a wider model, and a run refused at a width between
// the two names the group that fits (the same estimate decides both, docs/design.md §7.5).
long planned_width(const std::vector<std::string>& extra, const fs::path& dir) {
  std::vector<std::string> args{"run", "--data", "moons", "--n", "64", "--eig-max-k", "20", "--plan-memory", "1.8",
                                "--out", (dir / "r").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  const Result r = run_cflow(args, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string fits = "the largest --width that fits: ";
  EXPECT_NE(r.out.find(fits), std::string::npos) << r.out;
  return r.out.find(fits) == std::string::npos ? 0 : std::stol(r.out.substr(r.out.find(fits) + fits.size()));
}

TEST(RunCommand, PlanMemoryPrintsTheWidestFitAndARefusalNamesAPairGroupThatFits) {
  TempDir dir;
  const long widest = planned_width({}, dir.path()), grouped = planned_width({"--central-pair-group", "1"}, dir.path());
  EXPECT_FALSE(fs::exists(dir / "r"));
  EXPECT_GT(widest, 100);
  ASSERT_GT(grouped, widest + 2) << "one pair at a time must fit a wider model";
  const fs::path err = dir / "err";
  const std::string run = "ulimit -v 2000000; exec '" + std::string(CFLOW_CLI_BINARY) +
                          "' run --data moons --n 64 --eig-max-k 20 --quiet --out '" + (dir / "r").string() + "'";
  EXPECT_EQ(shell(run + " --width " + std::to_string((widest + grouped) / 2), err), 2);
  const std::string text = read_text(err);
  EXPECT_NE(text.find("--central-pair-group"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(dir / "r"));
}

// A file-size limit stands in for a full disk: data.h5 outgrows 600 KiB after a few checkpoints.
// The run says what it kept and how to continue, leaves no temporary file, data.h5 stays readable
// up to its last flush, and the run resumes to the end once the limit is lifted.
TEST(RunCommand, AFullDiskKeepsWhatWasWrittenAndTheRunResumes) {
  TempDir dir;
  const fs::path out = dir / "run";
  const fs::path err = dir / "err";
  // bash: its ulimit -f counts KiB (dash's counts 512-byte blocks).
  const std::string limited = "bash -c \"ulimit -f 600; exec '" + std::string(CFLOW_CLI_BINARY) +
                              "' run --data moons --n 32 --width 8 --threads 1 --steps 300 --checkpoint-every 5 "
                              "--no-plots --quiet --out '" + out.string() + "'\"";
  ASSERT_EQ(shell(limited, err), 1);
  const std::string text = read_text(err);
  EXPECT_NE(text.find("no room to write"), std::string::npos) << text;
  EXPECT_NE(text.find("continue with: cflow run --resume " + out.string()), std::string::npos) << text;
  for (const auto& entry : fs::recursive_directory_iterator(out))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  const auto summary = nlohmann::ordered_json::parse(read_text(out / "summary.json"));
  EXPECT_EQ(summary["status"], "failed");
  ASSERT_TRUE(summary["checkpoint"].is_string());
  const auto kept = read_all(out / "data.h5");
  ASSERT_TRUE(kept.count("discrete/train_loss"));
  EXPECT_GE(written_rows(kept.at("discrete/train_loss")), latest_checkpoint(out / "checkpoints")->checkpoint.step);
  const Result resumed = run_cflow({"run", "--resume", out.string(), "--quiet"}, dir.path());
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(written_rows(read_all(out / "data.h5").at("discrete/train_loss")), 300);
  EXPECT_TRUE(opens_without_swmr(out / "data.h5"));
}

}  // namespace
}  // namespace cflow::run
