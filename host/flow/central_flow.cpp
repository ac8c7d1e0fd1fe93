// The central flow substep (docs/design.md §6). Everything d-dimensional stays on the device; the k×k
// (and pair × pair) matrices that define the SDCP are assembled on the host in float64.
#include "cflow/flow/central_flow.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "kernels/elementwise.h"
#include "host/runtime/stopwatch.h"
#include "host/flow/pair_columns.h"
#include "host/solvers/anderson.h"
#include "host/solvers/small_dense.h"
#include "kernels/flow.h"

namespace cflow {
namespace {

using blas::Op;

template <class T>
std::vector<double> to_double(const Buffer<T>& buffer) {
  const auto host = buffer.to_host();
  return {host.begin(), host.end()};
}

// Multiplicity of pair (c, d) in a sum over all ordered pairs.
double multiplicity(index_t c, index_t d) { return c == d ? 1.0 : 2.0; }
index_t pair_of(index_t a, index_t b, index_t k) { return a <= b ? pair_index(a, b, k) : pair_index(b, a, k); }

// The SDCP's data: the next margin M + dt·Ṁ = α + 𝓑[X] with Ṁ = 2UᵀṖU − Ḣ_U, (Ḣ_U)_ab = ⟨d_ab, ẇ⟩,
// ẇ = −P⁻¹g − ½ Σ_cd X_cd P⁻¹d_cd (sums over ordered pairs). d_g = ⟨d_ab, P⁻¹g⟩, d_metric =
// ⟨d_ab, P⁻¹d_cd⟩ (pairs × pairs).
struct MarginProblem {
  std::vector<double> alpha, B;  // k × k and k² × k²
};

MarginProblem next_margin(index_t k, const std::vector<double>& lambda, const std::vector<double>& d_g,
                          const std::vector<double>& d_metric, const PreconditionerRateOnSpan& rate, double dt) {
  const index_t pairs = pair_count(k);
  const std::vector<double>&preconditioner_0 = rate.at_zero, &preconditioner_x = rate.per_x;
  std::vector<double> alpha(std::size_t(k * k)), B(std::size_t(k * k * k * k));
  for (index_t row = 0; row < k; ++row)
    for (index_t col = 0; col < k; ++col) {
      const index_t ab = pair_of(row, col, k);
      alpha[std::size_t(row + k * col)] = (row == col ? 2.0 - lambda[std::size_t(row)] : 0.0) +
                                         dt * (d_g[std::size_t(ab)] + 2.0 * preconditioner_0[std::size_t(row + k * col)]);
      for (index_t c = 0; c < k; ++c)
        for (index_t e = 0; e < k; ++e) {
          const index_t ce = pair_of(c, e, k);
          B[std::size_t((row + k * col) + k * k * (c + k * e))] =
              dt * (0.5 * d_metric[std::size_t(ab + pairs * ce)] + 2.0 * preconditioner_x[std::size_t(ab + pairs * ce)]);
        }
    }
  return {std::move(alpha), std::move(B)};
}

// Per pair c ≤ e: the weight weight(c, e, x) of x = mult(c, e)·X_ce, the pair's share of a sum over
// ordered pairs.
template <class T, class Weight>
Buffer<T> pair_weights(const Device& dev, index_t k, const std::vector<double>& X, Weight weight) {
  std::vector<T> weights(static_cast<std::size_t>(pair_count(k)));
  for (index_t c = 0; c < k; ++c)
    for (index_t e = c; e < k; ++e)
      weights[std::size_t(pair_index(c, e, k))] = T(weight(c, e, multiplicity(c, e) * X[std::size_t(c + k * e)]));
  return Buffer<T>(dev, std::span<const T>(weights));
}

// E[g⊙g](X) = g⊙g + diag(HΣH), diag(HΣH)_q = p_q² Σ_ce λ_cλ_e X_ce u_cq u_eq (§6.4); products = u_c⊙u_e
// (null when k = 0).
template <class T>
void expected_grad_sq_under(const Device& dev, index_t d, const T* g, const T* p, PairColumns<T>* products,
                            const std::vector<double>& X, const std::vector<double>& lambda, T* expected) {
  const index_t k = index_t(lambda.size());
  if (k == 0) {  // no oscillation (and a BLAS call with no columns would leave h unwritten)
    CFLOW_DISPATCH(dev, expected_grad_sq<T>, dev, d, g, p, nullptr, expected);
    return;
  }
  const Buffer<T> weight = pair_weights<T>(dev, k, X, [&](index_t c, index_t e, double x) {
    return x * lambda[std::size_t(c)] * lambda[std::size_t(e)];
  });
  Buffer<T> h(dev, d);
  products->times(weight.data(), T(0), h.data());
  CFLOW_DISPATCH(dev, expected_grad_sq<T>, dev, d, g, p, h.data(), expected);
}

// w += dt·ẇ(X), ẇ(X) = −P⁻¹g − ½ Σ_ce X_ce P⁻¹d_ce (sums over ordered pairs).
template <class T>
void move_point(const Device& dev, index_t d, index_t k, const T* pinv_g, PairColumns<T>* D,
                const std::vector<double>& X, double dt, T* w) {
  if (k == 0) {
    blas::axpy<T>(dev, d, T(-dt), pinv_g, w);
    return;
  }
  const Buffer<T> weight = pair_weights<T>(dev, k, X, [](index_t, index_t, double x) { return -0.5 * x; });
  Buffer<T> w_rate(dev, d);
  blas::copy<T>(dev, d, pinv_g, w_rate.data());
  D->times_scaled(weight.data(), T(-1), w_rate.data());  // P⁻¹D, with the P⁻¹ of derivative_terms
  blas::axpy<T>(dev, d, T(dt), w_rate.data(), w);
}

// The third derivatives d_ab = ∇(u_aᵀHu_b) at w for the pairs of U, one group of pairs at a time
// (pair_columns.h): each group asked for is a d3 pass, timed into `seconds`. The first pass also
// writes u_iᵀHu_i into quads (host, k) unless it is null.
template <class T>
PairColumns<T> third_derivatives(Objective<T>& objective, const T* w, const T* U, index_t k, index_t pair_group,
                                 double& seconds, T* quads = nullptr) {
  const Device& dev = objective.device();
  return PairColumns<T>(dev, objective.dim(), PairGroups(k, pair_group),
                        [&objective, &seconds, dev, w, U, k, quads](index_t first, index_t count, T* D) mutable {
                          const Stopwatch time(dev);
                          objective.d3_pairs(w, U, k, first, count, D, quads);
                          quads = nullptr;
                          seconds += time.seconds();
                        });
}

// Solves the SDCP into result (X, residuals, time); a failed solve is an Error naming the flow and
// whether it ran out of iterations or of time.
void solve_or_throw(const Device& dev, const char* flow, index_t k, const MarginProblem& margin,
                    const SdcpOptions& sdcp, CentralSubstep& result) {
  const Stopwatch sdcp_time(dev);
  result.sdcp = solve_sdcp(int(k), margin.alpha, margin.B, sdcp);
  result.seconds_sdcp += sdcp_time.seconds();
  if (!result.sdcp.converged) {
    std::ostringstream message;
    message << "the " << flow << "'s SDCP did not converge ";
    if (result.sdcp.timed_out)
      message << "within its time bound of " << sdcp.max_seconds << " s";
    else
      message << "in " << result.sdcp.iterations << " iterations";
    message << " (k = " << k << ", relative KKT residual " << std::scientific << std::setprecision(2)
            << result.sdcp.residual << "); the trajectory is probably diverging";
    throw Error(message.str());
  }
  result.X = result.sdcp.X;
}

// The damping θ of the fixed point's plain steps (docs/design.md §6.9). When the change of P grows
// (the step overshot: the start of a cycle) θ halves, down to kMin, and the θ that overshot becomes
// a ceiling for the rest of the substep; while it shrinks θ doubles up to the ceiling.
class Damping {
 public:
  static constexpr double kMin = 1.0 / 64;
  double operator()() const { return value_; }
  void update(double change) {
    if (change > last_change_) {
      ceiling_ = value_;
      value_ = std::max(0.5 * value_, kMin);
    } else {
      value_ = std::min(ceiling_, 2.0 * value_);
    }
    last_change_ = change;
  }

 private:
  double value_ = 1, ceiling_ = 1, last_change_ = std::numeric_limits<double>::infinity();
};

// The PSD part of a symmetric k × k X (negative eigenvalues clipped to 0).
std::vector<double> psd_part(index_t k, const std::vector<double>& X) {
  std::vector<double> Q = X;
  const std::vector<double> xi = symmetric_eigen_qr(k, Q);
  std::vector<double> out(X.size(), 0.0);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j)
      for (index_t m = 0; m < k; ++m)
        out[std::size_t(i + k * j)] += Q[std::size_t(i + k * m)] * std::max(xi[std::size_t(m)], 0.0) * Q[std::size_t(j + k * m)];
  return out;
}

// The third derivatives' part of the SDCP data at w: ⟨d_ab, P⁻¹g⟩ (pairs) and ⟨d_ab, P⁻¹d_ce⟩ (pairs × pairs).
// D then holds P⁻¹ = diag(inverse_p) for move_point.
template <class T>
void derivative_terms(const Device& dev, index_t d, index_t k, PairColumns<T>& D, const T* inverse_p,
                      const T* pinv_g, std::vector<double>& d_g, std::vector<double>& d_metric) {
  Buffer<T> d_dot_step(dev, pair_count(k));
  d_metric = D.gram(inverse_p, [&](index_t first, index_t count, const T* D_group) {
    blas::gemv<T>(dev, Op::T, d, count, T(1), D_group, d, pinv_g, T(0), d_dot_step.data() + first);
  });
  d_g = to_double(d_dot_step);
}

}  // namespace

template <class T>
void stable_flow_substep(const Device& dev, OptimizerState<T>& state, T* w, const T* g, index_t d, double dt) {
  CFLOW_NVTX_RANGE("stable_flow_substep");
  Buffer<T> p(dev, d), grad_sq(dev, d);
  state.preconditioner(p.data());
  CFLOW_DISPATCH(dev, expected_grad_sq<T>, dev, d, g, p.data(), nullptr, grad_sq.data());
  // w −= dt · g / p
  Buffer<T> step(dev, d);
  CFLOW_DISPATCH(dev, reciprocal<T>, dev, d, p.data(), step.data());
  CFLOW_DISPATCH(dev, multiply<T>, dev, d, step.data(), g, step.data());
  blas::axpy<T>(dev, d, T(-dt), step.data(), w);
  state.advance(grad_sq.data(), dt);
}

template <class T>
CentralSubstep central_flow_substep(Objective<T>& objective, OptimizerState<T>& state, T* w, const T* g,
                                    const CriticalSet<T>& critical, double dt, const SdcpOptions& sdcp,
                                    index_t pair_group, const ConfirmCritical<T>& confirm) {
  const index_t k = critical.k();
  const index_t d = objective.dim();
  if (k == 0) {
    stable_flow_substep(objective.device(), state, w, g, d, dt);
    return {};
  }
  CFLOW_NVTX_RANGE("central_flow_substep");
  const Device& dev = objective.device();
  const T* U = critical.U;
  std::vector<double> lambda = critical.eigenvalues;

  // d_ab = ∇(u_aᵀHu_b); a guessed critical set is confirmed by the quotients of the first d3 pass.
  CentralSubstep result;
  std::vector<T> quads(confirm ? std::size_t(k) : 0);
  PairColumns<T> D = third_derivatives(objective, w, U, k, pair_group, result.seconds_d3, confirm ? quads.data() : nullptr);
  if (confirm) {
    D.hold(0);
    std::optional<std::vector<double>> refreshed = confirm(quads);
    if (!refreshed) {
      result.critical_set_changed = true;
      return result;
    }
    lambda = std::move(*refreshed);
  }

  Buffer<T> p(dev, d), inverse_p(dev, d), pinv_g(dev, d);
  state.preconditioner(p.data());
  CFLOW_DISPATCH(dev, reciprocal<T>, dev, d, p.data(), inverse_p.data());
  CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, 1, inverse_p.data(), g, pinv_g.data());

  // The pieces of Ḣ_U: ⟨d_ab, P⁻¹g⟩ and ⟨d_ab, P⁻¹d_cd⟩.
  std::vector<double> d_g, d_metric;
  derivative_terms(dev, d, k, D, inverse_p.data(), pinv_g.data(), d_g, d_metric);

  // UᵀṖU: ṗ is affine in E[g⊙g] = g⊙g + diag(HΣH) (optimizer.h), so it splits into a part at X = 0
  // and a part linear in X: preconditioner_x[(ab),(cd)] is the coefficient of X_cd in (UᵀṖU)_ab.
  // The optimizer answers both.
  PairColumns<T> products(dev, d, PairGroups(k, pair_group), pair_products_of(dev, d, k, U));  // u_c ⊙ u_d
  const PreconditionerRateOnSpan rate = state.preconditioner_rate_on_span(g, p.data(), U, k, products, lambda);

  const MarginProblem margin = next_margin(k, lambda, d_g, d_metric, rate, dt);
  solve_or_throw(dev, "central flow", k, margin, sdcp, result);

  Buffer<T> expected(dev, d);
  expected_grad_sq_under(dev, d, g, p.data(), &products, result.X, lambda, expected.data());
  move_point(dev, d, k, pinv_g.data(), &D, result.X, dt, w);
  state.advance(expected.data(), dt);
  return result;
}

template <class T>
CentralSubstep stationary_flow_substep(Objective<T>& objective, OptimizerState<T>& state, T* w, const T* g,
                                       const CriticalSetAt<T>& critical_at, T* p, double dt, const FixedPoint& fixed,
                                       const SdcpOptions& sdcp, index_t pair_group) {
  CFLOW_NVTX_RANGE("stationary_flow_substep");
  const Device& dev = objective.device();
  const index_t d = objective.dim();
  CentralSubstep result;
  CriticalSet<T> critical;
  Buffer<T> expected(dev, d), p_next(dev, d), relative(dev, d), inverse_p(dev, d), pinv_g(dev, d);
  Buffer<T> nu_hat(dev, d);  // the iterate ν̂, from the second iteration on
  std::unique_ptr<PairColumns<T>> third, products;  // at the last iteration's U
  AndersonMixing<T> mixing(dev, d, fixed.memory);
  Damping damping;
  state.preconditioner(p);
  // ν ← E[g⊙g] under the Σ of the SDCP with P(ν), until P stops moving.
  for (result.iterations = 1;; ++result.iterations) {
    const index_t held = critical.k();
    critical = critical_at(p, held);
    const index_t k = critical.k();
    if (k != held) mixing.restart();  // a larger critical set is another map
    CFLOW_DISPATCH(dev, reciprocal<T>, dev, d, p, inverse_p.data());
    CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, 1, inverse_p.data(), g, pinv_g.data());
    result.X.clear();
    third.reset();
    products.reset();
    if (k > 0) {
      third = std::make_unique<PairColumns<T>>(
          third_derivatives(objective, w, critical.U, k, pair_group, result.seconds_d3));
      std::vector<double> d_g, d_metric;
      derivative_terms(dev, d, k, *third, inverse_p.data(), pinv_g.data(), d_g, d_metric);
      products = std::make_unique<PairColumns<T>>(dev, d, PairGroups(k, pair_group),
                                                  pair_products_of(dev, d, k, critical.U));  // u_c ⊙ u_e
      // The margin after the substep: ΔP over the substep is the response itself, so the central
      // flow's dt·UᵀṖU becomes UᵀΔPU (next_margin multiplies its rate by dt).
      PreconditionerRateOnSpan response =
          state.stationary_response_on_span(g, p, critical.U, k, *products, critical.eigenvalues,
                                            result.iterations > 1 ? expected.data() : nullptr);
      for (double& x : response.at_zero) x /= dt;
      for (double& x : response.per_x) x /= dt;
      solve_or_throw(dev, "stationary flow", k, next_margin(k, critical.eigenvalues, d_g, d_metric, response, dt), sdcp,
                     result);
      // X is PSD to the solver's residual; ν̂ is built from X here, and on a coordinate with ν̂ ≈ 0 a
      // −1e-12 eigenvalue would make it negative.
      result.X = psd_part(k, result.X);
    }
    expected_grad_sq_under(dev, d, g, p, products.get(), result.X, critical.eigenvalues, expected.data());
    state.hold_stationary(expected.data());
    // The root-mean-square relative change of P: every coordinate counts, however small its ν.
    state.preconditioner(p_next.data());
    CFLOW_DISPATCH(dev, reciprocal<T>, dev, d, p, relative.data());
    blas::axpy<T>(dev, d, T(-1), p, p_next.data());
    CFLOW_DISPATCH(dev, multiply<T>, dev, d, relative.data(), p_next.data(), relative.data());
    result.fixed_point_change = double(blas::nrm2<T>(dev, d, relative.data())) / std::sqrt(double(d));
    if (result.fixed_point_change <= fixed.tolerance) break;
    if (result.iterations >= fixed.max_iterations) {
      std::ostringstream message;
      message << "stationary flow: nu = E[g*g] did not converge in " << fixed.max_iterations
              << " iterations (relative change of P " << std::scientific << result.fixed_point_change
              << ", tolerance " << fixed.tolerance << "); add --central-eig-every-substep if not given (a full "
              << "eigen-solve at every iteration), raise --stationary-max-iterations or --stationary-tol, or use "
              << "more --central-nsubsteps";
      throw Error(message.str());
    }
    // The next ν̂: Anderson's combination of the images E[g⊙g], in the norm of the relative change of
    // P. A plain step (Anderson restarted: the change grew, or the critical set did) is damped towards
    // the iterate, ν̂ ← ν̂ + θ(G(ν̂) − ν̂): the overshoot that grew the change is what it damps. The
    // first iteration's is not (θ = 1 there, and the state's ν̂ is not needed).
    damping.update(result.fixed_point_change);
    mixing.step(expected.data(), relative.data(), p_next.data());
    if (result.iterations == 1 || mixing.columns() > 0) {
      blas::copy<T>(dev, d, p_next.data(), nu_hat.data());
    } else {
      blas::scal<T>(dev, d, T(1 - damping()), nu_hat.data());
      blas::axpy<T>(dev, d, T(damping()), p_next.data(), nu_hat.data());
    }
    state.hold_stationary(nu_hat.data());
    state.preconditioner(p);
  }
  // w moves with the fixed point's P, U and X; only t is integrated.
  move_point(dev, d, critical.k(), pinv_g.data(), third.get(), result.X, dt, w);
  state.set_t(state.t() + dt);
  return result;
}

template void stable_flow_substep<float>(const Device&, OptimizerState<float>&, float*, const float*, index_t, double);
template void stable_flow_substep<double>(const Device&, OptimizerState<double>&, double*, const double*, index_t, double);
template CentralSubstep central_flow_substep<float>(Objective<float>&, OptimizerState<float>&, float*, const float*,
                                                    const CriticalSet<float>&, double, const SdcpOptions&, index_t,
                                                    const ConfirmCritical<float>&);
template CentralSubstep central_flow_substep<double>(Objective<double>&, OptimizerState<double>&, double*,
                                                     const double*, const CriticalSet<double>&, double,
                                                     const SdcpOptions&, index_t, const ConfirmCritical<double>&);
template CentralSubstep stationary_flow_substep<float>(Objective<float>&, OptimizerState<float>&, float*, const float*,
                                                       const CriticalSetAt<float>&, float*, double, const FixedPoint&,
                                                       const SdcpOptions&, index_t);
template CentralSubstep stationary_flow_substep<double>(Objective<double>&, OptimizerState<double>&, double*,
                                                        const double*, const CriticalSetAt<double>&, double*, double,
                                                        const FixedPoint&, const SdcpOptions&, index_t);

}  // namespace cflow
