#include "host/run/plan.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>

#include "cflow/run/log.h"
#include "cflow/runtime/comm.h"

namespace cflow::run {

nlohmann::ordered_json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot be read");
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::ordered_json::exception& e) {
    throw ConfigError(file.string() + ": not valid JSON: " + e.what());
  }
}

namespace {

// "name is <now> <here> but <then> <there>" for every setting of `now` whose value differs in
// `then`; a setting `then` lacks (added by a later cflow) counts there as its default.
std::string differences(const nlohmann::json& now, const nlohmann::json& then, const std::string& here,
                        const std::string& there) {
  const nlohmann::json defaults = checkpoint_identity(RunConfig{})["settings"];
  std::string listed;
  for (const auto& [name, value] : now.items()) {
    const nlohmann::json old = then.contains(name) ? then[name] : defaults.value(name, nlohmann::json(nullptr));
    if (old != value)
      listed += std::string(listed.empty() ? "" : ", ") + name + " is " + value.dump() + " " + here + " but " +
                old.dump() + " " + there;
  }
  return listed;
}

Origin plan_origin(const RunConfig& config) {
  Origin origin;
  origin.dir = config.init_from;
  const std::filesystem::path folder = origin.dir / kCheckpointFolder;
  const bool newest = config.init_step == kNewestCheckpoint;
  std::vector<std::string> skipped;
  auto checkpoint = checkpoint_at_or_before(
      folder, newest ? std::numeric_limits<std::int64_t>::max() : config.init_step, &skipped);
  for (const std::string& why : skipped) std::cerr << "warning: skipping a damaged checkpoint: " << why << "\n";
  if (!checkpoint) {
    std::string steps;
    for (const auto& file : list_checkpoints(folder)) steps += (steps.empty() ? "" : ", ") + file.filename().string();
    throw ConfigError("--init-from " + origin.dir.string() + ": no usable checkpoint" +
                      (newest ? std::string() : " at or before step " + std::to_string(config.init_step)) + " in " +
                      folder.string() + " (" + (steps.empty() ? "none there" : "there: " + steps) +
                      "); --checkpoint-steps keeps chosen steps in a run");
  }
  origin.checkpoint = std::move(*checkpoint);
  if (config.init_process != kOwnProcess) origin.process = parse_process(config.init_process);
  check_branches(config, origin);
  return origin;
}

}  // namespace

Plan plan_new(RunConfig config) {
  Plan plan;
  plan.config = std::move(config);
  plan.dir = plan.config.out;
  std::error_code ec;
  if (std::filesystem::exists(plan.dir / kRunLogFileName, ec) ||
      std::filesystem::exists(plan.dir / "config.json", ec)) {
    throw ConfigError("--out " + plan.dir.string() + ": already holds a run; continue it with --resume " +
                      plan.dir.string() + " or choose another --out");
  }
  if (!plan.config.init_from.empty()) plan.origin = plan_origin(plan.config);
  return plan;
}

void check_branches(const RunConfig& config, const Origin& origin) {
  const CheckpointFile& checkpoint = origin.checkpoint;
  const std::string where = "--init-from " + origin.dir.string() + " (" + checkpoint.file.filename().string() + ")";
  if (!checkpoint.meta.contains("settings"))
    throw ConfigError(where + ": the checkpoint does not record its settings (written by an older cflow)");
  nlohmann::json fixed = nlohmann::json::object();
  for (const Key& key : keys())
    if (key.fixed_on_branch) fixed[key.name] = key.get(config);
  const std::string differ = differences(fixed, checkpoint.meta["settings"], "here", "in the origin");
  if (!differ.empty())
    throw ConfigError(where + ": a branch keeps the origin's data, model, seed, --opt and --warm-start (" + differ +
                      "); give the origin's values");
  std::set<std::string> saved;
  for (const auto& [name, values] : checkpoint.checkpoint.arrays)
    if (name.ends_with("/w")) saved.insert(name.substr(0, name.size() - 2));
  for (ProcessKind kind : config.processes()) {
    const std::string source = to_string(origin.process.value_or(kind));
    if (!saved.count(source)) {
      std::string ran;
      for (const std::string& name : saved) ran += (ran.empty() ? "" : ", ") + name;
      throw ConfigError(where + ": the origin has no " + source + " process (it ran " + ran +
                        "); start " + to_string(kind) + " from one of those with --init-process, or leave it out of --runs");
    }
    for (const auto& [name, values] : checkpoint.checkpoint.arrays)
      if (name == source + "/stopped" && !values.empty() && values[0] != 0)
        throw ConfigError(where + ": the origin's " + source + " process had stopped (diverged) by step " +
                          std::to_string(checkpoint.checkpoint.step) + "; branch from an earlier --init-step");
  }
  if (config.steps <= checkpoint.checkpoint.step)
    throw ConfigError("--steps " + std::to_string(config.steps) + ": a branch continues the origin's step numbers from " +
                      std::to_string(checkpoint.checkpoint.step) + "; expected --steps above it");
}

std::int64_t first_row_step(const nlohmann::ordered_json& config_json) {
  return config_json.contains("origin") ? config_json["origin"].value("step", std::int64_t{0}) : 0;
}

RunConfig resumed_config(const nlohmann::ordered_json& settings, const GivenSettings& given,
                         const std::string& source_name) {
  RunConfig config = from_json(settings, source_name);
  const RunConfig stored = config;
  for (const auto& [key, text] : given) {
    if (key->name == "out") throw ConfigError("--out cannot be combined with --resume: the run stays in its directory");
    RunConfig changed = config;
    set_key(changed, *key, text, "--" + key->name);
    if (!key->on_resume && key->get(changed) != key->get(stored)) {
      throw ConfigError("--" + key->name + " cannot change when resuming (the run has " + key->get(stored).dump() +
                        "); only " + resumable_flags() + " can");
    }
    config = changed;
  }
  validate(config);
  return config;
}

nlohmann::json checkpoint_identity(const RunConfig& config) {
  nlohmann::json settings = nlohmann::json::object();
  for (const Key& key : keys())
    if (!key.on_resume && key.name != "out") settings[key.name] = key.get(config);
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(fnv1a(settings.dump())));
  return {{"settings", settings}, {"settings_digest", digest}};
}

void check_continues(const RunConfig& config, const CheckpointFile& checkpoint) {
  const nlohmann::json& meta = checkpoint.meta;
  if (meta.contains("settings_digest")) {
    const nlohmann::json now = checkpoint_identity(config);
    // A digest that differs only by settings added since (at their defaults) still continues.
    const std::string differ = now["settings_digest"] == meta["settings_digest"]
                                   ? std::string()
                                   : differences(now["settings"], meta.value("settings", nlohmann::json::object()),
                                                 "in config.json", "in the checkpoint");
    if (!differ.empty()) {
      throw ConfigError("config.json does not match " + checkpoint.file.filename().string() + " (" + differ +
                        "): it was edited after the run started; restore those values to resume, or start a "
                        "new run with the new settings");
    }
  }
  // Fewer steps than first planned are fine (the run ends there; data.h5 keeps its rows), but not
  // fewer than are done.
  if (config.steps < checkpoint.checkpoint.step) {
    throw ConfigError("--steps " + std::to_string(config.steps) + ": expected at least the " +
                      std::to_string(checkpoint.checkpoint.step) + " steps the run has done");
  }
}

void check_ranks(const std::filesystem::path& dir, const CheckpointFile& checkpoint, int ranks) {
  // Another rank count would shard the examples differently (docs/design.md §7).
  const int then = checkpoint.meta.value("ranks", 1);
  if (then != ranks) {
    throw ConfigError("--resume " + dir.string() + ": the run was started with " + std::to_string(then) +
                      " rank(s) and resumes only with as many (mpirun -np " + std::to_string(then) + "), not " +
                      std::to_string(ranks));
  }
}

Plan plan_resume(const std::filesystem::path& dir, const GivenSettings& given) {
  Plan plan;
  plan.resume = true;
  plan.dir = dir;
  const std::filesystem::path config_file = dir / "config.json";
  std::error_code ec;
  if (!std::filesystem::exists(config_file, ec))
    throw ConfigError("--resume " + dir.string() + ": no config.json there; expected a cflow run directory");
  plan.config_json = read_json(config_file);
  if (!plan.config_json.contains("settings")) throw ConfigError(config_file.string() + ": has no 'settings'");
  plan.config = resumed_config(plan.config_json["settings"], given, config_file.string());
  plan.config.out = dir.string();
  std::vector<std::string> skipped;
  plan.checkpoint = latest_checkpoint(dir / kCheckpointFolder, &skipped);
  for (const std::string& why : skipped) std::cerr << "warning: skipping a damaged checkpoint: " << why << "\n";
  if (!plan.checkpoint) {
    const std::string folder = (dir / kCheckpointFolder).string();
    throw ConfigError("--resume " + dir.string() + ": no usable checkpoint in " + folder +
                      (skipped.empty() ? " (the run stopped before its first checkpoint: start it again, in a new --out)"
                                       : " (every checkpoint there is damaged, see above: start the run again, in a "
                                         "new --out)"));
  }
  check_ranks(dir, *plan.checkpoint, Communicator::world().size());
  check_continues(plan.config, *plan.checkpoint);
  return plan;
}

}  // namespace cflow::run
