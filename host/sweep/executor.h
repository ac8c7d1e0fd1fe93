#pragma once
// The local executor: a queue of points, each a `cflow run` child process (docs/design.md §7.8).
// On GPUs one point per GPU at a time (CUDA_VISIBLE_DEVICES); on the CPU `jobs` points at once with
// the cores split between them (OMP_NUM_THREADS and --threads). Finished points are skipped and
// interrupted ones resumed from their checkpoints (`cflow run --resume`), so re-running is safe.
// SIGINT/SIGTERM are passed once to every running child (each in its own process group, so a
// terminal's Ctrl-C reaches only the sweep), which checkpoints and exits; a second signal is passed
// again (the child then stops at once).
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "host/sweep/spec.h"
#include "host/sweep/sweep_dir.h"

namespace cflow::sweep {

struct ExecutorOptions {
  std::filesystem::path cflow;    // the binary that runs a point (`cflow run`)
  int jobs = 1;                   // CPU: points at once
  std::vector<std::string> gpus;  // GPU indices, one point on each at a time; empty: the CPU
  int cores = 1;                  // CPU cores split between the jobs
  bool inherit_device = false;    // a Slurm task: the scheduler chose the device and the cores, and
                                  // signals the whole task (the child too), so none is passed on
  bool progress = true;           // the progress line on stderr
};

// Runs the points of `indices` that are not finished. Returns 0 when all of them are completed,
// 128 + the signal when interrupted, 1 when a point failed or another process holds one.
int execute(const Spec& spec, const SweepDir& dir, const std::vector<std::size_t>& indices,
            const ExecutorOptions& options);

}  // namespace cflow::sweep
