#include "host/run/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cflow::run {

std::vector<double> gaussian_smooth(const std::vector<double>& values, double sigma) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (sigma <= 0) return values;
  const std::int64_t n = std::int64_t(values.size());
  const std::int64_t radius = std::int64_t(std::ceil(4 * sigma));
  std::vector<double> smoothed(values.size(), kNaN);
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[std::size_t(i)])) continue;
    const std::int64_t r = std::min({radius, i, n - 1 - i});
    double weighted = 0, weight = 0;
    for (std::int64_t j = i - r; j <= i + r; ++j) {
      const double x = values[std::size_t(j)];
      if (!std::isfinite(x)) continue;
      const double w = std::exp(-0.5 * ((j - i) / sigma) * ((j - i) / sigma));
      weighted += w * x;
      weight += w;
    }
    smoothed[std::size_t(i)] = weighted / weight;
  }
  return smoothed;
}

std::optional<std::int64_t> eos_onset(const std::vector<double>& top_sharpness, double threshold) {
  for (std::size_t r = 0; r < top_sharpness.size(); ++r)
    if (top_sharpness[r] >= threshold) return std::int64_t(r);
  return std::nullopt;
}

std::optional<ComparedMean> mean_relative_error(const std::vector<double>& predicted, const std::vector<double>& smoothed,
                                                std::int64_t from) {
  ComparedMean result;
  double sum = 0;
  const std::size_t end = std::min(predicted.size(), smoothed.size());
  for (std::size_t r = std::size_t(std::max<std::int64_t>(from, 0)); r < end; ++r) {
    const double p = predicted[r], m = smoothed[r];
    if (std::isfinite(p) && std::isfinite(m) && m != 0) {
      sum += std::abs(p - m) / std::abs(m);
      ++result.rows;
    }
  }
  if (result.rows < kMinComparedRows) return std::nullopt;
  result.mean = sum / double(result.rows);
  return result;
}

std::vector<double> ratio(const std::vector<double>& numerator, const std::vector<double>& denominator) {
  std::vector<double> out(std::min(numerator.size(), denominator.size()), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t r = 0; r < out.size(); ++r)
    if (std::isfinite(numerator[r]) && std::isfinite(denominator[r]) && denominator[r] != 0)
      out[r] = numerator[r] / denominator[r];
  return out;
}

std::optional<std::int64_t> last_finite_row(const std::vector<double>& values) {
  for (std::size_t r = values.size(); r-- > 0;)
    if (std::isfinite(values[r])) return std::int64_t(r);
  return std::nullopt;
}

}  // namespace cflow::run
