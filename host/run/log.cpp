#include "cflow/run/log.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

namespace cflow {

namespace {

constexpr const char* kStepDataset = "step";
// About 8 KiB per chunk: small enough that a flush rewrites little, large enough that reading a
// long series touches few chunks.
constexpr std::int64_t kChunkBytes = 8192;
// Room reserved for the metadata a flush may write beyond the new chunks (chunk indices, object
// headers, the superblock's copy of the end of file).
constexpr std::uint64_t kMetadataReserveBytes = 64 * 1024;

// Owns one HDF5 identifier of any kind (file, dataset, dataspace, property list, type, attribute).
class Hid {
public:
  Hid() = default;
  explicit Hid(hid_t id) : id_(id) {}
  Hid(Hid&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Hid& operator=(Hid&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  void reset() {
    if (id_ >= 0) H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }

private:
  hid_t id_ = H5I_INVALID_HID;
};

// HDF5 prints its error stack to stderr by default; we report errors as exceptions instead.
void silence_hdf5_error_printing() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The outermost and innermost descriptions on HDF5's error stack: what failed and why.
std::string hdf5_error_cause() {
  struct Walk {
    std::string outermost, innermost;
  } walk;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned depth, const H5E_error2_t* error, void* data) -> herr_t {
        auto& w = *static_cast<Walk*>(data);
        std::string description = error->desc ? error->desc : "";
        if (depth == 0) w.outermost = description;
        w.innermost = std::move(description);
        return 0;
      },
      &walk);
  if (walk.innermost.empty()) return "no HDF5 error description";
  if (walk.outermost == walk.innermost) return walk.innermost;
  return walk.outermost + " (" + walk.innermost + ")";
}

// Throws "RunLog <file>: <subject>: <what>"; the subject (a series path, an attribute) may be empty.
[[noreturn]] void fail(const std::filesystem::path& file, std::string_view subject,
                       const std::string& what) {
  std::string message = "RunLog " + file.string();
  if (!subject.empty()) message += ": " + std::string(subject);
  throw std::runtime_error(message + ": " + what);
}

// Throws with HDF5's cause when an HDF5 call returned a negative id or status.
template <typename Result>
Result check(Result result, const std::filesystem::path& file, std::string_view subject,
             std::string_view call) {
  if (result < 0) fail(file, subject, std::string(call) + " failed: " + hdf5_error_cause());
  return result;
}

// The most dimensions a series may have: the step axis and up to 3 row dimensions.
constexpr int kMaxRank = 4;

// Values in one row of a series whose rows have `row_shape` (1 for a 1-D series).
std::int64_t row_length(std::span<const std::int64_t> row_shape) {
  std::int64_t length = 1;
  for (const std::int64_t extent : row_shape) length *= extent;
  return length;
}

std::string shape_text(std::span<const std::int64_t> row_shape) {
  std::string text = "[steps";
  for (const std::int64_t extent : row_shape) text += " x " + std::to_string(extent);
  return text + "]";
}

hsize_t rows_per_chunk(std::int64_t row_values, std::int64_t steps) {
  const std::int64_t row_bytes = row_values * std::int64_t{sizeof(double)};
  return static_cast<hsize_t>(std::clamp<std::int64_t>(kChunkBytes / row_bytes, 1,
                                                       std::max<std::int64_t>(steps, 1)));
}

// The row index of `step`, or a throw naming the valid range.
hsize_t row_of(const std::filesystem::path& file, std::string_view path, std::int64_t step,
               std::int64_t first_step, std::int64_t steps) {
  if (step < first_step || step >= first_step + steps) {
    fail(file, path,
         "step " + std::to_string(step) + " is outside the logged steps [" +
             std::to_string(first_step) + ", " + std::to_string(first_step + steps) + ")");
  }
  return static_cast<hsize_t>(step - first_step);
}

Hid file_access_properties(const std::filesystem::path& file) {
  Hid fapl(check(H5Pcreate(H5P_FILE_ACCESS), file, "", "H5Pcreate"));
  // SWMR needs the latest file format (checksummed metadata, SWMR-safe chunk indices).
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), file, "",
        "H5Pset_libver_bounds");
#if H5_VERSION_GE(1, 10, 7)
  // Lock where the file system supports it, carry on where it does not (NFS, Lustre).
  check(H5Pset_file_locking(fapl.get(), true, true), file, "", "H5Pset_file_locking");
#endif
  return fapl;
}

// An extensible, chunked dataset of `steps` rows of `row_shape` ([steps x row_shape...]); a chunk
// holds whole rows, so a row write touches one chunk.
Hid create_time_series(hid_t file_id, const std::filesystem::path& file, const std::string& path,
                       hid_t stored_type, std::span<const std::int64_t> row_shape, std::int64_t steps,
                       const double* fill_value) {
  const int rank = 1 + int(row_shape.size());
  hsize_t dims[kMaxRank] = {static_cast<hsize_t>(steps)}, max_dims[kMaxRank] = {H5S_UNLIMITED},
          chunk[kMaxRank] = {rows_per_chunk(row_length(row_shape), steps)};
  for (std::size_t i = 0; i < row_shape.size(); ++i)
    dims[i + 1] = max_dims[i + 1] = chunk[i + 1] = static_cast<hsize_t>(row_shape[i]);
  Hid space(check(H5Screate_simple(rank, dims, max_dims), file, path, "H5Screate_simple"));
  Hid dcpl(check(H5Pcreate(H5P_DATASET_CREATE), file, path, "H5Pcreate"));
  check(H5Pset_chunk(dcpl.get(), rank, chunk), file, path, "H5Pset_chunk");
  // Chunks are allocated as rows arrive; reads of never-written rows return the fill value.
  if (fill_value) {
    check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_DOUBLE, fill_value), file, path,
          "H5Pset_fill_value");
  }
  Hid lcpl(check(H5Pcreate(H5P_LINK_CREATE), file, path, "H5Pcreate"));
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), file, path,
        "H5Pset_create_intermediate_group");
  return Hid(check(H5Dcreate2(file_id, path.c_str(), stored_type, space.get(), lcpl.get(),
                              dcpl.get(), H5P_DEFAULT),
                   file, path, "H5Dcreate2"));
}

// Writes step numbers first_step + row for rows [from, to) of the `step` dataset.
void write_step_numbers(hid_t step_dataset, const std::filesystem::path& file,
                        std::int64_t first_step, std::int64_t from, std::int64_t to) {
  if (to <= from) return;
  std::vector<std::int64_t> numbers(static_cast<std::size_t>(to - from));
  std::iota(numbers.begin(), numbers.end(), first_step + from);
  const hsize_t start[1] = {static_cast<hsize_t>(from)};
  const hsize_t count[1] = {static_cast<hsize_t>(to - from)};
  Hid file_space(check(H5Dget_space(step_dataset), file, kStepDataset, "H5Dget_space"));
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
        file, kStepDataset, "H5Sselect_hyperslab");
  Hid memory_space(check(H5Screate_simple(1, count, nullptr), file, kStepDataset,
                         "H5Screate_simple"));
  check(H5Dwrite(step_dataset, H5T_NATIVE_INT64, memory_space.get(), file_space.get(),
                 H5P_DEFAULT, numbers.data()),
        file, kStepDataset, "H5Dwrite");
}

}  // namespace

std::string distance_series(std::string_view process_a, std::string_view process_b) {
  if (process_b < process_a) std::swap(process_a, process_b);
  return "distances/" + std::string(process_a) + "-" + std::string(process_b);
}

struct RunLog::State {
  // One declared time series and the handles that a row write reuses.
  struct Series {
    Hid dataset;
    Hid file_space;    // current extent; each write selects its row in it
    Hid row_space;     // memory space of one row (flat)
    std::vector<std::int64_t> row_shape;  // {} for a 1-D series
    std::int64_t row_values = 1;          // the product of row_shape
    std::int64_t chunk_rows = 1;
  };

  std::filesystem::path file;
  Hid file_id;
  Hid step_dataset;
  std::int64_t first_step = 0;
  std::int64_t steps = 0;
  bool swmr = false;
  std::map<std::string, Series, std::less<>> series;
  std::vector<double> padded_row;  // scratch for rows shorter than the series
  // Rows written since the last flush (first > last: none), and bytes of the `step` series not
  // yet flushed: what the next flush may add to the file.
  std::int64_t dirty_first = std::numeric_limits<std::int64_t>::max(), dirty_last = -1;
  std::uint64_t unflushed_step_bytes = 0;

  // The most the next flush can add to the file: every chunk the dirty rows touch, plus metadata.
  std::uint64_t flush_bound() const {
    std::uint64_t bytes = kMetadataReserveBytes + unflushed_step_bytes;
    if (dirty_last < dirty_first) return bytes;
    for (const auto& [path, s] : series) {
      const std::int64_t chunks = dirty_last / s.chunk_rows - dirty_first / s.chunk_rows + 1;
      bytes += std::uint64_t(chunks * s.chunk_rows * s.row_values) * sizeof(double);
    }
    return bytes;
  }

  // The file's descriptor (HDF5's sec2 driver) and its allocated end, HDF5's end of address space.
  std::pair<int, off_t> descriptor_and_end() const {
    void* handle = nullptr;
    check(H5Fget_vfd_handle(file_id.get(), H5P_DEFAULT, &handle), file, "", "H5Fget_vfd_handle");
    hsize_t end = 0;
    check(H5Fget_filesize(file_id.get(), &end), file, "", "H5Fget_filesize");
    return {*static_cast<int*>(handle), off_t(end)};
  }

  // A full disk must not reach HDF5 in the middle of a flush: the file would claim an end it never
  // got and no reader could open it. So the blocks the flush may need are allocated first; when
  // that fails the file is left as the last flush made it (readable, like after a crash; a resume
  // or `cflow repair` clears its open-for-writing mark) and nothing more is written to it.
  void reserve_for_flush() {
    const std::uint64_t bytes = flush_bound();
    const auto [fd, end] = descriptor_and_end();
    const int error = ::posix_fallocate(fd, end, off_t(bytes));
    if (error == 0) return;
    abandon();
    fail(file, "",
         "no room to write the last " + std::to_string(dirty_last - dirty_first + 1) + " rows (" +
             std::to_string(bytes / 1024) + " KiB): " + std::strerror(error) +
             "; the file keeps every row up to its previous flush");
  }

  // Drops every handle without letting HDF5 write again (see reserve_for_flush).
  void abandon() {
    for (auto& [path, s] : series) {
      s.dataset.release();
      s.file_space.release();
      s.row_space.release();
    }
    step_dataset.release();
    file_id.release();
  }

  // Gives back the blocks reserved beyond HDF5's end of file.
  void trim_reserve() const {
    const auto [fd, end] = descriptor_and_end();
    if (::ftruncate(fd, end) != 0) fail(file, "", std::string("ftruncate failed: ") + std::strerror(errno));
  }

  void require_open(std::string_view subject) const {
    if (!file_id.valid()) fail(file, subject, "the log is closed");
  }
  void require_declaration_phase(std::string_view subject) const {
    require_open(subject);
    if (swmr) fail(file, subject, "the layout is frozen once start_swmr() has been called");
  }

  // Opens the handles a row write needs for an existing dataset.
  Series attach(const std::string& path, Hid dataset) const {
    Series s;
    s.dataset = std::move(dataset);
    s.file_space = Hid(check(H5Dget_space(s.dataset.get()), file, path, "H5Dget_space"));
    const int rank = check(H5Sget_simple_extent_ndims(s.file_space.get()), file, path,
                           "H5Sget_simple_extent_ndims");
    hsize_t dims[kMaxRank] = {};
    if (rank < 1 || rank > kMaxRank) fail(file, path, "is not a time series of at most " + std::to_string(kMaxRank) + " dimensions");
    check(H5Sget_simple_extent_dims(s.file_space.get(), dims, nullptr), file, path,
          "H5Sget_simple_extent_dims");
    if (static_cast<std::int64_t>(dims[0]) != steps) {
      fail(file, path,
           "has " + std::to_string(dims[0]) + " rows but `step` has " + std::to_string(steps));
    }
    s.row_shape.assign(dims + 1, dims + rank);
    s.row_values = row_length(s.row_shape);
    Hid dcpl(check(H5Dget_create_plist(s.dataset.get()), file, path, "H5Dget_create_plist"));
    hsize_t chunk[kMaxRank] = {1};
    check(H5Pget_chunk(dcpl.get(), kMaxRank, chunk), file, path, "H5Pget_chunk");
    s.chunk_rows = std::max<std::int64_t>(std::int64_t(chunk[0]), 1);
    const hsize_t flat_row[1] = {static_cast<hsize_t>(s.row_values)};
    s.row_space = Hid(check(H5Screate_simple(1, flat_row, nullptr), file, path,
                            "H5Screate_simple"));
    return s;
  }

  Series& find(std::string_view path) {
    require_open(path);
    auto it = series.find(path);
    if (it == series.end()) fail(file, path, "unknown series (declare it first)");
    return it->second;
  }
};

void skip_hdf5_cleanup_at_exit() { H5dont_atexit(); }

RunLog::RunLog(std::unique_ptr<State> state) : state_(std::move(state)) {}
RunLog::RunLog(RunLog&&) noexcept = default;
RunLog& RunLog::operator=(RunLog&&) noexcept = default;

RunLog::~RunLog() {
  if (!state_) return;  // moved from
  try {
    close();
  } catch (const std::exception&) {
    // A destructor must not throw; callers who care call close() themselves.
  }
}

RunLog RunLog::create(const std::filesystem::path& file, std::int64_t steps,
                      std::int64_t first_step) {
  silence_hdf5_error_printing();
  if (steps < 0) fail(file, "", "the number of steps must not be negative");
  auto state = std::make_unique<State>();
  state->file = file;
  state->first_step = first_step;
  state->steps = steps;
  Hid fapl = file_access_properties(file);
  state->file_id = Hid(check(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                             file, "", "H5Fcreate"));
  state->step_dataset = create_time_series(state->file_id.get(), file, kStepDataset,
                                           H5T_STD_I64LE, {}, steps, nullptr);
  write_step_numbers(state->step_dataset.get(), file, first_step, 0, steps);
  state->unflushed_step_bytes = std::uint64_t(steps) * sizeof(std::int64_t);
  return RunLog(std::move(state));
}

RunLog RunLog::open_existing(const std::filesystem::path& file) {
  silence_hdf5_error_printing();
  auto state = std::make_unique<State>();
  state->file = file;
  Hid fapl = file_access_properties(file);
  state->file_id = Hid(H5Fopen(file.c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!state->file_id.valid()) {
    const std::string first_cause = hdf5_error_cause();
    // A writer that was killed leaves the file marked "open for SWMR writing"; clearing that mark
    // is what h5clear does. The property is HDF5's own (H5F_ACS_CLEAR_STATUS_FLAGS_NAME).
    hbool_t clear_status_flags = true;
    if (H5Pset(fapl.get(), "clear_status_flags", &clear_status_flags) >= 0) {
      state->file_id = Hid(H5Fopen(file.c_str(), H5F_ACC_RDWR, fapl.get()));
    }
    if (!state->file_id.valid()) fail(file, "", "H5Fopen failed: " + first_cause);
  }

  state->step_dataset =
      Hid(check(H5Dopen2(state->file_id.get(), kStepDataset, H5P_DEFAULT), file, kStepDataset,
                "H5Dopen2 (is this a RunLog file?)"));
  {
    Hid space(check(H5Dget_space(state->step_dataset.get()), file, kStepDataset, "H5Dget_space"));
    hsize_t rows = 0;
    if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(file, kStepDataset, "is not 1-D");
    check(H5Sget_simple_extent_dims(space.get(), &rows, nullptr), file, kStepDataset,
          "H5Sget_simple_extent_dims");
    state->steps = static_cast<std::int64_t>(rows);
    if (rows > 0) {
      const hsize_t start[1] = {0}, count[1] = {1};
      check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
            file, kStepDataset, "H5Sselect_hyperslab");
      Hid one(check(H5Screate_simple(1, count, nullptr), file, kStepDataset, "H5Screate_simple"));
      check(H5Dread(state->step_dataset.get(), H5T_NATIVE_INT64, one.get(), space.get(),
                    H5P_DEFAULT, &state->first_step),
            file, kStepDataset, "H5Dread");
    }
  }

  // Every dataset other than `step`, at any depth, is a series.
  std::vector<std::string> dataset_paths;
  check(H5Lvisit(
            state->file_id.get(), H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t root, const char* name, const H5L_info_t*, void* data) -> herr_t {
              Hid object(H5Oopen(root, name, H5P_DEFAULT));
              if (!object.valid()) return -1;
              if (H5Iget_type(object.get()) == H5I_DATASET && std::string_view(name) != kStepDataset) {
                static_cast<std::vector<std::string>*>(data)->emplace_back(name);
              }
              return 0;
            },
            &dataset_paths),
        file, "", "H5Lvisit");
  for (const std::string& path : dataset_paths) {
    Hid dataset(check(H5Dopen2(state->file_id.get(), path.c_str(), H5P_DEFAULT), file, path,
                      "H5Dopen2"));
    state->series.emplace(path, state->attach(path, std::move(dataset)));
  }
  return RunLog(std::move(state));
}

void RunLog::declare(std::string_view path, std::int64_t cols) {
  if (cols < 0) fail(state_->file, path, "the number of columns must not be negative");
  const std::int64_t shape[1] = {cols};
  declare(path, std::span<const std::int64_t>(shape, cols == 0 ? 0 : 1));
}

void RunLog::declare(std::string_view path, std::span<const std::int64_t> row_shape) {
  State& s = *state_;
  s.require_declaration_phase(path);
  if (int(row_shape.size()) >= kMaxRank || std::any_of(row_shape.begin(), row_shape.end(), [](std::int64_t n) { return n < 1; }))
    fail(s.file, path, "a row shape has at most " + std::to_string(kMaxRank - 1) + " extents, each at least 1, not " + shape_text(row_shape));
  if (path.empty() || path.front() == '/' || path.back() == '/' || path == kStepDataset) {
    fail(s.file, path, "a series path must be relative, non-empty and not `step`");
  }
  if (auto it = s.series.find(path); it != s.series.end()) {
    if (!std::ranges::equal(it->second.row_shape, row_shape))
      fail(s.file, path, "already has shape " + shape_text(it->second.row_shape) + ", not " + shape_text(row_shape));
    return;
  }
  const std::string name(path);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Hid dataset = create_time_series(s.file_id.get(), s.file, name, H5T_IEEE_F64LE, row_shape, s.steps,
                                   &nan);
  s.series.emplace(name, s.attach(name, std::move(dataset)));
}

void RunLog::grow(std::int64_t steps) {
  State& s = *state_;
  s.require_declaration_phase("");
  if (steps < s.steps) {
    fail(s.file, "",
         "cannot shrink from " + std::to_string(s.steps) + " to " + std::to_string(steps) +
             " steps");
  }
  if (steps == s.steps) return;
  const hsize_t step_dims[1] = {static_cast<hsize_t>(steps)};
  check(H5Dset_extent(s.step_dataset.get(), step_dims), s.file, kStepDataset, "H5Dset_extent");
  write_step_numbers(s.step_dataset.get(), s.file, s.first_step, s.steps, steps);
  s.unflushed_step_bytes += std::uint64_t(steps - s.steps) * sizeof(std::int64_t);
  for (auto& [path, series] : s.series) {
    hsize_t dims[kMaxRank] = {static_cast<hsize_t>(steps)};
    std::copy(series.row_shape.begin(), series.row_shape.end(), dims + 1);
    check(H5Dset_extent(series.dataset.get(), dims), s.file, path, "H5Dset_extent");
    series.file_space =
        Hid(check(H5Dget_space(series.dataset.get()), s.file, path, "H5Dget_space"));
  }
  s.steps = steps;
}

void RunLog::set_attribute(std::string_view name, std::string_view value) {
  State& s = *state_;
  const std::string attribute_name(name);
  const std::string what = "attribute '" + attribute_name + "'";
  s.require_declaration_phase(what);
  Hid type(check(H5Tcopy(H5T_C_S1), s.file, what, "H5Tcopy"));
  check(H5Tset_size(type.get(), H5T_VARIABLE), s.file, what, "H5Tset_size");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), s.file, what, "H5Tset_cset");
  Hid space(check(H5Screate(H5S_SCALAR), s.file, what, "H5Screate"));
  if (check(H5Aexists(s.file_id.get(), attribute_name.c_str()), s.file, what, "H5Aexists") > 0) {
    check(H5Adelete(s.file_id.get(), attribute_name.c_str()), s.file, what, "H5Adelete");
  }
  Hid attribute(check(H5Acreate2(s.file_id.get(), attribute_name.c_str(), type.get(),
                                 space.get(), H5P_DEFAULT, H5P_DEFAULT),
                      s.file, what, "H5Acreate2"));
  const std::string text(value);  // H5Awrite of a variable-length string wants a C string
  const char* c_text = text.c_str();
  check(H5Awrite(attribute.get(), type.get(), &c_text), s.file, what, "H5Awrite");
}

void RunLog::start_swmr() {
  State& s = *state_;
  s.require_declaration_phase("");
  check(H5Fstart_swmr_write(s.file_id.get()), s.file, "", "H5Fstart_swmr_write");
  s.swmr = true;
}

void RunLog::write(std::string_view path, std::int64_t step, std::span<const double> row) {
  State& s = *state_;
  State::Series& series = s.find(path);
  const std::size_t row_length = static_cast<std::size_t>(series.row_values);
  if (row.size() > row_length) {
    fail(s.file, path,
         "a row of " + std::to_string(row.size()) + " values does not fit in its rows of " +
             std::to_string(row_length) + " (shape " + shape_text(series.row_shape) + ")");
  }
  const hsize_t start[kMaxRank] = {row_of(s.file, path, step, s.first_step, s.steps)};
  s.dirty_first = std::min(s.dirty_first, std::int64_t(start[0]));
  s.dirty_last = std::max(s.dirty_last, std::int64_t(start[0]));
  hsize_t count[kMaxRank] = {1};
  std::copy(series.row_shape.begin(), series.row_shape.end(), count + 1);
  const double* values = row.data();
  if (row.size() < row_length) {
    s.padded_row.assign(row_length, std::numeric_limits<double>::quiet_NaN());
    std::copy(row.begin(), row.end(), s.padded_row.begin());
    values = s.padded_row.data();
  }
  check(H5Sselect_hyperslab(series.file_space.get(), H5S_SELECT_SET, start, nullptr, count,
                            nullptr),
        s.file, path, "H5Sselect_hyperslab");
  check(H5Dwrite(series.dataset.get(), H5T_NATIVE_DOUBLE, series.row_space.get(),
                 series.file_space.get(), H5P_DEFAULT, values),
        s.file, path, "H5Dwrite");
}

void RunLog::write(std::string_view path, std::int64_t step, double value) {
  write(path, step, std::span<const double>(&value, 1));
}

void RunLog::flush() {
  State& s = *state_;
  s.require_open("");
  s.reserve_for_flush();
  check(H5Fflush(s.file_id.get(), H5F_SCOPE_GLOBAL), s.file, "", "H5Fflush");
  s.dirty_first = std::numeric_limits<std::int64_t>::max();
  s.dirty_last = -1;
  s.unflushed_step_bytes = 0;
}

void RunLog::close() {
  State& s = *state_;
  if (!s.file_id.valid()) return;
  flush();
  s.trim_reserve();
  // The file closes only once no object in it is open, so release the datasets first.
  for (auto& [path, series] : s.series) {
    series.dataset.reset();
    series.file_space.reset();
    series.row_space.reset();
  }
  s.step_dataset.reset();
  const herr_t status = H5Fclose(s.file_id.release());
  check(status, s.file, "", "H5Fclose");
}

const std::filesystem::path& RunLog::file() const { return state_->file; }
std::int64_t RunLog::first_step() const { return state_->first_step; }
std::int64_t RunLog::steps() const { return state_->steps; }
bool RunLog::swmr() const { return state_->swmr; }
bool RunLog::contains(std::string_view path) const { return state_->series.contains(path); }

std::int64_t RunLog::columns(std::string_view path) const {
  auto it = state_->series.find(path);
  if (it == state_->series.end()) fail(state_->file, path, "unknown series");
  return it->second.row_shape.empty() ? 0 : it->second.row_values;
}

std::vector<std::int64_t> RunLog::row_shape(std::string_view path) const {
  auto it = state_->series.find(path);
  if (it == state_->series.end()) fail(state_->file, path, "unknown series");
  return it->second.row_shape;
}

std::string RunLog::attribute(std::string_view name) const {
  const State& s = *state_;
  const std::string attribute_name(name);
  const std::string what = "attribute '" + attribute_name + "'";
  s.require_open(what);
  Hid attribute(check(H5Aopen(s.file_id.get(), attribute_name.c_str(), H5P_DEFAULT), s.file, what,
                      "H5Aopen"));
  Hid type(check(H5Aget_type(attribute.get()), s.file, what, "H5Aget_type"));
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0) {
    fail(s.file, what, "is not a variable-length string");
  }
  char* text = nullptr;
  check(H5Aread(attribute.get(), type.get(), &text), s.file, what, "H5Aread");
  std::string value = text ? text : "";
  H5free_memory(text);
  return value;
}

}  // namespace cflow
