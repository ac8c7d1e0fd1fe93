// The central flow against what the science proves on the toy L(x, y) = −a·y + ½ Σ_j (b_j + y) x_j²
// (docs/design.md §6): gradient flow raises y until the sharpness reaches 2/η; the central flow then holds
// it there with raw oscillation variance 2a along x, and GD's time average of x² agrees.
#include <lapacke.h>

#include <cmath>

#include "cflow/flow/central_flow.h"
#include "cflow/flow/toy_objective.h"
#include "test_support.h"

namespace cflow {
namespace {

// Exact eigenpairs of the toy's effective Hessian P⁻¹H = ηH (GD), by a dense eigen-solve of the tiny
// Hessian on the host: the flow is tested independently of the iterative eigen-solver.
struct Eigenpairs {
  std::vector<double> effective;  // descending
  std::vector<double> U;          // d × k generalized eigenvectors, UᵀPU = I
};

Eigenpairs toy_eigenpairs(ToyObjective<double>& toy, const Buffer<double>& w, double lr) {
  const index_t d = toy.dim();
  std::vector<double> identity(std::size_t(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) identity[std::size_t(i * d + i)] = 1;
  Buffer<double> I(toy.device(), std::span<const double>(identity)), H(toy.device(), d * d);
  toy.hvp(w.data(), I.data(), d, H.data());
  auto h = H.to_host();
  std::vector<double> values(static_cast<std::size_t>(d));
  EXPECT_EQ(LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', d, h.data(), d, values.data()), 0);
  Eigenpairs out;
  for (index_t j = d - 1; j >= 0; --j) {
    out.effective.push_back(lr * values[std::size_t(j)]);
    for (index_t i = 0; i < d; ++i) out.U.push_back(std::sqrt(lr) * h[std::size_t(i + j * d)]);  // P^{-1/2} y
  }
  return out;
}

struct FlowRun {
  double y;          // final y
  double variance;   // raw variance along x_0: X_00 u_x² summed over the critical directions
  double max_sharpness;
};

FlowRun run_central_flow(const Device& dev, double a, std::vector<double> b, double lr, std::vector<double> w0,
                         int steps) {
  ToyObjective<double> toy(dev, a, b);
  const index_t d = toy.dim();
  OptimizerSpec spec;
  spec.kind = OptimizerKind::gd;
  spec.lr = lr;
  OptimizerState<double> state(dev, spec, d);
  Buffer<double> w(dev, std::span<const double>(w0)), g(dev, d);
  const int nsub = 4;
  FlowRun run{0, 0, 0};
  for (int step = 0; step < steps; ++step)
    for (int sub = 0; sub < nsub; ++sub) {
      toy.value_grad(w.data(), g.data());
      const Eigenpairs eig = toy_eigenpairs(toy, w, lr);
      run.max_sharpness = step > steps / 2 ? std::max(run.max_sharpness, eig.effective[0]) : 0.0;
      CriticalSet<double> critical;
      for (double lambda : eig.effective)
        if (lambda > 1.95) critical.eigenvalues.push_back(lambda);
      const index_t k = critical.k();
      Buffer<double> U(dev, std::span<const double>(eig.U.data(), std::size_t(d * k)));
      critical.U = U.data();
      const CentralSubstep result = central_flow_substep(toy, state, w.data(), g.data(), critical, 1.0 / nsub);
      if (k > 0) {
        EXPECT_LE(result.sdcp.residual, 1e-10);
        run.variance = 0;
        for (index_t i = 0; i < k; ++i)
          for (index_t j = 0; j < k; ++j)
            run.variance += eig.U[std::size_t(i * d)] * result.X[std::size_t(i + k * j)] * eig.U[std::size_t(j * d)];
      }
    }
  run.y = w.to_host().back();
  return run;
}

class CentralFlowToy : public testing::BackendTest {};

TEST_P(CentralFlowToy, GdFlowHoldsSharpnessAtTwoOverLrWithVariance2a) {
  const double a = 0.3, lr = 0.1, b = 18.0;  // sharpness starts at b = 18 < 2/η = 20
  const FlowRun run = run_central_flow(device(), a, {b}, lr, {0.05, 0.0}, 200);
  EXPECT_NEAR(b + run.y, 2 / lr, 1e-3 * 2 / lr);  // y stopped where the sharpness is 2/η
  EXPECT_NEAR(run.variance, 2 * a, 1e-2 * 2 * a);  // σ² = 2a along x
  EXPECT_LE(run.max_sharpness, 2.0 + 1e-3);
}

TEST_P(CentralFlowToy, OnlyTheSharpestOfThreeCoordinatesOscillates) {
  const double a = 0.3, lr = 0.1;
  const FlowRun run = run_central_flow(device(), a, {18.0, 17.0, 15.0}, lr, {0.05, 0.05, 0.05, 0.0}, 200);
  EXPECT_NEAR(18.0 + run.y, 2 / lr, 1e-3 * 2 / lr);
  EXPECT_NEAR(run.variance, 2 * a, 1e-2 * 2 * a);
}

// GD itself at the edge of stability: its time average of x² over a long run matches the flow's 2a.
TEST_P(CentralFlowToy, GdTimeAverageOfXSquaredMatchesPrediction) {
  const double a = 0.1, lr = 0.02, b = 98.0;  // a step size GD's oscillation settles at (larger ones diverge)
  ToyObjective<double> toy(device(), a, {b});
  OptimizerSpec spec;
  spec.lr = lr;
  OptimizerState<double> state(device(), spec, 2);
  Buffer<double> w(device(), std::span<const double>(std::vector<double>{0.05, 0.0})), g(device(), 2);
  double sum = 0;
  const int steps = 20000;
  for (int t = 0; t < steps; ++t) {
    toy.value_grad(w.data(), g.data());
    state.update(g.data());
    state.step(w.data(), g.data());
    const auto now = w.to_host();
    if (t >= steps / 2) sum += now[0] * now[0];
  }
  EXPECT_NEAR(sum / (steps / 2), 2 * a, 0.05 * 2 * a);
}

CFLOW_TEST_ON_ALL_BACKENDS(CentralFlowToy);

}  // namespace
}  // namespace cflow
