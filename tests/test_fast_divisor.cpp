// FastDivisor (kernels/fast_divisor.h) against the hardware divide: every small divisor with every
// small dividend, and divisors and dividends at the edges of the range (powers of two and their
// neighbours, multiples and their neighbours, up to 2^63 − 1).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/fast_divisor.h"

namespace cflow {
namespace {

void expect_exact(index_t d, index_t n) {
  const FastDivisor fast(d);
  ASSERT_EQ(fast.div(n), n / d) << n << " / " << d;
  ASSERT_EQ(fast.mod(n), n % d) << n << " % " << d;
}

TEST(FastDivisor, EverySmallDivisorAndDividend) {
  for (index_t d = 1; d <= 300; ++d)
    for (index_t n = 0; n <= 3000; ++n) expect_exact(d, n);
}

TEST(FastDivisor, EdgesOfTheRange) {
  constexpr index_t kMax = std::numeric_limits<index_t>::max();
  std::vector<index_t> divisors;
  for (int l = 0; l <= 62; ++l)
    for (index_t delta : {-1, 0, 1}) {
      const index_t d = (index_t(1) << l) + delta;
      if (d >= 1) divisors.push_back(d);
    }
  for (index_t d : {index_t(3), index_t(7), index_t(28 * 28), index_t(1000003), kMax / 3, kMax - 1, kMax})
    divisors.push_back(d);
  std::mt19937_64 random(7);
  for (index_t d : divisors) {
    for (index_t n : {index_t(0), index_t(1), d - 1, d, kMax, kMax - 1, kMax - kMax % d, kMax - kMax % d - 1})
      if (n >= 0) expect_exact(d, n);
    for (int i = 0; i < 200; ++i) {
      const index_t n = index_t(random() >> 1);  // uniform in [0, 2^63)
      expect_exact(d, n);
      const index_t q = n / d;                   // and the multiples of d around it
      if (q > 0) {
        expect_exact(d, q * d);
        expect_exact(d, q * d - 1);
      }
    }
  }
}

}  // namespace
}  // namespace cflow
