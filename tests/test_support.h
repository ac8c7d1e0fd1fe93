#pragma once
// Shared test fixtures: every backend-facing test runs once per backend; CUDA cases are always
// registered and skip, saying why, where no GPU is usable.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cflow/runtime/device.h"
#include "cflow/engine/model.h"

namespace cflow {
// Readable test-parameter names in gtest and ctest listings.
inline void PrintTo(Backend b, std::ostream* os) { *os << (b == Backend::cuda ? "cuda" : "cpu"); }
inline void PrintTo(Architecture a, std::ostream* os) { *os << to_string(a); }
inline void PrintTo(Activation a, std::ostream* os) { *os << to_string(a); }
inline void PrintTo(LossKind l, std::ostream* os) { *os << to_string(l); }
}  // namespace cflow

namespace cflow::testing {

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::cuda) {
      std::string why;
      if (!cuda_available(&why)) GTEST_SKIP() << "CUDA backend not tested here: " << why;
    }
    device_.emplace(Device::open(GetParam() == Backend::cuda ? "cuda" : "cpu"));
  }
  const Device& device() const { return *device_; }

 private:
  std::optional<Device> device_;
};

inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::cuda ? "cuda" : "cpu";
}

template <class T>
std::vector<T> random_vector(std::size_t n, unsigned seed, T low = T(-1), T high = T(1)) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist{static_cast<double>(low), static_cast<double>(high)};
  std::vector<T> v(n);
  for (auto& x : v) x = T(dist(rng));
  return v;
}

}  // namespace cflow::testing

#define CFLOW_TEST_ON_ALL_BACKENDS(Suite)                                                                 \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::Values(::cflow::Backend::cpu, ::cflow::Backend::cuda), \
                           ::cflow::testing::backend_name)
