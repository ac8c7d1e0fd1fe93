#include "host/sweep/collect.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>

#include "host/run/checkpoint.h"
#include "host/sweep/process.h"

namespace cflow::sweep {

namespace {

namespace fs = std::filesystem;

// Every number of a summary.json, by its dotted path; null stays (an empty cell).
void flatten(const nlohmann::ordered_json& value, const std::string& path, nlohmann::ordered_json& out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) flatten(item, path.empty() ? key : path + "." + key, out);
  } else if (value.is_number() || value.is_null()) {
    out[path] = value;
  }
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

nlohmann::ordered_json read_summary(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return nlohmann::ordered_json::object();
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::ordered_json::exception&) {
    return nlohmann::ordered_json::object();
  }
}

}  // namespace

fs::path write_csv(const Spec& spec, const SweepDir& dir) {
  std::vector<nlohmann::ordered_json> numbers;
  std::vector<std::string> columns;  // the union, in the order first seen
  std::set<std::string> known;
  for (const Point& p : spec.points) {
    nlohmann::ordered_json flat = nlohmann::ordered_json::object();
    flatten(read_summary(dir.run_dir(p) / "summary.json"), "", flat);
    for (const auto& [key, value] : flat.items())
      if (known.insert(key).second) columns.push_back(key);
    numbers.push_back(std::move(flat));
  }
  std::string text = "index,id";
  for (const std::string& axis : spec.axes) text += "," + csv_cell(axis);
  text += ",status,exit_code";
  for (const std::string& c : columns) text += "," + csv_cell(c);
  text += "\n";
  for (const Point& p : spec.points) {
    const PointStatus status = dir.status(p);
    text += std::to_string(p.index) + "," + csv_cell(p.id);
    for (const Setting& s : p.swept) text += "," + csv_cell(s.text);
    text += "," + to_string(status.state) + "," + (status.exit_code ? std::to_string(*status.exit_code) : "");
    for (const std::string& c : columns) {
      const nlohmann::ordered_json& row = numbers[p.index];
      text += "," + (row.contains(c) && !row[c].is_null() ? row[c].dump() : std::string());
    }
    text += "\n";
  }
  const fs::path file = dir.root() / "sweep.csv";
  run::write_text_atomically(file, text);
  return file;
}

bool make_sweep_plots(const SweepDir& dir) {
  const char* python_env = std::getenv("CFLOW_PYTHON");
  const char* script_env = std::getenv("CFLOW_SWEEP_SCRIPT");
  const std::string python = python_env && *python_env ? python_env : "/usr/bin/python3";
  const fs::path script = script_env && *script_env ? fs::path(script_env)
                                                    : fs::path(CFLOW_SOURCE_DIR) / "python" / "cflow_sweep.py";
  const fs::path log = dir.root() / "plots.log";
  std::error_code ec;
  fs::remove(log, ec);
  const std::optional<int> code = run_to_end({{python, script.string(), dir.root().string()}, {}, log, false, {}});
  if (code && *code == 0) {
    fs::remove(log, ec);
    return true;
  }
  std::cerr << "warning: no sweep plots: " << python << " " << script.string()
            << (code ? " failed (see " + log.string() + ")" : std::string(" could not start"))
            << "; make them later with: cflow sweep " << dir.root().string() << " --collect\n";
  return false;
}

}  // namespace cflow::sweep
