// IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed, and the Fashion-MNIST split
// built from a pair of them.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include "cflow/data/dataset.h"

namespace cflow {
namespace {

constexpr std::uint8_t idx_unsigned_byte = 0x08;
constexpr int fashion_mnist_classes = 10;
constexpr std::size_t gzip_smallest_member = 18;  // 10-byte header, empty deflate data, 8-byte trailer

bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Frees zlib's state however decompression ends.
struct InflateStream {
  z_stream z{};
  ~InflateStream() { inflateEnd(&z); }
};

// Inflates every gzip member of `compressed` (gzip allows several back to back). zlib checks each
// member's CRC and length, so corruption anywhere is caught here rather than as odd pixel values.
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& compressed,
                                 const std::filesystem::path& file) {
  const std::string advice = "; download the file again (or reinstall the dataset package)";
  const std::string truncated = "the gzip stream ends early (the file is truncated)" + advice;
  const std::size_t n = compressed.size();
  if (n < gzip_smallest_member) throw_data_error(file, truncated);
  InflateStream stream;
  if (inflateInit2(&stream.z, 16 + MAX_WBITS) != Z_OK)
    throw_data_error(file, "zlib could not start inflating");
  // A gzip file ends with its (last member's) length mod 2^32: a good first guess for the output
  // size, capped at deflate's best ratio (~1032:1) so that a corrupt trailer cannot ask for gigabytes.
  const std::size_t stated = compressed[n - 4] | compressed[n - 3] << 8 | compressed[n - 2] << 16 |
                             std::size_t{compressed[n - 1]} << 24;
  std::vector<std::uint8_t> out(std::clamp<std::size_t>(stated, 1, 1032 * n));
  std::size_t in_pos = 0;
  std::size_t out_pos = 0;
  while (true) {
    if (out_pos == out.size()) out.resize(out.size() * 2);
    // zlib counts in 32-bit uInt: feed and drain in pieces no larger than that.
    const std::size_t in_chunk = std::min<std::size_t>(n - in_pos, UINT_MAX);
    const std::size_t out_chunk = std::min<std::size_t>(out.size() - out_pos, UINT_MAX);
    stream.z.next_in = const_cast<Bytef*>(compressed.data() + in_pos);
    stream.z.avail_in = static_cast<uInt>(in_chunk);
    stream.z.next_out = out.data() + out_pos;
    stream.z.avail_out = static_cast<uInt>(out_chunk);
    const int status = inflate(&stream.z, Z_NO_FLUSH);
    in_pos += in_chunk - stream.z.avail_in;
    out_pos += out_chunk - stream.z.avail_out;
    if (status == Z_STREAM_END && in_pos == n) break;
    if (status == Z_STREAM_END) {
      inflateReset(&stream.z);  // another member follows
    } else if (status == Z_BUF_ERROR) {
      // No progress with output space left: the input ran out inside the stream.
      throw_data_error(file, truncated);
    } else if (status != Z_OK) {
      throw_data_error(
          file, "corrupt gzip data (" +
                    (stream.z.msg ? std::string(stream.z.msg) : "zlib error " + std::to_string(status)) +
                    ")" + advice);
    }
  }
  out.resize(out_pos);
  return out;
}

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::string format_dims(const std::vector<std::size_t>& dims) {
  std::string text;
  for (std::size_t d : dims) text += (text.empty() ? "" : " x ") + std::to_string(d);
  return text;
}

// The file holding `stem`, compressed or not.
std::filesystem::path find_fashion_file(const std::filesystem::path& dir, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem}) {
    if (std::filesystem::exists(dir / name)) return dir / name;
  }
  throw_data_error(
      dir / (stem + ".gz"),
      "Fashion-MNIST file not found (nor " + stem +
          " uncompressed). Install the data with "
          "`apt-get install dataset-fashion-mnist` (it goes to " +
          std::string(default_fashion_mnist_dir) +
          "), or pass --data-dir with a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] "
          "from https://github.com/zalandoresearch/fashion-mnist");
}

// Reads an IDX file whose header must say `ndims` dimensions of unsigned bytes.
IdxArray read_idx_expecting(const std::filesystem::path& file, std::size_t ndims) {
  IdxArray array = read_idx(file);
  if (array.dims.size() != ndims) {
    throw_data_error(file, "expected a " + std::to_string(ndims) +
                               "-dimensional IDX file (magic number 0x0000080" + std::to_string(ndims) +
                               ") but it has " + std::to_string(array.dims.size()) + " dimensions (" +
                               format_dims(array.dims) + "); is it the right file?");
  }
  return array;
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& file) {
  std::vector<std::uint8_t> bytes = read_file_bytes(file);
  if (is_gzip(bytes)) bytes = gunzip(bytes, file);
  const std::string not_idx = "; it is not an IDX file of unsigned bytes (MNIST format): check the path";
  if (bytes.size() < 4)
    throw_data_error(file, "only " + std::to_string(bytes.size()) + " bytes long" + not_idx);
  const std::uint32_t magic = big_endian_u32(bytes.data());
  char magic_hex[16];
  std::snprintf(magic_hex, sizeof magic_hex, "0x%08x", magic);
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0)
    throw_data_error(file, "wrong IDX magic number " + std::string(magic_hex) + not_idx);
  if (bytes[2] != idx_unsigned_byte) {
    throw_data_error(file, "IDX magic number " + std::string(magic_hex) +
                               " says the values are not unsigned bytes (0x08), the only type supported");
  }
  IdxArray array;
  const std::size_t header = 4 + 4 * std::size_t{bytes[3]};
  if (bytes.size() < header) throw_data_error(file, "truncated inside its header; download the file again");
  std::size_t count = 1;
  bool overflow = false;
  for (std::size_t k = 0; k < bytes[3]; ++k) {
    array.dims.push_back(big_endian_u32(bytes.data() + 4 + 4 * k));
    overflow |= __builtin_mul_overflow(count, array.dims.back(), &count);
  }
  if (overflow)
    throw_data_error(file, "its header's dimensions " + format_dims(array.dims) +
                               " are absurd; the file is corrupt: download it again");
  if (bytes.size() - header != count) {
    throw_data_error(file, "its header says " + format_dims(array.dims) + " = " + std::to_string(count) +
                               " values, but " + std::to_string(bytes.size() - header) +
                               " bytes follow the header; the file is " +
                               (bytes.size() - header < count ? "truncated" : "not what its header says") +
                               ": download it again");
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  array.values = std::move(bytes);
  return array;
}

RawImages load_fashion_mnist(const std::filesystem::path& dir, DataSplit split) {
  const std::string prefix = split == DataSplit::train ? "train" : "t10k";
  const std::filesystem::path images_file = find_fashion_file(dir, prefix + "-images-idx3-ubyte");
  const std::filesystem::path labels_file = find_fashion_file(dir, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx_expecting(images_file, 3);
  const IdxArray labels = read_idx_expecting(labels_file, 1);
  if (images.dims[0] != labels.dims[0]) {
    throw_data_error(labels_file, "holds " + std::to_string(labels.dims[0]) + " labels but " +
                                      images_file.string() + " holds " + std::to_string(images.dims[0]) +
                                      " images; the two files must come from the same split");
  }
  RawImages raw;
  raw.source = images_file.string();
  raw.n = images.dims[0];
  raw.channels = 1;
  raw.height = static_cast<int>(images.dims[1]);
  raw.width = static_cast<int>(images.dims[2]);
  raw.pixels = std::move(images.values);
  raw.labels.assign(labels.values.begin(), labels.values.end());
  for (std::size_t i = 0; i < raw.n; ++i) {
    if (raw.labels[i] >= fashion_mnist_classes) {
      throw_data_error(labels_file,
                       "label " + std::to_string(raw.labels[i]) + " of example " + std::to_string(i) +
                           " is out of range (Fashion-MNIST labels are 0..9); download the file again");
    }
  }
  return raw;
}

}  // namespace cflow
