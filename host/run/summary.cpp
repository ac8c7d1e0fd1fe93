#include "host/run/summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "host/run/metrics.h"
#include "host/run/output.h"

namespace cflow::run {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::ordered_json number(double x) {
  return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr);
}

double at(const std::vector<double>& values, std::int64_t row) {
  return row >= 0 && row < std::int64_t(values.size()) ? values[std::size_t(row)] : kNaN;
}

std::vector<double> first_rows(std::vector<double> values, std::int64_t rows) {
  if (std::int64_t(values.size()) > rows) values.resize(std::size_t(std::max<std::int64_t>(rows, 0)));
  return values;
}

std::string format(const nlohmann::ordered_json& value, const char* pattern = "%.6g") {
  if (!value.is_number()) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value.get<double>());
  return buffer;
}

std::string duration(double seconds) {
  char buffer[64];
  const long s = std::lround(seconds);
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%ldh %02ldm %02lds", s / 3600, (s / 60) % 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(buffer, sizeof buffer, "%ldm %02lds", s / 60, s % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
  }
  return buffer;
}

}  // namespace

namespace {

// Per row: whether `process` was alive (its train loss finite).
std::vector<bool> alive_rows(const std::vector<double>& train_loss) {
  std::vector<bool> alive(train_loss.size());
  for (std::size_t r = 0; r < train_loss.size(); ++r) alive[r] = std::isfinite(train_loss[r]);
  return alive;
}

// `values` with the rows where `alive` is false set to NaN.
std::vector<double> only_alive(std::vector<double> values, const std::vector<bool>& alive) {
  for (std::size_t r = 0; r < values.size(); ++r)
    if (r >= alive.size() || !alive[r]) values[r] = kNaN;
  return values;
}

// Reads the series summarize() needs; one method per group of summary keys.
class Summarizer {
 public:
  Summarizer(const std::filesystem::path& data_file, const std::vector<ProcessKind>& processes, std::int64_t rows)
      : file_(data_file), processes_(processes), rows_(rows), steps_(read_steps(data_file)) {}

  void headline(nlohmann::ordered_json& s) const {
    s["eos_onset_step"] = nullptr;
    s["predicted_loss_mean_relative_error"] = nullptr;
    s["predicted_loss_compared_steps"] = 0;
    std::optional<std::int64_t> onset;
    if (has(ProcessKind::discrete)) onset = eos_onset(column("discrete/effective_hessian_eigs"));
    if (onset) s["eos_onset_step"] = step_of(*onset);
    if (!onset || !has(ProcessKind::central)) return;
    // Only rows where both the discrete process and the central flow were alive are compared.
    const std::vector<double> smoothed = gaussian_smooth(column("discrete/train_loss"), kSmoothingSigma);
    const auto error = mean_relative_error(only_alive(column("central/predicted_loss"), alive("central")), smoothed, *onset);
    if (error) {
      s["predicted_loss_mean_relative_error"] = error->mean;
      s["predicted_loss_compared_steps"] = error->rows;
    }
  }

  // Distances at the last row where every process compared was alive.
  void distances(nlohmann::ordered_json& s) const {
    s["final_distance_central_discrete"] = nullptr;
    s["final_distance_stable_discrete"] = nullptr;
    s["final_distance_ratio_central_stable"] = nullptr;
    if (!has(ProcessKind::discrete)) return;
    if (has(ProcessKind::central))
      s["final_distance_central_discrete"] = final_distance("distances/central-discrete", alive("central"), alive("discrete"));
    if (has(ProcessKind::stable))
      s["final_distance_stable_discrete"] = final_distance("distances/discrete-stable", alive("stable"), alive("discrete"));
    if (!has(ProcessKind::central) || !has(ProcessKind::stable)) return;
    const std::vector<double> r = ratio(only_alive(column("distances/central-discrete"), alive("central")),
                                        only_alive(column("distances/discrete-stable"), alive("stable")));
    const auto row = last_finite_row(only_alive(r, alive("discrete")));
    if (row) {
      s["final_distance_ratio_central_stable"] = r[std::size_t(*row)];
      s["final_distance_ratio_step"] = step_of(*row);
    }
  }

  nlohmann::ordered_json final_step() const {
    return rows_ > 0 ? nlohmann::ordered_json(step_of(rows_ - 1)) : nlohmann::ordered_json(nullptr);
  }

  nlohmann::ordered_json final_values() const {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const ProcessKind kind : processes_) {
      const std::string p = to_string(kind);
      auto last = [&](const std::string& name) { return number(at(column(p + "/" + name), rows_ - 1)); };
      out[p] = {{"train_loss", last("train_loss")},   {"train_acc", last("train_acc")},
                {"test_loss", last("test_loss")},     {"test_acc", last("test_acc")},
                {"effective_sharpness", last("effective_hessian_eigs")}};
      if (kind == ProcessKind::central) out[p]["predicted_loss"] = last("predicted_loss");
    }
    return out;
  }

  // Per process, the mean time and oracle work per step.
  void means(nlohmann::ordered_json& s) const {
    nlohmann::ordered_json seconds = nlohmann::ordered_json::object(), work = nlohmann::ordered_json::object();
    for (const ProcessKind kind : processes_) {
      const std::string p = to_string(kind);
      if (const auto total = mean(p + "/times/total"); !total.is_null()) seconds[p] = total;
      for (const char* name : kWorkNames) work[p][name] = mean(p + "/work/" + name);
    }
    s["mean_step_seconds"] = seconds;
    s["mean_step_work"] = work;
  }

 private:
  bool has(ProcessKind kind) const { return std::find(processes_.begin(), processes_.end(), kind) != processes_.end(); }
  std::vector<double> column(const std::string& path, int col = 0) const {
    return first_rows(read_series(file_, path, col), rows_);
  }
  std::vector<bool> alive(const char* process) const { return alive_rows(column(std::string(process) + "/train_loss")); }
  std::int64_t step_of(std::int64_t row) const { return row < std::int64_t(steps_.size()) ? steps_[std::size_t(row)] : row; }
  nlohmann::ordered_json final_distance(const char* series, const std::vector<bool>& a, const std::vector<bool>& b) const {
    std::vector<double> values = only_alive(only_alive(column(series), a), b);
    const auto row = last_finite_row(values);
    return row ? nlohmann::ordered_json(values[std::size_t(*row)]) : nlohmann::ordered_json(nullptr);
  }
  // The mean over the steps a process ran (stopped steps are NaN); null when it ran none.
  nlohmann::ordered_json mean(const std::string& path) const {
    double sum = 0;
    std::int64_t count = 0;
    for (double x : column(path)) {
      if (std::isfinite(x)) {
        sum += x;
        ++count;
      }
    }
    return count > 0 ? nlohmann::ordered_json(sum / double(count)) : nlohmann::ordered_json(nullptr);
  }

  std::filesystem::path file_;
  std::vector<ProcessKind> processes_;
  std::int64_t rows_;
  std::vector<std::int64_t> steps_;
};

}  // namespace

nlohmann::ordered_json summarize(const std::filesystem::path& data_file, const std::vector<ProcessKind>& processes,
                                 std::int64_t rows) {
  const Summarizer summarizer(data_file, processes, rows);
  nlohmann::ordered_json s;
  s["eos_threshold"] = kEosThreshold;
  s["smoothing_sigma_steps"] = kSmoothingSigma;
  summarizer.headline(s);
  summarizer.distances(s);
  s["final_step"] = summarizer.final_step();
  s["final"] = summarizer.final_values();
  summarizer.means(s);
  return s;
}

void write_smoothed_series(const std::filesystem::path& data_file, std::int64_t rows, std::int64_t deltas_columns) {
  // Read everything first: the log below opens the file for writing.
  struct Series {
    std::string path;
    std::vector<std::vector<double>> columns;  // each smoothed
    bool matrix = false;                        // [steps x columns] rather than [steps]
  };
  std::vector<Series> out;
  auto smoothed_column = [&](const std::string& path, int col, bool squared) {
    std::vector<double> values = first_rows(read_series(data_file, path, col), rows);
    if (squared)
      for (double& x : values) x *= x;
    return gaussian_smooth(values, kSmoothingSigma);
  };
  for (const char* path : {"discrete/train_loss", "discrete/grad_norm_sq", "midpoint/train_loss"})
    if (!read_series(data_file, path).empty()) out.push_back({path, {smoothed_column(path, 0, false)}});
  if (!read_series(data_file, "deltas").empty()) {
    Series series{"deltas_sq", {}, true};
    for (int c = 0; c < deltas_columns; ++c) series.columns.push_back(smoothed_column("deltas", c, true));
    out.push_back(std::move(series));
  }
  const std::vector<std::int64_t> steps = read_steps(data_file);
  RunLog log = RunLog::open_existing(data_file);
  log.set_attribute("smoothing_sigma_steps", std::to_string(kSmoothingSigma));
  for (const Series& series : out)
    log.declare(std::string(kSmoothedGroup) + "/" + series.path, series.matrix ? std::int64_t(series.columns.size()) : 0);
  for (const Series& series : out) {
    for (std::int64_t r = 0; r < rows && r < std::int64_t(steps.size()); ++r) {
      std::vector<double> row;
      for (const auto& column : series.columns) row.push_back(column[std::size_t(r)]);
      log.write(std::string(kSmoothedGroup) + "/" + series.path, steps[std::size_t(r)], row);
    }
  }
  log.close();
}

void print_summary(std::ostream& out, const nlohmann::ordered_json& s) {
  char line[512];
  const nlohmann::ordered_json& final_values = s.value("final", nlohmann::ordered_json::object());
  const nlohmann::ordered_json& status = s.value("processes", nlohmann::ordered_json::object());
  std::snprintf(line, sizeof line, "%-10s %12s %10s %10s %8s  %s\n", "process", "train loss", "train acc", "test acc",
                "S_eff", "status");
  out << line;
  for (const auto& [name, v] : final_values.items()) {
    std::string state = "ok";
    if (status.contains(name) && status[name].value("stopped", false))
      state = "stopped: " + status[name].value("reason", std::string());
    std::snprintf(line, sizeof line, "%-10s %12s %10s %10s %8s  %s\n", name.c_str(), format(v["train_loss"]).c_str(),
                  format(v["train_acc"], "%.4f").c_str(), format(v["test_acc"], "%.4f").c_str(),
                  format(v["effective_sharpness"], "%.4g").c_str(), state.c_str());
    out << line;
  }
  auto row = [&](const char* label, const std::string& value) {
    std::snprintf(line, sizeof line, "%-52s %s\n", label, value.c_str());
    out << line;
  };
  auto runs = [&](const char* process) { return final_values.contains(process); };
  const nlohmann::ordered_json onset = s.value("eos_onset_step", nlohmann::ordered_json());
  if (runs("discrete")) {
    row("EoS onset (first step with discrete S_eff >= 2):",
        onset.is_number() ? "step " + std::to_string(onset.get<std::int64_t>()) : "not reached");
  }
  const nlohmann::ordered_json error = s.value("predicted_loss_mean_relative_error", nlohmann::ordered_json());
  if (runs("discrete") && runs("central")) {
    row("predicted vs smoothed discrete loss after onset:",
        error.is_number() ? "mean relative error " + format(error.get<double>() * 100, "%.3g") + "%" : "-");
    row("distance central-discrete at the end:",
        format(s.value("final_distance_central_discrete", nlohmann::ordered_json())));
  }
  if (runs("discrete") && runs("stable")) {
    row("distance stable-discrete at the end:",
        format(s.value("final_distance_stable_discrete", nlohmann::ordered_json())));
  }
  const nlohmann::ordered_json seconds = s.value("mean_step_seconds", nlohmann::ordered_json::object());
  if (!seconds.empty()) {
    std::string text;
    for (const auto& [name, value] : seconds.items())
      text += (text.empty() ? "" : ", ") + name + " " + format(value, "%.3g") + " s";
    row("time per step:", text);
  }
  const nlohmann::ordered_json work = s.value("mean_step_work", nlohmann::ordered_json::object());
  if (!work.empty()) {
    std::string text;
    for (const auto& [name, value] : work.items())
      text += (text.empty() ? "" : ", ") + name + " " + format(value.value("hvps", nlohmann::ordered_json()), "%.3g");
    row("HVPs per step:", text);
  }
  if (s.contains("wall_time_s")) {
    std::string text = duration(s["wall_time_s"].get<double>());
    if (s.contains("steps_per_s") && s["steps_per_s"].is_number())
      text += " (" + format(s["steps_per_s"], "%.3g") + " steps/s)";
    row("wall time:", text);
  }
}

}  // namespace cflow::run
