#include "host/run/plan.h"

#include <cstdio>
#include <fstream>
#include <iostream>

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
  return plan;
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
                        "); only --steps, --checkpoint-every, --no-plots, --quiet, --verbose, --device and --threads can");
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
    if (now["settings_digest"] != meta["settings_digest"]) {
      std::string differences;
      const nlohmann::json& then = meta.value("settings", nlohmann::json::object());
      for (const auto& [name, value] : now["settings"].items()) {
        const nlohmann::json old = then.contains(name) ? then[name] : nlohmann::json(nullptr);
        if (old != value)
          differences += std::string(differences.empty() ? "" : ", ") + name + " is " + value.dump() +
                         " in config.json but " + old.dump() + " in the checkpoint";
      }
      throw ConfigError("config.json does not match " + checkpoint.file.filename().string() + " (" +
                        (differences.empty() ? std::string("settings digest differs") : differences) +
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
