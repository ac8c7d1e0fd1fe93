#pragma once
// Slurm (docs/design.md §7.8): a sweep as one job array. DIR/sweep.sbatch's task i runs
// `cflow sweep DIR/spec.toml --out DIR --task i`: exactly point i, resumable, safe to requeue.
#include <filesystem>
#include <string>
#include <vector>

#include "host/sweep/spec.h"
#include "host/sweep/sweep_dir.h"

namespace cflow::sweep {

struct SlurmOptions {
  std::filesystem::path cflow;  // the binary the tasks run (absolute)
  std::string partition;        // empty: the cluster's default
  int gpus_per_task = 0;        // 0: none requested
  int cpus_per_task = 0;        // 0: the cluster's default; else also each point's --threads
  std::string time;             // HH:MM:SS; empty: the partition's default
  int max_parallel = 0;         // the array's %K; 0: every point at once
  std::vector<std::string> sbatch_args;  // more #SBATCH lines, e.g. --account=abc
};

// Writes DIR/sweep.sbatch (and the folder DIR/slurm/ for the tasks' output); returns its path.
std::filesystem::path write_sbatch(const Spec& spec, const SweepDir& dir, const SlurmOptions& options);
// Submits it with `sbatch --parsable` (job id in DIR/slurm/job_id). Exit status: 0 submitted,
// 1 sbatch failed; when sbatch is not on PATH, says how to submit and returns 0.
int submit(const SweepDir& dir, const std::filesystem::path& script);
// Prints every point's state (run directories; squeue for the job's pending and running tasks when
// squeue and DIR/slurm/job_id exist) and the counts. Exit status 0.
int print_status(const Spec& spec, const SweepDir& dir);

}  // namespace cflow::sweep
