#pragma once
// Elementwise kernels of the optimizers (docs/design.md §4, host/flow/optimizer.cpp). The second-moment state ν
// is read as nu[i · nu_stride]: stride 1 for RMSProp (one ν per coordinate), stride 0 for Scalar
// RMSProp (one ν shared by every coordinate), so one kernel serves both. Scalars that depend only on
// (t, spec) are computed once on the host, in double, and passed in:
//   denom = 1 − β₂^t with bias correction, else exactly 1 (so ν̂ = ν / denom is ν itself);
//   c     = (1 − β₂)/β₂, the rate of ν in continuous time;
//   kt    = β₂^t ln β₂ / denom with bias correction, else 0 (the ∂/∂t part of the bias correction).
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // nu_i = keep · nu_i + take · x_i²   (RMSProp's discrete ν update: keep = β₂, take = 1 − β₂)
  template <class T> void ema_square(const Device& dev, std::int64_t n, T keep, T take, const T* x, T* nu);
  // nu_i = keep · nu_i + take · e_i    (continuous time: keep = 1 − dt·c, take = dt·c)
  template <class T> void ema(const Device& dev, std::int64_t n, T keep, T take, const T* e, T* nu);
  // p_i = (√(ν_i / denom) + eps) / lr
  template <class T>
  void rms_preconditioner(const Device& dev, std::int64_t n, const T* nu, std::int64_t nu_stride, T denom, T eps,
                          T lr, T* p);
  // w_i −= g_i / p_i with p_i as rms_preconditioner computes it (bit for bit)
  template <class T>
  void rms_step(const Device& dev, std::int64_t n, const T* nu, std::int64_t nu_stride, T denom, T eps, T lr,
                const T* g, T* w);
  // s_i = 1 / p_i = lr / (√ν̂_i + eps), the effective step size of coordinate i
  template <class T>
  void rms_step_size(const Device& dev, std::int64_t n, const T* nu, std::int64_t nu_stride, T denom, T eps, T lr,
                     T* s);
  // The affine dependence ṗ_i = a_i e_i + b_i of the preconditioner's rate on E[g²] (ṫ = 1,
  // ν̇ = c(e − ν)), with r = √ν̂_i:  a_i = c / (2·lr·denom·r),  b_i = r (kt − c) / (2·lr).
  template <class T>
  void rms_rate_coefficients(const Device& dev, std::int64_t n, const T* nu, T denom, T lr, T c, T kt, T* a, T* b);
)
}  // namespace cflow
