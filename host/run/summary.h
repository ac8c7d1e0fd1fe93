#pragma once
// The numbers a `cflow run` ends with (summary.json and the table on the terminal), computed from
// the run's data.h5:
//   eos_onset_step       first step at which the discrete top effective eigenvalue is >= 2
//   predicted_loss_mean_relative_error, predicted_loss_compared_steps
//                        mean over the steps from the onset on of |predicted − smoothed| / |smoothed|,
//                        predicted = central/predicted_loss, smoothed = discrete/train_loss smoothed
//                        by a Gaussian of kSmoothingSigma steps; over the steps where both were
//                        alive, and how many (null with fewer than kMinComparedRows)
//   final_distance_central_discrete, final_distance_stable_discrete
//                        ‖w_central − w_discrete‖ and ‖w_stable − w_discrete‖ at the last step
//                        where both processes were alive
//   final_distance_ratio_central_stable, final_distance_ratio_step
//                        their ratio at the last step where all three were alive
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
#include "host/run/metrics.h"

namespace cflow::run {

// The group of data.h5 that holds the smoothed series (written at the end of a run).
inline constexpr const char* kSmoothedGroup = "smoothed";

// The metrics above from the first `rows` rows of `data_file`; statistics that compare processes
// use only rows where those processes were alive (host/run/metrics.h).
nlohmann::ordered_json summarize(const std::filesystem::path& data_file, const std::vector<ProcessKind>& processes,
                                 std::int64_t rows);

// Writes smoothed/<series> into data.h5 (kSmoothingSigma, host/run/metrics.h's edge rule), for
// python/cflow_plot.py: smoothed/discrete/train_loss, smoothed/discrete/grad_norm_sq,
// smoothed/midpoint/train_loss, and the squared deltas smoothed/deltas_sq [steps x deltas_columns],
// for those series data.h5 has. Not while a writer holds it.
void write_smoothed_series(const std::filesystem::path& data_file, std::int64_t rows, std::int64_t deltas_columns);

// The summary as a table (the JSON of summary.json: metrics, status, processes, timings).
void print_summary(std::ostream& out, const nlohmann::ordered_json& summary);

}  // namespace cflow::run
