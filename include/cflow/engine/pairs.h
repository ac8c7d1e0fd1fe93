#pragma once
// Numbering of the pairs i ≤ j < k: (0,0), (0,1), …, (0,k−1), (1,1), (1,2), …, (k−1,k−1).
// constexpr so kernels can use it too.
#include <cstdint>

namespace cflow {

constexpr std::int64_t pair_index(std::int64_t i, std::int64_t j, std::int64_t k) {
  return i * k - i * (i - 1) / 2 + (j - i);
}
constexpr std::int64_t pair_count(std::int64_t k) { return k * (k + 1) / 2; }

}  // namespace cflow
