// `cflow run`: an optimizer and its central flow (and the stable flow, and midpoints) side by side,
// logged into a run directory (host/run/session.h does the run):
//   config.json    every resolved setting, cflow version, git commit, device, precision, resumes,
//                  and a branched run's origin (--init-from)
//   data.h5        the time series (host/run/output.h), SWMR: readable by h5py while the run goes
//   checkpoints/   step-<step>.ckpt (host/run/checkpoint.h), the newest two
//   summary.json   the run's numbers (host/run/summary.h), status, per-process status, wall time
//   plots/, report.html   from python/cflow_plot.py (unless --no-plots)
// This file parses the flags, builds the Session and turns bad usage into exit status 2.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cflow/data/dataset.h"
#include "cflow/runtime/comm.h"
#include "host/cli/cli.h"
#include "host/cli/model_flags.h"
#include "host/run/config.h"
#include "host/run/memory_check.h"
#include "host/run/plots.h"
#include "host/run/session.h"

namespace cflow::cli {

namespace {

using namespace cflow::run;

std::string command_line(const RunFlags& flags) {
  std::string text = "cflow run";
  if (!flags.resume_dir.empty()) text += " --resume " + flags.resume_dir;
  if (!flags.config_file.empty()) text += " --config " + flags.config_file;
  for (const auto& [key, value] : given_flags(flags))
    text += " --" + key->name + (key->is_switch() ? (value == "true" ? "" : "=false") : " " + value);
  return text;
}

SessionRequest request_of(const RunFlags& flags) {
  SessionRequest request;
  request.command = command_line(flags);
  request.crash_after = flags.crash_after;
  request.describe_model = [](const ModelSpec& spec) {
    warn_if_not_smooth(spec);
    return describe(spec);
  };
  if (flags.resume_dir.empty()) {
    request.config = resolve(flags);
    return request;
  }
  if (!flags.config_file.empty())
    throw ConfigError("--config cannot be combined with --resume: a resumed run keeps the settings of its config.json");
  request.resume_dir = flags.resume_dir;
  request.given = given_flags(flags);
  return request;
}

// The session of these flags, once every rank of a data-parallel run has planned it without error
// (docs/design.md §7): a rank whose planning failed says why, and every rank stops with exit 2
// before rank 0 writes anything.
std::optional<Session> open_session(const RunFlags& flags) {
  std::optional<Session> session;
  std::string error;
  try {
    session.emplace(request_of(flags));
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (Communicator::world().all_reduce_max(!error.empty()) == 0) return session;
  if (!error.empty()) std::cerr << "cflow run: error: " << error << "\n";
  return std::nullopt;
}

// --plan-memory GIB: the estimate `cflow run` would check, for a device of GIB GiB; writes nothing.
int plan_memory(const RunFlags& flags) {
  if (!flags.resume_dir.empty()) throw ConfigError("--plan-memory plans a new run: drop --resume");
  const RunConfig config = resolve(flags);
  const DataSplits data = load_dataset(config.data_spec());
  const ModelSpec spec = config.model_spec(data.train.shape());
  print_memory_plan(config, spec, run_examples(config, double(data.train.n), double(data.test.n)),
                    flags.plan_memory_gib, std::cout);
  return 0;
}

int run_command(const RunFlags& flags) {
  if (flags.plan_memory_gib > 0) return plan_memory(flags);
  std::optional<Session> session = open_session(flags);
  if (!session) return kExitUsage;
  return session->run();
}

}  // namespace

Handler add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "run",
      "Run an optimizer and its central flow side by side and log them to a run directory.\n"
      "Settings: defaults < --config FILE (TOML) < flags. Output: config.json, data.h5 (readable while running), "
      "checkpoints/, summary.json, plots/ and report.html.\n"
      "--resume RUNDIR continues a run; --init-from RUNDIR starts a new one from its checkpoint (branching).\n" +
          std::string(kExitCodesHelp));
  auto flags = std::make_shared<RunFlags>();
  register_flags(*cmd, *flags);
  return [flags] { return run_command(*flags); };
}

// `cflow plot RUNDIR`: regenerate a run's plots and report.html (also while it runs);
// `cflow plot RUNDIR RUNDIR... --out DIR`: several runs on the same axes.
Handler add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plot",
                                 "Regenerate the plots and report.html of a run directory, or overlay several runs "
                                 "(legend: the settings that differ) into --out DIR");
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("RUNDIR", *dirs, "run directories (hold data.h5)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", *out, "folder for the comparison figures (needed with several runs)");
  return [dirs, out]() -> int {
    if (dirs->size() > 1 || !out->empty()) {
      if (out->empty()) {
        std::cerr << "cflow plot: error: several runs are compared into a folder: add --out DIR\n";
        return kExitUsage;
      }
      return make_comparison_plots({dirs->begin(), dirs->end()}, *out) ? 0 : 1;
    }
    return make_plots(dirs->front(), false) ? 0 : 1;
  };
}

}  // namespace cflow::cli
