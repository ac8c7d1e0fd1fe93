#include "host/sweep/sweep_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <deque>
#include <fstream>

#include "host/run/checkpoint.h"

namespace cflow::sweep {

namespace fs = std::filesystem;

namespace {

std::optional<nlohmann::json> read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // being rewritten, or damaged: the point is not finished
  }
}

nlohmann::ordered_json describe(const Spec& spec) {
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  for (const Point& p : spec.points) {
    nlohmann::ordered_json settings = nlohmann::ordered_json::object();
    for (const Setting& s : p.settings) settings[s.key] = s.text;
    points.push_back({{"index", p.index}, {"id", p.id}, {"run", "points/" + p.id + "/run"}, {"settings", settings}});
  }
  return {{"name", spec.name}, {"axes", spec.axes}, {"points", points}};
}

}  // namespace

std::string to_string(PointState state) {
  switch (state) {
    case PointState::pending: return "pending";
    case PointState::running: return "running";
    case PointState::completed: return "completed";
    case PointState::interrupted: return "interrupted";
    case PointState::failed: return "failed";
  }
  return "?";
}

void SweepDir::prepare(const Spec& spec) const {
  std::error_code ec;
  if (fs::exists(spec_file(), ec)) {
    const Spec stored = load();
    bool same = stored.points.size() == spec.points.size();
    for (std::size_t i = 0; same && i < spec.points.size(); ++i) same = stored.points[i].id == spec.points[i].id;
    if (!same) {
      throw run::ConfigError("--out " + root_.string() + ": holds another sweep (" + spec_file().string() +
                             " names other points); choose another --out, or run `cflow sweep " + root_.string() +
                             "` to continue that one");
    }
  }
  for (const Point& p : spec.points) fs::create_directories(point_dir(p));
  if (!fs::equivalent(spec_file(), spec.source, ec)) {
    // The copy keeps the name, which came from the file's stem when the spec gave none (a JSON
    // string is a TOML basic string).
    const std::string name_line = spec.named ? "" : "name = " + nlohmann::json(spec.name).dump() + "\n";
    run::write_text_atomically(spec_file(), name_line + spec.text);
  }
  run::write_text_atomically(root_ / "sweep.json", describe(spec).dump(2) + "\n");
}

Spec SweepDir::load() const {
  std::error_code ec;
  if (!fs::exists(spec_file(), ec)) {
    throw run::ConfigError(root_.string() + ": not a sweep directory (no spec.toml); start one with `cflow sweep "
                           "SPEC --out " + root_.string() + "`");
  }
  return read_spec(spec_file());
}

PointStatus SweepDir::status(const Point& point) const {
  PointStatus status;
  std::error_code ec;
  const auto summary = read_json(run_dir(point) / "summary.json");
  const auto exit = read_json(exit_file(point));
  if (summary) status.steps_done = summary->value("steps_done", std::int64_t{0});
  if (exit && exit->contains("exit_code") && (*exit)["exit_code"].is_number_integer())
    status.exit_code = (*exit)["exit_code"].get<int>();
  if (fs::exists(lock_file(point), ec) && !PointLock(lock_file(point)).held()) {
    status.state = PointState::running;
  } else if (summary && summary->value("status", std::string()) == "completed" &&
             status.steps_done >= point.config.steps) {
    status.state = PointState::completed;
  } else if ((status.exit_code && *status.exit_code != 0 && *status.exit_code != 130 && *status.exit_code != 143) ||
             (summary && summary->value("status", std::string()) == "failed")) {
    status.state = PointState::failed;
    status.detail = exit ? exit->value("last_lines", std::string()) : summary->value("error", std::string());
  } else if (exit || fs::exists(run_dir(point), ec)) {
    status.state = PointState::interrupted;
  }
  return status;
}

std::string last_lines(const fs::path& file, std::size_t count) {
  std::ifstream in(file);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (const auto cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);  // progress redraws
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  return text;
}

PointLock::PointLock(const fs::path& file) {
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

PointLock::~PointLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace cflow::sweep
