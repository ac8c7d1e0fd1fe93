#include <algorithm>

#include "kernels/bias.h"
#include "kernels/fast_divisor.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// One item per tile of a column's rows (portable.h: 256 contiguous rows on the CPU, which it walks
// as a vector loop; one element on the GPU, whose neighbouring threads then touch neighbouring rows).
template <class T>
CFLOW_KERNEL void add_bias_kernel(index_t rows, FastDivisor tiles_per_column, FastDivisor columns_per_matrix,
                                  index_t items, const T* bias, index_t bias_stride, T* Y) {
  for (index_t item : grid_stride(items)) {
    const index_t column = tiles_per_column.div(item);
    const T* b = bias + columns_per_matrix.div(column) * bias_stride;
    T* y = Y + column * rows;
    for (index_t r : direction_tile(tiles_per_column.mod(item), rows)) y[r] += b[r];
  }
}

template <class T>
void add_bias(const Device& dev, index_t rows, index_t cols, index_t batch, const T* bias, index_t bias_stride,
              T* Y) {
  if (rows * cols * batch <= 0) return;
  const index_t tiles = direction_tile_count(rows), items = tiles * cols * batch;
  launch_weighted(dev, items, std::min(rows, kDirectionTile), add_bias_kernel<T>, rows, FastDivisor(tiles),
                  FastDivisor(cols), items, bias, bias_stride, Y);
}

template void add_bias<float>(const Device&, index_t, index_t, index_t, const float*, index_t, float*);
template void add_bias<double>(const Device&, index_t, index_t, index_t, const double*, index_t, double*);

}  // namespace cflow::CFLOW_BACKEND
