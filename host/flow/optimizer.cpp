// Optimizer state and its discrete and continuous-time dynamics (docs/design.md §4). The host keeps t and the
// spec and turns them into the few scalars the kernels need (1 − β₂^t, β₂^t ln β₂, rates), in
// double; every vector operation is a kernel of kernels/optimizer.cu or a BLAS call, and every
// reduction (‖g‖², Σe, the means of the summaries) a BLAS gemv/dot against the data or a ones vector.
#include "cflow/flow/optimizer.h"

#include <cmath>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "cflow/engine/pairs.h"
#include "host/flow/pair_columns.h"
#include "host/solvers/small_dense.h"
#include "kernels/elementwise.h"
#include "kernels/flow.h"
#include "kernels/optimizer.h"

namespace cflow {

OptimizerKind parse_optimizer(std::string_view name) { return parse_choice("optimizer", name, kOptimizerChoices); }
std::string to_string(OptimizerKind kind) { return choice_name(kind, kOptimizerChoices); }

std::vector<index_t> selected_indices(index_t d, index_t count) {
  CFLOW_REQUIRE(d >= 1 && count >= 2, "selected_indices needs d >= 1 and count >= 2");
  std::vector<index_t> indices(static_cast<std::size_t>(count));
  for (index_t j = 0; j < count; ++j) indices[std::size_t(j)] = j * (d - 1) / (count - 1);
  return indices;
}

template <class T>
struct OptimizerState<T>::Impl {
  Device dev;
  OptimizerSpec spec;
  index_t d;
  double t = 0;
  Buffer<T> nu;
  Buffer<T> ones;             // length d for the adaptive optimizers: Σ through gemv/dot
  mutable Buffer<T> scratch;  // length d, rmsprop summaries only; allocated on first use
  mutable Buffer<index_t> selected;  // rmsprop summaries: the logged coordinates

  Impl(const Device& device, const OptimizerSpec& s, index_t dim) : dev(device), spec(s), d(dim) {
    CFLOW_REQUIRE(d >= 1, "optimizer: the parameter dimension must be positive");
    CFLOW_REQUIRE(spec.lr > 0 && std::isfinite(spec.lr), "optimizer: lr must be positive and finite");
    if (adaptive()) {
      CFLOW_REQUIRE(spec.beta2 > 0 && spec.beta2 < 1, "optimizer: beta2 must lie in (0, 1)");
      CFLOW_REQUIRE(spec.eps >= 0 && std::isfinite(spec.eps), "optimizer: eps must be non-negative and finite");
      nu = Buffer<T>(dev, spec.kind == OptimizerKind::rmsprop ? d : 1);
      ones = Buffer<T>(dev, d);
      CFLOW_DISPATCH(dev, fill<T>, dev, d, T(1), ones.data());
    }
  }
  Impl(const Impl& other, const Device& device) : Impl(device, other.spec, other.d) {
    t = other.t;
    nu.copy_from(other.nu);
  }

  bool adaptive() const { return spec.kind != OptimizerKind::gd; }
  bool vector() const { return spec.kind == OptimizerKind::rmsprop; }
  index_t nu_stride() const { return vector() ? 1 : 0; }
  // c = (1 − β₂)/β₂, the rate of ν in continuous time.
  double rate() const { return (1 - spec.beta2) / spec.beta2; }
  // 1 − β₂^t with bias correction (accurate for small t through expm1), else exactly 1.
  double denom() const {
    if (!spec.bias_correction) return 1;
    CFLOW_REQUIRE(t > 0, "optimizer: bias correction needs t > 0 (update the state before using P)");
    return -std::expm1(t * std::log(spec.beta2));
  }
  // ∂ ln(1/denom)/∂t = β₂^t ln β₂ / (1 − β₂^t) with bias correction, else 0.
  double kt() const {
    if (!spec.bias_correction) return 0;
    const double log_beta2 = std::log(spec.beta2);
    return std::exp(t * log_beta2) * log_beta2 / denom();
  }
};

template <class T>
OptimizerState<T>::OptimizerState(const Device& dev, const OptimizerSpec& spec, index_t d)
    : impl_(std::make_unique<Impl>(dev, spec, d)) {}

template <class T>
OptimizerState<T>::OptimizerState(const OptimizerState& other) : OptimizerState(other, other.device()) {}

template <class T>
OptimizerState<T>::OptimizerState(const OptimizerState& other, const Device& dev)
    : impl_(std::make_unique<Impl>(*other.impl_, dev)) {}

template <class T>
OptimizerState<T>& OptimizerState<T>::operator=(const OptimizerState& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_, other.device());
  return *this;
}

template <class T> OptimizerState<T>::OptimizerState(OptimizerState&& other) noexcept = default;
template <class T> OptimizerState<T>& OptimizerState<T>::operator=(OptimizerState&& other) noexcept = default;
template <class T> OptimizerState<T>::~OptimizerState() = default;

template <class T> const OptimizerSpec& OptimizerState<T>::spec() const { return impl_->spec; }
template <class T> const Device& OptimizerState<T>::device() const { return impl_->dev; }
template <class T> index_t OptimizerState<T>::dim() const { return impl_->d; }
template <class T> double OptimizerState<T>::t() const { return impl_->t; }
template <class T> void OptimizerState<T>::set_t(double t) { impl_->t = t; }
template <class T> const Buffer<T>& OptimizerState<T>::nu() const { return impl_->nu; }
template <class T> Buffer<T>& OptimizerState<T>::nu() { return impl_->nu; }

template <class T>
void OptimizerState<T>::update(const T* g) {
  Impl& s = *impl_;
  s.t += 1;
  const T keep = T(s.spec.beta2), take = T(1 - s.spec.beta2);
  switch (s.spec.kind) {
    case OptimizerKind::gd: break;
    case OptimizerKind::scalar_rmsprop:
      // ν = β₂ν + (1−β₂) gᵀg: g as a d×1 matrix, transposed, times g.
      blas::gemv(s.dev, blas::Op::T, s.d, 1, take, g, s.d, g, keep, s.nu.data());
      break;
    case OptimizerKind::rmsprop: CFLOW_DISPATCH(s.dev, ema_square<T>, s.dev, s.d, keep, take, g, s.nu.data()); break;
  }
}

template <class T>
void OptimizerState<T>::step(T* w, const T* g) const {
  const Impl& s = *impl_;
  if (!s.adaptive()) {
    blas::axpy(s.dev, s.d, T(-s.spec.lr), g, w);
    return;
  }
  CFLOW_DISPATCH(s.dev, rms_step<T>, s.dev, s.d, s.nu.data(), s.nu_stride(), T(s.denom()), T(s.spec.eps),
                 T(s.spec.lr), g, w);
  s.dev.note_write(w, std::size_t(s.d) * sizeof(T));  // a point moved: the oracle's cache of it is stale
}

template <class T>
void OptimizerState<T>::preconditioner(T* p) const {
  const Impl& s = *impl_;
  if (!s.adaptive()) {
    CFLOW_DISPATCH(s.dev, fill<T>, s.dev, s.d, T(1 / s.spec.lr), p);
    return;
  }
  CFLOW_DISPATCH(s.dev, rms_preconditioner<T>, s.dev, s.d, s.nu.data(), s.nu_stride(), T(s.denom()),
                 T(s.spec.eps), T(s.spec.lr), p);
}

template <class T>
void OptimizerState<T>::preconditioner_rate_coefficients(T* a, T* b) const {
  const Impl& s = *impl_;
  if (!s.adaptive()) return;
  CFLOW_DISPATCH(s.dev, rms_rate_coefficients<T>, s.dev, s.nu.size(), s.nu.data(), T(s.denom()), T(s.spec.lr),
                 T(s.rate()), T(s.kt()), a, b);
}

namespace {

// UᵀṖU for a per-coordinate ṗ = a ⊙ E[g⊙g] + b with E[g⊙g] = g⊙g + Σ_cd λ_cλ_d X_cd (Pu_c)⊙(Pu_d)
// (docs/design.md §4.6): at_zero = Uᵀ diag(a⊙g⊙g + b) U and the coefficient of X_cd in (UᵀṖU)_ab,
// λ_cλ_d Σ_r a_r p_r² (u_a u_b)_r (u_c u_d)_r.
template <class T>
PreconditionerRateOnSpan vector_rate_on_span(const Device& dev, index_t d, const T* a, const T* b, const T* g,
                                             const T* p, const T* U, index_t k, PairColumns<T>& products,
                                             const std::vector<double>& lambda) {
  const index_t pairs = pair_count(k);
  PreconditionerRateOnSpan out;
  Buffer<T> rate(dev, d), scaled_U(dev, d * k);
  // ṗ⁰ = a ⊙ g⊙g + b
  CFLOW_DISPATCH(dev, expected_grad_sq<T>, dev, d, g, p, nullptr, rate.data());
  CFLOW_DISPATCH(dev, multiply<T>, dev, d, a, rate.data(), rate.data());
  blas::axpy<T>(dev, d, T(1), b, rate.data());
  CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, k, rate.data(), U, scaled_U.data());
  out.at_zero = device_gram(dev, d, k, U, scaled_U.data());
  CFLOW_DISPATCH(dev, multiply<T>, dev, d, a, p, rate.data());
  CFLOW_DISPATCH(dev, multiply<T>, dev, d, rate.data(), p, rate.data());
  out.per_x = products.gram(rate.data());
  for (index_t c = 0; c < k; ++c)
    for (index_t e = c; e < k; ++e)
      for (index_t ab = 0; ab < pairs; ++ab) out.per_x[std::size_t(ab + pairs * pair_index(c, e, k))] *= lambda[std::size_t(c)] * lambda[std::size_t(e)];
  return out;
}

}  // namespace

template <class T>
PreconditionerRateOnSpan OptimizerState<T>::preconditioner_rate_on_span(const T* g, const T* p, const T* U, index_t k,
                                                                        PairColumns<T>& products,
                                                                        const std::vector<double>& lambda) const {
  const Impl& s = *impl_;
  const Device& dev = s.dev;
  const index_t d = s.d, pairs = pair_count(k);
  PreconditionerRateOnSpan out{std::vector<double>(std::size_t(k * k), 0.0),
                               std::vector<double>(std::size_t(pairs * pairs), 0.0)};
  if (s.spec.kind == OptimizerKind::rmsprop) {
    Buffer<T> a(dev, d), b(dev, d);
    preconditioner_rate_coefficients(a.data(), b.data());
    out = vector_rate_on_span(dev, d, a.data(), b.data(), g, p, U, k, products, lambda);
  } else if (s.spec.kind == OptimizerKind::scalar_rmsprop) {
    Buffer<T> a(dev, 1), b(dev, 1);
    preconditioner_rate_coefficients(a.data(), b.data());
    const double a0 = double(a.to_host()[0]), b0 = double(b.to_host()[0]);
    const double rate0 = a0 * double(blas::dot<T>(dev, d, g, g)) + b0;  // ṗ at X = 0, the same on every coordinate
    const std::vector<double> UtU = device_gram(dev, d, k, U, U);
    Buffer<T> PU(dev, d * k);
    CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, k, p, U, PU.data());
    const std::vector<double> PUtPU = device_gram(dev, d, k, PU.data(), PU.data());
    for (std::size_t i = 0; i < UtU.size(); ++i) out.at_zero[i] = rate0 * UtU[i];
    // ṗ_X = a Σ_cd λ_cλ_d (Pu_c·Pu_d) X_cd on every coordinate; (UᵀṖ_XU)_ab = ṗ_X (UᵀU)_ab.
    for (index_t row = 0; row < k; ++row)
      for (index_t col = row; col < k; ++col)
        for (index_t c = 0; c < k; ++c)
          for (index_t e = c; e < k; ++e)
            out.per_x[std::size_t(pair_index(row, col, k) + pairs * pair_index(c, e, k))] =
                a0 * lambda[std::size_t(c)] * lambda[std::size_t(e)] * PUtPU[std::size_t(c + k * e)] * UtU[std::size_t(row + k * col)];
  }
  return out;
}

template <class T>
void OptimizerState<T>::advance(const T* expected_grad_sq, double dt) {
  Impl& s = *impl_;
  s.t += dt;
  if (!s.adaptive()) return;
  // ν += dt·c (e − ν), written as ν = (1 − dt·c) ν + dt·c e.
  const double r = dt * s.rate();
  const T keep = T(1 - r), take = T(r);
  if (s.vector()) {
    CFLOW_DISPATCH(s.dev, ema<T>, s.dev, s.d, keep, take, expected_grad_sq, s.nu.data());
  } else {
    // ν = (1 − dt·c) ν + dt·c Σe: e as a d×1 matrix, transposed, times the ones vector.
    blas::gemv(s.dev, blas::Op::T, s.d, 1, take, expected_grad_sq, s.d, s.ones.data(), keep, s.nu.data());
  }
}

template <class T>
PreconditionerRateOnSpan OptimizerState<T>::stationary_response_on_span(const T* g, const T* p, const T* U, index_t k,
                                                                        PairColumns<T>& products,
                                                                        const std::vector<double>& lambda,
                                                                        const T* previous_expected) const {
  const Impl& s = *impl_;
  CFLOW_REQUIRE(s.spec.kind == OptimizerKind::rmsprop, "the stationary flow needs --opt rmsprop");
  // p = (√ν̂ + ε)/η moved from ν̂ to ν̂' = e, as Δp = a (e − ν̂) with a the secant slope of p between ν̂
  // and the previous iteration's e' (docs/design.md §6.9): a = (p(e') − p(ν̂))/(e' − ν̂) = 1/(η(√ν̂ + √e')),
  // the tangent 1/(2η√ν̂) at the first iteration (e' = ν̂). The secant is exact for the jump the last
  // iteration asked for, which the tangent is not where ν̂ ≈ 0 (√ has an infinite slope there); the
  // floor 10⁻¹²·mean(ν̂) under each root only keeps a finite where ν̂ = e' = 0. Any positive slope has
  // the same fixed point (Δp = 0 where e = ν̂).
  const T denom = T(s.denom()), lr = T(s.spec.lr);
  Buffer<T> nu_hat(s.dev, s.d), roots(s.dev, s.d), a(s.dev, s.d), b(s.dev, s.d);
  blas::copy<T>(s.dev, s.d, s.nu.data(), nu_hat.data());
  blas::scal<T>(s.dev, s.d, T(1) / denom, nu_hat.data());
  const double floor = 1e-12 * double(blas::dot<T>(s.dev, s.d, s.ones.data(), nu_hat.data())) / double(s.d);
  // roots = √(ν̂ + f) + √(e' + f), as η·p(·) with ε = 0 (rms_preconditioner with lr 1).
  CFLOW_DISPATCH(s.dev, fill<T>, s.dev, s.d, T(floor), a.data());
  blas::axpy<T>(s.dev, s.d, T(1), nu_hat.data(), a.data());
  CFLOW_DISPATCH(s.dev, rms_preconditioner<T>, s.dev, s.d, a.data(), index_t(1), T(1), T(0), T(1), roots.data());
  CFLOW_DISPATCH(s.dev, fill<T>, s.dev, s.d, T(floor), a.data());
  blas::axpy<T>(s.dev, s.d, T(1), previous_expected ? previous_expected : nu_hat.data(), a.data());
  CFLOW_DISPATCH(s.dev, rms_preconditioner<T>, s.dev, s.d, a.data(), index_t(1), T(1), T(0), T(1), b.data());
  blas::axpy<T>(s.dev, s.d, T(1), b.data(), roots.data());
  CFLOW_DISPATCH(s.dev, reciprocal<T>, s.dev, s.d, roots.data(), a.data());
  blas::scal<T>(s.dev, s.d, T(1) / lr, a.data());
  CFLOW_DISPATCH(s.dev, multiply<T>, s.dev, s.d, a.data(), nu_hat.data(), b.data());  // b = −a ν̂
  blas::scal<T>(s.dev, s.d, T(-1), b.data());
  return vector_rate_on_span(s.dev, s.d, a.data(), b.data(), g, p, U, k, products, lambda);
}

template <class T>
void OptimizerState<T>::hold_stationary(const T* expected_grad_sq) {
  Impl& s = *impl_;
  CFLOW_REQUIRE(s.spec.kind == OptimizerKind::rmsprop, "the stationary flow needs --opt rmsprop");
  // ν̂ = e, with ν̂ = ν/denom
  blas::copy<T>(s.dev, s.d, expected_grad_sq, s.nu.data());
  blas::scal<T>(s.dev, s.d, T(s.denom()), s.nu.data());
}

template <class T>
index_t OptimizerState<T>::summary_size() const {
  const Impl& s = *impl_;
  switch (s.spec.kind) {
    case OptimizerKind::gd: return 0;
    case OptimizerKind::scalar_rmsprop: return 1;
    case OptimizerKind::rmsprop:
      if (s.selected.size() == 0) s.selected = Buffer<index_t>(s.dev, selected_indices(s.d));
      return 3 + s.selected.size();
  }
  return 0;
}

// ν (scalar), or Σν, Σ ess, Σp and the selected ν (rmsprop), enqueued without waiting.
template <class T>
void OptimizerState<T>::summary_values(T* values) const {
  const Impl& s = *impl_;
  if (s.spec.kind == OptimizerKind::scalar_rmsprop) return s.dev.copy_on_device(values, s.nu.data(), sizeof(T));
  if (s.spec.kind != OptimizerKind::rmsprop) return;
  const index_t d = s.d, count = summary_size() - 3;
  if (s.scratch.size() != d) s.scratch = Buffer<T>(s.dev, d);
  blas::dot(s.dev, d, s.ones.data(), s.nu.data(), values);  // ν ≥ 0: its l1 norm
  CFLOW_DISPATCH(s.dev, gather_rows<T>, s.dev, d, index_t(1), count, s.selected.data(), s.nu.data(), values + 3);
  const T denom = T(s.denom()), eps = T(s.spec.eps), lr = T(s.spec.lr);
  CFLOW_DISPATCH(s.dev, rms_step_size<T>, s.dev, d, s.nu.data(), index_t(1), denom, eps, lr, s.scratch.data());
  blas::dot(s.dev, d, s.ones.data(), s.scratch.data(), values + 1);
  // 1 / mean(1/ess) = 1 / mean(p) = η / mean(√ν̂ + ε).
  CFLOW_DISPATCH(s.dev, rms_preconditioner<T>, s.dev, d, s.nu.data(), index_t(1), denom, eps, lr, s.scratch.data());
  blas::dot(s.dev, d, s.ones.data(), s.scratch.data(), values + 2);
}

template <class T>
StateSummary OptimizerState<T>::summary_of(std::span<const T> values) const {
  const Impl& s = *impl_;
  CFLOW_REQUIRE(index_t(values.size()) == summary_size(), "optimizer summary: wrong number of values");
  StateSummary out;
  out.values.emplace_back("opt.t", s.t);
  switch (s.spec.kind) {
    case OptimizerKind::gd: break;
    case OptimizerKind::scalar_rmsprop: {
      const double nu = double(values[0]);
      out.values.emplace_back("opt.nu", nu);
      out.values.emplace_back("opt.lr", s.spec.lr);
      out.values.emplace_back("opt.effective_step_size", s.spec.lr / (std::sqrt(nu / s.denom()) + s.spec.eps));
      return out;
    }
    case OptimizerKind::rmsprop: {
      const double d = double(s.d);
      out.values.emplace_back("opt.nu_l1", double(values[0]));
      out.vectors.emplace_back("opt.nu_selected_idx", std::vector<double>(values.begin() + 3, values.end()));
      out.values.emplace_back("opt.ess_mean", double(values[1]) / d);
      out.values.emplace_back("opt.ess_harmonic_mean", d / double(values[2]));
      break;
    }
  }
  out.values.emplace_back("opt.lr", s.spec.lr);
  return out;
}

// Its values gather on the device and cross in one transfer: one wait (docs/design.md §7.5).
template <class T>
StateSummary OptimizerState<T>::summary() const {
  Buffer<T> values(device(), summary_size(), Uninitialized{});
  summary_values(values.data());
  return summary_of(values.to_host());
}

template class OptimizerState<float>;
template class OptimizerState<double>;

}  // namespace cflow
