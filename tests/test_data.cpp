// Data sets: the loaders read files in the real formats (written here, small) back exactly, reject
// damaged files with a DataError naming the file, and load_dataset selects, standardizes and orders
// examples as data.h documents.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "cflow/data/dataset.h"
#include "cflow/data/shard.h"

namespace cflow {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

void write_file(const fs::path& file, const Bytes& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes gzip(const Bytes& raw) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&stream, raw.size()));
  stream.next_in = const_cast<Bytef*>(raw.data());
  stream.avail_in = static_cast<uInt>(raw.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& values) {
  Bytes bytes{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  bytes.insert(bytes.end(), values.begin(), values.end());
  return bytes;
}

// Expects `action` to throw a DataError whose message contains each of `parts`.
template <typename Action>
void expect_data_error(Action action, const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "no DataError thrown";
  } catch (const DataError& error) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

// A small image set in the real file formats: per split, `per_class[c]` images of class c,
// interleaved over the classes (class order 0,1,2,.. repeating), with pixel bytes that identify the
// image: the first byte of image i is i (fewer than 256 images), pixel k of channel ch of an image of
// class c (at most 3) otherwise (7 i + 3 k + 50 ch) mod (256 - 60 c), so that classes differ in
// brightness and a class subset has statistics of its own.
struct FakeImages {
  int channels, height, width;
  std::vector<int> labels;
  Bytes pixels;

  std::size_t image_bytes() const { return static_cast<std::size_t>(channels) * height * width; }
  std::uint8_t pixel(std::size_t i, std::size_t j) const { return pixels[i * image_bytes() + j]; }
};

FakeImages fake_images(int channels, int height, int width, const std::vector<int>& per_class) {
  FakeImages images{channels, height, width, {}, {}};
  std::vector<int> left = per_class;
  while (std::any_of(left.begin(), left.end(), [](int k) { return k > 0; })) {
    for (std::size_t c = 0; c < left.size(); ++c) {
      if (left[c]-- > 0) images.labels.push_back(static_cast<int>(c));
    }
  }
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  for (std::size_t i = 0; i < images.labels.size(); ++i) {
    const std::size_t modulus = 256 - 60 * images.labels[i];
    for (int ch = 0; ch < channels; ++ch) {
      for (std::size_t k = 0; k < plane; ++k)
        images.pixels.push_back(static_cast<std::uint8_t>((7 * i + 3 * k + 50 * ch) % modulus));
    }
    images.pixels[i * channels * plane] = static_cast<std::uint8_t>(i);
  }
  return images;
}

void write_fashion_mnist(const fs::path& dir, const std::string& prefix, const FakeImages& images,
                         bool compressed) {
  const auto n = static_cast<std::uint32_t>(images.labels.size());
  const Bytes image_file =
      idx_bytes({n, static_cast<std::uint32_t>(images.height), static_cast<std::uint32_t>(images.width)},
                images.pixels);
  const Bytes label_file = idx_bytes({n}, Bytes(images.labels.begin(), images.labels.end()));
  const std::string suffix = compressed ? ".gz" : "";
  write_file(dir / (prefix + "-images-idx3-ubyte" + suffix), compressed ? gzip(image_file) : image_file);
  write_file(dir / (prefix + "-labels-idx1-ubyte" + suffix), compressed ? gzip(label_file) : label_file);
}

Bytes cifar_records(const FakeImages& images, std::size_t first, std::size_t count) {
  Bytes bytes;
  for (std::size_t i = first; i < first + count; ++i) {
    bytes.push_back(static_cast<std::uint8_t>(images.labels[i]));
    bytes.insert(bytes.end(), images.pixels.begin() + i * images.image_bytes(),
                 images.pixels.begin() + (i + 1) * images.image_bytes());
  }
  return bytes;
}

// Training images spread over the five batch files (batch b gets images [b n/5, (b+1) n/5)).
void write_cifar(const fs::path& dir, const FakeImages& train, const FakeImages& test) {
  ASSERT_EQ(train.labels.size() % 5, 0u) << "the five batch files hold equal shares";
  const std::size_t per_batch = train.labels.size() / 5;
  for (int b = 0; b < 5; ++b) {
    write_file(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"),
               cifar_records(train, b * per_batch, per_batch));
  }
  write_file(dir / "test_batch.bin", cifar_records(test, 0, test.labels.size()));
}

class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("cflow_test_data_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// ---- IDX / Fashion-MNIST ---------------------------------------------------------------------------

TEST_F(DataFiles, IdxReadsRawAndGzipExactly) {
  Bytes values(2 * 3 * 4);
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = static_cast<std::uint8_t>(255 - 11 * k);
  const Bytes file = idx_bytes({2, 3, 4}, values);
  write_file(dir_ / "raw", file);
  write_file(dir_ / "packed.gz", gzip(file));
  // gzip allows several members back to back; they decompress to the concatenation.
  Bytes two_members = gzip(Bytes(file.begin(), file.begin() + 7));
  const Bytes rest = gzip(Bytes(file.begin() + 7, file.end()));
  two_members.insert(two_members.end(), rest.begin(), rest.end());
  write_file(dir_ / "two-members.gz", two_members);
  for (const char* name : {"raw", "packed.gz", "two-members.gz"}) {
    const IdxArray array = read_idx(dir_ / name);
    EXPECT_EQ(array.dims, (std::vector<std::size_t>{2, 3, 4})) << name;
    EXPECT_EQ(array.values, values) << name;
  }
}

TEST_F(DataFiles, FashionMnistLoadsRawOrGzipInFileOrder) {
  const FakeImages train = fake_images(1, 3, 2, {2, 1, 3});
  write_fashion_mnist(dir_, "train", train, /*compressed=*/true);
  write_fashion_mnist(dir_, "t10k", fake_images(1, 3, 2, {1, 1}), /*compressed=*/false);
  const RawImages raw = load_fashion_mnist(dir_, DataSplit::train);
  EXPECT_EQ(raw.n, 6u);
  EXPECT_EQ(raw.channels, 1);
  EXPECT_EQ(raw.height, 3);
  EXPECT_EQ(raw.width, 2);
  EXPECT_EQ(raw.labels, train.labels);
  EXPECT_EQ(raw.pixels, train.pixels);
  EXPECT_EQ(load_fashion_mnist(dir_, DataSplit::test).labels, (std::vector<int>{0, 1}));
}

TEST_F(DataFiles, TruncatedIdxNamesTheFile) {
  write_file(dir_ / "short-idx3", idx_bytes({4, 2, 2}, Bytes(13, 9)));  // 16 values announced
  expect_data_error([&] { read_idx(dir_ / "short-idx3"); }, {(dir_ / "short-idx3").string(), "truncated"});
  write_file(dir_ / "long-idx3", idx_bytes({1, 2, 2}, Bytes(9, 1)));
  expect_data_error([&] { read_idx(dir_ / "long-idx3"); }, {(dir_ / "long-idx3").string(), "header says"});
}

TEST_F(DataFiles, TruncatedOrCorruptGzipNamesTheFile) {
  Bytes values(4000);
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = static_cast<std::uint8_t>(k * k % 251);
  const Bytes packed = gzip(idx_bytes({4000}, values));

  for (std::size_t kept : {std::size_t{5}, packed.size() / 2, packed.size() - 1}) {
    write_file(dir_ / "cut.gz", Bytes(packed.begin(), packed.begin() + kept));
    expect_data_error([&] { read_idx(dir_ / "cut.gz"); }, {(dir_ / "cut.gz").string(), "truncated"});
  }

  Bytes bad_crc = packed;
  bad_crc[bad_crc.size() - 6] ^= 0x5a;  // inside the CRC-32 of the trailer
  write_file(dir_ / "crc.gz", bad_crc);
  expect_data_error([&] { read_idx(dir_ / "crc.gz"); }, {(dir_ / "crc.gz").string(), "corrupt gzip"});

  Bytes bad_block = packed;
  bad_block[10] = 0xff;  // the first deflate block header: 0b11 is a reserved block type
  write_file(dir_ / "block.gz", bad_block);
  expect_data_error([&] { read_idx(dir_ / "block.gz"); }, {(dir_ / "block.gz").string(), "corrupt gzip"});
}

TEST_F(DataFiles, WrongMagicNumberIsRejected) {
  Bytes file = idx_bytes({2}, {1, 2});
  file[2] = 0x0d;  // float32 values
  write_file(dir_ / "floats", file);
  expect_data_error([&] { read_idx(dir_ / "floats"); }, {(dir_ / "floats").string(), "0x00000d01"});
  write_file(dir_ / "text", Bytes{'h', 'e', 'l', 'l', 'o', '!'});
  expect_data_error([&] { read_idx(dir_ / "text"); }, {(dir_ / "text").string(), "wrong IDX magic number"});

  // A labels file where the images file should be.
  write_fashion_mnist(dir_, "train", fake_images(1, 2, 2, {1, 1}), false);
  fs::copy_file(dir_ / "train-labels-idx1-ubyte", dir_ / "train-images-idx3-ubyte",
                fs::copy_options::overwrite_existing);
  expect_data_error([&] { load_fashion_mnist(dir_, DataSplit::train); },
                    {"train-images-idx3-ubyte", "0x00000803"});
}

TEST_F(DataFiles, FashionMnistLabelProblemsAreRejected) {
  write_fashion_mnist(dir_, "train", fake_images(1, 2, 2, {2, 2}), false);
  write_file(dir_ / "train-labels-idx1-ubyte", idx_bytes({3}, {0, 1, 0}));
  expect_data_error([&] { load_fashion_mnist(dir_, DataSplit::train); },
                    {"train-labels-idx1-ubyte", "3 labels", "4 images"});
  write_file(dir_ / "train-labels-idx1-ubyte", idx_bytes({4}, {0, 1, 10, 0}));
  expect_data_error([&] { load_fashion_mnist(dir_, DataSplit::train); },
                    {"train-labels-idx1-ubyte", "label 10 of example 2"});
}

TEST_F(DataFiles, MissingFashionMnistSaysHowToInstall) {
  expect_data_error([&] { load_fashion_mnist(dir_ / "nowhere", DataSplit::train); },
                    {"train-images-idx3-ubyte", "apt-get install dataset-fashion-mnist", "--data-dir"});
}

// ---- CIFAR-10 --------------------------------------------------------------------------------------

TEST_F(DataFiles, CifarLoadsBatchesInOrder) {
  const FakeImages train = fake_images(3, 32, 32, {3, 4, 3});
  const FakeImages test = fake_images(3, 32, 32, {1, 2});
  write_cifar(dir_, train, test);
  const RawImages raw = load_cifar10(dir_, DataSplit::train);
  EXPECT_EQ(raw.n, 10u);
  EXPECT_EQ(raw.channels, 3);
  EXPECT_EQ(raw.height, 32);
  EXPECT_EQ(raw.width, 32);
  EXPECT_EQ(raw.labels, train.labels);
  EXPECT_EQ(raw.pixels, train.pixels);
  // Also found from the folder that holds cifar-10-batches-bin.
  fs::create_directories(dir_ / "parent" / "cifar-10-batches-bin");
  write_file(dir_ / "parent" / "cifar-10-batches-bin" / "test_batch.bin", cifar_records(test, 0, 3));
  const RawImages raw_test = load_cifar10(dir_ / "parent", DataSplit::test);
  EXPECT_EQ(raw_test.labels, test.labels);
  EXPECT_EQ(raw_test.pixels, test.pixels);
}

TEST_F(DataFiles, CifarDamageIsRejected) {
  const FakeImages images = fake_images(3, 32, 32, {1, 1});
  Bytes records = cifar_records(images, 0, 2);
  write_file(dir_ / "test_batch.bin", Bytes(records.begin(), records.end() - 100));
  expect_data_error([&] { load_cifar10(dir_, DataSplit::test); },
                    {"test_batch.bin", "6046 bytes", "3073-byte records"});
  records[3073] = 10;  // the second record's label
  write_file(dir_ / "test_batch.bin", records);
  expect_data_error([&] { load_cifar10(dir_, DataSplit::test); },
                    {"test_batch.bin", "record 1 has label 10"});
  expect_data_error([&] { load_cifar10(dir_, DataSplit::train); },
                    {"data_batch_1.bin", "not found", "cifar-10-binary.tar.gz"});
  expect_data_error([&] { load_cifar10("", DataSplit::train); }, {"--data-dir"});
}

// ---- load_dataset on image files -------------------------------------------------------------------

// Per-channel mean and population standard deviation of the bytes of `images`.
std::pair<std::vector<double>, std::vector<double>> byte_moments(const FakeImages& images) {
  const std::size_t plane = static_cast<std::size_t>(images.height) * images.width;
  std::vector<double> mean(images.channels), stddev(images.channels);
  for (int c = 0; c < images.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (std::size_t i = 0; i < images.labels.size(); ++i) {
      for (std::size_t k = 0; k < plane; ++k) {
        const double b = images.pixel(i, c * plane + k);
        sum += b;
        sum_sq += b * b;
      }
    }
    const double count = static_cast<double>(images.labels.size() * plane);
    mean[c] = sum / count;
    stddev[c] = std::sqrt(sum_sq / count - mean[c] * mean[c]);
  }
  return {mean, stddev};
}

// Where each example of `data` sits in `file`: undoes the standardization with the statistics of
// `train_file` (which both splits must use) and looks for an image with exactly those bytes and label.
std::vector<std::size_t> file_indices(const Dataset& data, const FakeImages& file,
                                      const FakeImages& train_file) {
  const auto [mean, stddev] = byte_moments(train_file);
  const std::size_t plane = static_cast<std::size_t>(data.height) * data.width;
  std::vector<std::size_t> indices;
  for (std::size_t e = 0; e < data.n; ++e) {
    Bytes bytes;
    for (std::size_t j = 0; j < data.features(); ++j) {
      const double byte = data.inputs[e * data.features() + j] * stddev[j / plane] + mean[j / plane];
      EXPECT_NEAR(byte, std::round(byte), 1e-9) << "example " << e << " feature " << j;
      bytes.push_back(static_cast<std::uint8_t>(std::round(byte)));
    }
    std::size_t found = file.labels.size();
    for (std::size_t i = 0; i < file.labels.size(); ++i) {
      if (std::equal(bytes.begin(), bytes.end(), file.pixels.begin() + i * file.image_bytes()) &&
          data.labels[e] == file.labels[i]) {
        found = i;
      }
    }
    EXPECT_LT(found, file.labels.size()) << "example " << e << " is not in the file";
    indices.push_back(found);
  }
  return indices;
}

class ImageDataset : public DataFiles {
 protected:
  void SetUp() override {
    DataFiles::SetUp();
    train_ = fake_images(1, 4, 4, {12, 9, 10, 11});
    test_ = fake_images(1, 4, 4, {5, 6, 4, 3});
    write_fashion_mnist(dir_, "train", train_, true);
    write_fashion_mnist(dir_, "t10k", test_, false);
    spec_.name = "fashion-mnist";
    spec_.data_dir = dir_;
    spec_.n_train = 24;
    spec_.classes.count = 3;
  }
  FakeImages train_, test_;
  DataSpec spec_;
};

TEST_F(ImageDataset, KeepsTheFirstNOverCExamplesOfTheFirstClasses) {
  const DataSplits splits = load_dataset(spec_);
  ASSERT_EQ(splits.train.n, 24u);
  EXPECT_EQ(splits.train.features(), 16u);
  EXPECT_EQ(splits.train.inputs.size(), 24u * 16);
  std::map<int, int> counts;
  for (int label : splits.train.labels) ++counts[label];
  EXPECT_EQ(counts, (std::map<int, int>{{0, 8}, {1, 8}, {2, 8}}));

  // Exactly the first 8 of classes 0, 1, 2 in file order.
  std::set<std::size_t> expected;
  std::map<int, int> taken;
  for (std::size_t i = 0; i < train_.labels.size(); ++i) {
    if (train_.labels[i] < 3 && taken[train_.labels[i]]++ < 8) expected.insert(i);
  }
  const std::vector<std::size_t> picked = file_indices(splits.train, train_, train_);
  EXPECT_EQ(std::set<std::size_t>(picked.begin(), picked.end()), expected);

  // Test split: every test example of the kept classes (the reference's default).
  EXPECT_EQ(splits.test.n, 5u + 6 + 4);
  for (int label : splits.test.labels) EXPECT_LT(label, 3);
  spec_.n_test = 9;
  EXPECT_EQ(load_dataset(spec_).test.n, 9u);
}

TEST_F(ImageDataset, SeedSetsTheOrderNotTheExamples) {
  const DataSplits a = load_dataset(spec_);
  const DataSplits again = load_dataset(spec_);
  EXPECT_EQ(a.train.inputs, again.train.inputs);
  EXPECT_EQ(a.train.labels, again.train.labels);
  EXPECT_EQ(a.test.inputs, again.test.inputs);

  spec_.seed = 1;
  const DataSplits b = load_dataset(spec_);
  EXPECT_NE(a.train.labels, b.train.labels);
  EXPECT_NE(a.train.inputs, b.train.inputs);
  std::vector<std::size_t> picked_a = file_indices(a.train, train_, train_);
  std::vector<std::size_t> picked_b = file_indices(b.train, train_, train_);
  EXPECT_NE(picked_a, picked_b);
  std::sort(picked_a.begin(), picked_a.end());
  std::sort(picked_b.begin(), picked_b.end());
  EXPECT_EQ(picked_a, picked_b);
}

// Per-channel mean and population standard deviation of `data`.
std::pair<std::vector<double>, std::vector<double>> channel_moments(const Dataset& data) {
  const std::size_t plane = static_cast<std::size_t>(data.height) * data.width;
  std::vector<double> mean(data.channels), stddev(data.channels);
  for (int c = 0; c < data.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (std::size_t i = 0; i < data.n; ++i) {
      for (std::size_t k = 0; k < plane; ++k) {
        const double x = data.inputs[(i * data.channels + c) * plane + k];
        sum += x;
        sum_sq += x * x;
      }
    }
    const double count = static_cast<double>(data.n * plane);
    mean[c] = sum / count;
    stddev[c] = std::sqrt(sum_sq / count - mean[c] * mean[c]);
  }
  return {mean, stddev};
}

TEST_F(DataFiles, StandardizesChannelsWithTrainStatistics) {
  const FakeImages train = fake_images(3, 32, 32, {5, 5, 5});
  const FakeImages test = fake_images(3, 32, 32, {2, 2, 1});
  write_cifar(dir_, train, test);
  DataSpec spec;
  spec.name = "cifar10";
  spec.data_dir = dir_;
  spec.n_train = 10;
  spec.classes.count = 2;
  // Statistics of the whole training file, all classes: on this subset only near mean 0 / std 1.
  const DataSplits subset = load_dataset(spec);
  const auto [subset_mean, subset_stddev] = channel_moments(subset.train);
  EXPECT_GT(std::abs(subset_mean[0]), 1e-3);
  EXPECT_GT(std::abs(subset_stddev[0] - 1), 1e-3);
  // file_indices undoes the standardization with the training file's statistics: both splits used them.
  file_indices(subset.train, train, train);
  file_indices(subset.test, test, train);

  // When the subset is the whole file, exactly mean 0 / std 1.
  spec.n_train = 15;
  spec.classes.count = 3;
  const DataSplits all = load_dataset(spec);
  const auto [mean, stddev] = channel_moments(all.train);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(mean[c], 0.0, 1e-12) << c;
    EXPECT_NEAR(stddev[c], 1.0, 1e-12) << c;
  }
}

TEST_F(ImageDataset, RequestsTheDataCannotMeetAreRejected) {
  spec_.n_train = 30;  // 10 per class, but class 1 has only 9
  expect_data_error([&] { load_dataset(spec_); },
                    {"train-images-idx3-ubyte.gz", "class 1 has only 9", "lower n_train to at most 27"});
  spec_.n_train = 25;
  expect_data_error([&] { load_dataset(spec_); }, {"n_train=25", "multiple"});
  spec_.n_train = 24;
  spec_.classes.count = 11;
  expect_data_error([&] { load_dataset(spec_); }, {"10 classes"});
  spec_.classes = {4, true};
  expect_data_error([&] { load_dataset(spec_); }, {"binary"});
  spec_.classes.count = 3;
  spec_.classes.binary = false;
  spec_.n_test = 15;  // 5 per class; class 2 of the test file has only 4
  expect_data_error([&] { load_dataset(spec_); }, {"t10k-images-idx3-ubyte", "class 2 has only 4"});
  spec_.name = "mnist";
  expect_data_error([&] { load_dataset(spec_); }, {"unknown data set 'mnist'"});
}

// ---- classes and targets ---------------------------------------------------------------------------

TEST(ClassChoice, ParsesAndPrints) {
  const ClassChoice binary = parse_class_choice("binary");
  EXPECT_TRUE(binary.binary);
  EXPECT_EQ(binary.count, 2);
  EXPECT_EQ(binary.outputs(), 1);
  EXPECT_EQ(to_string(binary), "binary");
  const ClassChoice four = parse_class_choice("4");
  EXPECT_FALSE(four.binary);
  EXPECT_EQ(four.outputs(), 4);
  EXPECT_EQ(to_string(four), "4");
  for (const char* bad : {"1", "x", "3x", "", "-2"}) EXPECT_THROW(parse_class_choice(bad), DataError) << bad;
}

TEST_F(ImageDataset, BinaryTaskKeepsTwoClassesWithOneOutput) {
  spec_.classes = parse_class_choice("binary");
  spec_.n_train = 16;
  const DataSplits splits = load_dataset(spec_);
  EXPECT_TRUE(splits.train.classes.binary);
  EXPECT_EQ(std::count(splits.train.labels.begin(), splits.train.labels.end(), 1), 8);
  EXPECT_EQ(std::count(splits.train.labels.begin(), splits.train.labels.end(), 0), 8);
  EXPECT_EQ(splits.test.n, 5u + 6);

  const std::vector<double> mse = make_targets(splits.train, LossKind::mse);
  const std::vector<double> ce = make_targets(splits.train, LossKind::ce);
  ASSERT_EQ(mse.size(), 16u);
  ASSERT_EQ(ce.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(mse[i], splits.train.labels[i] == 1 ? 1.0 : -1.0);
    EXPECT_EQ(ce[i], splits.train.labels[i]);
  }
}

TEST(Targets, CategoricalTargetsAreOneHotColumns) {
  Dataset data;
  data.n = 3;
  data.labels = {2, 0, 1};
  data.classes.count = 3;
  const std::vector<double> expected{0, 0, 1, 1, 0, 0, 0, 1, 0};
  EXPECT_EQ(make_targets(data, LossKind::mse), expected);
  EXPECT_EQ(make_targets(data, LossKind::ce), expected);
}

// ---- synthetic -------------------------------------------------------------------------------------

TEST(Synthetic, MoonsLieOnTheArcsAndAreDeterministic) {
  const Dataset exact = make_moons(9, 0.0, 3, DataSplit::train);
  ASSERT_EQ(exact.n, 9u);
  EXPECT_EQ(exact.features(), 2u);
  EXPECT_EQ(exact.labels, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1, 1}));
  for (std::size_t i = 0; i < 9; ++i) {
    const double x = exact.inputs[2 * i], y = exact.inputs[2 * i + 1];
    const double cx = exact.labels[i] == 0 ? 0.0 : 1.0, cy = exact.labels[i] == 0 ? 0.0 : 0.5;
    EXPECT_NEAR(std::hypot(x - cx, y - cy), 1.0, 1e-12);
    EXPECT_GE(exact.labels[i] == 0 ? y - cy : cy - y, -1e-12);  // upper arc for class 0, lower for class 1
  }

  DataSpec spec;
  spec.name = "moons";
  spec.classes = parse_class_choice("binary");
  spec.n_train = 200;
  spec.n_test = 50;
  const DataSplits a = load_dataset(spec);
  EXPECT_EQ(a.train.n, 200u);
  EXPECT_EQ(a.train.inputs.size(), 400u);
  EXPECT_EQ(a.train.channels, 2);
  EXPECT_EQ(a.test.n, 50u);
  EXPECT_EQ(std::count(a.train.labels.begin(), a.train.labels.end(), 1), 100);
  EXPECT_EQ(load_dataset(spec).train.inputs, a.train.inputs);
  EXPECT_NE(make_moons(50, 0.2, 0, DataSplit::test).inputs, make_moons(50, 0.2, 0, DataSplit::train).inputs);
  spec.seed = 7;
  EXPECT_NE(load_dataset(spec).train.inputs, a.train.inputs);
  spec.classes.count = 3;
  spec.classes.binary = false;
  expect_data_error([&] { load_dataset(spec); }, {"moons has 2 classes"});
}

TEST(Synthetic, GaussianClustersShareMeansAcrossSplits) {
  DataSpec spec;
  spec.name = "gaussian";
  spec.classes.count = 4;
  spec.dim = 5;
  spec.noise = 0.01;
  spec.n_train = 400;
  const DataSplits a = load_dataset(spec);
  ASSERT_EQ(a.train.n, 400u);
  EXPECT_EQ(a.test.n, 400u);
  EXPECT_EQ(a.train.features(), 5u);
  EXPECT_EQ(a.train.inputs.size(), 2000u);
  // Class means of the two splits agree to within the noise.
  for (int c = 0; c < 4; ++c) {
    for (int k = 0; k < 5; ++k) {
      double train_sum = 0, test_sum = 0;
      int count = 0;
      for (std::size_t i = 0; i < 400; ++i) {
        if (a.train.labels[i] == c) {
          train_sum += a.train.inputs[i * 5 + k];
          ++count;
        }
        if (a.test.labels[i] == c) test_sum += a.test.inputs[i * 5 + k];
      }
      EXPECT_EQ(count, 100);
      EXPECT_NEAR(train_sum / 100, test_sum / 100, 0.01);
    }
  }
  EXPECT_NE(a.train.inputs, a.test.inputs);
  EXPECT_EQ(load_dataset(spec).train.inputs, a.train.inputs);
  spec.seed = 1;
  EXPECT_NE(load_dataset(spec).train.inputs, a.train.inputs);
}

// ---- the real Fashion-MNIST, when installed --------------------------------------------------------

TEST(FashionMnist, LoadsFourClassesFromTheDebianPackage) {
  if (!fs::exists(fs::path(default_fashion_mnist_dir) / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << default_fashion_mnist_dir
                 << " (apt-get install dataset-fashion-mnist)";
  }
  DataSpec spec;
  spec.n_train = 1000;
  spec.classes.count = 4;
  const DataSplits splits = load_dataset(spec);
  EXPECT_EQ(splits.train.n, 1000u);
  EXPECT_EQ(splits.train.channels, 1);
  EXPECT_EQ(splits.train.height, 28);
  EXPECT_EQ(splits.train.width, 28);
  EXPECT_EQ(splits.train.inputs.size(), 1000u * 784);
  EXPECT_EQ(splits.test.n, 4000u);  // every test example of classes 0..3
  std::map<int, int> train_counts, test_counts;
  for (int label : splits.train.labels) ++train_counts[label];
  for (int label : splits.test.labels) ++test_counts[label];
  EXPECT_EQ(train_counts, (std::map<int, int>{{0, 250}, {1, 250}, {2, 250}, {3, 250}}));
  EXPECT_EQ(test_counts, (std::map<int, int>{{0, 1000}, {1, 1000}, {2, 1000}, {3, 1000}}));
  // Standardized with the whole training file's statistics (mean 0.2860, std 0.3530 on [0, 1]):
  // the subset is near, not at, mean 0 / std 1.
  const auto [mean, stddev] = channel_moments(splits.train);
  EXPECT_NEAR(mean[0], 0.0, 0.2);
  EXPECT_NEAR(stddev[0], 1.0, 0.2);
}


// ---- the sorting task ------------------------------------------------------------------------------

// Every example of a sorting split: the inputs are u (length tokens) then sort(u) without its last
// token; the counted labels are exactly sort(u), the first length − 1 labels are masked.
void expect_sorting_examples(const Dataset& data, int vocab, int length) {
  const std::size_t tokens = std::size_t(2 * length - 1);
  ASSERT_EQ(data.features(), tokens);
  ASSERT_EQ(data.positions, int(tokens));
  ASSERT_EQ(data.labels.size(), data.n * tokens);
  for (std::size_t i = 0; i < data.n; ++i) {
    const double* x = data.inputs.data() + i * tokens;
    const int* y = data.labels.data() + i * tokens;
    std::vector<int> sorted(x, x + length);
    for (int token : sorted) ASSERT_TRUE(token >= 0 && token < vocab);
    std::sort(sorted.begin(), sorted.end());
    for (int t = 0; t < length - 1; ++t) {
      EXPECT_EQ(y[t], kMaskedLabel);
      EXPECT_EQ(x[length + t], sorted[std::size_t(t)]);
    }
    for (int t = length - 1; t < int(tokens); ++t) EXPECT_EQ(y[t], sorted[std::size_t(t - length + 1)]);
  }
}

TEST(Sorting, CountedTargetsAreTheSortedSequence) {
  DataSpec spec;
  spec.name = "sorting";
  spec.n_train = 40;
  spec.n_test = 12;
  spec.classes.count = spec.vocab_size = 5;
  spec.length = 6;
  spec.seed = 3;
  const DataSplits a = load_dataset(spec);
  ASSERT_EQ(a.train.n, 40u);
  ASSERT_EQ(a.test.n, 12u);
  expect_sorting_examples(a.train, 5, 6);
  expect_sorting_examples(a.test, 5, 6);
  EXPECT_EQ(std::count(a.train.labels.begin(), a.train.labels.end(), kMaskedLabel), 40 * 5);

  const std::vector<double> counted = counted_positions(a.train);
  const std::vector<double> targets = make_targets(a.train, LossKind::ce);
  ASSERT_EQ(targets.size(), 40u * 11 * 5);
  EXPECT_EQ(std::accumulate(counted.begin(), counted.end(), 0.0), 40.0 * 6);
  for (std::size_t j = 0; j < a.train.labels.size(); ++j) {
    EXPECT_EQ(counted[j], a.train.labels[j] == kMaskedLabel ? 0.0 : 1.0);
    for (int c = 0; c < 5; ++c) EXPECT_EQ(targets[j * 5 + std::size_t(c)], a.train.labels[j] == c ? 1.0 : 0.0);
  }

  const DataSplits again = load_dataset(spec);
  EXPECT_EQ(again.train.inputs, a.train.inputs);
  EXPECT_EQ(again.train.labels, a.train.labels);
  EXPECT_NE(a.test.inputs, std::vector<double>(a.train.inputs.begin(), a.train.inputs.begin() + 12 * 11));
  spec.seed = 4;
  EXPECT_NE(load_dataset(spec).train.inputs, a.train.inputs);
  spec.classes.count = 4;
  expect_data_error([&] { load_dataset(spec); }, {"sorting", "classes=5"});
}

TEST(Sorting, ShardsKeepEachExamplesLabels) {
  const Dataset data = make_sorting(7, 3, 4, 1, DataSplit::train);
  const Dataset part = shard(data, 1, 2);
  ASSERT_EQ(part.n, 4u);
  EXPECT_EQ(part.labels, std::vector<int>(data.labels.begin() + 3 * 7, data.labels.end()));
  expect_sorting_examples(part, 3, 4);
}

}  // namespace
}  // namespace cflow
