#include <cmath>

#include "kernels/lobpcg.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// Tiles of rows (portable.h): √p once per row, then every column of the tile, so the CPU walks
// contiguous runs of each column instead of striding `rows` between columns.
template <class T>
CFLOW_KERNEL void divide_rows_by_sqrt_kernel(index_t rows, index_t cols, const T* p, const T* in, T* out) {
  for (index_t tile : grid_stride(direction_tile_count(rows))) {
    const IndexRange tile_rows = direction_tile(tile, rows);
    T root[kDirectionTile];
    for (index_t r : tile_rows) root[r - tile_rows.first] = std::sqrt(p[r]);
    for (index_t j = 0; j < cols; ++j)
      for (index_t r : tile_rows) out[j * rows + r] = in[j * rows + r] / root[r - tile_rows.first];
  }
}

template <class T>
void divide_rows_by_sqrt(const Device& dev, index_t rows, index_t cols, const T* p, const T* in, T* out) {
  launch_weighted(dev, rows, cols, divide_rows_by_sqrt_kernel<T>, rows, cols, p, in, out);
}

template void divide_rows_by_sqrt<float>(const Device&, index_t, index_t, const float*, const float*, float*);
template void divide_rows_by_sqrt<double>(const Device&, index_t, index_t, const double*, const double*, double*);

}  // namespace cflow::CFLOW_BACKEND
