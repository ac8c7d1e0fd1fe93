// The central flow (docs/design.md §6): central_nsubsteps Euler substeps per unit of time, each solving
// the SDCP for the oscillation covariance Σ = UXUᵀ on the critical eigenvectors; at time t it also
// reports the predictions of the discrete optimizer's time averages.
#include <algorithm>
#include <cmath>
#include <optional>

#include "cflow/runtime/blas.h"
#include "host/flow/process_central.h"
#include "host/solvers/small_dense.h"
#include "kernels/flow.h"

namespace cflow {

template <class T>
ProcessRecord CentralProcess<T>::prepare_step(Context& c) {
  const int nsub = c.settings.flow.central_nsubsteps;
  blas::copy<T>(c.dev, c.d, this->w.data(), this->w_next.data());
  this->state_next = this->state;
  ProcessRecord r;
  Buffer<T> substep_gradient(c.dev, c.d), p_sub(c.dev, c.d);
  for (int sub = 0; sub < nsub; ++sub) {
    T* grad = sub == 0 ? this->g.data() : substep_gradient.data();
    T* precond = sub == 0 ? this->p.data() : p_sub.data();
    const double loss = this->gradient(c, this->w_next.data(), grad);
    if (this->diverged(c, loss, grad, ", substep " + std::to_string(sub))) {
      r.stopped = true;
      return r;
    }
    if (sub == 0) r = this->basic_record(c, this->w.data(), loss);
    const std::optional<CentralSubstep> result = advance(c, grad, precond, sub == 0, 1.0 / nsub);
    if (!result) {
      r.stopped = true;
      return r;
    }
    if (sub > 0) continue;
    // The record at time t: the eigenpairs and the predictions of the substep from w(t).
    this->log_eigenvalues(c, r, this->w.data(), full_solve_at(c, true));
    predict(c, r, *result, critical_set(c), loss);
  }
  r.substeps = nsub;
  return r;
}

template <class T>
std::optional<CentralSubstep> CentralProcess<T>::advance(Context& c, T* grad, T* precond, bool first, double dt) {
  this->state_next.preconditioner(precond);
  const bool full = full_solve_at(c, first) || !this->tracker.has_solution();
  // A refresh substep shares its quotients with the d3 pass when something was critical before it.
  const bool shares = !full && critical_set(c).k() > 0;
  if (!shares) this->eigen(c, this->tracker, this->w_next.data(), precond, full);
  try {
    if (shares) {
      CentralSubstep result = refresh_from_d3(c, grad, precond, dt);
      if (!result.critical_set_changed) return result;
    }
    return this->flow_substep(c, grad, critical_set(c), dt);
  } catch (const Error& e) {
    this->stop("step " + std::to_string(c.step) + ": " + user_message(e));
    return std::nullopt;
  }
}

// A refresh substep whose d3 pass runs along the columns critical before the refresh and returns their
// Rayleigh quotients, so that quad() is asked only for the others (docs/design.md §6.4). The substep
// keeps the guess's order of those columns (a copy of them: the refresh re-sorts the tracker's), so a
// swap of two critical eigenvalues — frequent, as the flow holds them all at 2 — changes nothing but
// the order of the SDCP's basis. When the refreshed critical set is another set of columns (one crossed
// the threshold) the substep changes nothing and reports critical_set_changed: the caller does it
// again with the new set (its d3 pass counted again in work/jets). The tracker is refreshed either way.
template <class T>
CentralSubstep CentralProcess<T>::refresh_from_d3(Context& c, T* grad, const T* precond, double dt) {
  this->tracker.rescale(precond);  // the U the refresh will have, which the d3 pass runs along
  CriticalSet<T> guess = critical_set(c);
  const index_t k = guess.k();
  if (guess_U_.size() != c.d * k) guess_U_ = Buffer<T>(c.dev, c.d * k, Uninitialized{});
  blas::copy<T>(c.dev, c.d * k, guess.U, guess_U_.data());
  guess.U = guess_U_.data();
  return this->flow_substep(c, grad, guess, dt, [&](const std::vector<T>& quads) -> std::optional<std::vector<double>> {
    this->eigen(c, this->tracker, this->w_next.data(), precond, false, quads);
    // The refresh sorts stably, so the same k leading values mean the same k leading columns (a guard
    // column with a quotient equal to a critical one's stays behind it).
    const std::span<const T> tracked = this->tracker.eigenvalues();
    std::vector<T> critical(quads), refreshed(tracked.begin(), tracked.begin() + k);
    std::sort(critical.begin(), critical.end());
    std::sort(refreshed.begin(), refreshed.end());
    if (critical_set(c).k() != k || critical != refreshed) return std::nullopt;
    return std::vector<double>(quads.begin(), quads.end());
  });
}

template <class T>
bool CentralProcess<T>::full_solve_at(const Context& c, bool first) const {
  return c.settings.flow.central_eig_every_substep || (first && this->full_solve(c));
}

template <class T>
CriticalSet<T> CentralProcess<T>::critical_set(const Context& c) const {
  CriticalSet<T> critical;
  for (T lambda : this->tracker.eigenvalues())
    if (double(lambda) > c.settings.flow.sdcp_threshold) critical.eigenvalues.push_back(double(lambda));
  critical.U = this->tracker.U();
  return critical;
}

// ξ (descending) and directions_ = UQ from X = Q diag(ξ) Qᵀ.
template <class T>
std::vector<double> CentralProcess<T>::sigma_eigenbasis(Context& c, const std::vector<double>& X, const T* U, index_t k) {
  std::vector<double> Q = X;
  std::vector<double> xi = symmetric_eigen_qr(k, Q);
  std::reverse(xi.begin(), xi.end());
  std::vector<T> Q_desc(static_cast<std::size_t>(k * k));
  for (index_t j = 0; j < k; ++j)
    for (index_t i = 0; i < k; ++i) Q_desc[std::size_t(i + k * j)] = T(Q[std::size_t(i + k * (k - 1 - j))]);
  direction_count_ = k;
  directions_ = Buffer<T>(c.dev, c.d * k);
  if (k > 0) {
    Buffer<T> dQ(c.dev, std::span<const T>(Q_desc));
    blas::gemm<T>(c.dev, blas::Op::N, blas::Op::N, c.d, k, k, T(1), U, c.d, dQ.data(), k, T(0),
                  directions_.data(), c.d);
  }
  return xi;
}

// Predictions from X = Q diag(ξ) Qᵀ (ξ descending), with HŨ ≈ 2PŨ on the critical span:
// E[L] ≈ L + Σξ, E‖g‖² ≈ ‖g‖² + Σ ξ_i ‖2Pũ_i‖², E[g²] ≈ g² + Σ ξ_i (2Pũ_i)², tr Σ = Σ ξ_i ‖ũ_i‖².
template <class T>
void CentralProcess<T>::predict(Context& c, ProcessRecord& r, const CentralSubstep& result, const CriticalSet<T>& critical,
                                double loss) {
  const index_t k = critical.k();
  r.sdcp_residual = k > 0 ? result.sdcp.residual : 0.0;
  const std::vector<double> xi = sigma_eigenbasis(c, result.X, critical.U, k);
  Buffer<T> scaled(c.dev, c.d * k);  // 2Pũ_i
  CFLOW_DISPATCH(c.dev, scale_rows<T>, c.dev, c.d, k, this->p.data(), directions_.data(), scaled.data());
  blas::scal<T>(c.dev, c.d * k, T(2), scaled.data());
  double xi_sum = 0, grad_correction = 0, trace = 0;
  for (index_t i = 0; i < k; ++i) {
    const double x = std::max(xi[std::size_t(i)], 0.0);
    xi_sum += x;
    const double n2 = double(blas::nrm2<T>(c.dev, c.d, scaled.data() + i * c.d));
    const double nu = double(blas::nrm2<T>(c.dev, c.d, directions_.data() + i * c.d));
    grad_correction += x * n2 * n2;
    trace += x * nu * nu;
  }
  r.predicted_variances = xi;
  r.predicted_loss = loss + xi_sum;
  r.predicted_grad_norm_sq = r.grad_norm_sq + grad_correction;
  r.sigma_trace = trace;
  r.predicted_grad_sq_selected = r.grad_sq_selected;
  if (k == 0) return;
  const std::vector<double> rows = c.gather(scaled.data(), k);
  const std::size_t count = r.grad_sq_selected.size();
  for (index_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < count; ++j)
      r.predicted_grad_sq_selected[j] += std::max(xi[std::size_t(i)], 0.0) * rows[j + count * i] * rows[j + count * i];
}

template <class T>
std::unique_ptr<Process<T>> make_central_process(ProcessContext<T>& c, std::span<const T> w0,
                                                 const OptimizerState<T>& s) {
  return std::make_unique<CentralProcess<T>>(c, w0, s);
}

template class CentralProcess<float>;
template class CentralProcess<double>;

template std::unique_ptr<Process<float>> make_central_process(ProcessContext<float>&, std::span<const float>,
                                                              const OptimizerState<float>&);
template std::unique_ptr<Process<double>> make_central_process(ProcessContext<double>&, std::span<const double>,
                                                               const OptimizerState<double>&);

}  // namespace cflow
