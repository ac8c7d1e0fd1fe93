#pragma once
// The flows of docs/design.md §6 as explicit Euler substeps on (w, s), for any optimizer of
// include/cflow/flow/optimizer.h ("preconditioner P(s) + state dynamics").
#include <functional>
#include <optional>
#include <vector>

#include "cflow/engine/objective.h"
#include "cflow/flow/optimizer.h"
#include "cflow/solvers/sdcp.h"

namespace cflow {

// The critical eigenpairs of the effective Hessian P⁻¹H at the current point: effective eigenvalues
// λ_1..λ_k above the threshold and generalized eigenvectors U (d × k, device) with HU = PUΛ and
// UᵀPU = I.
template <class T>
struct CriticalSet {
  std::vector<double> eigenvalues;
  const T* U = nullptr;
  index_t k() const { return index_t(eigenvalues.size()); }
};

struct CentralSubstep {
  std::vector<double> X;  // k × k oscillation covariance in the critical basis (Σ = UXUᵀ)
  SdcpResult sdcp;        // the solver's residuals (empty X and 0 iterations when k = 0)
  double seconds_d3 = 0, seconds_sdcp = 0;  // time in the third derivatives and in the SDCP solve(s)
  // The stationary flow: iterations of its fixed point ν = E[g⊙g] and the last change of P (FixedPoint).
  int iterations = 0;
  double fixed_point_change = 0;
  // A central substep whose critical set was a guess that its ConfirmCritical refuted: nothing moved,
  // and the caller does the substep again with the refreshed set.
  bool critical_set_changed = false;
};

// A critical set known only after the substep's d3 pass (docs/design.md §6.4): the caller guessed
// it (the columns critical before a Rayleigh refresh) and the pass returns u_iᵀHu_i of its k columns,
// which this completes the refresh with. Returns the refreshed eigenvalues of those columns when the
// refreshed critical set is the guess (the same columns in the same order), else nullopt.
template <class T>
using ConfirmCritical = std::function<std::optional<std::vector<double>>(const std::vector<T>& quads)>;

// The critical set of P⁻¹H at the current point for a preconditioner p (device, d): the caller's
// eigen-solve or refresh. It holds the pairs above the threshold and, where fewer, the top at_least
// pairs by λ (as many as the caller has): the stationary flow keeps a pair once it was critical
// (docs/design.md §6.9). Its U stays valid until the next call.
template <class T>
using CriticalSetAt = std::function<CriticalSet<T>(const T* p, index_t at_least)>;

// The stationary flow's fixed-point iteration (docs/design.md §6.9): converged when the root-mean-square
// relative change of P, ‖(p_new − p)/p‖₂/√d, is at most the tolerance; an Error after max_iterations.
struct FixedPoint {
  double tolerance = 1e-6;
  int max_iterations = 50;
  // Anderson acceleration's memory (0: the plain iteration ν̂ ← E[g⊙g]): 20, what the default MLP
  // needs once ν has equilibrated (with 5 the fixed point stagnates, docs/central-flow-accuracy.md).
  int memory = 20;
};

// Stable flow substep: w += dt·(−P⁻¹g), s += dt·ṡ(g⊙g), all evaluated at the start of the substep.
template <class T>
void stable_flow_substep(const Device& dev, OptimizerState<T>& state, T* w, const T* g, index_t d, double dt);

// Central flow substep: models the oscillations as Σ = UXUᵀ, writes ẇ, ṡ and the next stability
// margin Uᵀ(2P − H)U as affine functions of X, solves the SDCP for X and advances w and s by dt.
// g = ∇L(w). k = 0 is a stable-flow substep. Throws cflow::Error, with a reason a user reads, when
// the SDCP does not converge (within the iteration or time bound of `sdcp`). The k(k+1)/2 pairs of
// critical directions are streamed in groups of at most pair_group (≤ 0: all in one group), which
// bounds the memory by O(k·d + pair_group·d) at the price of more d3 passes (docs/design.md §6.10).
// With confirm, critical is a guess (k > 0) whose eigenvalues confirm supplies; when it refutes the
// guess the substep returns critical_set_changed and changes nothing.
template <class T>
CentralSubstep central_flow_substep(Objective<T>& objective, OptimizerState<T>& state, T* w, const T* g,
                                    const CriticalSet<T>& critical, double dt, const SdcpOptions& sdcp = {},
                                    index_t pair_group = 0, const ConfirmCritical<T>& confirm = {});

// Stationary flow substep (rmsprop): the state held at ν̂ = E[g⊙g] under the oscillation model, found
// by iterating ν ← E[g⊙g](X) with X the SDCP of the margin Uᵀ(2P(ν) − H)U linearized in ν; then
// w += dt·ẇ(X) with the fixed point's P, U, X and t += dt. p receives P of the last iteration. A
// failed SDCP (within the bounds of `sdcp`) or a fixed point not reached within the cap is an Error.
// pair_group as for central_flow_substep.
template <class T>
CentralSubstep stationary_flow_substep(Objective<T>& objective, OptimizerState<T>& state, T* w, const T* g,
                                       const CriticalSetAt<T>& critical_at, T* p, double dt, const FixedPoint& fixed,
                                       const SdcpOptions& sdcp = {}, index_t pair_group = 0);

}  // namespace cflow
