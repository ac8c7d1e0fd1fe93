// Anderson acceleration (host/solvers/anderson.h, docs/design.md §6.9) on maps whose fixed point is
// known in closed form, and the floor kernel it uses.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cflow/runtime/blas.h"
#include "host/solvers/anderson.h"
#include "kernels/elementwise.h"
#include "test_support.h"

namespace cflow {
namespace {

class Anderson : public testing::BackendTest {};

// G(x) = a ⊙ x + 1 (a diagonal linear map, slopes up to 0.99: the plain iteration contracts by 0.99
// per step along the slowest coordinate), fixed point x* = 1/(1 − a).
const std::vector<double> kSlopes{0.99, 0.95, 0.9, 0.5, 0.3, 0.1, 0.0, -0.5};

// The largest |x_k − x*|/x* after `iterations` steps from x = 1 with the given memory.
double error_after(const Device& dev, int memory, int iterations) {
  const index_t d = index_t(kSlopes.size());
  AndersonMixing<double> mixing(dev, d, memory);
  std::vector<double> x(kSlopes.size(), 1.0);
  for (int k = 0; k < iterations; ++k) {
    std::vector<double> image(x.size()), residual(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      image[i] = kSlopes[i] * x[i] + 1;
      residual[i] = image[i] - x[i];
    }
    Buffer<double> image_d(dev, std::span<const double>(image)), residual_d(dev, std::span<const double>(residual)),
        next(dev, d);
    mixing.step(image_d.data(), residual_d.data(), next.data());
    x = next.to_host();
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_GE(x[i], AndersonMixing<double>::kFloor * image[i]);
  }
  double error = 0;
  for (std::size_t i = 0; i < x.size(); ++i) error = std::max(error, std::abs(x[i] * (1 - kSlopes[i]) - 1));
  return error;
}

// On a linear map with d distinct slopes, Anderson with memory ≥ d is GMRES in disguise (Walker & Ni
// 2011): exact after d + 1 steps up to rounding. The plain iteration is still at 0.99^10 ≈ 0.9 of its
// start error along the slowest coordinate.
TEST_P(Anderson, SolvesALinearFixedPointInDimensionPlusOneSteps) {
  const int steps = int(kSlopes.size()) + 2;
  EXPECT_LE(error_after(device(), int(kSlopes.size()), steps), 1e-9);
  EXPECT_GE(error_after(device(), 0, steps), 0.5);
}

// A residual larger than the last one restarts the memory: that step is the plain one, x = G(x).
TEST_P(Anderson, RestartsWhenTheResidualGrows) {
  const Device& dev = device();
  AndersonMixing<double> mixing(dev, 2, 3);
  Buffer<double> next(dev, 2);
  const std::vector<double> first_image{1.0, 2.0}, first_residual{0.1, 0.1};
  const std::vector<double> image{3.0, 5.0}, grown{0.5, -0.5};
  mixing.step(Buffer<double>(dev, std::span<const double>(first_image)).data(),
              Buffer<double>(dev, std::span<const double>(first_residual)).data(), next.data());
  mixing.step(Buffer<double>(dev, std::span<const double>(image)).data(),
              Buffer<double>(dev, std::span<const double>(grown)).data(), next.data());
  EXPECT_EQ(mixing.columns(), 0);
  EXPECT_EQ(next.to_host(), image);
}

TEST_P(Anderson, MaxScaledKernel) {
  const Device& dev = device();
  const std::vector<double> x{-1.0, 2.0, 0.5}, y{1.0, 1.0, -4.0};
  Buffer<double> x_d(dev, std::span<const double>(x)), y_d(dev, std::span<const double>(y));
  CFLOW_DISPATCH(dev, max_scaled<double>, dev, 3, 0.5, y_d.data(), x_d.data());
  EXPECT_EQ(x_d.to_host(), (std::vector<double>{0.5, 2.0, 0.5}));
}

CFLOW_TEST_ON_ALL_BACKENDS(Anderson);

}  // namespace
}  // namespace cflow
