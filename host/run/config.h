#pragma once
// Settings of `cflow run`: one struct with the default experiment, one table of keys that serves the
// command-line flags (--lr 0.05), the TOML config file (lr = 0.05, also inside tables: [eig]
// frequency = 1 is eig-frequency) and config.json (resume), so every source goes through the same
// parser and the same validation, and a bad value gets the same one-line message from each.
//
// A config file, e.g. rmsprop.toml (keys are the flag names; '_' may stand for '-'):
//     opt = "rmsprop"
//     lr = 2e-5
//     bias-correction = true
//     runs = ["discrete", "central"]
//     [eig]                  # inside a table, a key k means <table>-k if that is a key, else k
//     track-threshold = 1.75
//     [central.eig]          # nested tables join the same way: central-eig-frequency
//     frequency = 1
//
// Precedence: defaults < --config FILE < flags. A resumed run (--resume RUNDIR) takes its settings
// from RUNDIR/config.json; only the keys marked `on_resume` (resumable_flags()) may be given again
// with another value. A branched run (--init-from RUNDIR)
// takes the keys marked `fixed_on_branch` (data, model, seed, optimizer kind, warm start) from
// nowhere but must give them the values of the origin's checkpoint (host/run/plan.h).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/data/dataset.h"
#include "cflow/runtime/error.h"
#include "cflow/flow/experiment.h"
#include "cflow/engine/model.h"
#include "cflow/flow/optimizer.h"

namespace cflow::run {

// A bad flag, key or value: the command exits with status 2 and prints the message, which names the
// flag (or file and key) and the valid values.
class ConfigError : public Error {
 public:
  using Error::Error;
};

inline constexpr std::int64_t kAllTestExamples = -1;  // --n-test all
inline constexpr std::int64_t kNewestCheckpoint = -1;  // --init-step newest
inline constexpr const char* kOwnProcess = "own";      // --init-process own: each process from its own state

// The eigen settings a process may override (--central-eig-frequency 1, [central.eig] frequency = 1):
// the key <process>-<name> is generated from the key <name> for every process (docs/design.md §5).
inline constexpr const char* kPerProcessEigenKeys[] = {"eig-frequency", "eig-initial-k", "eig-track-threshold",
                                                       "eig-tol"};
inline constexpr const char* kGlobalValue = "global";  // a per-process key that follows the global one

struct RunConfig {
  // ---- The default experiment (`cflow run` with no flags). Tune it here. ------------------------
  // Fashion-MNIST, 4 classes, MLP, GD at a learning rate that reaches the edge of stability early;
  // discrete, central and stable; under 5 minutes on a 2-core CPU.
  std::string data = "fashion-mnist";
  std::int64_t n = 600;
  std::int64_t n_test = 600;
  std::int64_t width = 128;
  double lr = 0.05;
  std::int64_t steps = 150;
  std::string dtype = "f32";
  // ------------------------------------------------------------------------------------------------

  // data
  std::string data_dir;          // empty: the data set's default folder
  std::string classes = "auto";  // auto: 2 for moons, else 4
  std::string loss = "mse";
  double data_noise = DataSpec{}.noise;
  int data_dim = DataSpec{}.dim;
  int vocab_size = DataSpec{}.vocab_size;
  int length = DataSpec{}.length;
  // model
  std::string arch = "mlp";
  int depth = ModelSpec{}.depth;
  std::int64_t heads = ModelSpec{}.heads, patch = ModelSpec{}.patch;
  double output_scale = ModelSpec{}.output_scale;
  std::string act = "gelu";
  bool no_bias = false;
  // optimizer
  std::string opt = "gd";
  double beta2 = OptimizerSpec{}.beta2;
  double eps = OptimizerSpec{}.eps;
  bool bias_correction = OptimizerSpec{}.bias_correction;
  // processes
  std::vector<std::string> runs{"discrete", "central", "stable"};
  int warm_start = ExperimentSettings{}.warm_start;
  // eigenvalues
  int eig_frequency = EigenSettings{}.frequency;
  int eig_initial_k = EigenSettings{}.initial_k;
  double eig_track_threshold = EigenSettings{}.track_threshold;
  std::optional<double> eig_tol;  // unset: 1e-8 for f64, 1e-4 for f32
  int eig_max_k = EigenSettings{}.k_max;
  bool no_raw_eigs = false;
  bool no_track_discrete = false;
  bool central_eig_every_substep = false;
  // The per-process overrides as given, "<process>-<key>" (e.g. "central-eig-frequency") to the text
  // of <key>; for_process() applies them.
  std::map<std::string, std::string> process_eig;
  // flows
  int central_nsubsteps = FlowSettings{}.central_nsubsteps;
  std::int64_t central_pair_group = FlowSettings{}.pair_group;
  double sdcp_threshold = FlowSettings{}.sdcp_threshold;
  int stable_min_nsubsteps = FlowSettings{}.stable_min_nsubsteps;
  double stable_max_seff = FlowSettings{}.stable_max_seff;
  double solver_max_seconds = ExperimentSettings{}.solver_max_seconds;
  double stationary_tol = FixedPoint{}.tolerance;
  int stationary_max_iterations = FixedPoint{}.max_iterations;
  int stationary_memory = FixedPoint{}.memory;
  // run
  std::uint64_t seed = 0;
  std::string device = "auto";
  int threads = 0;  // 0: OpenMP's default
  bool tf32 = false;  // float32 GEMMs on TF32 tensor cores (CUDA only; refused with f64)
  // The processes' steps at once, each on its own stream (docs/design.md §7.10): auto (on with one rank), on, off.
  std::string overlap_processes = "auto";
  std::int64_t chunk = 0;
  std::int64_t log_outputs = 0;  // record the logits on the first K training examples (0: off)
  std::string out;  // empty: runs/<timestamp>-<id>
  std::int64_t checkpoint_every = 50;
  std::vector<std::int64_t> checkpoint_steps;  // also checkpoint (and keep) these steps
  // branching (host/run/plan.h): start from a checkpoint of another run
  std::string init_from;  // empty: a fresh start from the seed
  std::int64_t init_step = kNewestCheckpoint;
  std::string init_process = kOwnProcess;
  bool no_plots = false;
  // --profile-steps A:B: cudaProfilerStart before step A, cudaProfilerStop after step B (data.h5's
  // step numbers); -1: off
  std::int64_t profile_first = -1, profile_last = -1;
  bool quiet = false;
  bool verbose = false;

  bool is_float32() const { return dtype == "f32"; }
  double eig_tolerance() const { return eig_tol.value_or(is_float32() ? 1e-4 : 1e-8); }
  std::string resolved_classes() const {
    return classes != "auto" ? classes : data == "moons" ? "2" : data == "sorting" ? std::to_string(vocab_size) : "4";
  }
  ClassChoice class_choice() const;
  DataSpec data_spec() const;
  ModelSpec model_spec(TensorShape input) const;
  OptimizerSpec optimizer_spec() const;
  ExperimentSettings experiment_settings() const;
  std::vector<ProcessKind> processes() const;
  // These settings with `process`'s overrides of kPerProcessEigenKeys applied.
  RunConfig for_process(ProcessKind process) const;
  EigenSettings eigen_settings() const;
};

// One setting: --<name> on the command line, <name> in TOML and in config.json.
struct Key {
  std::string name;
  std::string group;       // section of `cflow run --help`
  std::string value_name;  // N, X, LIST, ...; empty for a switch (a flag without a value)
  std::string help;
  bool on_resume = false;  // may take another value when a run is resumed
  // Must have the origin's value in a branched run: what the loaded state and the step numbering
  // mean depends on it (data, model, seed, optimizer kind, warm start).
  bool fixed_on_branch = false;
  // Parses `text` into the config; throws ConfigError("expected <valid values>, got '<text>'").
  std::function<void(RunConfig&, std::string_view text)> set;
  std::function<nlohmann::ordered_json(const RunConfig&)> get;
  bool is_switch() const { return value_name.empty(); }
};

const std::vector<Key>& keys();
// The flags of the keys marked on_resume, e.g. "--steps, --checkpoint-every, ...".
std::string resumable_flags();
// The key called `name` (underscores read as dashes), or null.
const Key* find_key(std::string_view name);

// Sets one key from text; a ConfigError names the key as `where` (e.g. "--lr" or "run.toml: lr").
void set_key(RunConfig& config, const Key& key, std::string_view text, std::string_view where);
// Applies a TOML file on top of `config`. Unknown keys and bad values throw ConfigError naming the
// file, the key and its line.
void apply_toml(RunConfig& config, const std::filesystem::path& file);
void apply_toml_text(RunConfig& config, std::string_view text, const std::string& source_name);
// Checks the settings against each other (data set and classes, n a multiple of the classes, ...).
void validate(const RunConfig& config);

// Every key and its value ("settings" in config.json), and back.
nlohmann::ordered_json to_json(const RunConfig& config);
RunConfig from_json(const nlohmann::ordered_json& settings, const std::string& source_name);

// ---- the command line ---------------------------------------------------------------------------

struct RunFlags {
  std::map<std::string, std::string> values;  // one per key with a value
  std::map<std::string, bool> switches;       // one per switch
  std::map<std::string, CLI::Option*> options;
  std::string config_file;
  std::string resume_dir;
  std::int64_t crash_after = 0;  // hidden, for tests: _Exit(70) after this many steps, no cleanup
  double plan_memory_gib = 0;    // --plan-memory: print the memory plan for this much and exit (0: run)
};

// Registers every key as a flag of `cmd`, plus --config and --resume.
void register_flags(CLI::App& cmd, RunFlags& flags);
// The keys given on the command line, in table order: (key, text).
std::vector<std::pair<const Key*, std::string>> given_flags(const RunFlags& flags);
// defaults < --config < flags, validated. Not for --resume.
RunConfig resolve(const RunFlags& flags);

}  // namespace cflow::run
