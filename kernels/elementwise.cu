#include "kernels/elementwise.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void fill_kernel(index_t n, T value, T* x) {
  for (index_t i : grid_stride(n)) x[i] = value;
}

template <class T>
CFLOW_KERNEL void affine_kernel(index_t n, T a, T b, T* x) {
  for (index_t i : grid_stride(n)) x[i] = a * x[i] + b;
}

template <class T>
CFLOW_KERNEL void multiply_kernel(index_t n, const T* x, const T* y, T* z) {
  for (index_t i : grid_stride(n)) z[i] = x[i] * y[i];
}

template <class T>
CFLOW_KERNEL void max_scaled_kernel(index_t n, T a, const T* y, T* x) {
  for (index_t i : grid_stride(n)) x[i] = x[i] < a * y[i] ? a * y[i] : x[i];
}

template <class T> void fill(const Device& dev, index_t n, T value, T* x) {
  launch(dev, n, fill_kernel<T>, n, value, x);
}
template <class T> void affine(const Device& dev, index_t n, T a, T b, T* x) {
  launch(dev, n, affine_kernel<T>, n, a, b, x);
}
template <class T> void multiply(const Device& dev, index_t n, const T* x, const T* y, T* z) {
  launch(dev, n, multiply_kernel<T>, n, x, y, z);
}
template <class T> void max_scaled(const Device& dev, index_t n, T a, const T* y, T* x) {
  launch(dev, n, max_scaled_kernel<T>, n, a, y, x);
}

#define CFLOW_INSTANTIATE(T)                                                  \
  template void fill<T>(const Device&, index_t, T, T*);                      \
  template void affine<T>(const Device&, index_t, T, T, T*);                 \
  template void multiply<T>(const Device&, index_t, const T*, const T*, T*);   \
  template void max_scaled<T>(const Device&, index_t, T, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
