#pragma once
// Helpers of the tests that drive the built `cflow` binary (test_run, test_mpi): a temporary folder,
// starting a program with its output in files, and reading back every dataset of a data.h5.
// Needs CFLOW_CLI_BINARY, the path of the built cflow.
#include <fcntl.h>
#include <hdf5.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cflow::cli_test {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("cflow_test_run_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Spawned {
  pid_t pid = -1;
  fs::path out, err;
};

// Starts `program` (found on PATH) with `args`, stdout and stderr into files in `dir`.
inline Spawned spawn(const std::string& program, const std::vector<std::string>& args, const fs::path& dir,
                     const std::string& tag) {
  Spawned s;
  s.out = dir / (tag + ".stdout");
  s.err = dir / (tag + ".stderr");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, s.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, s.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> all{program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawnp(&s.pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) ADD_FAILURE() << "cannot start " << program;
  return s;
}

// A tiny run: moons, MLP of width 8, float64, one thread (bitwise reproducible).
inline std::vector<std::string> tiny(std::vector<std::string> extra) {
  std::vector<std::string> args{"run",    "--data",    "moons", "--n",       "32",  "--n-test",
                                "32",     "--width",   "8",     "--lr",      "1.5", "--dtype",
                                "f64",    "--threads", "1",     "--device",  "cpu", "--runs",
                                "discrete,central,stable,midpoint"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Starts the built cflow.
inline Spawned spawn_cflow(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag) {
  return spawn(CFLOW_CLI_BINARY, args, dir, tag);
}

// Waits until `file` exists (at most a minute).
inline void wait_for(const fs::path& file) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(file) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

struct Result {
  int code = -1;
  std::string out, err;
};

inline Result finish(const Spawned& s) {
  Result r;
  r.code = wait_exit(s.pid);
  r.out = read_text(s.out);
  r.err = read_text(s.err);
  return r;
}

inline Result run_cflow(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag = "cflow") {
  return finish(spawn_cflow(args, dir, tag));
}


// Every dataset of an HDF5 file: its dimensions and raw bytes (native types).
struct Dataset {
  std::vector<hsize_t> dims;
  std::vector<char> bytes;
  bool is_float = false;
};
// A float64 dataset's values, row-major (a series of steps × m: row i at [i·m, (i + 1)·m)).
inline std::vector<double> column_of(const Dataset& ds) {
  std::vector<double> values(ds.bytes.size() / sizeof(double));
  std::memcpy(values.data(), ds.bytes.data(), ds.bytes.size());
  return values;
}

inline std::map<std::string, Dataset> read_all(const fs::path& file) {
  std::map<std::string, Dataset> out;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    ADD_FAILURE() << file << " cannot be opened";
    return out;
  }
  std::vector<std::string> names;
  H5Ovisit(
      f, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
        if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  for (const std::string& name : names) {
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    Dataset ds;
    ds.dims.resize(std::size_t(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, ds.dims.data(), nullptr);
    hid_t type = H5Dget_type(d);
    hid_t native = H5Tget_native_type(type, H5T_DIR_ASCEND);
    ds.is_float = H5Tget_class(type) == H5T_FLOAT;
    ds.bytes.resize(std::size_t(H5Sget_simple_extent_npoints(space)) * H5Tget_size(native));
    if (!ds.bytes.empty()) H5Dread(d, native, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds.bytes.data());
    H5Tclose(native);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(d);
    out[name] = std::move(ds);
  }
  H5Fclose(f);
  return out;
}

inline std::vector<double> as_doubles(const Dataset& ds) {
  std::vector<double> v(ds.bytes.size() / sizeof(double));
  std::memcpy(v.data(), ds.bytes.data(), ds.bytes.size());
  return v;
}


}  // namespace cflow::cli_test
