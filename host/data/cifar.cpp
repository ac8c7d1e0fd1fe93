// CIFAR-10 in its official binary format: files of 3073-byte records, one label byte (0..9) followed
// by a 32x32 image as 1024 red, 1024 green and 1024 blue bytes, each plane row-major (so CHW).
#include "cflow/data/dataset.h"

namespace cflow {
namespace {

constexpr int cifar_channels = 3;
constexpr int cifar_side = 32;
constexpr std::size_t cifar_image_bytes = cifar_channels * cifar_side * cifar_side;
constexpr std::size_t cifar_record_bytes = 1 + cifar_image_bytes;
constexpr int cifar_classes = 10;
constexpr const char* cifar_download = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

std::vector<std::filesystem::path> batch_files(const std::filesystem::path& dir, DataSplit split) {
  if (dir.empty()) {
    throw DataError(std::string("cifar10 needs a data folder: download ") + cifar_download +
                    ", unpack it and pass --data-dir with the folder cifar-10-batches-bin");
  }
  // Accept the folder the archive unpacks to, or the folder it was unpacked in.
  const std::filesystem::path folder =
      std::filesystem::exists(dir / "cifar-10-batches-bin") ? dir / "cifar-10-batches-bin" : dir;
  if (split == DataSplit::test) return {folder / "test_batch.bin"};
  std::vector<std::filesystem::path> files;
  for (int b = 1; b <= 5; ++b) files.push_back(folder / ("data_batch_" + std::to_string(b) + ".bin"));
  return files;
}

// Appends the records of one batch file to `raw`.
void append_batch(const std::filesystem::path& file, RawImages& raw) {
  if (!std::filesystem::exists(file)) {
    throw_data_error(file, std::string("CIFAR-10 batch file not found; download ") + cifar_download +
                               ", unpack it and pass --data-dir with the folder cifar-10-batches-bin");
  }
  const std::vector<std::uint8_t> bytes = read_file_bytes(file);
  if (bytes.empty() || bytes.size() % cifar_record_bytes != 0) {
    throw_data_error(
        file, "size " + std::to_string(bytes.size()) + " bytes is not a whole number of " +
                  std::to_string(cifar_record_bytes) + "-byte records (1 label byte + 3x32x32 pixels; " +
                  "an official batch is 10000 records); the file is truncated or not a CIFAR-10 binary " +
                  "batch: download " + cifar_download + " again");
  }
  const std::size_t records = bytes.size() / cifar_record_bytes;
  raw.pixels.reserve(raw.pixels.size() + records * cifar_image_bytes);
  for (std::size_t r = 0; r < records; ++r) {
    const std::uint8_t* record = bytes.data() + r * cifar_record_bytes;
    if (record[0] >= cifar_classes) {
      throw_data_error(
          file, "record " + std::to_string(r) + " has label " + std::to_string(record[0]) +
                    " (CIFAR-10 labels are 0..9); is this a CIFAR-100 file? Use the CIFAR-10 binary version");
    }
    raw.labels.push_back(record[0]);
    raw.pixels.insert(raw.pixels.end(), record + 1, record + cifar_record_bytes);
  }
  raw.n += records;
}

}  // namespace

RawImages load_cifar10(const std::filesystem::path& dir, DataSplit split) {
  RawImages raw;
  raw.channels = cifar_channels;
  raw.height = cifar_side;
  raw.width = cifar_side;
  const std::vector<std::filesystem::path> files = batch_files(dir, split);
  raw.source =
      files.size() == 1 ? files[0].string() : (files[0].parent_path() / "data_batch_{1..5}.bin").string();
  for (const std::filesystem::path& file : files) append_batch(file, raw);
  return raw;
}

}  // namespace cflow
