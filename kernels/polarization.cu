#include "cflow/engine/pairs.h"
#include "kernels/polarization.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void polarization_directions_kernel(index_t d, index_t k, index_t first, index_t count, const T* U,
                                                 T* Z) {
  for (index_t r : grid_stride(d)) {
    index_t pair = 0;
    for (index_t i = 0; i < k; ++i)
      for (index_t j = i; j < k; ++j, ++pair)
        if (pair >= first && pair < first + count)
          Z[r + (pair - first) * d] = i == j ? U[r + i * d] : U[r + i * d] + U[r + j * d];
  }
}

template <class T>
CFLOW_KERNEL void polarization_combine_kernel(index_t d, index_t k, index_t first, index_t count, const T* diagonal,
                                              bool diagonal_in_pairs, T* Q) {
  for (index_t r : grid_stride(d)) {
    for (index_t i = 0; i < k; ++i)
      for (index_t j = i + 1; j < k; ++j) {
        const index_t pair = pair_index(i, j, k) - first;
        if (pair < 0 || pair >= count) continue;
        const index_t column_i = diagonal_in_pairs ? pair_index(i, i, k) : i;
        const index_t column_j = diagonal_in_pairs ? pair_index(j, j, k) : j;
        T& q = Q[r + pair * d];
        q = T(0.5) * (q - diagonal[r + column_i * d] - diagonal[r + column_j * d]);
      }
  }
}

template <class T>
void polarization_directions(const Device& dev, index_t d, index_t k, index_t first, index_t count, const T* U, T* Z) {
  launch(dev, d, polarization_directions_kernel<T>, d, k, first, count, U, Z);
}
template <class T>
void polarization_combine(const Device& dev, index_t d, index_t k, index_t first, index_t count, const T* diagonal,
                          T* Q) {
  launch(dev, d, polarization_combine_kernel<T>, d, k, first, count, diagonal, diagonal == Q, Q);
}

#define CFLOW_INSTANTIATE(T)                                                                 \
  template void polarization_directions<T>(const Device&, index_t, index_t, index_t, index_t, const T*, T*); \
  template void polarization_combine<T>(const Device&, index_t, index_t, index_t, index_t, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
