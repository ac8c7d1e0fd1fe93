#pragma once
// The numbers a `cflow run` ends with (summary.json and the table on the terminal), computed from
// the run's data.h5:
//   eos_onset_step       first step at which the discrete top effective eigenvalue is >= 2
//   predicted_loss_mean_relative_error
//                        mean over the steps from the onset on of |predicted − smoothed| / |smoothed|,
//                        predicted = central/predicted_loss, smoothed = discrete/train_loss smoothed
//                        by a Gaussian of kSmoothingSigma steps (NaN-aware, as python/cflow_plot.py)
//   final_distance_central_discrete, final_distance_stable_discrete
//                        ‖w_central − w_discrete‖ and ‖w_stable − w_discrete‖ at the last step
//   final.<process>      loss, accuracy and effective sharpness at the last step
//   mean_step_seconds.<process>   mean of <process>/times/total over the steps
//   mean_step_work.<process>.<name>   mean of <process>/work/<name> (kWorkNames) over the steps
// Values that do not apply (no central flow, the edge of stability never reached) are null.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <vector>

#include "cflow/flow/experiment.h"

namespace cflow::run {

inline constexpr double kEosThreshold = 2.0;
inline constexpr double kSmoothingSigma = 10.0;  // steps; python/cflow_plot.py's default

// NaN-aware Gaussian smoothing along time: NaN rows stay NaN and do not contribute.
std::vector<double> gaussian_smooth(const std::vector<double>& values, double sigma);

// The metrics above from the first `rows` rows of `data_file`.
nlohmann::ordered_json summarize(const std::filesystem::path& data_file, const std::vector<ProcessKind>& processes,
                                 std::int64_t rows);

// The summary as a table (the JSON of summary.json: metrics, status, processes, timings).
void print_summary(std::ostream& out, const nlohmann::ordered_json& summary);

}  // namespace cflow::run
