#pragma once
// What `cflow run` writes into data.h5 (docs/design.md §8, the reference's names; run_log.h has the file
// layout): the series a run declares, and the rows of each step's StepRecord.
//
//   step                                         int64 [steps]
//   <process>/train_loss, train_acc,
//             test_loss, test_acc, grad_norm_sq  [steps]          (test_*: NaN without a test set)
//   <process>/effective_hessian_eigs             [steps x k_max]  tracked eigenvalues of P⁻¹H, descending
//   <process>/hessian_eigs                       [steps x k_max]  of H (unless --no-raw-eigs)
//   <process>/grad_sq_selected_idx               [steps x 25]     g² at 25 evenly spaced coordinates
//   <process>/opt.<name>                         [steps] or [steps x m]  the optimizer's state summary
//   <process>/times/<phase>                      [steps]          seconds: grad_and_value, eig, d3, sdcp, total
//   stable/substeps, central/substeps            [steps]          Euler substeps taken in the step
//   (stationary/: substeps and every central/ series below but deltas, for its own Σ)
//   central/predicted_loss, predicted_grad_norm_sq, sigma_trace, sdcp_residual   [steps]
//   central/predicted_variances                  [steps x k_max]  ξ, eigenvalues of X, descending
//   central/predicted_grad_sq_selected_idx       [steps x 25]
//   <process>/outputs                            [steps x K x C]  logits on the first K training examples
//                                                                 (--log-outputs K; C = classes)
//   distances/<a>-<b>                            [steps]          ‖w_a − w_b‖ for every pair, a < b
//   deltas                                       [steps x k_max]  (UQ)ᵀP(w_discrete − w_central)
// k_max = Experiment::max_tracked(). Every row is NaN until its step is written; a short row (k
// eigenvalues tracked of k_max) leaves the remaining columns NaN.
#include <cstdint>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/flow/experiment.h"
#include "cflow/run/log.h"

namespace cflow::run {

struct SeriesSpec {
  std::string path;
  std::vector<std::int64_t> row_shape;  // {}: a 1-D series (RunLog::declare)
};

// Every series fixed by the settings (all but opt.*); `outputs` is the row shape {K, classes} of
// <process>/outputs, {} for none.
std::vector<SeriesSpec> series_layout(const ExperimentSettings& settings, int k_max,
                                      const std::vector<std::int64_t>& outputs = {});
// The opt.* and times/* series of each process, from a record (names and widths come from the
// optimizer and the processes).
std::vector<SeriesSpec> state_layout(const StepRecord& record);
void declare(RunLog& log, const std::vector<SeriesSpec>& layout);

// Writes StepRecords into a log whose series are declared.
class StepWriter {
 public:
  explicit StepWriter(RunLog& log) : log_(log) {}
  void write(const StepRecord& record);
  // Series a record carried that the log does not have (reported once each), for a warning.
  std::vector<std::string> take_undeclared();

 private:
  void put(const std::string& path, std::int64_t step, std::span<const double> row);
  RunLog& log_;
  std::set<std::string> undeclared_;
  std::vector<std::string> fresh_undeclared_;
};

// Column `col` of a series of a data.h5 file (any state: being written, killed or closed), every row;
// empty when the series does not exist. Throws std::runtime_error when the file cannot be read.
std::vector<double> read_series(const std::filesystem::path& file, std::string_view path, int col = 0);
// The `step` dataset of a data.h5 file.
std::vector<std::int64_t> read_steps(const std::filesystem::path& file);

}  // namespace cflow::run
