#pragma once
// Optimizers as preconditioned gradient descent (docs/design.md §4): w ← w − P(s)⁻¹∇L(w) with a diagonal
// positive P depending on a state s = (t, ν), the state updated with the current gradient *before*
// the step. The same object serves the discrete optimizer and the flows (continuous-time state
// dynamics), so one flow implementation covers every optimizer.
//
//   gd:              s = t,              P = I/η
//   scalar-rmsprop:  s = (t, ν ∈ R),     P = (√ν̂ + ε)/η · I,     ν ← β₂ν + (1−β₂)‖g‖²
//   rmsprop:         s = (t, ν ∈ R^d),   P = diag(√ν̂ + ε)/η,     ν ← β₂ν + (1−β₂) g⊙g
// ν̂ = ν/(1 − β₂^t) with bias correction, else ν. Continuous time (t counts steps): ṫ = 1 (the
// reference advances t at rate 1/β₂ in its flows; we keep ṫ = 1), ν̇ = c(E[g²] − ν), c = (1 − β₂)/β₂,
// with E[g²] the expected g⊙g (rmsprop) or its sum E‖g‖² (scalar-rmsprop).
//
// The preconditioner's rate is affine in E[g²] = e. With denom = 1 − β₂^t (bias correction) or 1,
// ν̂ = ν/denom, r = √ν̂ and kt = β₂^t ln β₂ / denom (bias correction) or 0, the chain rule through
// p = (r + ε)/η with ṫ = 1, ν̇ = c(e − ν) gives
//   ∂p/∂ν = 1/(2η·denom·r),   ∂p/∂t = r·kt/(2η),
//   ṗ = a e + b  with  a = c/(2η·denom·r),  b = r (kt − c)/(2η)     (ε drops out of both).
// A coordinate with ν = 0 gives a = ∞ (and with ε = 0 an infinite step): the flows need ν > 0.
//
// State on the device; t is a host double. Every vector reduction (‖g‖², Σe, summary means) is a
// BLAS gemv/dot, deterministic on a given backend and thread count.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/runtime/choice.h"

namespace cflow {

enum class OptimizerKind { gd, scalar_rmsprop, rmsprop };
inline constexpr ChoiceTable<OptimizerKind, 3> kOptimizerChoices{{{"gd", OptimizerKind::gd},
                                                                  {"scalar-rmsprop", OptimizerKind::scalar_rmsprop},
                                                                  {"rmsprop", OptimizerKind::rmsprop}}};

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::gd;
  double lr = 0.02;
  double beta2 = 0.99;
  double eps = 0.0;
  bool bias_correction = false;
};

OptimizerKind parse_optimizer(std::string_view name);  // throws cflow::Error naming the valid choices
std::string to_string(OptimizerKind kind);

// The coordinates logged as "…_selected_idx": count evenly spaced indices ⌊j(d−1)/(count−1)⌋,
// j = 0..count−1 (exact integer arithmetic; numpy's linspace(0, d−1, 25).astype(int) up to its
// rounding). One rule for ν, g² and the central flow's predicted g².
std::vector<index_t> selected_indices(index_t d, index_t count = 25);

// Summaries of a state for logging, in the reference's order and with its names (the run log's
// opt.<name> series):
//   gd:             opt.t, opt.lr
//   scalar-rmsprop: opt.t, opt.nu, opt.lr, opt.effective_step_size (η/(√ν̂+ε))
//   rmsprop:        opt.t, opt.nu_l1 (Σν), opt.ess_mean (mean of η/(√ν̂+ε)),
//                   opt.ess_harmonic_mean (η/mean(√ν̂+ε)), opt.lr;
//                   vectors: opt.nu_selected_idx (ν at selected_indices(d), 25 values)
struct StateSummary {
  std::vector<std::pair<std::string, double>> values;
  std::vector<std::pair<std::string, std::vector<double>>> vectors;  // 2-D series (one row per step)
};

// UᵀṖU = at_zero + Σ_cd per_x[(ab) + pairs·(cd)] X_cd over the pairs c ≤ d (host, float64).
// The products u_c⊙u_d of the critical directions, one group of pairs at a time (host/flow/pair_columns.h).
template <class T>
class PairColumns;

struct PreconditionerRateOnSpan {
  std::vector<double> at_zero;  // k × k, column-major: UᵀṖU at X = 0
  std::vector<double> per_x;    // pairs × pairs: the coefficient of X_cd in (UᵀṖU)_ab
};

template <class T>
class OptimizerState {
 public:
  OptimizerState(const Device& dev, const OptimizerSpec& spec, index_t d);
  OptimizerState(const OptimizerState& other);  // a deep copy (processes branch from one state)
  // A deep copy on `dev` (a process's lane); other's work must be complete (synchronized).
  OptimizerState(const OptimizerState& other, const Device& dev);
  OptimizerState& operator=(const OptimizerState& other);
  OptimizerState(OptimizerState&& other) noexcept;
  OptimizerState& operator=(OptimizerState&& other) noexcept;
  ~OptimizerState();

  const OptimizerSpec& spec() const;
  const Device& device() const;
  index_t dim() const;  // d
  double t() const;
  void set_t(double t);  // e.g. restoring a checkpoint (with nu())
  // ν as a device vector: length d (rmsprop), 1 (scalar-rmsprop), 0 (gd).
  const Buffer<T>& nu() const;
  Buffer<T>& nu();

  // Preconditioner-dependent queries need t > 0 with bias correction (1 − β₂^t ≠ 0): the state is
  // always updated once before the first step.

  // Discrete state update with the current gradient g (device, d): t += 1, ν update.
  void update(const T* g);
  // w −= P(s)⁻¹ g.
  void step(T* w, const T* g) const;
  // p = diag P(s) (device, d).
  void preconditioner(T* p) const;

  // Continuous time. For E[g⊙g] = e (device, d; the scalar optimizer uses Σ_q e_q):
  //   ṗ_q = a_q e_q + b_q (rmsprop)   or   ṗ_q = a Σ_r e_r + b (scalar-rmsprop)   or 0 (gd).
  // preconditioner_rate_coefficients writes a and b (device, length d for rmsprop, 1 for scalar,
  // nothing for gd) — the affine dependence the central flow's SDCP needs.
  void preconditioner_rate_coefficients(T* a, T* b) const;
  // The same rate seen on the critical span of the central flow (docs/design.md §6): UᵀṖU for
  // E[g⊙g] = g⊙g + Σ_cd λ_cλ_d X_cd (Pu_c)⊙(Pu_d), affine in the k × k matrix X. U (d × k), g and
  // p = diag P (d) are device arrays; products the columns u_c⊙u_d in pair_index order; λ the k
  // eigenvalues.
  PreconditionerRateOnSpan preconditioner_rate_on_span(const T* g, const T* p, const T* U, index_t k,
                                                       PairColumns<T>& products,
                                                       const std::vector<double>& lambda) const;
  // s += dt · ṡ(e): t += dt, ν += dt · c (e − ν) (scalar: e summed).
  void advance(const T* expected_grad_sq, double dt);

  // The stationary flow (docs/design.md §6.9, rmsprop only). The state is held at ν̂ = e for a given
  // E[g⊙g] = e: hold_stationary sets ν̂ = e (ν = (1 − β₂^t)·ν̂), and stationary_response_on_span is
  // the change of UᵀPU when ν̂ jumps from its value to E[g⊙g] (same form as
  // preconditioner_rate_on_span), linearized in ν̂ by the secant through the previous iteration's
  // E[g⊙g] (device, d; nullptr at the first iteration: the tangent): Δp = (e − ν̂)/(η(√ν̂ + √e_previous)).
  PreconditionerRateOnSpan stationary_response_on_span(const T* g, const T* p, const T* U, index_t k,
                                                       PairColumns<T>& products, const std::vector<double>& lambda,
                                                       const T* previous_expected) const;
  void hold_stationary(const T* expected_grad_sq);

  // The logged summary, read back in one transfer.
  StateSummary summary() const;
  // The same in two halves, so that a process reads it back with its other logged scalars in one
  // transfer (docs/design.md §7.5): summary_values enqueues summary_size() device scalars at `values`
  // (no wait), summary_of makes the summary from them once they are on the host.
  index_t summary_size() const;
  void summary_values(T* values) const;
  StateSummary summary_of(std::span<const T> values) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cflow
