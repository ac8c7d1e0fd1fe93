// host/run/metrics.h: the one definition of the numbers that compare a run's processes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "host/run/metrics.h"

namespace cflow::run {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(RunMetrics, SmoothingKeepsConstantsAndNaNRows) {
  const std::vector<double> s = gaussian_smooth({2, 2, kNaN, 2, 2, 2}, 1.5);
  EXPECT_DOUBLE_EQ(s[0], 2);
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_DOUBLE_EQ(s[5], 2);
}

// The edge rule: a line is reproduced at every row, the ends included. A window cut only on the
// outside (renormalized) would pull row 0 of a falling series down by about 0.3σ·slope.
TEST(RunMetrics, SmoothingDoesNotBiasTheEndsOfATrend) {
  std::vector<double> line(60);
  for (std::size_t i = 0; i < line.size(); ++i) line[i] = 1.0 - 0.01 * double(i);
  const std::vector<double> s = gaussian_smooth(line, 10);
  for (std::size_t i = 0; i < line.size(); ++i) EXPECT_NEAR(s[i], line[i], 1e-12) << "row " << i;
}

TEST(RunMetrics, SmoothingAveragesOscillationsInTheInterior) {
  std::vector<double> x(200);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i % 2);
  const std::vector<double> s = gaussian_smooth(x, 10);
  // ±4σ holds 41 even and 40 odd offsets: the imbalance is the tail weight, about 1e-5.
  for (std::size_t i = 40; i < 160; ++i) EXPECT_NEAR(s[i], 0.5, 1e-4) << "row " << i;
  EXPECT_EQ(s[0], 0.0);  // the first row has no symmetric neighbourhood: it stays itself
}

TEST(RunMetrics, OnsetIsTheFirstRowAtTheThreshold) {
  EXPECT_EQ(eos_onset({1.0, 1.9, kNaN, 2.0, 1.5, 2.5}), 3);
  EXPECT_FALSE(eos_onset({1.0, kNaN, 1.99}).has_value());
}

TEST(RunMetrics, RelativeErrorOnlyOverRowsWhereBothAreFiniteAndAbsentWhenTooFew) {
  std::vector<double> predicted(30, 1.1), actual(30, 1.0);
  for (std::size_t i = 20; i < 30; ++i) predicted[i] = kNaN;  // the central flow stopped at row 20
  const auto error = mean_relative_error(predicted, actual, 5);
  ASSERT_TRUE(error.has_value());
  EXPECT_NEAR(error->mean, 0.1, 1e-12);
  EXPECT_EQ(error->rows, 15);
  EXPECT_FALSE(mean_relative_error(predicted, actual, 20 - kMinComparedRows + 1).has_value());
}

TEST(RunMetrics, RatioAndLastFiniteRow) {
  const std::vector<double> r = ratio({1, 2, kNaN, 3}, {2, 0, 1, 6});
  EXPECT_EQ(r[0], 0.5);
  EXPECT_TRUE(std::isnan(r[1]) && std::isnan(r[2]));
  EXPECT_EQ(r[3], 0.5);
  EXPECT_EQ(last_finite_row({1, kNaN, 2, kNaN}), 2);
  EXPECT_FALSE(last_finite_row({kNaN}).has_value());
}

}  // namespace
}  // namespace cflow::run
