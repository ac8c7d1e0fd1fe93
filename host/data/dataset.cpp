// What every data set shares: the class subset, standardization, the seeded order, targets, and the
// load_dataset entry point that picks a loader by name. The choices are documented in data.h.
#include "cflow/data/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>

namespace cflow {
namespace {

constexpr int image_set_classes = 10;  // Fashion-MNIST and CIFAR-10 alike

// Examples per class, when `n` examples are to be spread evenly over the classes.
std::size_t per_class(std::size_t n, int classes, const char* what) {
  if (n == 0 || n % classes != 0) {
    throw DataError(std::string(what) + "=" + std::to_string(n) + " is not a positive multiple of the " +
                    std::to_string(classes) + " classes; pass a multiple so that every class gets " + what +
                    "/classes examples");
  }
  return n / classes;
}

// Indices of the first `count` examples of each class 0..classes-1 in file order (all of them when
// `count` is unset), class 0's first: the reference's selection.
std::vector<std::size_t> first_of_each_class(const RawImages& raw, int classes,
                                             std::optional<std::size_t> count, const char* what) {
  std::vector<std::size_t> picked;
  for (int c = 0; c < classes; ++c) {
    std::size_t taken = 0;
    for (std::size_t i = 0; i < raw.n && (!count || taken < *count); ++i) {
      if (raw.labels[i] == c) {
        picked.push_back(i);
        ++taken;
      }
    }
    if (count && taken < *count) {
      throw_data_error(raw.source, "class " + std::to_string(c) + " has only " + std::to_string(taken) +
                                       " examples, fewer than the " + std::to_string(*count) +
                                       " per class that " + what + " asks for with " +
                                       std::to_string(classes) + " classes; lower " + what + " to at most " +
                                       std::to_string(taken * classes));
    }
  }
  return picked;
}

struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> stddev;  // population standard deviation, as numpy's default
};

// Per-channel statistics over every image of `raw`, from exact integer sums of the bytes.
ChannelStats channel_statistics(const RawImages& raw) {
  const std::size_t plane = static_cast<std::size_t>(raw.height) * raw.width;
  ChannelStats stats;
  for (int c = 0; c < raw.channels; ++c) {
    std::uint64_t sum = 0;
    std::uint64_t sum_sq = 0;
    for (std::size_t i = 0; i < raw.n; ++i) {
      const std::uint8_t* p = raw.pixels.data() + (i * raw.channels + c) * plane;
      for (std::size_t k = 0; k < plane; ++k) {
        sum += p[k];
        sum_sq += std::uint64_t{p[k]} * p[k];
      }
    }
    const double count = static_cast<double>(raw.n * plane);
    const double mean = static_cast<double>(sum) / count;
    stats.mean.push_back(mean);
    stats.stddev.push_back(std::sqrt(std::max(0.0, static_cast<double>(sum_sq) / count - mean * mean)));
  }
  return stats;
}

// The images `picked` from `raw`, standardized with `stats`. Scaling to [0, 1] first and using the
// scaled statistics would give the same numbers, so the bytes are standardized directly.
Dataset standardized(const RawImages& raw, const std::vector<std::size_t>& picked,
                     const ChannelStats& stats) {
  Dataset data;
  data.n = picked.size();
  data.channels = raw.channels;
  data.height = raw.height;
  data.width = raw.width;
  const std::size_t plane = static_cast<std::size_t>(raw.height) * raw.width;
  data.inputs.reserve(data.n * data.features());
  for (std::size_t i : picked) {
    for (int c = 0; c < raw.channels; ++c) {
      // A constant channel carries no information: center it and leave its scale alone.
      const double spread = stats.stddev[c] > 0 ? stats.stddev[c] : 1.0;
      const std::uint8_t* p = raw.pixels.data() + (i * raw.channels + c) * plane;
      for (std::size_t k = 0; k < plane; ++k) data.inputs.push_back((p[k] - stats.mean[c]) / spread);
    }
    data.labels.push_back(raw.labels[i]);
  }
  return data;
}

DataSplits load_images(const DataSpec& spec) {
  const bool fashion = spec.name == "fashion-mnist";
  if (spec.classes.count > image_set_classes) {
    throw DataError(spec.name + " has " + std::to_string(image_set_classes) + " classes, but classes=" +
                    std::to_string(spec.classes.count) + " asks for more; pass at most 10");
  }
  const std::filesystem::path dir =
      fashion && spec.data_dir.empty() ? default_fashion_mnist_dir : spec.data_dir;
  const auto load = [&](DataSplit split) {
    return fashion ? load_fashion_mnist(dir, split) : load_cifar10(dir, split);
  };
  const int classes = spec.classes.count;
  DataSplits splits;
  ChannelStats stats;
  {
    const RawImages train = load(DataSplit::train);
    stats = channel_statistics(train);
    splits.train = standardized(
        train, first_of_each_class(train, classes, per_class(spec.n_train, classes, "n_train"), "n_train"),
        stats);
  }
  const RawImages test = load(DataSplit::test);
  std::optional<std::size_t> test_per_class;
  if (spec.n_test) test_per_class = per_class(*spec.n_test, classes, "n_test");
  splits.test = standardized(test, first_of_each_class(test, classes, test_per_class, "n_test"), stats);
  return splits;
}

DataSplits make_synthetic(const DataSpec& spec) {
  const std::size_t n_test = spec.n_test.value_or(spec.n_train);
  if (spec.n_train == 0 || n_test == 0)
    throw DataError(spec.name + " needs n_train and n_test of at least 1");
  if (spec.noise < 0) throw DataError(spec.name + ": noise=" + std::to_string(spec.noise) + " must be >= 0");
  if (spec.name == "moons") {
    if (spec.classes.count != 2) {
      throw DataError("moons has 2 classes; pass classes=2 (two outputs) or classes=binary (one output)");
    }
    return {make_moons(spec.n_train, spec.noise, spec.seed, DataSplit::train),
            make_moons(n_test, spec.noise, spec.seed, DataSplit::test)};
  }
  if (spec.dim < 1) throw DataError("gaussian: dim=" + std::to_string(spec.dim) + " must be >= 1");
  const int classes = spec.classes.count;
  return {make_gaussian_clusters(per_class(spec.n_train, classes, "n_train"), classes, spec.dim, spec.noise,
                                 spec.seed, DataSplit::train),
          make_gaussian_clusters(per_class(n_test, classes, "n_test"), classes, spec.dim, spec.noise,
                                 spec.seed, DataSplit::test)};
}

DataSplits make_sorting_splits(const DataSpec& spec) {
  const std::size_t n_test = spec.n_test.value_or(spec.n_train);
  if (spec.n_train == 0 || n_test == 0) throw DataError("sorting needs n_train and n_test of at least 1");
  if (spec.vocab_size < 2 || spec.length < 1)
    throw DataError("sorting: vocab_size=" + std::to_string(spec.vocab_size) + " and length=" +
                    std::to_string(spec.length) + "; pass a vocabulary of at least 2 tokens and a length >= 1");
  if (spec.classes.binary || spec.classes.count != spec.vocab_size)
    throw DataError("sorting: its classes are the " + std::to_string(spec.vocab_size) +
                    " tokens of the vocabulary; pass classes=" + std::to_string(spec.vocab_size));
  return {make_sorting(spec.n_train, spec.vocab_size, spec.length, spec.seed, DataSplit::train),
          make_sorting(n_test, spec.vocab_size, spec.length, spec.seed, DataSplit::test)};
}

// Puts the examples of `data` in a random order (Fisher-Yates).
void permute(Dataset& data, std::mt19937_64 rng) {
  std::vector<std::size_t> order(data.n);
  for (std::size_t i = 0; i < data.n; ++i) order[i] = i;
  for (std::size_t i = data.n; i > 1; --i) std::swap(order[i - 1], order[uniform_below(i, rng)]);
  const std::size_t f = data.features(), p = static_cast<std::size_t>(data.positions);
  std::vector<double> inputs(data.inputs.size());
  std::vector<int> labels(data.labels.size());
  for (std::size_t i = 0; i < data.n; ++i) {
    std::copy_n(data.inputs.begin() + static_cast<std::ptrdiff_t>(order[i] * f), f,
                inputs.begin() + static_cast<std::ptrdiff_t>(i * f));
    std::copy_n(data.labels.begin() + static_cast<std::ptrdiff_t>(order[i] * p), p,
                labels.begin() + static_cast<std::ptrdiff_t>(i * p));
  }
  data.inputs = std::move(inputs);
  data.labels = std::move(labels);
}

}  // namespace

ClassChoice parse_class_choice(std::string_view text) {
  if (text == "binary") return {2, true};
  int count = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (error != std::errc() || end != text.data() + text.size() || count < 2) {
    throw DataError("classes='" + std::string(text) + "': pass an integer >= 2 or 'binary'");
  }
  return {count, false};
}

std::string sequence_task_mismatch(const std::string& arch, const std::string& data) {
  if ((arch == "transformer") == (data == "sorting")) return {};
  return arch == "transformer" ? "--arch transformer: expected --data sorting (a sequence task), got --data " + data
                               : "--data sorting: expected --arch transformer (a sequence model), got --arch " + arch;
}

std::string to_string(const ClassChoice& classes) {
  return classes.binary ? "binary" : std::to_string(classes.count);
}

DataSplits load_dataset(const DataSpec& spec) {
  if (spec.classes.count < 2 || (spec.classes.binary && spec.classes.count != 2)) {
    throw DataError("classes: " + std::to_string(spec.classes.count) +
                    (spec.classes.binary ? " binary" : "") +
                    " is not a task; keep at least 2 classes, and exactly 2 for a binary task");
  }
  DataSplits splits;
  if (spec.name == "fashion-mnist" || spec.name == "cifar10") {
    splits = load_images(spec);
  } else if (spec.name == "moons" || spec.name == "gaussian") {
    splits = make_synthetic(spec);
  } else if (spec.name == "sorting") {
    splits = make_sorting_splits(spec);
  } else {
    throw DataError("unknown data set '" + spec.name + "'; choose fashion-mnist, cifar10, moons, gaussian or sorting");
  }
  permute(splits.train, random_stream(spec.seed, "order/train"));
  permute(splits.test, random_stream(spec.seed, "order/test"));
  splits.train.classes = spec.classes;
  splits.test.classes = spec.classes;
  return splits;
}

std::vector<double> make_targets(const Dataset& data, LossKind loss) {
  const std::size_t outputs = static_cast<std::size_t>(data.classes.outputs());
  std::vector<double> targets(outputs * data.labels.size(), 0.0);
  for (std::size_t i = 0; i < data.labels.size(); ++i) {
    if (data.labels[i] == kMaskedLabel) continue;
    if (!data.classes.binary) {
      targets[i * outputs + static_cast<std::size_t>(data.labels[i])] = 1.0;
    } else if (loss == LossKind::mse) {
      targets[i] = data.labels[i] == 1 ? 1.0 : -1.0;
    } else {
      targets[i] = data.labels[i];
    }
  }
  return targets;
}

std::vector<double> counted_positions(const Dataset& data) {
  std::vector<double> counted(data.labels.size());
  for (std::size_t i = 0; i < counted.size(); ++i) counted[i] = data.labels[i] == kMaskedLabel ? 0.0 : 1.0;
  return counted;
}

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw_data_error(file, "cannot be opened for reading; check the path and its permissions");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) {
    throw_data_error(file, "read error");
  }
  return bytes;
}

void throw_data_error(const std::filesystem::path& file, const std::string& what) {
  throw DataError(file.string() + ": " + what);
}

// Rejects the few values that would favour small results.
std::uint64_t uniform_below(std::uint64_t bound, std::mt19937_64& rng) {
  const std::uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const std::uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

std::mt19937_64 random_stream(std::uint64_t seed, std::string_view purpose) {
  std::vector<std::uint32_t> words{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  for (char ch : purpose) words.push_back(static_cast<unsigned char>(ch));
  std::seed_seq sequence(words.begin(), words.end());
  return std::mt19937_64(sequence);
}

}  // namespace cflow
