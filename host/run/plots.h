#pragma once
// Runs python/cflow_plot.py on a run directory (plots/ and report.html); a missing Python or
// package is a warning on stderr, not an error. $CFLOW_PYTHON and $CFLOW_PLOT_SCRIPT override the
// interpreter and the script.
#include <filesystem>

namespace cflow::run {

// True when the plots were made.
bool make_plots(const std::filesystem::path& dir, bool quiet);

}  // namespace cflow::run
