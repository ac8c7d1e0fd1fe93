#include "cflow/run/log.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cflow {
namespace {

namespace fs = std::filesystem;

// ---- reading a log back with the plain HDF5 C API, independent of RunLog ----

struct Dataset {
  std::vector<hsize_t> dims;
  std::vector<double> values;  // row-major

  double at(std::size_t row, std::size_t col = 0) const {
    const std::size_t cols = dims.size() == 2 ? dims[1] : 1;
    return values.at(row * cols + col);
  }
};

// Owns an identifier of the reading side.
class ReadHandle {
public:
  explicit ReadHandle(hid_t id) : id_(id) {}
  ReadHandle(ReadHandle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  ReadHandle(const ReadHandle&) = delete;
  ReadHandle& operator=(const ReadHandle&) = delete;
  ~ReadHandle() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  hid_t get() const { return id_; }

private:
  hid_t id_;
};

// Opens `file` for reading; swmr_read also works on a file whose writer is still running or died.
ReadHandle open_for_reading(const fs::path& file, bool swmr_read) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const unsigned flags = H5F_ACC_RDONLY | (swmr_read ? H5F_ACC_SWMR_READ : 0u);
  ReadHandle file_id(H5Fopen(file.c_str(), flags, H5P_DEFAULT));
  if (file_id.get() < 0) throw std::runtime_error("cannot open " + file.string());
  return file_id;
}

Dataset read_dataset(hid_t file_id, const std::string& path) {
  ReadHandle dataset(H5Dopen2(file_id, path.c_str(), H5P_DEFAULT));
  if (dataset.get() < 0) throw std::runtime_error("cannot open " + path);
  ReadHandle space(H5Dget_space(dataset.get()));
  Dataset result;
  result.dims.resize(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space.get())));
  H5Sget_simple_extent_dims(space.get(), result.dims.data(), nullptr);
  std::size_t count = 1;
  for (hsize_t d : result.dims) count *= d;
  result.values.resize(count);
  if (count > 0 && H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           result.values.data()) < 0) {
    throw std::runtime_error("cannot read " + path);
  }
  return result;
}

// Every dataset in the file, by path.
std::map<std::string, Dataset> read_all(const fs::path& file, bool swmr_read) {
  const ReadHandle file_id = open_for_reading(file, swmr_read);
  std::vector<std::string> paths;
  H5Lvisit(
      file_id.get(), H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t root, const char* name, const H5L_info_t*, void* data) -> herr_t {
        const hid_t object = H5Oopen(root, name, H5P_DEFAULT);
        if (H5Iget_type(object) == H5I_DATASET) {
          static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        }
        H5Oclose(object);
        return 0;
      },
      &paths);
  std::map<std::string, Dataset> datasets;
  for (const auto& path : paths) datasets.emplace(path, read_dataset(file_id.get(), path));
  return datasets;
}

std::string read_root_string_attribute(const fs::path& file, const char* name) {
  const ReadHandle file_id = open_for_reading(file, false);
  const ReadHandle attribute(H5Aopen(file_id.get(), name, H5P_DEFAULT));
  const ReadHandle type(H5Aget_type(attribute.get()));
  char* text = nullptr;
  if (H5Aread(attribute.get(), type.get(), &text) < 0) {
    throw std::runtime_error("cannot read attribute");
  }
  std::string value = text;
  H5free_memory(text);
  return value;
}

// ---- helpers ----

// A fresh directory per test, removed afterwards.
class RunLogTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("cflow_run_log_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path file() const { return dir_ / kRunLogFileName; }

  fs::path dir_;
};

bool is_nan(double x) { return std::isnan(x); }

// Runs `action`, expecting a std::runtime_error whose message contains every one of `parts`.
void expect_error_mentioning(const std::function<void()>& action,
                             const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "no exception was thrown";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    for (const auto& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing in: " << message;
    }
  }
}

// Output and exit status of a shell command.
std::pair<std::string, int> run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string output;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) output += buffer.data();
  const int status = ::pclose(pipe);
  return {output, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// The value the SWMR tests write at `step`, recomputed by the reader processes.
double loss_at(std::int64_t step) { return 1.0 / static_cast<double>(step + 1); }

// The layout of a GD run with a central flow: a little of everything.
void declare_run_layout(RunLog& log, std::int64_t k_max) {
  for (const char* process : {"discrete", "central", "stable", "midpoint"}) {
    const std::string group = process;
    log.declare(group + "/train_loss");
    log.declare(group + "/effective_hessian_eigs", k_max);
    log.declare(group + "/opt.lr");
  }
  log.declare("central/predicted_loss");
  log.declare("central/predicted_variances", k_max);
  log.declare(distance_series("discrete", "central"));
  log.declare(distance_series("stable", "discrete"));
  log.declare("deltas", k_max);
}

// ---- layout, values, NaN fill ----

TEST_F(RunLogTest, WritesEveryDeclaredSeriesWithItsShapeValuesAndNanFill) {
  const std::int64_t steps = 6, first_step = 10, k_max = 3;
  const std::string config = R"({"opt": {"name": "gd", "lr": 0.02}, "note": "ν≈2"})";
  {
    RunLog log = RunLog::create(file(), steps, first_step);
    declare_run_layout(log, k_max);
    log.set_attribute("config", config);
    EXPECT_EQ(log.attribute("config"), config);
    log.start_swmr();
    EXPECT_TRUE(log.swmr());

    log.write("discrete/train_loss", 10, 0.5);
    log.write("discrete/train_loss", 11, 0.4);
    log.write("discrete/train_loss", 15, 0.1);  // the last step
    const std::vector<double> eigs = {2.1, 1.9, 1.6};
    log.write("discrete/effective_hessian_eigs", 11, eigs);
    const std::vector<double> two_eigs = {1.99, 1.7};  // fewer tracked than k_max
    log.write("central/effective_hessian_eigs", 12, two_eigs);
    log.write("deltas", 13, std::vector<double>{0.1, -0.2, 0.3});
    log.write("distances/central-discrete", 14, 0.25);
    log.flush();
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << "RunLog left HDF5 objects open";

  const auto datasets = read_all(file(), /*swmr_read=*/false);
  std::vector<std::string> expected_paths = {"step", "central/predicted_loss",
                                             "central/predicted_variances", "deltas",
                                             "distances/central-discrete",
                                             "distances/discrete-stable"};
  for (const char* process : {"discrete", "central", "stable", "midpoint"}) {
    for (const char* name : {"train_loss", "effective_hessian_eigs", "opt.lr"}) {
      expected_paths.push_back(std::string(process) + "/" + name);
    }
  }
  ASSERT_EQ(datasets.size(), expected_paths.size());
  for (const auto& path : expected_paths) {
    ASSERT_TRUE(datasets.contains(path)) << path;
    const Dataset& d = datasets.at(path);
    const bool two_d = path.ends_with("eigs") || path.ends_with("variances") || path == "deltas";
    const std::vector<hsize_t> expected_dims =
        two_d ? std::vector<hsize_t>{steps, k_max} : std::vector<hsize_t>{steps};
    EXPECT_EQ(d.dims, expected_dims) << path;
  }

  const Dataset& step = datasets.at("step");
  for (std::int64_t row = 0; row < steps; ++row) EXPECT_EQ(step.at(row), first_step + row);

  const Dataset& loss = datasets.at("discrete/train_loss");
  EXPECT_EQ(loss.at(0), 0.5);
  EXPECT_EQ(loss.at(1), 0.4);
  EXPECT_TRUE(is_nan(loss.at(2)) && is_nan(loss.at(3)) && is_nan(loss.at(4)));
  EXPECT_EQ(loss.at(5), 0.1);

  const Dataset& eigs = datasets.at("discrete/effective_hessian_eigs");
  EXPECT_EQ(eigs.at(1, 0), 2.1);
  EXPECT_EQ(eigs.at(1, 2), 1.6);
  for (std::size_t row : {0u, 2u, 3u, 4u, 5u}) {
    for (std::size_t col = 0; col < 3; ++col) EXPECT_TRUE(is_nan(eigs.at(row, col)));
  }
  const Dataset& central_eigs = datasets.at("central/effective_hessian_eigs");
  EXPECT_EQ(central_eigs.at(2, 0), 1.99);
  EXPECT_EQ(central_eigs.at(2, 1), 1.7);
  EXPECT_TRUE(is_nan(central_eigs.at(2, 2)));  // the untracked column stays NaN

  EXPECT_EQ(datasets.at("deltas").at(3, 1), -0.2);
  EXPECT_EQ(datasets.at("distances/central-discrete").at(4), 0.25);

  for (const char* untouched : {"stable/train_loss", "central/predicted_variances",
                                "midpoint/opt.lr", "distances/discrete-stable"}) {
    for (double value : datasets.at(untouched).values) EXPECT_TRUE(is_nan(value)) << untouched;
  }
  EXPECT_EQ(read_root_string_attribute(file(), "config"), config);
}

TEST_F(RunLogTest, OverwritingARowWithFewerValuesResetsTheRestToNan) {
  {
    RunLog log = RunLog::create(file(), 2);
    log.declare("central/predicted_variances", 3);
    log.write("central/predicted_variances", 0, std::vector<double>{1, 2, 3});
    log.write("central/predicted_variances", 0, std::vector<double>{4});
  }
  const Dataset d = read_all(file(), false).at("central/predicted_variances");
  EXPECT_EQ(d.at(0, 0), 4);
  EXPECT_TRUE(is_nan(d.at(0, 1)) && is_nan(d.at(0, 2)));
}

TEST(RunLogNames, DistanceSeriesOrdersProcessesAlphabetically) {
  EXPECT_EQ(distance_series("discrete", "central"), "distances/central-discrete");
  EXPECT_EQ(distance_series("central", "discrete"), "distances/central-discrete");
  EXPECT_EQ(distance_series("stable", "midpoint"), "distances/midpoint-stable");
}

// ---- errors ----

TEST_F(RunLogTest, BadWritesAndDeclarationsThrowNamingFileAndSeries) {
  RunLog log = RunLog::create(file(), 5, 100);
  log.declare("discrete/train_loss");
  log.declare("discrete/effective_hessian_eigs", 2);
  log.declare("discrete/train_loss");  // the same again is fine
  const std::string file_name = file().string();

  expect_error_mentioning([&] { log.write("discrete/test_loss", 100, 1.0); },
                          {file_name, "discrete/test_loss", "unknown series"});
  expect_error_mentioning([&] { log.write("discrete/train_loss", 99, 1.0); },
                          {file_name, "discrete/train_loss", "step 99", "[100, 105)"});
  expect_error_mentioning([&] { log.write("discrete/train_loss", 105, 1.0); },
                          {"step 105", "[100, 105)"});
  expect_error_mentioning(
      [&] { log.write("discrete/effective_hessian_eigs", 100, std::vector<double>{1, 2, 3}); },
      {file_name, "discrete/effective_hessian_eigs", "3 values", "rows of 2 (shape [steps x 2])"});
  expect_error_mentioning([&] { log.write("discrete/train_loss", 100, std::vector<double>{1, 2}); },
                          {"2 values", "rows of 1 (shape [steps])"});
  expect_error_mentioning([&] { log.declare("discrete/train_loss", 4); },
                          {"discrete/train_loss", "already has shape [steps], not [steps x 4]"});
  expect_error_mentioning([&] { log.declare("step"); }, {"not `step`"});
  expect_error_mentioning([&] { log.declare("/deltas"); }, {"relative"});
  expect_error_mentioning([&] { log.declare("deltas", -1); }, {"columns"});
  expect_error_mentioning([&] { log.grow(3); }, {"shrink"});
  EXPECT_THROW(log.columns("nope"), std::runtime_error);

  log.start_swmr();
  expect_error_mentioning([&] { log.declare("deltas", 2); }, {file_name, "deltas", "start_swmr"});
  expect_error_mentioning([&] { log.set_attribute("config", "{}"); }, {"config", "start_swmr"});
  expect_error_mentioning([&] { log.start_swmr(); }, {"start_swmr"});
  log.write("discrete/train_loss", 104, 1.0);  // still writable after the errors

  log.close();
  expect_error_mentioning([&] { log.write("discrete/train_loss", 100, 1.0); }, {"closed"});
  EXPECT_EQ(log.columns("discrete/effective_hessian_eigs"), 2);  // accessors outlive the file
}

TEST_F(RunLogTest, HdfFailuresBecomeQuietExceptionsNamingTheFile) {
  const fs::path missing = dir_ / "missing" / "data.h5";
  const fs::path not_hdf5 = dir_ / "not_hdf5.h5";
  { std::FILE* f = std::fopen(not_hdf5.c_str(), "w"); std::fputs("plain text", f); std::fclose(f); }

  ::testing::internal::CaptureStderr();
  expect_error_mentioning([&] { (void)RunLog::open_existing(missing); }, {missing.string(), "H5Fopen"});
  expect_error_mentioning([&] { (void)RunLog::open_existing(not_hdf5); }, {not_hdf5.string(), "H5Fopen"});
  expect_error_mentioning([&] { (void)RunLog::create(missing, 3); }, {missing.string(), "H5Fcreate"});
  expect_error_mentioning([&] { (void)RunLog::create(file(), -1); }, {"negative"});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "HDF5 printed its error stack";
}

// ---- SWMR: readers in other processes while the writer holds the file ----

// Runs this test program again as an SWMR reader of `file` (RunLogSwmrReader below) and returns
// the number of rows it found written, or -1.
int rows_seen_by_reader_process(const fs::path& file, std::int64_t rows_expected) {
  const fs::path self = fs::read_symlink("/proc/self/exe");
  const auto [output, status] = run_command(
      "CFLOW_RUN_LOG_READER_FILE='" + file.string() + "' CFLOW_RUN_LOG_READER_ROWS=" +
      std::to_string(rows_expected) + " '" + self.string() +
      "' --gtest_filter=RunLogSwmrReader.ReadsFlushedRows 2>&1");
  const auto marker = output.find("rows visible: ");
  if (status != 0 || marker == std::string::npos) {
    ADD_FAILURE() << "reader process failed (status " << status << "):\n" << output;
    return -1;
  }
  return std::stoi(output.substr(marker + 14));
}

// Not a test of its own: the reader half of the SWMR tests, run in a separate process.
TEST(RunLogSwmrReader, ReadsFlushedRows) {
  const char* file = std::getenv("CFLOW_RUN_LOG_READER_FILE");
  const char* rows = std::getenv("CFLOW_RUN_LOG_READER_ROWS");
  if (!file || !rows) GTEST_SKIP() << "runs only as the reader process of RunLogSwmr tests";
  const ReadHandle file_id = open_for_reading(file, /*swmr_read=*/true);
  const Dataset loss = read_dataset(file_id.get(), "discrete/train_loss");
  const Dataset eigs = read_dataset(file_id.get(), "discrete/effective_hessian_eigs");
  const std::int64_t expected = std::stoll(rows);
  std::int64_t visible = 0;
  while (visible < static_cast<std::int64_t>(loss.dims[0]) && !is_nan(loss.at(visible))) {
    EXPECT_EQ(loss.at(visible), loss_at(visible));
    EXPECT_EQ(eigs.at(visible, 1), 2.0 * loss_at(visible));
    ++visible;
  }
  EXPECT_EQ(visible, expected);
  std::printf("rows visible: %lld\n", static_cast<long long>(visible));
}

bool python_has_h5py() {
  return run_command("/usr/bin/python3 -c 'import h5py' 2>/dev/null").second == 0;
}

void write_swmr_rows(RunLog& log, std::int64_t from, std::int64_t to) {
  for (std::int64_t step = from; step < to; ++step) {
    log.write("discrete/train_loss", step, loss_at(step));
    log.write("discrete/effective_hessian_eigs", step,
              std::vector<double>{3.0, 2.0 * loss_at(step)});
  }
}

void declare_swmr_layout(RunLog& log) {
  log.declare("discrete/train_loss");
  log.declare("discrete/effective_hessian_eigs", 2);
}

TEST_F(RunLogTest, ReaderProcessSeesFlushedRowsWhileTheWriterRuns) {
  RunLog log = RunLog::create(file(), 50);
  declare_swmr_layout(log);
  log.start_swmr();
  write_swmr_rows(log, 0, 3);
  log.flush();
  EXPECT_EQ(rows_seen_by_reader_process(file(), 3), 3);
  write_swmr_rows(log, 3, 7);
  log.flush();
  EXPECT_EQ(rows_seen_by_reader_process(file(), 7), 7);
}

TEST_F(RunLogTest, H5pyReaderSeesFlushedRowsWhileTheWriterRuns) {
  if (!python_has_h5py()) GTEST_SKIP() << "/usr/bin/python3 has no h5py";
  RunLog log = RunLog::create(file(), 20, 5);
  declare_swmr_layout(log);
  log.set_attribute("config", R"({"steps": 20})");
  log.start_swmr();
  write_swmr_rows(log, 5, 9);
  log.flush();
  const std::string script =
      "import h5py, numpy as np, sys\n"
      "with h5py.File(sys.argv[1], 'r', libver='latest', swmr=True) as f:\n"
      "    loss = f['discrete/train_loss'][:]\n"
      "    eigs = f['discrete/effective_hessian_eigs']\n"
      "    print(f.attrs['config'], f['step'][0], f['step'][-1], eigs.shape,\n"
      "          np.count_nonzero(np.isfinite(loss)), ' '.join(repr(float(x)) for x in loss[:4]))\n";
  const auto [output, status] =
      run_command("/usr/bin/python3 -c \"" + script + "\" '" + file().string() + "' 2>&1");
  ASSERT_EQ(status, 0) << output;
  EXPECT_EQ(output, R"({"steps": 20} 5 24 (20, 2) 4 0.16666666666666666 0.14285714285714285 )"
                    "0.125 0.1111111111111111\n");
}

// ---- crash and resume ----

TEST_F(RunLogTest, KilledWriterLeavesReadableFileThatCanBeResumed) {
  // The writer dies by SIGKILL right after a flush and an unflushed write: no destructor, no close.
  EXPECT_EXIT(
      {
        RunLog log = RunLog::create(file(), 6);
        declare_swmr_layout(log);
        log.set_attribute("config", "{}");
        log.start_swmr();
        write_swmr_rows(log, 0, 3);
        log.flush();
        write_swmr_rows(log, 3, 4);
        std::raise(SIGKILL);
      },
      ::testing::KilledBySignal(SIGKILL), "");

  const auto after_crash = read_all(file(), /*swmr_read=*/true);
  const Dataset& loss = after_crash.at("discrete/train_loss");
  ASSERT_EQ(loss.dims, std::vector<hsize_t>{6});
  for (std::int64_t row = 0; row < 3; ++row) EXPECT_EQ(loss.at(row), loss_at(row));
  for (std::int64_t row = 4; row < 6; ++row) EXPECT_TRUE(is_nan(loss.at(row)));

  // Resume at step 3 with a longer run and one more series.
  {
    RunLog log = RunLog::open_existing(file());
    EXPECT_EQ(log.steps(), 6);
    EXPECT_EQ(log.first_step(), 0);
    EXPECT_FALSE(log.swmr());
    EXPECT_EQ(log.columns("discrete/effective_hessian_eigs"), 2);
    EXPECT_EQ(log.attribute("config"), "{}");
    log.grow(9);
    declare_swmr_layout(log);  // the same declarations as a fresh run: no-ops
    log.declare("central/train_loss");
    log.start_swmr();
    write_swmr_rows(log, 3, 8);
    log.write("central/train_loss", 8, 0.5);
    log.close();
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0) << "RunLog left HDF5 objects open";
  const auto resumed = read_all(file(), /*swmr_read=*/false);  // closed cleanly: plain read works
  const Dataset& resumed_loss = resumed.at("discrete/train_loss");
  ASSERT_EQ(resumed_loss.dims, std::vector<hsize_t>{9});
  for (std::int64_t row = 0; row < 8; ++row) EXPECT_EQ(resumed_loss.at(row), loss_at(row));
  EXPECT_TRUE(is_nan(resumed_loss.at(8)));
  EXPECT_EQ(resumed.at("discrete/effective_hessian_eigs").dims, (std::vector<hsize_t>{9, 2}));
  EXPECT_TRUE(is_nan(resumed.at("discrete/effective_hessian_eigs").at(8, 1)));
  const Dataset& central = resumed.at("central/train_loss");
  EXPECT_EQ(central.at(8), 0.5);
  EXPECT_TRUE(is_nan(central.at(0)));
  const Dataset& step = resumed.at("step");
  for (std::int64_t row = 0; row < 9; ++row) EXPECT_EQ(step.at(row), row);
}

TEST_F(RunLogTest, ReopenedCleanFileContinuesAtAStepWithItsLayout) {
  {
    RunLog log = RunLog::create(file(), 4, 20);
    declare_swmr_layout(log);
    log.start_swmr();
    write_swmr_rows(log, 20, 22);
  }
  {
    RunLog log = RunLog::open_existing(file());
    EXPECT_EQ(log.first_step(), 20);
    EXPECT_TRUE(log.contains("discrete/train_loss"));
    EXPECT_FALSE(log.contains("step"));
    expect_error_mentioning([&] { log.declare("discrete/effective_hessian_eigs", 3); },
                            {"already has shape [steps x 2], not [steps x 3]"});
    log.start_swmr();
    write_swmr_rows(log, 22, 24);
  }
  const Dataset loss = read_all(file(), false).at("discrete/train_loss");
  for (std::int64_t row = 0; row < 4; ++row) EXPECT_EQ(loss.at(row), loss_at(20 + row));
}

// A series with a row shape of two extents ([steps x K x C]): rows go in row-major order, a short
// row is NaN-padded, the shape survives a reopen and a grow, and a bad shape is refused.
TEST_F(RunLogTest, ThreeDimensionalSeriesKeepTheirRowShapeThroughAResume) {
  const std::int64_t shape[2] = {2, 3};
  {
    RunLog log = RunLog::create(file(), 2);
    log.declare("discrete/outputs", shape);
    log.start_swmr();
    log.write("discrete/outputs", 0, std::vector<double>{0, 1, 2, 10, 11, 12});
    log.write("discrete/outputs", 1, std::vector<double>{5});
  }
  {
    RunLog log = RunLog::open_existing(file());
    EXPECT_EQ(log.row_shape("discrete/outputs"), (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(log.columns("discrete/outputs"), 6);
    log.declare("discrete/outputs", shape);  // the same shape again: nothing happens
    const std::int64_t other[2] = {3, 2}, empty[2] = {2, 0};
    expect_error_mentioning([&] { log.declare("discrete/outputs", other); },
                            {"already has shape [steps x 2 x 3], not [steps x 3 x 2]"});
    expect_error_mentioning([&] { log.declare("central/outputs", empty); }, {"at least 1", "[steps x 2 x 0]"});
    log.grow(3);
    log.start_swmr();
    log.write("discrete/outputs", 2, std::vector<double>{7, 7, 7, 7, 7, 7});
  }
  const Dataset outputs = read_all(file(), false).at("discrete/outputs");
  EXPECT_EQ(outputs.dims, (std::vector<hsize_t>{3, 2, 3}));
  EXPECT_EQ(outputs.values[3], 10);  // row 0, example 1, class 0
  EXPECT_EQ(outputs.values[6], 5);
  for (int j = 7; j < 12; ++j) EXPECT_TRUE(std::isnan(outputs.values[j])) << j;
  EXPECT_EQ(outputs.values[17], 7);
}

}  // namespace
}  // namespace cflow
