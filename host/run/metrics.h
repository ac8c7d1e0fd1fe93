#pragma once
// The numbers that compare a run's processes (docs/design.md §8), defined once: the summary
// (host/run/summary.cpp) computes them from data.h5 and writes them to summary.json and the smoothed
// series to data.h5's smoothed/ group, the tests call them, and python/cflow_plot.py plots what was
// written.
//
//   EoS onset            first row whose top effective eigenvalue is >= kEosThreshold
//   Gaussian smoothing   σ in steps, NaN-aware; the edge rule below
//   predicted-loss error mean over rows of |predicted − smoothed| / |smoothed|
//   distance ratio       ‖w_central − w_discrete‖ / ‖w_stable − w_discrete‖ per row
//
// A statistic compares processes only over rows where each of them was alive (a finite value in
// every series compared) and says over how many; with fewer than kMinComparedRows it is absent.
#include <cstdint>
#include <optional>
#include <vector>

namespace cflow::run {

inline constexpr double kEosThreshold = 2.0;
inline constexpr double kSmoothingSigma = 10.0;  // steps
inline constexpr std::int64_t kMinComparedRows = 10;

// Gaussian smoothing along time with one edge rule: row i averages rows i − r .. i + r with
// r = min(⌈4σ⌉, i, n − 1 − i) (the window is truncated symmetrically at the ends) and the weights
// renormalized to sum 1. A symmetric window reproduces a locally linear series exactly, so the
// first and last rows are not pulled towards the interior (a one-sided window would start a
// falling loss well below its first value). Non-finite rows stay NaN and do not contribute.
std::vector<double> gaussian_smooth(const std::vector<double>& values, double sigma);

// The first row with values[row] >= threshold, or nullopt.
std::optional<std::int64_t> eos_onset(const std::vector<double>& top_sharpness, double threshold = kEosThreshold);

// A mean over the rows where its inputs were all finite.
struct ComparedMean {
  double mean = 0;
  std::int64_t rows = 0;  // rows compared
};

// Mean of |predicted − smoothed| / |smoothed| over rows [from, end) where both are finite and
// smoothed != 0; nullopt with fewer than kMinComparedRows such rows.
std::optional<ComparedMean> mean_relative_error(const std::vector<double>& predicted, const std::vector<double>& smoothed,
                                                std::int64_t from);

// numerator[i] / denominator[i], NaN where either is not finite or the denominator is 0.
std::vector<double> ratio(const std::vector<double>& numerator, const std::vector<double>& denominator);

// The last row where `values` is finite, or nullopt.
std::optional<std::int64_t> last_finite_row(const std::vector<double>& values);

}  // namespace cflow::run
