#include <cmath>

#include "kernels/lobpcg.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void divide_rows_by_sqrt_kernel(index_t rows, index_t n, const T* p, const T* in, T* out) {
  for (index_t r : grid_stride(rows)) {
    const T root = std::sqrt(p[r]);  // once per row, for every column
    for (index_t i = r; i < n; i += rows) out[i] = in[i] / root;
  }
}

template <class T>
void divide_rows_by_sqrt(const Device& dev, index_t rows, index_t cols, const T* p, const T* in, T* out) {
  launch_weighted(dev, rows, cols, divide_rows_by_sqrt_kernel<T>, rows, rows * cols, p, in, out);
}

template void divide_rows_by_sqrt<float>(const Device&, index_t, index_t, const float*, const float*, float*);
template void divide_rows_by_sqrt<double>(const Device&, index_t, index_t, const double*, const double*, double*);

}  // namespace cflow::CFLOW_BACKEND
