#include "host/run/output.h"

#include <hdf5.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

#include "cflow/runtime/nvtx.h"

namespace cflow::run {

namespace {

bool has(const ExperimentSettings& settings, ProcessKind kind) {
  return std::find(settings.processes.begin(), settings.processes.end(), kind) != settings.processes.end();
}

std::string series(ProcessKind kind, std::string_view name) { return to_string(kind) + "/" + std::string(name); }

// The row shape of a series of `cols` values per row: 1-D when cols == 0.
std::vector<std::int64_t> columns(std::int64_t cols) { return cols == 0 ? std::vector<std::int64_t>{} : std::vector{cols}; }

// The phases a ProcessRecord times; declared for every process so that a phase that first shows up
// after the first step (the SDCP once the flow is at the edge of stability) still has its series.
constexpr const char* kTimings[] = {"grad_and_value", "eig", "d3", "sdcp", "total"};

// Closes an HDF5 identifier when it goes out of scope.
struct Handle {
  Handle(hid_t id_, herr_t (*close_)(hid_t)) : id(id_), close(close_) {}
  Handle(Handle&& other) noexcept : id(std::exchange(other.id, H5I_INVALID_HID)), close(other.close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id >= 0) close(id);
  }
  hid_t id;
  herr_t (*close)(hid_t);
};

}  // namespace

std::vector<SeriesSpec> series_layout(const ExperimentSettings& settings, int k_max,
                                      const std::vector<std::int64_t>& outputs) {
  const std::int64_t k = k_max, selected = settings.selected_coordinates;
  std::vector<SeriesSpec> layout;
  for (const ProcessKind kind : settings.processes) {
    for (const char* name : {"train_loss", "train_acc", "test_loss", "test_acc", "grad_norm_sq"})
      layout.push_back({series(kind, name), {}});
    layout.push_back({series(kind, "effective_hessian_eigs"), {k}});
    if (settings.eig.raw_eigenvalues) layout.push_back({series(kind, "hessian_eigs"), {k}});
    layout.push_back({series(kind, "grad_sq_selected_idx"), columns(selected)});
    for (const char* name : kWorkNames) layout.push_back({series(kind, "work/" + std::string(name)), {}});
    if (is_flow(kind)) layout.push_back({series(kind, "substeps"), {}});
    if (!outputs.empty()) layout.push_back({series(kind, "outputs"), outputs});
    if (models_oscillation(kind)) {
      for (const char* name : {"predicted_loss", "predicted_grad_norm_sq", "sigma_trace", "sdcp_residual"})
        layout.push_back({series(kind, name), {}});
      layout.push_back({series(kind, "predicted_variances"), {k}});
      layout.push_back({series(kind, "predicted_grad_sq_selected_idx"), columns(selected)});
    }
  }
  for (std::size_t a = 0; a < settings.processes.size(); ++a)
    for (std::size_t b = a + 1; b < settings.processes.size(); ++b)
      layout.push_back({distance_series(to_string(settings.processes[a]), to_string(settings.processes[b])), {}});
  if (has(settings, ProcessKind::discrete) && has(settings, ProcessKind::central)) layout.push_back({"deltas", {k}});
  return layout;
}

std::vector<SeriesSpec> state_layout(const StepRecord& record) {
  std::vector<SeriesSpec> layout;
  for (const auto& [kind, process] : record.processes) {
    std::set<std::string> timings(std::begin(kTimings), std::end(kTimings));
    for (const auto& [name, seconds] : process.seconds) timings.insert(name);
    for (const std::string& name : timings) layout.push_back({series(kind, "times/" + name), {}});
    for (const auto& [name, value] : process.state.values) layout.push_back({series(kind, name), {}});
    for (const auto& [name, values] : process.state.vectors)
      layout.push_back({series(kind, name), {std::max<std::int64_t>(1, std::int64_t(values.size()))}});
  }
  return layout;
}

void declare(RunLog& log, const std::vector<SeriesSpec>& layout) {
  for (const SeriesSpec& s : layout) log.declare(s.path, s.row_shape);
}

void StepWriter::put(const std::string& path, std::int64_t step, std::span<const double> row) {
  if (!log_.contains(path)) {
    if (undeclared_.insert(path).second) fresh_undeclared_.push_back(path);
    return;
  }
  log_.write(path, step, row);
}

void StepWriter::write(const StepRecord& record) {
  CFLOW_NVTX_RANGE("hdf5_log");
  const std::int64_t step = record.step;
  auto scalar = [&](const std::string& path, double value) { put(path, step, std::span<const double>(&value, 1)); };
  for (const auto& [kind, p] : record.processes) {
    const std::string prefix = to_string(kind) + "/";
    scalar(prefix + "train_loss", p.train_loss);
    scalar(prefix + "train_acc", p.train_acc);
    scalar(prefix + "test_loss", p.test_loss);
    scalar(prefix + "test_acc", p.test_acc);
    scalar(prefix + "grad_norm_sq", p.grad_norm_sq);
    put(prefix + "effective_hessian_eigs", step, p.effective_eigs);
    if (log_.contains(prefix + "hessian_eigs")) put(prefix + "hessian_eigs", step, p.hessian_eigs);
    put(prefix + "grad_sq_selected_idx", step, p.grad_sq_selected);
    for (const auto& [name, seconds] : p.seconds) scalar(prefix + "times/" + name, seconds);
    for (const auto& [name, count] : p.work) scalar(prefix + "work/" + name, count);
    for (const auto& [name, value] : p.state.values) scalar(prefix + name, value);
    for (const auto& [name, values] : p.state.vectors) put(prefix + name, step, values);
    if (is_flow(kind)) scalar(prefix + "substeps", p.substeps);
    if (!p.outputs.empty()) put(prefix + "outputs", step, p.outputs);
    if (models_oscillation(kind)) {
      scalar(prefix + "predicted_loss", p.predicted_loss);
      scalar(prefix + "predicted_grad_norm_sq", p.predicted_grad_norm_sq);
      scalar(prefix + "sigma_trace", p.sigma_trace);
      scalar(prefix + "sdcp_residual", p.sdcp_residual);
      put(prefix + "predicted_variances", step, p.predicted_variances);
      put(prefix + "predicted_grad_sq_selected_idx", step, p.predicted_grad_sq_selected);
    }
  }
  for (const auto& [pair, distance] : record.distances) scalar("distances/" + pair, distance);
  if (log_.contains("deltas")) put("deltas", step, record.deltas);
}

std::vector<std::string> StepWriter::take_undeclared() { return std::exchange(fresh_undeclared_, {}); }

namespace {

Handle open_for_reading(const std::filesystem::path& file) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  H5Pset_libver_bounds(fapl.id, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  Handle f{H5Fopen(file.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.id), H5Fclose};
  if (f.id < 0) throw std::runtime_error(file.string() + ": cannot be opened for reading (not an HDF5 file?)");
  return f;
}

}  // namespace

std::vector<double> read_series(const std::filesystem::path& file, std::string_view path, int col) {
  Handle f = open_for_reading(file);
  const std::string name(path);
  if (H5Lexists(f.id, name.substr(0, name.find('/')).c_str(), H5P_DEFAULT) <= 0 ||
      H5Lexists(f.id, name.c_str(), H5P_DEFAULT) <= 0) {
    return {};
  }
  Handle dataset{H5Dopen2(f.id, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (dataset.id < 0) return {};
  Handle space{H5Dget_space(dataset.id), H5Sclose};
  hsize_t dims[2] = {0, 1};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  if (rank < 1 || rank > 2) throw std::runtime_error(file.string() + ": " + name + " is neither 1-D nor 2-D");
  H5Sget_simple_extent_dims(space.id, dims, nullptr);
  if (rank == 1) dims[1] = 1;
  if (col < 0 || hsize_t(col) >= dims[1]) return std::vector<double>(dims[0], std::numeric_limits<double>::quiet_NaN());
  std::vector<double> column(dims[0]);
  if (dims[0] == 0) return column;
  const hsize_t start[2] = {0, hsize_t(col)}, count[2] = {dims[0], 1};
  H5Sselect_hyperslab(space.id, H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle memory{H5Screate_simple(1, count, nullptr), H5Sclose};
  if (H5Dread(dataset.id, H5T_NATIVE_DOUBLE, memory.id, space.id, H5P_DEFAULT, column.data()) < 0)
    throw std::runtime_error(file.string() + ": " + name + " cannot be read");
  return column;
}

std::vector<std::int64_t> read_steps(const std::filesystem::path& file) {
  Handle f = open_for_reading(file);
  Handle dataset{H5Dopen2(f.id, "step", H5P_DEFAULT), H5Dclose};
  if (dataset.id < 0) throw std::runtime_error(file.string() + ": has no `step` dataset");
  Handle space{H5Dget_space(dataset.id), H5Sclose};
  hsize_t rows = 0;
  H5Sget_simple_extent_dims(space.id, &rows, nullptr);
  std::vector<std::int64_t> steps(rows);
  if (rows > 0 && H5Dread(dataset.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()) < 0)
    throw std::runtime_error(file.string() + ": `step` cannot be read");
  return steps;
}

}  // namespace cflow::run
