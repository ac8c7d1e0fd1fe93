#include "cflow/engine/pairs.h"
#include "kernels/flow.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void reciprocal_kernel(index_t n, const T* x, T* out) {
  for (index_t i : grid_stride(n)) out[i] = T(1) / x[i];
}

template <class T>
CFLOW_KERNEL void scale_rows_kernel(index_t d, index_t cols, const T* s, const T* A, T* out) {
  for (index_t r : grid_stride(d))
    for (index_t i = r; i < d * cols; i += d) out[i] = A[i] * s[r];
}

template <class T>
CFLOW_KERNEL void pair_products_kernel(index_t d, index_t k, index_t first, index_t count, const T* U, T* Z) {
  for (index_t r : grid_stride(d)) {
    index_t pair = 0;
    for (index_t a = 0; a < k; ++a)
      for (index_t b = a; b < k; ++b, ++pair)
        if (pair >= first && pair < first + count) Z[r + (pair - first) * d] = U[r + a * d] * U[r + b * d];
  }
}

template <class T>
CFLOW_KERNEL void expected_grad_sq_kernel(index_t d, const T* g, const T* p, const T* h, T* e) {
  for (index_t r : grid_stride(d)) e[r] = g[r] * g[r] + (h ? p[r] * p[r] * h[r] : T(0));
}

template <class T>
CFLOW_KERNEL void gather_rows_kernel(index_t d, index_t cols, index_t count, const index_t* rows, const T* A, T* out) {
  for (index_t i : grid_stride(count * cols)) out[i] = A[rows[i % count] + d * (i / count)];
}

template <class T>
void gather_rows(const Device& dev, index_t d, index_t cols, index_t count, const index_t* rows, const T* A, T* out) {
  launch(dev, count * cols, gather_rows_kernel<T>, d, cols, count, rows, A, out);
}
template <class T> void reciprocal(const Device& dev, index_t n, const T* x, T* out) {
  launch(dev, n, reciprocal_kernel<T>, n, x, out);
}
template <class T> void scale_rows(const Device& dev, index_t d, index_t cols, const T* s, const T* A, T* out) {
  launch_weighted(dev, d, cols, scale_rows_kernel<T>, d, cols, s, A, out);
}
template <class T>
void pair_products(const Device& dev, index_t d, index_t k, index_t first, index_t count, const T* U, T* Z) {
  launch(dev, d, pair_products_kernel<T>, d, k, first, count, U, Z);
}
template <class T> void expected_grad_sq(const Device& dev, index_t d, const T* g, const T* p, const T* h, T* e) {
  launch(dev, d, expected_grad_sq_kernel<T>, d, g, p, h, e);
}

#define CFLOW_INSTANTIATE(T)                                                                 \
  template void reciprocal<T>(const Device&, index_t, const T*, T*);                       \
  template void scale_rows<T>(const Device&, index_t, index_t, const T*, const T*, T*);    \
  template void pair_products<T>(const Device&, index_t, index_t, index_t, index_t, const T*, T*); \
  template void expected_grad_sq<T>(const Device&, index_t, const T*, const T*, const T*, T*); \
  template void gather_rows<T>(const Device&, index_t, index_t, index_t, const index_t*, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
