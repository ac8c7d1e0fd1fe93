#pragma once
// Runs python/cflow_plot.py on a run directory (plots/ and report.html); a missing Python or
// package is a warning on stderr, not an error. $CFLOW_PYTHON and $CFLOW_PLOT_SCRIPT override the
// interpreter and the script.
#include <filesystem>
#include <vector>

namespace cflow::run {

// True when the plots were made.
bool make_plots(const std::filesystem::path& dir, bool quiet);
// Several runs on the same axes, labelled by the settings that differ, into `out` (created).
bool make_comparison_plots(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out);

}  // namespace cflow::run
