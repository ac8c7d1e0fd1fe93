// The analytic toy objective L(x, y) = −a·y + ½ Σ_j (b_j + y) x_j² (docs/design.md §6), float64: its oracle
// passes the same finite-difference and symmetry checks as the network, and its Hessian, sharpness
// and third derivatives are the closed forms the flows' tests rely on.
#include <cmath>
#include <vector>

#include "cflow/engine/gradcheck.h"
#include "cflow/flow/toy_objective.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using Vec = std::vector<double>;

Buffer<double> on_device(const Device& dev, const Vec& v) { return Buffer<double>(dev, std::span<const double>(v)); }

class ToyObjectiveTest : public BackendTest {};

TEST_P(ToyObjectiveTest, GradcheckPasses) {
  for (const Vec& b : {Vec{1.5}, Vec{1.0, 2.5, -0.5}}) {
    SCOPED_TRACE("K = " + std::to_string(b.size()));
    ToyObjective<double> toy(device(), 0.7, b);
    EXPECT_EQ(toy.dim(), index_t(b.size()) + 1);
    auto w = on_device(device(), random_vector<double>(b.size() + 1, 5, -2.0, 2.0));
    const GradcheckResult result = gradcheck(toy, w.data(), 17);
    const GradcheckTolerances tolerances;
    for (const auto& e : result.entries)
      EXPECT_LE(e.error, e.is_symmetry ? tolerances.symmetry : tolerances.finite_difference) << e.name;
    EXPECT_TRUE(result.passed(tolerances));
  }
}

// Value and gradient at a point worked out by hand: K = 2, a = 0.5, b = (1, 3), w = (2, −1, 0.5).
TEST_P(ToyObjectiveTest, ValueAndGradientByHand) {
  ToyObjective<double> toy(device(), 0.5, {1, 3});
  auto w = on_device(device(), {2, -1, 0.5});
  Buffer<double> g(device(), 3);
  // L = −0.25 + ½(1.5·4 + 3.5·1) = −0.25 + 4.75 = 4.5.
  EXPECT_NEAR(toy.value_grad(w.data(), g.data()), 4.5, 1e-15);
  // ∇ = (1.5·2, 3.5·(−1), −0.5 + ½(4 + 1)) = (3, −3.5, 2).
  const Vec grad = g.to_host();
  EXPECT_NEAR(grad[0], 3, 1e-15);
  EXPECT_NEAR(grad[1], -3.5, 1e-15);
  EXPECT_NEAR(grad[2], 2, 1e-15);
}

// The Hessian, column by column (hvp on the identity block), against its closed form; at x = 0 the
// column of x_j is (b_j + y) e_{x_j}: the curvature along x_j is b_j + y.
TEST_P(ToyObjectiveTest, HessianColumnsAndSharpnessAlongEachX) {
  const Vec b{1.0, 2.5, -0.5};
  const index_t K = 3, d = 4;
  ToyObjective<double> toy(device(), 0.3, b);
  Vec identity(std::size_t(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) identity[std::size_t(i * d + i)] = 1;
  auto I = on_device(device(), identity);
  Buffer<double> H(device(), d * d);
  for (const Vec& w : {Vec{0, 0, 0, 0.75}, Vec{0.4, -1.2, 2.0, -0.25}}) {
    const double y = w[3];
    auto dw = on_device(device(), w);
    toy.hvp(dw.data(), I.data(), d, H.data());
    const Vec h = H.to_host();
    auto entry = [&](index_t row, index_t col) { return h[std::size_t(col * d + row)]; };
    for (index_t j = 0; j < K; ++j) {
      for (index_t i = 0; i < K; ++i) EXPECT_NEAR(entry(i, j), i == j ? b[std::size_t(j)] + y : 0.0, 1e-15);
      EXPECT_NEAR(entry(K, j), w[std::size_t(j)], 1e-15);  // ∂²L/∂y∂x_j = x_j
      EXPECT_NEAR(entry(j, K), w[std::size_t(j)], 1e-15);
    }
    EXPECT_NEAR(entry(K, K), 0.0, 1e-15);
    // The curvature along e_{x_j} (quad), b_j + y at every point.
    const auto curvatures = toy.quad(dw.data(), I.data(), d);
    for (index_t j = 0; j < K; ++j) EXPECT_NEAR(curvatures[std::size_t(j)], b[std::size_t(j)] + y, 1e-15);
    EXPECT_NEAR(curvatures[std::size_t(K)], 0.0, 1e-15);
  }
  // At x = 0, y = 0.75 the top eigenvector is e_{x_2} with eigenvalue b_2 + y = 3.25: H e_{x_2} = 3.25 e_{x_2}.
  auto w0 = on_device(device(), {0, 0, 0, 0.75});
  auto e1 = on_device(device(), {0, 1, 0, 0});
  Buffer<double> He(device(), d);
  toy.hvp(w0.data(), e1.data(), 1, He.data());
  EXPECT_EQ(He.to_host(), (Vec{0, 3.25, 0, 0}));
}

// ∇S = e_y: the gradient of u_jᵀ H u_j for u_j = e_{x_j} is e_y; mixed pairs of x directions give 0;
// a y direction paired with e_{x_j} gives e_{x_j}. Pairs in cflow::pair_index order.
TEST_P(ToyObjectiveTest, ThirdDerivativesByHand) {
  ToyObjective<double> toy(device(), 0.3, {1.0, 2.5});
  const index_t d = 3, k = 3;
  auto w = on_device(device(), {0.3, -0.7, 1.1});
  auto U = on_device(device(), {1, 0, 0, /**/ 0, 1, 0, /**/ 0, 0, 1});  // e_x1, e_x2, e_y
  Buffer<double> D(device(), d * pair_count(k));
  toy.d3(w.data(), U.data(), k, D.data());
  const Vec all = D.to_host();
  auto pair = [&](index_t i, index_t j) {
    const index_t p = pair_index(i, j, k);
    return Vec(all.begin() + p * d, all.begin() + (p + 1) * d);
  };
  EXPECT_EQ(pair(0, 0), (Vec{0, 0, 1}));
  EXPECT_EQ(pair(1, 1), (Vec{0, 0, 1}));
  EXPECT_EQ(pair(0, 1), (Vec{0, 0, 0}));
  EXPECT_EQ(pair(0, 2), (Vec{1, 0, 0}));
  EXPECT_EQ(pair(1, 2), (Vec{0, 1, 0}));
  EXPECT_EQ(pair(2, 2), (Vec{0, 0, 0}));
}

// The float32 objective computes the same numbers, rounded.
TEST_P(ToyObjectiveTest, Float32ByHand) {
  ToyObjective<float> t32(device(), 0.5, {1, 3});
  const std::vector<float> wf{2, -1, 0.5f};
  Buffer<float> w(device(), std::span<const float>(wf)), g(device(), 3);
  EXPECT_NEAR(t32.value_grad(w.data(), g.data()), 4.5f, 1e-6f);
  const auto grad = g.to_host();
  EXPECT_NEAR(grad[0], 3.0f, 1e-6f);
  EXPECT_NEAR(grad[1], -3.5f, 1e-6f);
  EXPECT_NEAR(grad[2], 2.0f, 1e-6f);
}

CFLOW_TEST_ON_ALL_BACKENDS(ToyObjectiveTest);

}  // namespace
}  // namespace cflow
