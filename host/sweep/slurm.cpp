#include "host/sweep/slurm.h"

#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "host/run/checkpoint.h"
#include "host/sweep/process.h"

namespace cflow::sweep {

namespace {

namespace fs = std::filesystem;

// A word for bash, single-quoted.
std::string shell_word(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Array task -> state ("PENDING", "RUNNING", ...) from `squeue -h -j JOB -r -o "%K %T"`.
std::map<std::size_t, std::string> queued_tasks(const SweepDir& dir) {
  std::map<std::size_t, std::string> tasks;
  const fs::path id_file = dir.root() / "slurm" / "job_id";
  std::error_code ec;
  if (!fs::exists(id_file, ec) || !find_program("squeue")) return tasks;
  const fs::path output = dir.root() / "slurm" / ".squeue.out";
  fs::remove(output, ec);
  const std::string job = trimmed(read_text(id_file));
  const auto code = run_to_end({{"squeue", "-h", "-r", "-j", job, "-o", "%K %T"}, {}, output, false, {}});
  if (!code || *code != 0) return tasks;
  std::istringstream lines(read_text(output));
  std::size_t task = 0;
  std::string state;
  while (lines >> task >> state) tasks[task] = state;
  fs::remove(output, ec);
  return tasks;
}

}  // namespace

fs::path write_sbatch(const Spec& spec, const SweepDir& dir, const SlurmOptions& options) {
  const fs::path root = fs::absolute(dir.root());
  fs::create_directories(root / "slurm");
  const std::size_t n = spec.points.size();
  const int parallel = options.max_parallel > 0 ? options.max_parallel : int(n);
  std::string text = "#!/bin/bash\n# cflow sweep '" + spec.name + "': " + std::to_string(n) +
                     " points, task i runs point i (written by cflow sweep --slurm; see " +
                     (root / "sweep.json").string() + ")\n";
  std::vector<std::string> lines{"--job-name=cflow-" + spec.name,
                                 "--array=0-" + std::to_string(n - 1) + "%" + std::to_string(parallel),
                                 "--output=" + (root / "slurm" / "%A_%a.out").string(),
                                 "--open-mode=append",
                                 "--chdir=" + root.string(),
                                 "--requeue"};
  if (!options.partition.empty()) lines.push_back("--partition=" + options.partition);
  if (options.gpus_per_task > 0) lines.push_back("--gpus-per-task=" + std::to_string(options.gpus_per_task));
  if (options.cpus_per_task > 0) lines.push_back("--cpus-per-task=" + std::to_string(options.cpus_per_task));
  if (!options.time.empty()) lines.push_back("--time=" + options.time);
  lines.insert(lines.end(), options.sbatch_args.begin(), options.sbatch_args.end());
  for (const std::string& line : lines) text += "#SBATCH " + line + "\n";
  text += "set -euo pipefail\n";
  text += "exec " + shell_word(fs::absolute(options.cflow).string()) + " sweep " +
          shell_word((root / "spec.toml").string()) + " --out " + shell_word(root.string()) +
          " --task \"$SLURM_ARRAY_TASK_ID\"\n";
  const fs::path script = root / "sweep.sbatch";
  run::write_text_atomically(script, text);
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  return script;
}

int submit(const SweepDir& dir, const fs::path& script) {
  if (!find_program("sbatch")) {
    std::cout << "sbatch is not on PATH: submit on the cluster with: sbatch " << script.string() << "\n";
    return 0;
  }
  const fs::path output = dir.root() / "slurm" / "sbatch.out";
  std::error_code ec;
  fs::remove(output, ec);
  const auto code = run_to_end({{"sbatch", "--parsable", script.string()}, {}, output, false, {}});
  const std::string said = trimmed(read_text(output));
  if (!code || *code != 0) {
    std::cerr << "cflow sweep: error: sbatch " << script.string() << " failed: " << said << "\n";
    return 1;
  }
  const std::string job = said.substr(said.rfind('\n') + 1);  // --parsable: "jobid[;cluster]" last
  run::write_text_atomically(dir.root() / "slurm" / "job_id", job.substr(0, job.find(';')) + "\n");
  std::cout << "submitted job array " << job << " (" << script.string() << "); follow it with: cflow sweep "
            << dir.root().string() << " --status\n";
  return 0;
}

int print_status(const Spec& spec, const SweepDir& dir) {
  const std::map<std::size_t, std::string> queued = queued_tasks(dir);
  std::map<std::string, std::size_t> counts;
  for (const Point& p : spec.points) {
    const PointStatus status = dir.status(p);
    std::string state = to_string(status.state);
    if (const auto q = queued.find(p.index); q != queued.end() && status.state != PointState::running &&
                                             status.state != PointState::completed)
      state = q->second == "RUNNING" ? "running" : "queued";
    ++counts[state];
    std::cout << p.index << "  " << p.id << "  " << state << "  " << status.steps_done << "/" << p.config.steps
              << " steps" << (status.exit_code ? "  exit " + std::to_string(*status.exit_code) : "") << "\n";
    if (status.state == PointState::failed) std::cout << status.detail;
  }
  std::cout << spec.points.size() << " points:";
  for (const auto& [state, count] : counts) std::cout << " " << count << " " << state;
  std::cout << "\n";
  return 0;
}

}  // namespace cflow::sweep
