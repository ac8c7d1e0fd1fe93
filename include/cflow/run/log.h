// RunLog: the time series of a run, written to <run>/data.h5 in the reference's HDF5 layout.
//
// Layout (every series is float64, one row per step, NaN until written):
//   step                                  int64 [steps]          global step number of each row
//   <process>/<name>                      [steps x row shape]: [steps], [steps x cols], [steps x K x C], ...
//       process: discrete | central | stable | midpoint
//       name:    train_loss, train_acc, test_loss, test_acc, grad_norm_sq,
//                effective_hessian_eigs [k_max], hessian_eigs [k_max], opt.<summary>, ...
//                central only: predicted_loss, predicted_grad_norm_sq, predicted_variances [k_max],
//                sigma_trace, predicted_grad_sq_selected_idx [25]
//   distances/<a>-<b>                     [steps]  ‖w_a − w_b‖, a < b alphabetically (distance_series)
//   deltas                                [steps x k_max]  (UQ)ᵀP(w_discrete − w_central)
// RunLog itself does not fix the names: any "group/.../name" path works, so the runner owns them.
//
// Life cycle: create() or open_existing(), then declare() every series and set attributes, then
// start_swmr(); from then on readers (h5py: File(path, "r", libver="latest", swmr=True)) may open
// the file while write() and flush() go on. Each flush() makes the rows written so far visible, and
// the file stays readable (in SWMR read mode) up to the last flush even if the process is killed.
//
// Every failure (HDF5 error, unknown series, step out of range, row too long, wrong phase) throws
// std::runtime_error naming the file and the series. Not thread-safe: one writer thread per file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cflow {

// The file name of a run's log inside its run directory.
inline constexpr std::string_view kRunLogFileName = "data.h5";

// At exit HDF5 closes whatever is still open; after a failed write (a full disk, a file-size limit)
// that pass crashes on the half-closed file. Programs that write logs call this first thing in
// main(), before any other HDF5 call: every RunLog closes its own file, so nothing is lost.
void skip_hdf5_cleanup_at_exit();

// "distances/<a>-<b>" with the two process names in alphabetical order, as the reference names them.
std::string distance_series(std::string_view process_a, std::string_view process_b);

class RunLog {
public:
  // Creates (or replaces) `file` with rows for steps first_step, ..., first_step + steps - 1.
  [[nodiscard]] static RunLog create(const std::filesystem::path& file, std::int64_t steps,
                                     std::int64_t first_step = 0);

  // Reopens a file written by RunLog to continue it (resume from a checkpoint): the series it holds
  // are known again, and the file is back in the declaration phase. Also recovers a file whose
  // writer was killed (clears HDF5's "open for writing" marks): never call it on a file that a live
  // writer still holds.
  [[nodiscard]] static RunLog open_existing(const std::filesystem::path& file);

  RunLog(RunLog&&) noexcept;
  RunLog& operator=(RunLog&&) noexcept;
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;
  ~RunLog();  // closes quietly; call close() to see errors

  // ---- declaration phase (before start_swmr) ----

  // Declares series `path` ("central/predicted_loss", "deltas", "discrete/outputs", ...) whose rows
  // have `row_shape`: {} gives a 1-D series [steps], {cols} a 2-D one [steps x cols], {K, C} a 3-D
  // one [steps x K x C], and so on (every extent >= 1). Intermediate groups are created as needed.
  // Declaring an existing series again with the same row shape does nothing (so a resumed run can
  // repeat its declarations); with another shape it throws.
  void declare(std::string_view path, std::span<const std::int64_t> row_shape);
  // The same with row shape {} when cols == 0, else {cols}.
  void declare(std::string_view path, std::int64_t cols = 0);

  // Grows every series (and `step`) to `steps` rows; the new rows are NaN. Never shrinks.
  void grow(std::int64_t steps);

  // A UTF-8 string attribute on the root group (e.g. "config" holding the resolved config JSON).
  void set_attribute(std::string_view name, std::string_view value);

  // Switches the file to SWMR write mode; declarations and attributes are frozen from here on.
  void start_swmr();

  // ---- writing (any phase) ----

  // Writes the row of `step`, flattened in row-major (C) order. A row takes at most the product of
  // the row shape (one value for a 1-D series); values beyond row.size() are (re)set to NaN, so k
  // tracked eigenvalues go into a k_max-column series as they are.
  void write(std::string_view path, std::int64_t step, std::span<const double> row);
  void write(std::string_view path, std::int64_t step, double value);

  // Makes every row written so far visible to readers and durable against a crash. It rewrites
  // every dirty chunk (about 0.3 ms for 50 series, against about 1 µs per row write), so flush
  // every few steps or seconds rather than after every step of a fast run.
  void flush();

  // Flushes and closes the file; afterwards only file(), first_step(), steps(), swmr(),
  // contains(), columns() and row_shape() may be used.
  void close();

  // ---- accessors ----
  const std::filesystem::path& file() const;
  std::int64_t first_step() const;
  std::int64_t steps() const;
  bool swmr() const;
  bool contains(std::string_view path) const;
  std::int64_t columns(std::string_view path) const;  // values per row; 0 for a 1-D series
  std::vector<std::int64_t> row_shape(std::string_view path) const;  // {} for a 1-D series
  std::string attribute(std::string_view name) const;

private:
  struct State;
  explicit RunLog(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace cflow
