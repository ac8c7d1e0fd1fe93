// Synthetic data sets: two moons (the geometry of scikit-learn's make_moons, which the reference's
// Moons uses) and Gaussian clusters. Points come out grouped by class; load_dataset permutes them.
#include <cmath>
#include <numbers>

#include "cflow/data/dataset.h"

namespace cflow {
namespace {

// Uniform on [0, 1) from the top 53 bits, so the values do not depend on the standard library.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Box-Muller with our own uniforms: std::normal_distribution differs between standard libraries.
double standard_normal(std::mt19937_64& rng) {
  const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform01(rng)));  // 1 - u is in (0, 1]
  return radius * std::cos(2.0 * std::numbers::pi * uniform01(rng));
}

const char* split_name(DataSplit split) { return split == DataSplit::train ? "train" : "test"; }

Dataset empty_points(std::size_t n, int dim, int classes) {
  Dataset data;
  data.n = n;
  data.channels = dim;
  data.height = 1;
  data.width = 1;
  data.inputs.reserve(n * static_cast<std::size_t>(dim));
  data.labels.reserve(n);
  data.classes.count = classes;
  return data;
}

}  // namespace

Dataset make_moons(std::size_t n, double noise, std::uint64_t seed, DataSplit split) {
  std::mt19937_64 rng = random_stream(seed, std::string("moons/") + split_name(split));
  Dataset data = empty_points(n, 2, 2);
  // As make_moons: n/2 (rounded down) points evenly spaced on the upper arc, the rest on the lower.
  const std::size_t upper = n / 2;
  for (int label = 0; label < 2; ++label) {
    const std::size_t count = label == 0 ? upper : n - upper;
    for (std::size_t i = 0; i < count; ++i) {
      const double angle =
          count == 1 ? 0.0 : std::numbers::pi * static_cast<double>(i) / static_cast<double>(count - 1);
      const double x = label == 0 ? std::cos(angle) : 1.0 - std::cos(angle);
      const double y = label == 0 ? std::sin(angle) : 0.5 - std::sin(angle);
      data.inputs.push_back(x + noise * standard_normal(rng));
      data.inputs.push_back(y + noise * standard_normal(rng));
      data.labels.push_back(label);
    }
  }
  return data;
}

Dataset make_gaussian_clusters(std::size_t n_per_class, int classes, int dim, double noise,
                               std::uint64_t seed, DataSplit split) {
  // The means come from a stream of their own, so train and test share them.
  std::mt19937_64 mean_rng = random_stream(seed, "gaussian/means");
  std::vector<double> means(static_cast<std::size_t>(classes) * dim);
  for (double& m : means) m = standard_normal(mean_rng);

  std::mt19937_64 rng = random_stream(seed, std::string("gaussian/") + split_name(split));
  Dataset data = empty_points(n_per_class * classes, dim, classes);
  for (int label = 0; label < classes; ++label) {
    for (std::size_t i = 0; i < n_per_class; ++i) {
      for (int k = 0; k < dim; ++k) {
        data.inputs.push_back(means[static_cast<std::size_t>(label) * dim + k] +
                              noise * standard_normal(rng));
      }
      data.labels.push_back(label);
    }
  }
  return data;
}

}  // namespace cflow
