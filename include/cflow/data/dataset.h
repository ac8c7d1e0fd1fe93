#pragma once
// Data sets held in host memory, loaded and preprocessed the way the reference implementation
// (github centralflows/centralflows, src/datasets.py) prepares them, so that a cflow run trains on
// the same examples as a reference run.
//
// Choices, and where they come from:
// * Class subsets (reference: CIFAR10.make): a task keeps the first N classes of the data set, whose
//   labels 0..N-1 stay as they are, and the first n/N training examples of each class in file
//   order. A "binary" task keeps classes 0 and 1 and gives the network one output (C = 1).
//   The test split keeps, by default, every test example of those classes (the reference's choice);
//   with n_test given, the first n_test/N of each class. We require n to be a multiple of N rather
//   than silently rounding down as the reference does.
// * Order (reference: DatasetBuilder._shuffle): both splits are permuted after selection. The
//   reference always permutes with numpy's default_rng(0); we permute with DataSpec::seed. Full-batch
//   losses are means, so the order changes only rounding. For image sets the seed sets only the
//   order: which examples a task gets is fixed by the files, as in the reference.
// * Preprocessing of images (reference: CIFAR_MEAN / CIFAR_STD): pixels are scaled to [0, 1], then
//   each channel is standardized with the mean and (population) standard deviation of that channel
//   over the whole training file, all classes, and the same transform is applied to the test split.
//   The reference hard-codes exactly these statistics for CIFAR-10; we compute them from the file, so
//   Fashion-MNIST (which the reference does not have) gets the same treatment. On a class subset the
//   training inputs are therefore close to, not exactly, mean 0 / std 1 — as in the reference.
// * CIFAR-10 comes from the official binary batches, data_batch_1..5.bin then test_batch.bin. The
//   reference reads the Hugging Face copy, whose training split follows the order of the batches in
//   the original archive (not verified to be 1..5), so "the first n/N of each class" may pick other
//   (equally random) training images than the reference does.
// * Synthetic sets (reference: Moons) are not standardized. moons is scikit-learn's make_moons
//   geometry (the reference calls it with noise 0.2): n/2 (rounded down) points evenly spaced on the
//   upper arc (label 0), the rest on the lower arc (label 1), plus Gaussian noise; our random numbers
//   are not numpy's, so the points differ from the reference's. gaussian draws one mean per class
//   from N(0, I) and n/N points around each. Train and test come from independent random streams of
//   the same seed (and share the class means).
// * sorting (reference: Sorting, after Karpathy's minGPT demo): a random sequence of `length` tokens
//   in [0, vocab_size) followed by its sorted version, read as next-token prediction: the inputs
//   are the first 2·length − 1 tokens, the labels the last 2·length − 1, and the labels of the first
//   length − 1 positions (predicting the unsorted half) are kMaskedLabel, so only the sorted half
//   counts. The reference draws both splits from numpy's default_rng(0); ours come from the seed.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/runtime/error.h"
#include "cflow/engine/model.h"

namespace cflow {

// A data file that is missing, malformed or too small for the request. The message names the file,
// says what is wrong with it and what to do about it.
class DataError : public Error {
 public:
  using Error::Error;
};

inline constexpr const char* default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

// The classes a task keeps: the first `count` labels of the data set. A binary task keeps the first
// two and trains a single output, so the network has outputs() == 1.
struct ClassChoice {
  int count = 10;
  bool binary = false;

  int outputs() const { return binary ? 1 : count; }
};

// "binary" or an integer >= 2; throws DataError otherwise. to_string gives the same text back.
ClassChoice parse_class_choice(std::string_view text);
std::string to_string(const ClassChoice& classes);

// A label that does not count: the loss and the accuracy skip its position (sequences).
inline constexpr int kMaskedLabel = -1;

// n examples with labels. Inputs are one column per example, each example contiguous in NCHW order:
// a column-major [features() x n] matrix. Synthetic data has channels = dimension, height = width = 1;
// sequences have channels = tokens, each token id stored as a double.
struct Dataset {
  std::size_t n = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<double> inputs;
  std::vector<int> labels;  // [positions x n]: 0 .. classes.count - 1, or kMaskedLabel
  ClassChoice classes;
  int positions = 1;  // labels per example: 1 for classification, one per token for sequences

  std::size_t features() const { return static_cast<std::size_t>(channels) * height * width; }
  TensorShape shape() const { return {channels, height, width}; }  // the model's input shape
};

struct DataSplits {
  Dataset train;
  Dataset test;
};

// The data sets a run can name (DataSpec::name).
inline const std::vector<std::string> kDataSetNames{"fashion-mnist", "cifar10", "moons", "gaussian", "sorting"};

// Empty when --arch and --data go together, else why not: the transformer and the sorting task
// belong together (token ids are no images, and a sequence of next-token labels is no class).
std::string sequence_task_mismatch(const std::string& arch, const std::string& data);

struct DataSpec {
  std::string name = "fashion-mnist";  // one of kDataSetNames
  // Folder of the files; empty: default_fashion_mnist_dir for fashion-mnist. cifar10 needs one: the
  // folder cifar-10-batches-bin (or its parent) unpacked from cifar-10-binary.tar.gz.
  std::filesystem::path data_dir;
  std::size_t n_train = 1000;
  // Unset: every test example of the kept classes (image sets), or n_train (synthetic sets).
  std::optional<std::size_t> n_test;
  ClassChoice classes;
  std::uint64_t seed = 0;  // order of both splits; synthetic sets: also the points themselves
  double noise = 0.2;      // synthetic: std of the Gaussian noise around the arcs / class means
  int dim = 2;             // gaussian: input dimension
  int vocab_size = 4;      // sorting: tokens 0 .. vocab_size - 1 (the classes)
  int length = 8;          // sorting: tokens to sort
};

// The train and test splits that `spec` describes, selected, preprocessed and permuted as above.
DataSplits load_dataset(const DataSpec& spec);

// Targets for a loss as a column-major [classes.outputs() x n] matrix: one-hot for categorical tasks
// (mse and ce); binary tasks: +-1 for mse (label 1 -> +1), {0, 1} for ce. Sequences: [classes x
// positions x n], a masked position's target all zeros (it does not count).
std::vector<double> make_targets(const Dataset& data, LossKind loss);
// Which label positions count, [positions x n]: 1, or 0 for kMaskedLabel.
std::vector<double> counted_positions(const Dataset& data);

// ---- building blocks of load_dataset, one file each ----------------------------------------------

enum class DataSplit { train, test };

// Images exactly as a file stores them: bytes, each image contiguous in CHW order, labels as stored.
struct RawImages {
  std::string source;  // the file(s) they came from, for messages
  std::size_t n = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> pixels;
  std::vector<int> labels;
};

// host/data/idx.cpp. An IDX file of unsigned bytes (the MNIST format), raw or gzip-compressed.
struct IdxArray {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> values;  // row-major
};
IdxArray read_idx(const std::filesystem::path& file);
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each with or without .gz, from `dir`.
RawImages load_fashion_mnist(const std::filesystem::path& dir, DataSplit split);

// host/data/cifar.cpp. `dir` holds data_batch_1..5.bin and test_batch.bin, or is the parent of
// cifar-10-batches-bin.
RawImages load_cifar10(const std::filesystem::path& dir, DataSplit split);

// host/data/synthetic.cpp.
Dataset make_moons(std::size_t n, double noise, std::uint64_t seed, DataSplit split);
Dataset make_gaussian_clusters(std::size_t n_per_class, int classes, int dim, double noise,
                               std::uint64_t seed, DataSplit split);
// host/data/sorting.cpp.
Dataset make_sorting(std::size_t n, int vocab_size, int length, std::uint64_t seed, DataSplit split);

// data.cpp. Helpers shared by the loaders: a whole file's bytes, and the DataError "<file>: <what>".
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file);
[[noreturn]] void throw_data_error(const std::filesystem::path& file, const std::string& what);

// data.cpp. A generator for one purpose of one seed, e.g. random_stream(seed, "moons/test"): the
// purposes draw independent streams. mt19937_64 and seed_seq are fully specified by the standard, so
// the same seed gives the same bits with every compiler.
std::mt19937_64 random_stream(std::uint64_t seed, std::string_view purpose);
// Uniform on 0..bound-1 without modulo bias, the same bits with every standard library.
std::uint64_t uniform_below(std::uint64_t bound, std::mt19937_64& rng);

}  // namespace cflow
