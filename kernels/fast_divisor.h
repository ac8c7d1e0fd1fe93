#pragma once
// Division by a divisor that is fixed for a whole launch, without a hardware divide. Elementwise
// kernels split a flat index into (row, column, example) once per element; a 64-bit `/` or `%` costs
// tens of cycles on a CPU core and is a long emulated sequence on a GPU, more than the element's
// arithmetic. Built on the host, used in the kernel (docs/design.md §7.2):
//
//   q = ⌊n / d⌋ = ⌊n·m / 2^(63+l)⌋   with l = ⌈log₂ d⌉ and m = ⌈2^(63+l) / d⌉ < 2^64,
//
// exact for 0 ≤ n < 2^63: m·d = 2^(63+l) + e with 0 ≤ e < d ≤ 2^l, so n·m / 2^(63+l) = n/d + δ with
// 0 ≤ δ = n·e / (d·2^(63+l)) < 1/d, which cannot carry n/d past the next integer (Granlund and
// Montgomery, "Division by invariant integers using multiplication", 1994). One 64 × 64 → 128-bit
// high product and a shift per division.
#include <cstdint>

#include "kernels/portable.h"

namespace cflow {

class FastDivisor {
 public:
  FastDivisor() = default;
  explicit FastDivisor(index_t divisor) : d_(divisor) {
    CFLOW_REQUIRE(divisor >= 1, "FastDivisor: the divisor must be positive");
    int l = 0;
    while (l < 63 && (std::uint64_t(1) << l) < std::uint64_t(divisor)) ++l;  // l = ⌈log₂ d⌉ ≤ 63
    shift_ = l - 1;
    if (divisor > 1) {
      const unsigned __int128 power = static_cast<unsigned __int128>(1) << (63 + l);
      m_ = static_cast<std::uint64_t>((power + static_cast<unsigned __int128>(divisor) - 1) / divisor);
    }
  }

  CFLOW_HD index_t divisor() const { return d_; }
  // ⌊n / d⌋ for 0 ≤ n < 2^63.
  CFLOW_HD index_t div(index_t n) const {
    if (shift_ < 0) return n;  // d = 1
    return static_cast<index_t>(high_product(static_cast<std::uint64_t>(n), m_) >> shift_);
  }
  // n mod d for 0 ≤ n < 2^63.
  CFLOW_HD index_t mod(index_t n) const { return n - div(n) * d_; }

 private:
  CFLOW_HD static std::uint64_t high_product(std::uint64_t a, std::uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
  }

  index_t d_ = 1;
  std::uint64_t m_ = 0;
  int shift_ = -1;
};

}  // namespace cflow
