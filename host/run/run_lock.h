#pragma once
// A run directory is owned by one process: an exclusive flock(2) on <dir>/.cflow.lock, taken before
// anything in the directory is looked at or written and released by the kernel when the process
// ends in any way (a SIGKILLed run leaves no stale lock). The file holds "pid@host" of the owner.
#include <filesystem>
#include <string>

namespace cflow::run {

inline constexpr const char* kLockFileName = ".cflow.lock";

class RunLock {
 public:
  // Locks `dir`, creating it first when `create` (else a missing `dir` is a ConfigError); throws
  // ConfigError naming the holder's pid and host when another process holds it, cflow::Error when
  // the lock file cannot be made. A directory the lock created and that holds nothing but the lock
  // file when the lock is released is removed again (a run that failed before writing anything).
  static RunLock acquire(const std::filesystem::path& dir, bool create);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&&) = delete;
  RunLock(const RunLock&) = delete;
  ~RunLock();

 private:
  RunLock(int fd, std::filesystem::path dir, bool created) : fd_(fd), dir_(std::move(dir)), created_(created) {}
  int fd_ = -1;
  std::filesystem::path dir_;
  bool created_ = false;
};

}  // namespace cflow::run
