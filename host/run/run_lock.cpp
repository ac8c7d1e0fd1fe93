#include "host/run/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "host/run/config.h"
#include "host/run/provenance.h"

namespace cflow::run {

namespace {
std::string read_all(int fd) {
  std::string text;
  char buffer[256];
  ssize_t got = 0;
  off_t at = 0;
  while ((got = ::pread(fd, buffer, sizeof buffer, at)) > 0) {
    text.append(buffer, std::size_t(got));
    at += got;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}
}  // namespace

RunLock RunLock::acquire(const std::filesystem::path& dir, bool create) {
  std::error_code ec;
  const bool existed = std::filesystem::is_directory(dir, ec);
  if (!existed && !create) throw ConfigError("--resume " + dir.string() + ": no such directory");
  if (!existed) std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the run directory: " + ec.message());
  const std::filesystem::path file = dir / kLockFileName;
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(file.string() + ": cannot open the lock file: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int why = errno;
    const std::string holder = read_all(fd);
    ::close(fd);
    if (why == EWOULDBLOCK) {
      throw ConfigError(dir.string() + ": in use by another cflow run (process " +
                        (holder.empty() ? std::string("?") : holder) +
                        "); wait for it to end, stop it, or choose another --out");
    }
    throw Error(file.string() + ": cannot lock: " + std::strerror(why));
  }
  const std::string owner = std::to_string(::getpid()) + " on host " + host_name() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, owner.data(), owner.size(), 0) != ssize_t(owner.size())) {
    ::close(fd);
    throw Error(file.string() + ": cannot write the lock file: " + std::strerror(errno));
  }
  return RunLock(fd, dir, !existed);
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_), dir_(std::move(other.dir_)), created_(other.created_) {
  other.fd_ = -1;
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  std::error_code ec;
  if (created_) {
    auto entries = std::filesystem::directory_iterator(dir_, ec);
    const bool only_lock = !ec && std::distance(entries, std::filesystem::directory_iterator()) == 1;
    if (only_lock) {
      std::filesystem::remove(dir_ / kLockFileName, ec);
      std::filesystem::remove(dir_, ec);
    }
  }
  ::close(fd_);  // releases the flock
}

}  // namespace cflow::run
