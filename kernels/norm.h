#pragma once
// Group and layer normalization with a trainable per-feature scale γ and shift β, with their Taylor
// jets along parameter directions and the reverse of those jets (the algebra and the derivatives of
// r(s) = s^{-1/2} to third order: docs/design.md §3.7).
// Every example holds `groups` contiguous groups of `group_size` features, normalized separately:
//   y = γ ⊙ (x − μ)·r + β,  μ = mean over the group,  v = mean (x − μ)²,  r = (v + ε)^{-1/2}.
// Feature i of group g uses parameter g·param_stride + i / inner:
//   GroupNorm on NCHW (G groups of C/G channels): groups G, group_size (C/G)·H·W, inner H·W,
//   param_stride C/G;  LayerNorm over D features of each of T tokens: groups T, group_size D,
//   inner 1, param_stride 0.
// Layouts as in host/engine/layer.h: x0, y0 [f × nb] with f = groups·group_size; tangents and
// adjoints [f × nb × m], direction-major. The parameter directions are dir[j·ld + p] (γ̇, then β̇ at
// + parameters()). Null pointers: x2 and adjoint components mean zero; the x1 tangent is required.
// Every reduction is a sequential loop of one thread: deterministic, no atomics.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {

struct NormGeometry {
  std::int64_t groups, group_size, inner, param_stride;
  double epsilon;
  constexpr std::int64_t features() const { return groups * group_size; }
  constexpr std::int64_t span() const { return group_size / inner; }  // parameters per group
  constexpr std::int64_t parameters() const { return (groups - 1) * param_stride + span(); }
};

CFLOW_BACKEND_DECLARATIONS(
  // y0 = γ ⊙ x̂0 + β over nb examples; params = (γ, β).
  template <class T>
  void norm_forward(const Device& dev, NormGeometry g, std::int64_t nb, const T* params, const T* x0, T* y0);
  // y1 = γ x̂1 + γ̇ x̂0 + β̇;  y2 = γ x̂2 + 2 γ̇ x̂1 (order 2).
  template <class T>
  void norm_tangents(const Device& dev, NormGeometry g, int order, std::int64_t nb, std::int64_t m, const T* params,
                     const T* dir, std::int64_t ld, const T* x0, const T* x1, const T* x2, T* y1, T* y2);
  // The input adjoints x̄k (k ≤ order; skipped when xb0 is null) and, when hprod is non-null,
  // hprod = Σ_k ȳk ⊙ x̂k per feature (the integrand of γ̄). m = 1 for order 0.
  template <class T>
  void norm_reverse(const Device& dev, NormGeometry g, int order, std::int64_t nb, std::int64_t m, const T* params,
                    const T* dir, std::int64_t ld, const T* x0, const T* x1, const T* x2, const T* yb0,
                    const T* yb1, const T* yb2, T* xb0, T* xb1, T* xb2, T* hprod);
  // G[j·ld + p] += Σ hprod over the features using parameter p (γ̄), G[j·ld + P + p] += Σ ȳ0 (β̄).
  template <class T>
  void norm_parameter_gradient(const Device& dev, NormGeometry g, std::int64_t nb, std::int64_t m, const T* hprod,
                               const T* yb0, T* G, std::int64_t ld);
)
}  // namespace cflow
