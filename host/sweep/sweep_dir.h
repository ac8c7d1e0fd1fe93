#pragma once
// The sweep directory (docs/design.md §8):
//   spec.toml          the spec, copied: `cflow sweep DIR` and the Slurm tasks read this one
//   sweep.json         name, axes and every point (index, id, settings)
//   points/<id>/run/   the point's `cflow run` directory (config.json, data.h5, checkpoints/, summary.json)
//   points/<id>/log.txt    its stdout and stderr, every attempt appended
//   points/<id>/exit.json  the last attempt: exit code, signal, command, last lines of the log
//   points/<id>/lock   held (flock) while a process runs the point, so two never run it at once
//   sweep.sbatch, slurm/   the Slurm job array and its output (--slurm)
//   sweep.csv, plots/, report.html   from --collect
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "host/sweep/spec.h"

namespace cflow::sweep {

enum class PointState { pending, running, completed, interrupted, failed };
std::string to_string(PointState state);

struct PointStatus {
  PointState state = PointState::pending;
  std::optional<int> exit_code;  // of the last attempt
  std::int64_t steps_done = 0;
  std::string detail;            // failed: the last lines of the log
};

class SweepDir {
 public:
  explicit SweepDir(std::filesystem::path root) : root_(std::move(root)) {}
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path spec_file() const { return root_ / "spec.toml"; }
  std::filesystem::path point_dir(const Point& p) const { return root_ / "points" / p.id; }
  std::filesystem::path run_dir(const Point& p) const { return point_dir(p) / "run"; }
  std::filesystem::path log_file(const Point& p) const { return point_dir(p) / "log.txt"; }
  std::filesystem::path exit_file(const Point& p) const { return point_dir(p) / "exit.json"; }
  std::filesystem::path lock_file(const Point& p) const { return point_dir(p) / "lock"; }

  // Creates the folders and writes spec.toml and sweep.json. A directory that holds another sweep
  // (other point ids) is a run::ConfigError: a sweep directory belongs to one spec.
  void prepare(const Spec& spec) const;
  // The spec stored in the directory; a ConfigError when there is none.
  Spec load() const;

  // What the point's files say (and whether a process holds its lock).
  PointStatus status(const Point& point) const;

 private:
  std::filesystem::path root_;
};

// The last `count` non-empty lines of a text file.
std::string last_lines(const std::filesystem::path& file, std::size_t count);

// Holds a point's lock (flock) while alive; `held()` is false when another process holds it. A child
// given fd() keeps the lock held while it lives, even if the sweep that started it is killed.
class PointLock {
 public:
  explicit PointLock(const std::filesystem::path& file);
  ~PointLock();
  PointLock(const PointLock&) = delete;
  PointLock& operator=(const PointLock&) = delete;
  bool held() const { return fd_ >= 0; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace cflow::sweep
