#include "kernels/bias.h"
#include "kernels/fast_divisor.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void add_bias_kernel(FastDivisor rows, FastDivisor matrix, index_t batch, const T* bias,
                                  index_t bias_stride, T* Y) {
  for (index_t i : grid_stride(matrix.divisor() * batch)) Y[i] += bias[rows.mod(i) + matrix.div(i) * bias_stride];
}

template <class T>
void add_bias(const Device& dev, index_t rows, index_t cols, index_t batch, const T* bias, index_t bias_stride,
              T* Y) {
  if (rows * cols * batch <= 0) return;
  launch(dev, rows * cols * batch, add_bias_kernel<T>, FastDivisor(rows), FastDivisor(rows * cols), batch, bias,
         bias_stride, Y);
}

template void add_bias<float>(const Device&, index_t, index_t, index_t, const float*, index_t, float*);
template void add_bias<double>(const Device&, index_t, index_t, index_t, const double*, index_t, double*);

}  // namespace cflow::CFLOW_BACKEND
