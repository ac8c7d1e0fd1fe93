#include "kernels/bias.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void add_bias_kernel(index_t rows, index_t cols, index_t batch, const T* bias, index_t bias_stride,
                                  T* Y) {
  for (index_t i : grid_stride(rows * cols * batch)) Y[i] += bias[i % rows + (i / (rows * cols)) * bias_stride];
}

template <class T>
void add_bias(const Device& dev, index_t rows, index_t cols, index_t batch, const T* bias, index_t bias_stride,
              T* Y) {
  launch(dev, rows * cols * batch, add_bias_kernel<T>, rows, cols, batch, bias, bias_stride, Y);
}

template void add_bias<float>(const Device&, index_t, index_t, index_t, const float*, index_t, float*);
template void add_bias<double>(const Device&, index_t, index_t, index_t, const double*, index_t, double*);

}  // namespace cflow::CFLOW_BACKEND
