#pragma once
// What a `cflow run` is to do before it does it: a new run in a fresh directory, or a resumed one
// (docs/design.md §8). The resume rules are pure functions of config.json's settings, the flags given
// and the checkpoint, so they are tested without a process:
//   - only the keys marked on_resume (resumable_flags()) may take another value; --out and --config
//     are refused;
//   - the checkpoint stores the settings that define the run (all but the on_resume keys) and their
//     digest; a config.json whose settings no longer match (edited by hand) is refused, naming each
//     key that differs and both values;
//   - --steps may not go below the steps the checkpoint has done;
//   - a data-parallel run resumes only with the rank count its checkpoint records.
// A branched run (--init-from RUNDIR) is a new run that starts from RUNDIR's checkpoint at (or last
// before) --init-step, like a resume into a new directory: its step numbers continue the origin's,
// the keys marked fixed_on_branch must have the origin's values (refused naming each key that
// differs and both values), every process it runs must find its source process (itself, or
// --init-process) in the checkpoint, not stopped, and --steps must go past the checkpoint's step.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/run/checkpoint.h"
#include "host/run/config.h"

namespace cflow::run {

// Where a branched run starts: the origin's run directory and checkpoint, and the process whose
// state every process takes (nullopt: each its own).
struct Origin {
  std::filesystem::path dir;
  CheckpointFile checkpoint;
  std::optional<ProcessKind> process;
};

struct Plan {
  RunConfig config;
  std::filesystem::path dir;
  bool resume = false;
  std::optional<CheckpointFile> checkpoint;
  std::optional<Origin> origin;  // a branched run's
  nlohmann::ordered_json config_json;  // a resumed run's config.json
  std::string command;                 // the command line, for config.json
  std::int64_t crash_after = 0;        // for tests: _Exit after this many steps
};

using GivenSettings = std::vector<std::pair<const Key*, std::string>>;

// A new run in config.out (which the caller has locked), branched when config.init_from is set.
// Throws ConfigError when the directory holds a run or the branch is refused.
Plan plan_new(RunConfig config);
// A resumed run of `dir` (locked by the caller), from its config.json and newest intact checkpoint.
Plan plan_resume(const std::filesystem::path& dir, const GivenSettings& given);

// The settings of a resumed run: config.json's `settings`, then `given` on top (on_resume keys only).
RunConfig resumed_config(const nlohmann::ordered_json& settings, const GivenSettings& given,
                         const std::string& source_name);
// {"settings": the settings that define the run, "settings_digest": their FNV-1a in hex}, for the
// checkpoint's metadata.
nlohmann::json checkpoint_identity(const RunConfig& config);
// Throws ConfigError when `config` does not continue the run of `checkpoint` (edited settings, or
// --steps below its step). Checkpoints without a digest (older cflow) are only checked for steps.
void check_continues(const RunConfig& config, const CheckpointFile& checkpoint);
// Throws ConfigError when `config` cannot start from `origin` (see above).
void check_branches(const RunConfig& config, const Origin& origin);
// The step of data.h5's first row relative to the step counter: the origin's step for a branched
// run (config.json's "origin"), else 0.
std::int64_t first_row_step(const nlohmann::ordered_json& config_json);
// Throws ConfigError when the checkpoint of the run in `dir` records another rank count than `ranks`
// (checkpoints without one are of a single process).
void check_ranks(const std::filesystem::path& dir, const CheckpointFile& checkpoint, int ranks);

}  // namespace cflow::run

namespace cflow::run {
// A JSON file; throws ConfigError when it cannot be read or parsed.
nlohmann::ordered_json read_json(const std::filesystem::path& file);
}  // namespace cflow::run
