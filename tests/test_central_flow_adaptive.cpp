// The central flow of the adaptive optimizers (scalar-rmsprop, rmsprop; docs/design.md §4, §6) on the toy
// L = −a·y + ½ Σ_j (b_j + y) x_j², against what the science says and against the discrete optimizer.
//
// What the flow must satisfy at the edge of stability, with P = diag(p) the preconditioner and the
// critical directions U = P^{-1/2}Y (UᵀPU = I, HU = PUΛ) carrying the covariance Σ = UXUᵀ:
//  * effective sharpness λ_max(P⁻¹H) held at 2 (to the discretization) once it gets there;
//  * y at rest on average: ∇_w(u_aᵀHu_b)_y = Σ_j u_aj u_bj, so the flow's
//        ẏ = −(1/p_y)[g_y + ½ Σ_ab X_ab (d_ab)_y] = (1/p_y)[a − ½ Σ_j (x_j² + Σ_jj)],
//    and ẏ = 0 exactly when Σ_j E[x_j²] = Σ_j (x_j² + Σ_jj) = 2a. At x = 0 the critical vectors
//    are u_a = e_{x_a}/√p_{x_a}, so the condition reads Σ_a X_aa/p_{x_a} = 2a in the P-normalized
//    basis (K = 1: X = 2a·p_x);
//  * ν at rest: ν̇ = c(E[g⊙g] − ν) with E[g_j²] = g_j² + p_j²(UΛXΛUᵀ)_jj (rmsprop; scalar-rmsprop:
//    E‖g‖² = ‖g‖² + Σ_ab X_ab λ_aλ_b (Pu_a)·(Pu_b)), i.e. ν_j = 4 p_j X_jj for an oscillating x_j
//    at x_j = 0 (λ = 2). With ε > 0 and p = (√ν + ε)/η this has the fixed point
//    p_j = ε/(η − 2√E[x_j²]) per oscillating coordinate, where the discrete optimizer settles too.
// The discrete optimizer from the same start settles into a period-2 oscillation whose time
// averages (x², effective sharpness, y, p) the flow predicts.
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "cflow/flow/central_flow.h"
#include "cflow/runtime/blas.h"
#include "cflow/flow/toy_objective.h"
#include "test_support.h"

namespace cflow {
namespace {

constexpr double kThreshold = 1.95;  // the critical set: effective eigenvalues above it

// All eigenpairs of P⁻¹H by a dense solve of the symmetric P^{-1/2}HP^{-1/2} built from the tiny
// Hessian: the flow is tested independently of the iterative eigen-solver.
struct Eigenpairs {
  std::vector<double> effective;  // descending
  std::vector<double> U;          // d × d, column c the generalized eigenvector of effective[c], UᵀPU = I
};

Eigenpairs effective_eigenpairs(ToyObjective<double>& toy, const Buffer<double>& w, const std::vector<double>& p) {
  const index_t d = toy.dim();
  std::vector<double> identity(std::size_t(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) identity[std::size_t(i * d + i)] = 1;
  Buffer<double> I(toy.device(), std::span<const double>(identity)), H(toy.device(), d * d);
  toy.hvp(w.data(), I.data(), d, H.data());
  std::vector<double> A = H.to_host();
  for (index_t i = 0; i < d; ++i)
    for (index_t j = 0; j < d; ++j) A[std::size_t(i + d * j)] /= std::sqrt(p[std::size_t(i)] * p[std::size_t(j)]);
  std::vector<double> values(static_cast<std::size_t>(d));
  EXPECT_EQ(LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', d, A.data(), d, values.data()), 0);
  Eigenpairs out;
  for (index_t j = d - 1; j >= 0; --j) {
    out.effective.push_back(values[std::size_t(j)]);
    for (index_t i = 0; i < d; ++i) out.U.push_back(A[std::size_t(i + j * d)] / std::sqrt(p[std::size_t(i)]));
  }
  return out;
}

struct Toy {
  OptimizerKind kind = OptimizerKind::rmsprop;
  bool bias_correction = false;
  double lr = 1.0, beta2 = 0.9, eps = 1.0;
  double a = 0.03125;
  std::vector<double> b;
  double x0 = 0.01;  // every x_j starts here, y at 0
  int steps = 600;

  OptimizerSpec spec() const {
    OptimizerSpec s;
    s.kind = kind;
    s.lr = lr;
    s.beta2 = beta2;
    s.eps = eps;
    s.bias_correction = bias_correction;
    return s;
  }
  std::vector<double> w0() const {
    std::vector<double> w(b.size(), x0);
    w.push_back(0.0);
    return w;
  }
  index_t K() const { return index_t(b.size()); }
};

Toy make_toy(OptimizerKind kind, std::vector<double> b, bool bias_correction = false) {
  Toy toy;
  toy.kind = kind;
  toy.b = std::move(b);
  toy.bias_correction = bias_correction;
  return toy;
}

std::vector<double> preconditioner(const OptimizerState<double>& state) {
  Buffer<double> p(state.device(), state.dim());
  state.preconditioner(p.data());
  return p.to_host();
}

// ---- the central flow ----------------------------------------------------------------------------

struct FlowRun {
  int onset = -1;               // first substep with a critical direction (λ_max > 1.95)
  int activation = -1;          // first substep whose SDCP returned X ≠ 0: the sharpness got to 2
  double max_lock_error = 0;    // max |λ_max − 2| over the substeps after the activation
  double late_lock_error = 0;   // the same over the second half of the run
  double max_residual = 0;      // largest SDCP residual
  int max_k = 0;
  bool k_dropped = false;       // a critical direction left the critical set after the activation
  // At the start of the last substep:
  std::vector<double> w;              // (x, y)
  std::vector<double> p;              // diag P
  std::vector<double> nu;             // ν (the state)
  std::vector<double> X;              // k × k
  std::vector<double> lambda;         // critical effective eigenvalues
  std::vector<double> U;              // d × k critical vectors
  std::vector<double> expected_x_sq;  // E[x_j²] = x_j² + Σ_jj, j < K
  std::vector<double> expected_g_sq;  // E[g⊙g] (rmsprop) or E‖g‖² in entry 0 (scalar-rmsprop)
  double y_rate = 0;                  // ẏ over the last unit of time
  double y_rate_last_substep = 0;     // ẏ of the last substep (Euler: exactly the flow's ẏ there)
  double total_expected_x_sq() const { return std::accumulate(expected_x_sq.begin(), expected_x_sq.end(), 0.0); }
};

// The last substep's point and Σ = UXUᵀ into run: E[x_j²] = x_j² + Σ_jj; E[g_q²] = g_q² + diag(HΣH)_q
// with HU = PUΛ, i.e. diag(HΣH)_q = p_q² (UΛXΛUᵀ)_qq.
void record_final(FlowRun& run, const Toy& toy_spec, const std::vector<double>& w_host, const std::vector<double>& g_host,
                  const std::vector<double>& p, const std::vector<double>& nu, const std::vector<double>& X,
                  const CriticalSet<double>& critical, const std::vector<double>& Uk) {
  const index_t K = toy_spec.K(), d = K + 1, k = critical.k();
  run.w = w_host;
  run.p = p;
  run.nu = nu;
  run.X = X;
  run.lambda = critical.eigenvalues;
  run.U = Uk;
  run.expected_x_sq.assign(std::size_t(K), 0.0);
  run.expected_g_sq.assign(std::size_t(d), 0.0);
  for (index_t q = 0; q < d; ++q) {
    for (index_t i = 0; i < k; ++i)
      for (index_t j = 0; j < k; ++j) {
        const double uxu = Uk[std::size_t(q + d * i)] * X[std::size_t(i + k * j)] * Uk[std::size_t(q + d * j)];
        if (q < K) run.expected_x_sq[std::size_t(q)] += uxu;
        run.expected_g_sq[std::size_t(q)] += p[std::size_t(q)] * p[std::size_t(q)] *
                                             critical.eigenvalues[std::size_t(i)] * critical.eigenvalues[std::size_t(j)] * uxu;
      }
    if (q < K) run.expected_x_sq[std::size_t(q)] += w_host[std::size_t(q)] * w_host[std::size_t(q)];
    run.expected_g_sq[std::size_t(q)] += g_host[std::size_t(q)] * g_host[std::size_t(q)];
  }
  if (toy_spec.kind == OptimizerKind::scalar_rmsprop)
    run.expected_g_sq = {std::accumulate(run.expected_g_sq.begin(), run.expected_g_sq.end(), 0.0)};
}

FlowRun run_central_flow(const Device& dev, const Toy& toy_spec, int nsub = 4) {
  ToyObjective<double> toy(dev, toy_spec.a, toy_spec.b);
  const index_t d = toy.dim();
  OptimizerState<double> state(dev, toy_spec.spec(), d);
  const std::vector<double> w0 = toy_spec.w0();
  Buffer<double> w(dev, std::span<const double>(w0)), g(dev, d);
  toy.value_grad(w.data(), g.data());
  state.update(g.data());  // docs/design.md §6: the flows start from the state after one update with g(w₀)
  FlowRun run;
  const int substeps = toy_spec.steps * nsub;
  double y_a_step_ago = 0;
  int previous_k = 0;
  for (int substep = 0; substep < substeps; ++substep) {
    toy.value_grad(w.data(), g.data());
    const std::vector<double> p = preconditioner(state), g_host = g.to_host(), w_host = w.to_host();
    if (substep == substeps - nsub) y_a_step_ago = w_host.back();
    const Eigenpairs eig = effective_eigenpairs(toy, w, p);
    CriticalSet<double> critical;
    for (double lambda : eig.effective)
      if (lambda > kThreshold) critical.eigenvalues.push_back(lambda);
    const index_t k = critical.k();
    if (k > 0 && run.onset < 0) run.onset = substep;
    if (run.activation >= 0) {
      run.k_dropped = run.k_dropped || int(k) < previous_k;
      run.max_lock_error = std::max(run.max_lock_error, std::abs(eig.effective[0] - 2.0));
      if (substep >= substeps / 2) run.late_lock_error = std::max(run.late_lock_error, std::abs(eig.effective[0] - 2.0));
    }
    previous_k = int(k);
    const std::vector<double> Uk(eig.U.begin(), eig.U.begin() + std::ptrdiff_t(d * k));
    Buffer<double> U(dev, std::span<const double>(Uk));
    critical.U = U.data();
    const std::vector<double> nu = state.nu().to_host();
    const CentralSubstep result = central_flow_substep(toy, state, w.data(), g.data(), critical, 1.0 / nsub);
    run.max_k = std::max(run.max_k, int(k));
    if (k > 0) run.max_residual = std::max(run.max_residual, result.sdcp.residual);
    if (k > 0 && run.activation < 0 && std::any_of(result.X.begin(), result.X.end(), [](double v) { return v != 0; }))
      run.activation = substep;
    if (substep == substeps - 1) record_final(run, toy_spec, w_host, g_host, p, nu, result.X, critical, Uk);
  }
  run.y_rate = w.to_host().back() - y_a_step_ago;
  run.y_rate_last_substep = (w.to_host().back() - run.w.back()) * nsub;
  return run;
}

// ---- the discrete optimizer ----------------------------------------------------------------------

struct DiscreteRun {
  // Time averages over the second half of the run:
  std::vector<double> mean_x_sq;  // x_j²
  double mean_sharpness = 0;      // λ_max(P⁻¹H) at w_t, P the one of the step w_t → w_{t+1}
  std::vector<double> mean_curvature;  // (b_j + y)/p_j: the effective curvature along e_{x_j}
  double mean_y = 0;
  std::vector<double> mean_p;
  double total_mean_x_sq() const { return std::accumulate(mean_x_sq.begin(), mean_x_sq.end(), 0.0); }
};

DiscreteRun run_discrete(const Device& dev, const Toy& toy_spec) {
  ToyObjective<double> toy(dev, toy_spec.a, toy_spec.b);
  const index_t d = toy.dim(), K = toy_spec.K();
  OptimizerState<double> state(dev, toy_spec.spec(), d);
  const std::vector<double> w0 = toy_spec.w0();
  Buffer<double> w(dev, std::span<const double>(w0)), g(dev, d);
  DiscreteRun run;
  run.mean_x_sq.assign(std::size_t(K), 0.0);
  run.mean_curvature.assign(std::size_t(K), 0.0);
  run.mean_p.assign(std::size_t(d), 0.0);
  const int from = toy_spec.steps / 2;
  for (int t = 0; t < toy_spec.steps; ++t) {
    toy.value_grad(w.data(), g.data());
    state.update(g.data());
    if (t >= from) {
      const std::vector<double> now = w.to_host(), p = preconditioner(state);
      const double y = now.back();
      run.mean_sharpness += effective_eigenpairs(toy, w, p).effective[0];
      for (index_t j = 0; j < K; ++j) {
        run.mean_x_sq[std::size_t(j)] += now[std::size_t(j)] * now[std::size_t(j)];
        run.mean_curvature[std::size_t(j)] += (toy_spec.b[std::size_t(j)] + y) / p[std::size_t(j)];
      }
      for (index_t q = 0; q < d; ++q) run.mean_p[std::size_t(q)] += p[std::size_t(q)];
      run.mean_y += y;
    }
    state.step(w.data(), g.data());
  }
  const double n = toy_spec.steps - from;
  run.mean_sharpness /= n;
  run.mean_y /= n;
  for (double& v : run.mean_x_sq) v /= n;
  for (double& v : run.mean_curvature) v /= n;
  for (double& v : run.mean_p) v /= n;
  return run;
}

// ---- the fixed points ----------------------------------------------------------------------------

// The rest point at the edge of stability, from the three conditions of the header (η = lr):
// each oscillating x_j has b_j + y = 2p_j and ν_j = 4p_j²v_j (v_j = E[x_j²]), so with
// p = (√ν + ε)/η: p_j = ε/(η − 2√v_j); and Σ_j v_j = 2a.
struct RestPoint {
  double y = 0;
  std::vector<double> p;  // of the x_j
  std::vector<double> v;  // E[x_j²]
};

// rmsprop, every x_j oscillating: v_j(y) = ((η − 2ε/(b_j + y))/2)² increases with y from 0 at
// b_min + y = 2ε/η (below that the smallest-b coordinate would be stable); solve Σv_j = 2a.
RestPoint rmsprop_rest_point(const Toy& toy) {
  const double lowest = 2 * toy.eps / toy.lr - *std::min_element(toy.b.begin(), toy.b.end());
  auto v = [&](double b, double y) { return std::pow((toy.lr - 2 * toy.eps / (b + y)) / 2, 2); };
  auto excess = [&](double y) {
    double sum = -2 * toy.a;
    for (double b : toy.b) sum += v(b, y);
    return sum;
  };
  EXPECT_LT(excess(lowest), 0) << "not every coordinate oscillates at rest";
  double low = lowest, high = lowest + 1;
  while (excess(high) < 0) high = low + 2 * (high - low);
  for (int i = 0; i < 200; ++i) (excess(0.5 * (low + high)) < 0 ? low : high) = 0.5 * (low + high);
  RestPoint rest;
  rest.y = 0.5 * (low + high);
  for (double b : toy.b) {
    rest.p.push_back((b + rest.y) / 2);
    rest.v.push_back(v(b, rest.y));
  }
  return rest;
}

// scalar-rmsprop, only x_1 oscillating (v_1 = 2a): ν = q + 8a·p² with q the part of E‖g‖² that
// does not come from the oscillation. On the discrete period-2 orbit x_t² = 2a at every step, so
// g_y = −a + x_t²/2 = 0 and q = 0. The flow's E‖g‖² = ‖g(w)‖² + tr(HΣH) (docs/design.md §6, as the
// reference) keeps g_y(w)² = a² at the central point, x = 0: it drops the terms of E[g_y(w + δ)²]
// that involve the third derivative, 2g_y·½Σ_ab X_ab (d_ab)_y = −2a² and ¼E[x⁴] = a², which cancel
// the a² here. So the flow has q = a², and its p lies 5e-4 above the discrete one.
// (ηp − ε)² = q + 8a·p²  ⇒  (η² − 8a)p² − 2εηp + ε² − q = 0.
RestPoint scalar_rest_point(const Toy& toy, double q) {
  const double A = toy.lr * toy.lr - 8 * toy.a, B = -2 * toy.eps * toy.lr, C = toy.eps * toy.eps - q;
  const double p = (-B + std::sqrt(B * B - 4 * A * C)) / (2 * A);
  RestPoint rest;
  rest.y = 2 * p - toy.b[0];
  rest.p = {p};
  rest.v = {2 * toy.a};
  return rest;
}

// ---- the stationary flow (docs/design.md §6.9) ------------------------------------------------------

// The stationary flow on the toy with dense eigenpairs at every fixed-point iteration; the lock error
// is measured at every substep's fixed point.
struct StationaryRun {
  FlowRun flow;
  double max_lock_error = 0;    // |λ_max − 2| at the fixed points with X ≠ 0
  double late_lock_error = 0;   // the same over the second half of the run
  double max_above_edge = 0;    // max(λ_max − 2, 0) at every fixed point
  int max_iterations = 0;
};

StationaryRun run_stationary_flow(const Device& dev, const Toy& toy_spec, const FixedPoint& fixed, int nsub = 4) {
  ToyObjective<double> toy(dev, toy_spec.a, toy_spec.b);
  const index_t d = toy.dim();
  OptimizerState<double> state(dev, toy_spec.spec(), d);
  const std::vector<double> w0 = toy_spec.w0();
  Buffer<double> w(dev, std::span<const double>(w0)), g(dev, d), p(dev, d), U;
  toy.value_grad(w.data(), g.data());
  state.update(g.data());
  StationaryRun run;
  const int substeps = toy_spec.steps * nsub;
  for (int substep = 0; substep < substeps; ++substep) {
    toy.value_grad(w.data(), g.data());
    const std::vector<double> g_host = g.to_host(), w_host = w.to_host();
    Eigenpairs eig;
    CriticalSet<double> critical;
    std::vector<double> Uk;
    const CriticalSetAt<double> critical_at = [&](const double* p_device, index_t at_least) {
      Buffer<double> copy(dev, d);
      blas::copy<double>(dev, d, p_device, copy.data());
      eig = effective_eigenpairs(toy, w, copy.to_host());
      critical = {};
      for (double lambda : eig.effective)
        if (lambda > kThreshold || critical.k() < at_least) critical.eigenvalues.push_back(lambda);
      Uk.assign(eig.U.begin(), eig.U.begin() + std::ptrdiff_t(d * critical.k()));
      U = Buffer<double>(dev, std::span<const double>(Uk));
      critical.U = U.data();
      return critical;
    };
    const CentralSubstep result =
        stationary_flow_substep(toy, state, w.data(), g.data(), critical_at, p.data(), 1.0 / nsub, fixed);
    run.max_iterations = std::max(run.max_iterations, result.iterations);
    run.flow.max_k = std::max(run.flow.max_k, int(critical.k()));
    run.max_above_edge = std::max(run.max_above_edge, eig.effective[0] - 2.0);
    if (std::any_of(result.X.begin(), result.X.end(), [](double v) { return v != 0; })) {
      if (run.flow.activation < 0) run.flow.activation = substep;
      run.max_lock_error = std::max(run.max_lock_error, std::abs(eig.effective[0] - 2.0));
      if (substep >= substeps / 2) run.late_lock_error = std::max(run.late_lock_error, std::abs(eig.effective[0] - 2.0));
      run.flow.max_residual = std::max(run.flow.max_residual, result.sdcp.residual);
    }
    if (substep == substeps - 1)
      record_final(run.flow, toy_spec, w_host, g_host, p.to_host(), state.nu().to_host(), result.X, critical, Uk);
  }
  run.flow.y_rate_last_substep = (w.to_host().back() - run.flow.w.back()) * nsub;
  return run;
}

// ---- checks --------------------------------------------------------------------------------------

void report(const char* name, const Toy& toy, const FlowRun& flow, const DiscreteRun& discrete) {
  std::printf("[%s] onset %d activation %d (substeps) max_k %d lock error %.2e (late %.2e) SDCP residual %.1e ydot %.1e\n",
              name, flow.onset, flow.activation, flow.max_k, flow.max_lock_error, flow.late_lock_error,
              flow.max_residual, flow.y_rate);
  for (index_t j = 0; j < toy.K(); ++j)
    std::printf("  x%ld: E[x^2] flow %.6f discrete %.6f (%+.1e of 2a); p flow %.6f discrete %.6f; curvature %.6f\n",
                long(j), flow.expected_x_sq[std::size_t(j)], discrete.mean_x_sq[std::size_t(j)],
                (discrete.mean_x_sq[std::size_t(j)] - flow.expected_x_sq[std::size_t(j)]) / (2 * toy.a), flow.p[std::size_t(j)],
                discrete.mean_p[std::size_t(j)], discrete.mean_curvature[std::size_t(j)]);
  std::printf("  sum E[x^2] flow %.6f discrete %.6f, 2a %.6f; y flow %.6f discrete %.6f; discrete mean S_eff %.6f\n",
              flow.total_expected_x_sq(), discrete.total_mean_x_sq(), 2 * toy.a, flow.w.back(), discrete.mean_y,
              discrete.mean_sharpness);
}

// The flow's ẏ against the header's ẏ = (1/p_y)[a − ½ Σ_j E[x_j²]] (its X part comes from ẇ's
// −½ Σ_ab X_ab P⁻¹d_ab): at rest it says Σ_j E[x_j²] = 2a.
void check_y_rate(const Toy& toy, const FlowRun& flow) {
  const double predicted = (toy.a - 0.5 * flow.total_expected_x_sq()) / flow.p.back();
  EXPECT_NEAR(flow.y_rate_last_substep, predicted, 1e-9 * (toy.a / flow.p.back())) << to_string(toy.kind);
}

// Part 1: the flow by itself.
void check_flow(const Toy& toy, const FlowRun& flow, int expected_k) {
  const index_t K = toy.K(), d = K + 1;
  const std::size_t k = flow.lambda.size();
  ASSERT_GE(flow.onset, 0) << "the flow never reached the edge of stability";
  ASSERT_GE(flow.activation, 0) << "the SDCP never switched the oscillation on";
  EXPECT_EQ(flow.max_k, expected_k);
  EXPECT_FALSE(flow.k_dropped) << "a critical direction left the critical set";
  ASSERT_EQ(int(k), expected_k);
  EXPECT_LE(flow.max_residual, 1e-10);
  // Locked at 2: within the Euler discretization (dt = 1/4) from the activation on, and ever
  // tighter as the flow settles.
  EXPECT_LE(flow.max_lock_error, 5e-3);
  EXPECT_LE(flow.late_lock_error, 1e-5);
  check_y_rate(toy, flow);
  // At rest: ẏ = 0 and ν̇ = 0 …
  EXPECT_LE(std::abs(flow.y_rate), 1e-7);
  for (std::size_t q = 0; q < flow.nu.size(); ++q)
    EXPECT_NEAR(flow.nu[q], flow.expected_g_sq[q], 1e-5 * flow.nu[q]) << "ν at rest equals E[g²], coordinate " << q;
  // … so y's stationarity condition holds: Σ_j E[x_j²] = 2a.
  EXPECT_NEAR(flow.total_expected_x_sq(), 2 * toy.a, 1e-5 * 2 * toy.a);
  // The critical subspace is the x subspace (zero y components) in whatever basis the eigen-solver
  // picked: with rmsprop's K = 3 the three critical eigenvalues are all 2 to ~1e-11, so the basis
  // within them is arbitrary and X is compared basis-free in check_rest_point.
  for (std::size_t i = 0; i < k; ++i) EXPECT_NEAR(flow.U[i * std::size_t(d) + std::size_t(K)], 0.0, 1e-6);
  if (k == 1) {
    // One critical vector, u = ±e_{x_q}/√p_q; in this P-normalized basis stationarity reads X = 2a·p_q.
    const double* u = flow.U.data();
    const std::size_t q = std::size_t(std::max_element(u, u + K, [](double l, double r) { return std::abs(l) < std::abs(r); }) - u);
    for (std::size_t r = 0; r < std::size_t(d); ++r)
      EXPECT_NEAR(std::abs(u[r]), r == q ? 1 / std::sqrt(flow.p[q]) : 0.0, 1e-6) << "coordinate " << r;
    EXPECT_NEAR(flow.X[0], 2 * toy.a * flow.p[q], 1e-5 * 2 * toy.a * flow.p[q]);
  }
}

// The flow's rest point against the closed form; X in the flow's P-normalized basis against the
// closed-form covariance Σ = diag(v) on the oscillating x_j: X = UᵀPΣPU (UᵀPU = I and Σ = UXUᵀ),
// i.e. X_ab = Σ_j p_j² v_j u_aj u_bj, whatever basis U is.
void check_rest_point(const Toy& toy, const FlowRun& flow, const RestPoint& rest, double tolerance) {
  EXPECT_NEAR(flow.w.back(), rest.y, tolerance * rest.y);
  for (std::size_t j = 0; j < rest.p.size(); ++j) {
    EXPECT_NEAR(flow.p[j], rest.p[j], tolerance * rest.p[j]);
    EXPECT_NEAR(flow.expected_x_sq[j], rest.v[j], tolerance * rest.v[j]);
  }
  const std::size_t k = flow.lambda.size(), d = std::size_t(toy.K()) + 1;
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t b = 0; b < k; ++b) {
      double expected = 0;
      for (std::size_t j = 0; j < rest.v.size(); ++j)
        expected += flow.p[j] * flow.p[j] * rest.v[j] * flow.U[a * d + j] * flow.U[b * d + j];
      EXPECT_NEAR(flow.X[a + k * b], expected, tolerance * 2 * toy.a * flow.p[0]) << "X_" << a << b;
    }
}

// Part 2: the discrete optimizer's time averages against the flow's predictions.
void check_discrete(const Toy& toy, const FlowRun& flow, const DiscreteRun& discrete, double tolerance) {
  // Σ_j x_j² and, per oscillating coordinate, x_j².
  EXPECT_NEAR(discrete.total_mean_x_sq(), flow.total_expected_x_sq(), tolerance * flow.total_expected_x_sq());
  for (index_t j = 0; j < toy.K(); ++j) {
    const double predicted = flow.expected_x_sq[std::size_t(j)];
    EXPECT_NEAR(discrete.mean_x_sq[std::size_t(j)], predicted, tolerance * 2 * toy.a) << "x_" << j;
  }
  // The effective curvature along each oscillating x_j averages to 2. λ_max(P⁻¹H) at the iterates
  // exceeds it through the x–y coupling: the iterates sit at x_j = ±√E[x_j²] around the central
  // point, where P^{-1/2}HP^{-1/2} = [[2I, c], [cᵀ, 0]] with c_j = x_j/√(p_j p_y) (the oscillating
  // x_j; the others are at 0), whose top eigenvalue is 1 + √(1 + |c|²) whatever the signs.
  for (std::size_t j = 0; j < flow.lambda.size(); ++j)
    EXPECT_NEAR(discrete.mean_curvature[j], 2.0, 1e-3) << "x_" << j;
  double coupling = 0;
  for (index_t j = 0; j < toy.K(); ++j)
    coupling += flow.expected_x_sq[std::size_t(j)] / (flow.p[std::size_t(j)] * flow.p.back());
  EXPECT_NEAR(discrete.mean_sharpness, 1 + std::sqrt(1 + coupling), 1e-3);
  // Where the discrete process settles: y and the x preconditioner.
  EXPECT_NEAR(discrete.mean_y, flow.w.back(), tolerance * std::abs(flow.w.back()));
  for (std::size_t j = 0; j < flow.lambda.size(); ++j)
    EXPECT_NEAR(discrete.mean_p[j], flow.p[j], tolerance * flow.p[j]) << "x_" << j;
}

// The discrete optimizer's settling point against its closed form.
void check_discrete_rest_point(const DiscreteRun& discrete, const RestPoint& rest, double tolerance) {
  EXPECT_NEAR(discrete.mean_y, rest.y, tolerance * rest.y);
  for (std::size_t j = 0; j < rest.p.size(); ++j) EXPECT_NEAR(discrete.mean_p[j], rest.p[j], tolerance * rest.p[j]);
}

// Flow vs discrete: "within a few percent" is the brief; they agree to ~1e-3 here (the scalar
// optimizer's a² offset of the flow's ν, see scalar_rest_point, is 5e-4 in p).
constexpr double kFlowVsDiscrete = 5e-3;

void run_and_check(const Device& dev, const char* name, const Toy& toy, int expected_k) {
  const FlowRun flow = run_central_flow(dev, toy);
  const DiscreteRun discrete = run_discrete(dev, toy);
  report(name, toy, flow, discrete);
  check_flow(toy, flow, expected_k);
  if (::testing::Test::HasFatalFailure()) return;
  if (toy.kind == OptimizerKind::rmsprop) {
    check_rest_point(toy, flow, rmsprop_rest_point(toy), 1e-4);
    check_discrete_rest_point(discrete, rmsprop_rest_point(toy), 1e-3);
  } else {
    check_rest_point(toy, flow, scalar_rest_point(toy, toy.a * toy.a), 1e-4);
    check_discrete_rest_point(discrete, scalar_rest_point(toy, 0), 1e-3);
  }
  check_discrete(toy, flow, discrete, kFlowVsDiscrete);
}

// Defaults of Toy: η = 1, ε = 1, β₂ = 0.9, a = 1/32 (√(8a) = η/2), b_1 = 1.5, x = 0.01: the
// sharpness starts at ≈ 1.5 and the rest point is p_x = ε/(η − √(8a)) = 2, y = 2p_x − b_1 = 2.5.
// (ε > 0 is what makes a rest point: with ε = 0, ν_x = 8a·p_x² = 8aν_x/η² holds only for η² = 8a,
// and ν drifts off exponentially otherwise.) A coarser η or ε makes the discrete oscillation diverge
// or wander (see the report); these values settle into a clean period-2 orbit within ~1000 steps.
class CentralFlowAdaptiveToy : public testing::BackendTest {};

TEST_P(CentralFlowAdaptiveToy, ScalarRmsPropOneCoordinate) {
  Toy toy = make_toy(OptimizerKind::scalar_rmsprop, {1.5});
  toy.steps = 2000;
  run_and_check(device(), "scalar-rmsprop K=1", toy, 1);
}

TEST_P(CentralFlowAdaptiveToy, RmsPropOneCoordinate) {
  Toy toy = make_toy(OptimizerKind::rmsprop, {1.5});
  toy.steps = 1200;
  run_and_check(device(), "rmsprop K=1", toy, 1);
}

// One shared step size: only the sharpest coordinate reaches 2; x_2, x_3 stay stable and decay.
TEST_P(CentralFlowAdaptiveToy, ScalarRmsPropThreeCoordinates) {
  Toy toy = make_toy(OptimizerKind::scalar_rmsprop, {1.5, 1.1, 0.7});
  toy.steps = 2000;
  run_and_check(device(), "scalar-rmsprop K=3", toy, 1);
}

// Per-coordinate step sizes: every ν_j of a stable x_j decays until x_j is at the edge too; at rest
// all three oscillate (k = 3), with E[x_j²] = ((η − 2ε/(b_j + y))/2)² summing to 2a.
TEST_P(CentralFlowAdaptiveToy, RmsPropThreeCoordinates) {
  Toy toy = make_toy(OptimizerKind::rmsprop, {1.5, 1.2, 0.9});
  toy.steps = 600;
  run_and_check(device(), "rmsprop K=3", toy, 3);
}

// Bias correction changes the start (ν̂ = g₀² at t = 1; the edge comes at t ≈ 15, where
// β₂^t ≈ 0.46 with β₂ = 0.95) and fades before the rest point, which is the one without it. With
// ε = 1 dominating p early on, ∂P/∂t is small here: BiasCorrectionEarlyEdgeWithoutEps tests that term.
TEST_P(CentralFlowAdaptiveToy, ScalarRmsPropBiasCorrection) {
  Toy toy = make_toy(OptimizerKind::scalar_rmsprop, {1.5}, true);
  toy.beta2 = 0.95;
  toy.steps = 2000;
  run_and_check(device(), "scalar-rmsprop K=1 bias correction", toy, 1);
}

TEST_P(CentralFlowAdaptiveToy, RmsPropBiasCorrection) {
  Toy toy = make_toy(OptimizerKind::rmsprop, {1.5}, true);
  toy.beta2 = 0.95;
  toy.steps = 1500;
  run_and_check(device(), "rmsprop K=1 bias correction", toy, 1);
}

// With ε = 0 and bias correction the edge comes early, while 1 − β₂^t is far from 1 (β₂ = 0.99: ν̂ is
// ν/0.1 at t = 10): the preconditioner then also moves through ∂P/∂t = √ν̂·β₂^t ln β₂/(2η(1 − β₂^t)),
// and the flow must still hold the sharpness at 2. (No rest point without ε; no discrete comparison.)
TEST_P(CentralFlowAdaptiveToy, BiasCorrectionEarlyEdgeWithoutEps) {
  for (const OptimizerKind kind : {OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop}) {
    Toy toy = make_toy(kind, {1.0}, true);
    toy.lr = 0.05;
    toy.a = 0.01;
    toy.beta2 = 0.99;
    toy.eps = 0;
    toy.x0 = 0.1;
    toy.steps = 200;
    const FlowRun flow = run_central_flow(device(), toy);
    std::printf("[%s, eps = 0, bias correction] onset %d activation %d (substeps) lock error %.2e (late %.2e) "
                "SDCP residual %.1e\n", to_string(kind).c_str(), flow.onset, flow.activation, flow.max_lock_error,
                flow.late_lock_error, flow.max_residual);
    EXPECT_GT(flow.onset, 0) << to_string(kind) << ": starts below the edge";
    EXPECT_LT(flow.activation, 4 * 25) << to_string(kind) << ": reaches it while β₂^t > 0.75";
    EXPECT_FALSE(flow.k_dropped) << to_string(kind);
    EXPECT_EQ(flow.lambda.size(), 1u) << to_string(kind);
    EXPECT_LE(flow.max_residual, 1e-10) << to_string(kind);
    EXPECT_LE(flow.max_lock_error, 1e-3) << to_string(kind);
    check_y_rate(toy, flow);
  }
}

// The stationary flow's rest point is the RMSProp central flow's: at rest ν̇ = 0 makes the central
// flow's ν = E[g⊙g], which the stationary flow imposes at every point, and both have ẏ = 0 and the
// margin 0 on the oscillating span, so both solve the equations of rmsprop_rest_point. β₂ only sets
// how fast the central flow's ν relaxes to that value (c = (1 − β₂)/β₂), not where: the β₂ → 1 limit
// has the same rest point, approached ever more slowly. The stationary flow has no β₂ at all.
// Tolerances: the fixed point is solved to 1e-12, so ν = E[g⊙g] holds to ~1e-10 at every substep
// (rounding of the dense eigen-solve). Its SDCP zeroes the margin *after* the substep, so at the
// fixed point λ_max = 2 − dt·⟨d_11, P⁻¹g⟩ = 2 − dt·g_y/(p_x p_y) ≥ 2 − dt·a·η²/ε² (p ≥ ε/η, |g_y| ≤ a
// at x = 0): the lock error is at most dt·a = 7.8e-3 here, and vanishes at rest (ẇ = 0), where it
// must be as tight as the central flow's (1e-5). The rest point is approached exponentially; after
// 1200 steps it is within 1e-6 of the closed form (relative), 100× tighter than the central flow's
// 1e-4 after its run (check_rest_point above), which is the tolerance of stationary vs central.
TEST_P(CentralFlowAdaptiveToy, StationaryFlowRestPointIsTheCentralFlows) {
  Toy toy = make_toy(OptimizerKind::rmsprop, {1.5});
  toy.steps = 1200;
  const StationaryRun stationary = run_stationary_flow(device(), toy, FixedPoint{1e-12, 50});
  const FlowRun& flow = stationary.flow;
  std::printf("[stationary rmsprop K=1] activation %d (substeps) lock error %.2e (late %.2e) iterations %d "
              "SDCP residual %.1e y %.8f\n", flow.activation, stationary.max_lock_error, stationary.late_lock_error,
              stationary.max_iterations, flow.max_residual, flow.w.back());
  ASSERT_GE(flow.activation, 0) << "never reached the edge";
  EXPECT_EQ(flow.max_k, 1);
  EXPECT_LE(stationary.max_lock_error, 0.25 * toy.a * toy.lr * toy.lr / (toy.eps * toy.eps));
  EXPECT_LE(stationary.late_lock_error, 1e-5);
  EXPECT_LE(flow.max_residual, 1e-10);
  for (std::size_t q = 0; q < flow.nu.size(); ++q)
    EXPECT_NEAR(flow.nu[q], flow.expected_g_sq[q], 1e-9 * flow.nu[q]) << "ν = E[g²] at coordinate " << q;
  check_y_rate(toy, flow);
  const RestPoint rest = rmsprop_rest_point(toy);
  check_rest_point(toy, flow, rest, 1e-6);
  const FlowRun central = run_central_flow(device(), toy);
  EXPECT_NEAR(flow.w.back(), central.w.back(), 1e-4 * rest.y) << "y, stationary vs central";
  EXPECT_NEAR(flow.p[0], central.p[0], 1e-4 * rest.p[0]) << "p, stationary vs central";
}

// Three coordinates (as RmsPropThreeCoordinates): x_2 and x_3 join the critical set while x_1
// oscillates, each decoupled from the others and with ν̂ ≈ 0 on its coordinate when it does (its x has
// decayed), where √ν̂ has a near-infinite slope. The fixed point must converge at every substep (the
// substep throws otherwise) through k = 3 (docs/design.md §6.9: the secant slope). With k = 3 the
// change of P stalls at ~1e-11 (rounding of the SDCP and eigen-solves), so the fixed point is solved to
// 1e-10, and ν = E[g⊙g] holds to 1e-9. 150 steps reach k = 3 but not the rest point (the one-coordinate
// test checks that), which keeps the test short.
TEST_P(CentralFlowAdaptiveToy, StationaryFlowThreeCriticalCoordinates) {
  Toy toy = make_toy(OptimizerKind::rmsprop, {1.5, 1.2, 0.9});
  toy.steps = 150;
  const StationaryRun stationary = run_stationary_flow(device(), toy, FixedPoint{1e-10, 50});
  const FlowRun& flow = stationary.flow;
  std::printf("[stationary rmsprop K=3] activation %d (substeps) max_k %d iterations %d SDCP residual %.1e\n",
              flow.activation, flow.max_k, stationary.max_iterations, flow.max_residual);
  ASSERT_GE(flow.activation, 0) << "never reached the edge";
  EXPECT_EQ(flow.max_k, 3);
  EXPECT_EQ(flow.lambda.size(), 3u) << "all three oscillate at the end";
  EXPECT_LE(flow.max_residual, 1e-9);
  for (std::size_t q = 0; q < flow.nu.size(); ++q)
    EXPECT_NEAR(flow.nu[q], flow.expected_g_sq[q], 1e-9 * flow.nu[q]) << "ν = E[g²] at coordinate " << q;
  check_y_rate(toy, flow);
}

// The stationary flow needs rmsprop's per-coordinate ν.
TEST_P(CentralFlowAdaptiveToy, StationaryFlowRefusesOtherOptimizers) {
  Toy toy = make_toy(OptimizerKind::scalar_rmsprop, {1.5});
  toy.steps = 1;
  EXPECT_THROW(run_stationary_flow(device(), toy, FixedPoint{}), Error);
}

CFLOW_TEST_ON_ALL_BACKENDS(CentralFlowAdaptiveToy);

}  // namespace
}  // namespace cflow
