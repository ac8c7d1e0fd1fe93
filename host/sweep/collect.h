#pragma once
// Collecting a sweep (docs/design.md §8): DIR/sweep.csv, one row per point: index, id, every swept
// setting, status, exit code, steps done and every number of the point's summary.json (nested keys
// joined by '.', e.g. final.discrete.train_loss, mean_step_seconds.central); then plots and
// report.html by python/cflow_sweep.py.
#include <filesystem>

#include "host/sweep/spec.h"
#include "host/sweep/sweep_dir.h"

namespace cflow::sweep {

// Writes sweep.csv; returns its path.
std::filesystem::path write_csv(const Spec& spec, const SweepDir& dir);
// Runs python/cflow_sweep.py on the directory (CFLOW_PYTHON, CFLOW_SWEEP_SCRIPT override them);
// a missing Python or package is a warning on stderr, and false.
bool make_sweep_plots(const SweepDir& dir);

}  // namespace cflow::sweep
