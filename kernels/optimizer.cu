#include <cmath>

#include "kernels/optimizer.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {
namespace {

// The one definition of P's diagonal entry, shared by every kernel that uses it.
template <class T>
CFLOW_HD inline T rms_entry(T nu, T denom, T eps, T lr) {
  return (std::sqrt(nu / denom) + eps) / lr;
}

}  // namespace

template <class T>
CFLOW_KERNEL void ema_square_kernel(index_t n, T keep, T take, const T* x, T* nu) {
  for (index_t i : grid_stride(n)) nu[i] = keep * nu[i] + take * (x[i] * x[i]);
}

template <class T>
CFLOW_KERNEL void ema_kernel(index_t n, T keep, T take, const T* e, T* nu) {
  for (index_t i : grid_stride(n)) nu[i] = keep * nu[i] + take * e[i];
}

template <class T>
CFLOW_KERNEL void rms_preconditioner_kernel(index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, T* p) {
  for (index_t i : grid_stride(n)) p[i] = rms_entry(nu[i * nu_stride], denom, eps, lr);
}

template <class T>
CFLOW_KERNEL void rms_step_kernel(index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, const T* g,
                                  T* w) {
  for (index_t i : grid_stride(n)) w[i] -= g[i] / rms_entry(nu[i * nu_stride], denom, eps, lr);
}

template <class T>
CFLOW_KERNEL void rms_step_size_kernel(index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, T* s) {
  for (index_t i : grid_stride(n)) s[i] = T(1) / rms_entry(nu[i * nu_stride], denom, eps, lr);
}

template <class T>
CFLOW_KERNEL void rms_rate_coefficients_kernel(index_t n, const T* nu, T denom, T lr, T c, T kt, T* a, T* b) {
  for (index_t i : grid_stride(n)) {
    const T r = std::sqrt(nu[i] / denom);
    a[i] = c / (T(2) * lr * denom * r);
    b[i] = r * (kt - c) / (T(2) * lr);
  }
}

template <class T> void ema_square(const Device& dev, index_t n, T keep, T take, const T* x, T* nu) {
  launch(dev, n, ema_square_kernel<T>, n, keep, take, x, nu);
}
template <class T> void ema(const Device& dev, index_t n, T keep, T take, const T* e, T* nu) {
  launch(dev, n, ema_kernel<T>, n, keep, take, e, nu);
}
template <class T>
void rms_preconditioner(const Device& dev, index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, T* p) {
  launch(dev, n, rms_preconditioner_kernel<T>, n, nu, nu_stride, denom, eps, lr, p);
}
template <class T>
void rms_step(const Device& dev, index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, const T* g, T* w) {
  launch(dev, n, rms_step_kernel<T>, n, nu, nu_stride, denom, eps, lr, g, w);
}
template <class T>
void rms_step_size(const Device& dev, index_t n, const T* nu, index_t nu_stride, T denom, T eps, T lr, T* s) {
  launch(dev, n, rms_step_size_kernel<T>, n, nu, nu_stride, denom, eps, lr, s);
}
template <class T>
void rms_rate_coefficients(const Device& dev, index_t n, const T* nu, T denom, T lr, T c, T kt, T* a, T* b) {
  launch(dev, n, rms_rate_coefficients_kernel<T>, n, nu, denom, lr, c, kt, a, b);
}

#define CFLOW_INSTANTIATE(T)                                                                           \
  template void ema_square<T>(const Device&, index_t, T, T, const T*, T*);                            \
  template void ema<T>(const Device&, index_t, T, T, const T*, T*);                                   \
  template void rms_preconditioner<T>(const Device&, index_t, const T*, index_t, T, T, T, T*);        \
  template void rms_step<T>(const Device&, index_t, const T*, index_t, T, T, T, const T*, T*);        \
  template void rms_step_size<T>(const Device&, index_t, const T*, index_t, T, T, T, T*);             \
  template void rms_rate_coefficients<T>(const Device&, index_t, const T*, T, T, T, T, T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
