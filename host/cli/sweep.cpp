// `cflow sweep`: a grid of `cflow run` experiments from one TOML spec (host/sweep/spec.h), on every
// local GPU or core, or as a Slurm job array; then one table (sweep.csv), plots and report.html.
//   cflow sweep SPEC --out DIR [--jobs N] [--devices 0,1,...]   run locally, then collect
//   cflow sweep SPEC --out DIR --slurm [--partition P ...]      write DIR/sweep.sbatch and submit it
//   cflow sweep SPEC --out DIR --task I                         point I only (what a Slurm task runs)
//   cflow sweep DIR [--status | --collect]                      continue, show, or collect a sweep
// Exit status: 0 every point finished; 1 a point failed (the others still ran); 2 bad usage or a
// bad point (named, before anything starts); 130 (143) interrupted by SIGINT (SIGTERM).
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "cflow/runtime/device.h"
#include "host/cli/cli.h"
#include "host/sweep/collect.h"
#include "host/sweep/executor.h"
#include "host/sweep/slurm.h"
#include "host/sweep/spec.h"
#include "host/sweep/sweep_dir.h"

namespace cflow::cli {

namespace {

namespace fs = std::filesystem;
using namespace cflow::sweep;

struct SweepFlags {
  std::string target;  // a spec file or a sweep directory
  std::string out;
  int jobs = 1;
  std::string devices;
  std::optional<std::size_t> task;
  bool slurm = false, no_submit = false, status = false, collect = false, no_plots = false;
  SlurmOptions slurm_options;
};

// GPUs to use: --devices, else every visible GPU when one is usable, else none (the CPU).
std::vector<std::string> gpu_list(const std::string& devices) {
  std::string list = devices;
  if (list.empty()) {
    if (!cuda_available()) return {};
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    list = visible && *visible ? visible : "0";
  }
  if (list == "cpu") return {};
  std::vector<std::string> gpus;
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos)
      throw run::ConfigError("--devices " + list + ": expected 'cpu' or GPU indices separated by commas, e.g. 0,1");
    gpus.push_back(item);
  }
  return gpus;
}

// The spec and its directory: `cflow sweep DIR` reads DIR/spec.toml.
std::pair<Spec, SweepDir> open_sweep(const SweepFlags& f) {
  std::error_code ec;
  if (fs::is_directory(f.target, ec)) {
    if (!f.out.empty() && fs::weakly_canonical(f.out) != fs::weakly_canonical(f.target))
      throw run::ConfigError("--out " + f.out + ": a sweep directory is given (" + f.target + "); drop --out");
    SweepDir dir(f.target);
    return {dir.load(), dir};
  }
  if (f.status || f.collect) throw run::ConfigError(f.target + ": --status and --collect take a sweep directory");
  if (f.out.empty()) throw run::ConfigError("--out DIR is required with a spec file: the sweep's directory");
  return {read_spec(f.target), SweepDir(f.out)};
}

int collect(const Spec& spec, const SweepDir& dir, bool with_plots) {
  const fs::path csv = write_csv(spec, dir);
  const bool plots = with_plots && make_sweep_plots(dir);
  std::cout << "sweep table: " << csv.string();
  if (plots) std::cout << ", plots: " << (dir.root() / "plots").string() << ", report: " << (dir.root() / "report.html").string();
  std::cout << "\n";
  return 0;
}

int sweep_command(SweepFlags& f) {
  std::optional<std::pair<Spec, SweepDir>> opened;
  std::vector<std::string> gpus;
  try {
    opened.emplace(open_sweep(f));
    if (f.status || f.collect) {
      return f.status ? print_status(opened->first, opened->second) : collect(opened->first, opened->second, !f.no_plots);
    }
    opened->second.prepare(opened->first);
    if (f.task && *f.task >= opened->first.points.size())
      throw run::ConfigError("--task " + std::to_string(*f.task) + ": the sweep has points 0 to " +
                             std::to_string(opened->first.points.size() - 1));
    gpus = gpu_list(f.devices);
  } catch (const run::ConfigError& e) {
    std::cerr << "cflow sweep: error: " << e.what() << "\n";
    return 2;
  }
  const auto& [spec, dir] = *opened;
  const fs::path self = fs::read_symlink("/proc/self/exe");
  if (f.slurm) {
    f.slurm_options.cflow = self;
    const fs::path script = write_sbatch(spec, dir, f.slurm_options);
    if (f.no_submit) {
      std::cout << "wrote " << script.string() << "; submit with: sbatch " << script.string() << "\n";
      return 0;
    }
    return submit(dir, script);
  }
  ExecutorOptions options;
  options.cflow = self;
  options.jobs = f.jobs;
  options.gpus = gpus;
  options.cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (f.task) {
    options.inherit_device = true;
    return execute(spec, dir, {*f.task}, options);
  }
  std::vector<std::size_t> all(spec.points.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::cout << "cflow sweep '" << spec.name << "': " << all.size() << " points in " << dir.root().string() << " on "
            << (gpus.empty() ? std::to_string(f.jobs) + " CPU job(s)" : std::to_string(gpus.size()) + " GPU(s)")
            << "\n" << std::flush;
  const int code = execute(spec, dir, all, options);
  if (code < 128) collect(spec, dir, !f.no_plots);
  return code;
}

}  // namespace

Handler add_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep",
      "Run a grid of `cflow run` experiments from a TOML spec ([base], [grid], [zip]), locally or as a Slurm job "
      "array, and collect them into sweep.csv, plots and report.html.\nExit status: 0 all points finished, 1 a point "
      "failed, 2 bad usage or a bad point, 130 interrupted (the same command continues).");
  auto f = std::make_shared<SweepFlags>();
  cmd->add_option("SPEC|DIR", f->target, "sweep spec (TOML), or a sweep directory to continue, show or collect")
      ->required();
  cmd->add_option("--out", f->out, "the sweep directory (required with a spec)")->type_name("DIR");
  cmd->add_option("--jobs", f->jobs, "CPU: points run at once, the cores split between them")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--devices", f->devices, "GPUs, one point on each at a time (default: every visible GPU), or cpu")
      ->type_name("LIST");
  cmd->add_option("--task", f->task, "run point I only (a Slurm array task)")->type_name("I");
  cmd->add_flag("--status", f->status, "show each point's state (and squeue's, when present)");
  cmd->add_flag("--collect", f->collect, "write sweep.csv, plots and report.html from the points' summaries");
  cmd->add_flag("--no-plots", f->no_plots, "collect only sweep.csv (no python/cflow_sweep.py)");
  auto* slurm = cmd->add_flag("--slurm", f->slurm, "write DIR/sweep.sbatch, a job array, and submit it with sbatch")
                    ->group("Slurm");
  cmd->add_flag("--no-submit", f->no_submit, "with --slurm: only write the script")->needs(slurm)->group("Slurm");
  SlurmOptions& s = f->slurm_options;
  cmd->add_option("--partition", s.partition, "partition")->needs(slurm)->group("Slurm");
  cmd->add_option("--gpus-per-task", s.gpus_per_task, "GPUs per task")->needs(slurm)->group("Slurm");
  cmd->add_option("--cpus-per-task", s.cpus_per_task, "cores per task (also each point's --threads)")
      ->needs(slurm)
      ->group("Slurm");
  cmd->add_option("--time", s.time, "time limit per task")->type_name("HH:MM:SS")->needs(slurm)->group("Slurm");
  cmd->add_option("--max-parallel", s.max_parallel, "tasks at once (the array's %K; default: all)")
      ->check(CLI::PositiveNumber)
      ->needs(slurm)
      ->group("Slurm");
  cmd->add_option("--sbatch-arg", s.sbatch_args, "another #SBATCH line, e.g. --sbatch-arg=--account=abc (repeatable)")
      ->needs(slurm)
      ->group("Slurm");
  return [f] { return sweep_command(*f); };
}

}  // namespace cflow::cli
