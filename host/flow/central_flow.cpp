// The central flow substep (docs/design.md §6). Everything d-dimensional stays on the device; the k×k
// (and pair × pair) matrices that define the SDCP are assembled on the host in float64.
#include "cflow/flow/central_flow.h"

#include <iomanip>
#include <sstream>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "kernels/elementwise.h"
#include "host/runtime/stopwatch.h"
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
                                    const CriticalSet<T>& critical, double dt, const SdcpOptions& sdcp) {
  const index_t k = critical.k();
  const index_t d = objective.dim();
  if (k == 0) {
    stable_flow_substep(objective.device(), state, w, g, d, dt);
    return {};
  }
  CFLOW_NVTX_RANGE("central_flow_substep");
  const Device& dev = objective.device();
  const index_t pairs = pair_count(k);
  const T* U = critical.U;
  const std::vector<double>& lambda = critical.eigenvalues;

  Buffer<T> p(dev, d), inverse_p(dev, d), pinv_g(dev, d);
  state.preconditioner(p.data());
  CFLOW_DISPATCH(dev, reciprocal<T>, dev, d, p.data(), inverse_p.data());
  CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, 1, inverse_p.data(), g, pinv_g.data());

  // d_ab = ∇(u_aᵀHu_b) and the pieces of Ḣ_U: ⟨d_ab, P⁻¹g⟩ and ⟨d_ab, P⁻¹d_cd⟩.
  CentralSubstep result;
  Buffer<T> D(dev, d * pairs), pinv_D(dev, d * pairs);
  const Stopwatch d3_time(dev);
  objective.d3(w, U, k, D.data());
  result.seconds_d3 = d3_time.seconds();
  CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, pairs, inverse_p.data(), D.data(), pinv_D.data());
  const std::vector<double> d_metric = device_gram(dev, d, pairs, D.data(), pinv_D.data());
  Buffer<T> d_dot_step(dev, pairs);
  blas::gemv<T>(dev, Op::T, d, pairs, T(1), D.data(), d, pinv_g.data(), T(0), d_dot_step.data());
  const std::vector<double> d_g = to_double(d_dot_step);

  // UᵀṖU: ṗ is affine in E[g⊙g] = g⊙g + diag(HΣH) (optimizer.h), so it splits into a part at X = 0
  // and a part linear in X: preconditioner_x[(ab),(cd)] is the coefficient of X_cd in (UᵀṖU)_ab.
  // The optimizer answers both.
  Buffer<T> products(dev, d * pairs);  // u_c ⊙ u_d
  CFLOW_DISPATCH(dev, pair_products<T>, dev, d, k, U, products.data());
  const PreconditionerRateOnSpan rate = state.preconditioner_rate_on_span(g, p.data(), U, k, products.data(), lambda);

  const MarginProblem margin = next_margin(k, lambda, d_g, d_metric, rate, dt);
  const Stopwatch sdcp_time(dev);
  result.sdcp = solve_sdcp(int(k), margin.alpha, margin.B, sdcp);
  result.seconds_sdcp = sdcp_time.seconds();
  if (!result.sdcp.converged) {
    std::ostringstream message;
    message << "the central flow's SDCP did not converge "
            << (result.sdcp.timed_out ? "within its time bound of " : "in ")
            << (result.sdcp.timed_out ? sdcp.max_seconds : result.sdcp.iterations)
            << (result.sdcp.timed_out ? " s" : " iterations") << " (k = " << k << ", relative KKT residual " << std::scientific << std::setprecision(2)
            << result.sdcp.residual << "); the trajectory is probably diverging";
    throw Error(message.str());
  }
  result.X = result.sdcp.X;

  // Per pair: ẇ weights x = −½ mult·X_cd, and E[g⊙g]'s correction weights y = mult·λ_cλ_d X_cd.
  std::vector<T> w_weights(static_cast<std::size_t>(pairs)), e_weights(static_cast<std::size_t>(pairs));
  for (index_t c = 0; c < k; ++c)
    for (index_t e = c; e < k; ++e) {
      const double x = multiplicity(c, e) * result.X[std::size_t(c + k * e)];
      w_weights[std::size_t(pair_index(c, e, k))] = T(-0.5 * x);
      e_weights[std::size_t(pair_index(c, e, k))] = T(x * lambda[std::size_t(c)] * lambda[std::size_t(e)]);
    }
  Buffer<T> w_weight(dev, std::span<const T>(w_weights)), e_weight(dev, std::span<const T>(e_weights));
  Buffer<T> w_rate(dev, d), h(dev, d), expected(dev, d);
  blas::copy<T>(dev, d, pinv_g.data(), w_rate.data());
  blas::gemv<T>(dev, Op::N, d, pairs, T(1), pinv_D.data(), d, w_weight.data(), T(-1), w_rate.data());  // −P⁻¹g + Σ x P⁻¹d
  blas::gemv<T>(dev, Op::N, d, pairs, T(1), products.data(), d, e_weight.data(), T(0), h.data());
  CFLOW_DISPATCH(dev, expected_grad_sq<T>, dev, d, g, p.data(), h.data(), expected.data());
  blas::axpy<T>(dev, d, T(dt), w_rate.data(), w);
  state.advance(expected.data(), dt);
  return result;
}

template void stable_flow_substep<float>(const Device&, OptimizerState<float>&, float*, const float*, index_t, double);
template void stable_flow_substep<double>(const Device&, OptimizerState<double>&, double*, const double*, index_t, double);
template CentralSubstep central_flow_substep<float>(Objective<float>&, OptimizerState<float>&, float*, const float*,
                                                    const CriticalSet<float>&, double, const SdcpOptions&);
template CentralSubstep central_flow_substep<double>(Objective<double>&, OptimizerState<double>&, double*,
                                                     const double*, const CriticalSet<double>&, double,
                                                     const SdcpOptions&);

}  // namespace cflow
