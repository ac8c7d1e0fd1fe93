#include "host/run/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <regex>

#include "cflow/runtime/error.h"
#include "cflow/runtime/nvtx.h"

namespace cflow::run {

namespace {

static_assert(std::endian::native == std::endian::little, "checkpoint files are written little-endian");

constexpr char kMagic[8] = {'C', 'F', 'L', 'O', 'W', 'C', 'K', '1'};
constexpr int kFormat = 1;

class Fnv1a {
 public:
  void add(const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) hash_ = (hash_ ^ p[i]) * 1099511628211ULL;
  }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 14695981039346656037ULL;
};

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw Error(file.string() + ": " + what);
}

[[noreturn]] void fail_errno(const std::filesystem::path& file, const std::string& call) {
  fail(file, call + " failed: " + std::strerror(errno));
}

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void write_all(int fd, const void* data, std::size_t bytes, const std::filesystem::path& file) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t written = ::write(fd, p, bytes);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail_errno(file, "write");
    }
    p += written;
    bytes -= static_cast<std::size_t>(written);
  }
}

void fsync_folder(const std::filesystem::path& folder) {
  Fd fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY));
  if (fd.get() >= 0) ::fsync(fd.get());  // best effort: some file systems refuse it for folders
}

// Writes `file` through `temporary` in the same folder: `fill` writes the contents to the open
// descriptor, then fsync and rename make the file appear whole or not at all. On any failure (a full
// disk, say) the temporary file is removed before the error propagates.
void write_through_temporary(const std::filesystem::path& file, const std::filesystem::path& temporary,
                             const std::function<void(int fd)>& fill) {
  try {
    Fd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) fail_errno(temporary, "open");
    fill(fd.get());
    if (::fsync(fd.get()) != 0) fail_errno(temporary, "fsync");
    if (::close(fd.release()) != 0) fail_errno(temporary, "close");
    if (::rename(temporary.c_str(), file.c_str()) != 0) fail_errno(file, "rename");
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(temporary, ec);
    throw;
  }
  fsync_folder(file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path());
}

}  // namespace

std::optional<std::int64_t> checkpoint_step(const std::filesystem::path& file) {
  static const std::regex name("step-([0-9]+)\\.ckpt");
  std::smatch match;
  const std::string base = file.filename().string();
  if (!std::regex_match(base, match, name)) return std::nullopt;
  return std::stoll(match[1].str());
}

std::uint64_t fnv1a(std::string_view bytes) {
  Fnv1a hash;
  hash.add(bytes.data(), bytes.size());
  return hash.value();
}

std::filesystem::path checkpoint_path(const std::filesystem::path& folder, std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%09lld.ckpt", static_cast<long long>(step));
  return folder / name;
}

std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& folder) {
  std::vector<std::pair<std::int64_t, std::filesystem::path>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (const auto step = checkpoint_step(entry.path()); step && entry.is_regular_file())
      found.emplace_back(*step, entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::filesystem::path> files;
  for (auto& [step, path] : found) files.push_back(std::move(path));
  return files;
}

std::filesystem::path write_checkpoint(const std::filesystem::path& folder, const Checkpoint& checkpoint,
                                       const nlohmann::json& meta, int keep,
                                       const std::vector<std::int64_t>& pinned) {
  CFLOW_NVTX_RANGE("checkpoint");
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) fail(folder, "cannot create the folder: " + ec.message());
  const std::filesystem::path file = checkpoint_path(folder, checkpoint.step);

  nlohmann::json header{{"format", kFormat}, {"step", checkpoint.step}, {"meta", meta}, {"notes", checkpoint.notes}};
  header["arrays"] = nlohmann::json::array();
  for (const auto& [name, values] : checkpoint.arrays)
    header["arrays"].push_back({{"name", name}, {"length", values.size()}});
  const std::string header_text = header.dump();
  const std::uint64_t header_length = header_text.size();

  const std::filesystem::path temporary =
      folder / (".step-" + std::to_string(checkpoint.step) + ".ckpt.tmp-" + std::to_string(::getpid()));
  write_through_temporary(file, temporary, [&](int fd) {
    Fnv1a checksum;
    auto put = [&](const void* data, std::size_t bytes) {
      checksum.add(data, bytes);
      write_all(fd, data, bytes, temporary);
    };
    put(kMagic, sizeof kMagic);
    put(&header_length, sizeof header_length);
    put(header_text.data(), header_text.size());
    for (const auto& [name, values] : checkpoint.arrays) put(values.data(), values.size() * sizeof(double));
    const std::uint64_t sum = checksum.value();
    write_all(fd, &sum, sizeof sum, temporary);
  });

  std::vector<std::filesystem::path> files = list_checkpoints(folder);
  for (std::size_t i = 0; i + static_cast<std::size_t>(std::max(keep, 1)) < files.size(); ++i) {
    if (std::find(pinned.begin(), pinned.end(), checkpoint_step(files[i])) == pinned.end())
      std::filesystem::remove(files[i], ec);
  }
  return file;
}

void write_text_atomically(const std::filesystem::path& file, std::string_view text) {
  std::filesystem::path folder = file.parent_path();
  if (folder.empty()) folder = ".";
  std::string name = file.filename().string();
  name.insert(0, 1, '.');
  name += ".tmp-";
  name += std::to_string(::getpid());
  const std::filesystem::path temporary = folder / name;
  write_through_temporary(file, temporary, [&](int fd) { write_all(fd, text.data(), text.size(), temporary); });
}

CheckpointFile read_checkpoint(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot be opened for reading");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t fixed = sizeof kMagic + 2 * sizeof(std::uint64_t);
  if (bytes.size() < fixed) fail(file, "truncated: only " + std::to_string(bytes.size()) + " bytes");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) fail(file, "not a cflow checkpoint (wrong magic bytes)");
  std::uint64_t stored_sum = 0;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - sizeof stored_sum, sizeof stored_sum);
  Fnv1a checksum;
  checksum.add(bytes.data(), bytes.size() - sizeof stored_sum);
  if (checksum.value() != stored_sum) fail(file, "checksum mismatch: the file is damaged or truncated");
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data() + sizeof kMagic, sizeof header_length);
  if (header_length > bytes.size() - fixed) fail(file, "truncated inside its header");

  CheckpointFile result;
  result.file = file;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        bytes.begin() + sizeof kMagic + sizeof header_length,
        bytes.begin() + static_cast<std::ptrdiff_t>(sizeof kMagic + sizeof header_length + header_length));
    if (header.at("format").get<int>() != kFormat) {
      fail(file, "format " + header.at("format").dump() + ", this cflow reads format " + std::to_string(kFormat));
    }
    result.checkpoint.step = header.at("step").get<std::int64_t>();
    result.meta = header.value("meta", nlohmann::json::object());
    result.checkpoint.notes = header.value("notes", std::map<std::string, std::string>());
    std::size_t offset = sizeof kMagic + sizeof header_length + header_length;
    const std::size_t end = bytes.size() - sizeof stored_sum;
    for (const auto& array : header.at("arrays")) {
      const std::string name = array.at("name").get<std::string>();
      const std::uint64_t length = array.at("length").get<std::uint64_t>();
      if (length > (end - offset) / sizeof(double)) fail(file, "truncated inside array '" + name + "'");
      std::vector<double> values(length);
      std::memcpy(values.data(), bytes.data() + offset, length * sizeof(double));
      offset += length * sizeof(double);
      result.checkpoint.arrays.emplace_back(name, std::move(values));
    }
    if (offset != end) fail(file, std::to_string(end - offset) + " unexpected bytes after the arrays");
  } catch (const nlohmann::json::exception& e) {
    fail(file, std::string("damaged header: ") + e.what());
  }
  return result;
}

std::optional<CheckpointFile> latest_checkpoint(const std::filesystem::path& folder,
                                                std::vector<std::string>* skipped) {
  return checkpoint_at_or_before(folder, std::numeric_limits<std::int64_t>::max(), skipped);
}

std::optional<CheckpointFile> checkpoint_at_or_before(const std::filesystem::path& folder, std::int64_t step,
                                                      std::vector<std::string>* skipped) {
  std::vector<std::filesystem::path> files = list_checkpoints(folder);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (*checkpoint_step(*it) > step) continue;
    try {
      return read_checkpoint(*it);
    } catch (const Error& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

}  // namespace cflow::run
