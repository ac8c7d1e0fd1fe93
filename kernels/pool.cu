#include "kernels/pool.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void avgpool2_forward_kernel(index_t planes, index_t height, index_t width, const T* x, T* y) {
  const index_t oh = height / 2, ow = width / 2;
  for (index_t i : grid_stride(planes * oh * ow)) {
    const index_t plane = i / (oh * ow), r = i % (oh * ow);
    const T* window = x + plane * height * width + 2 * (r / ow) * width + 2 * (r % ow);
    y[i] = T(0.25) * (window[0] + window[1] + window[width] + window[width + 1]);
  }
}

template <class T>
CFLOW_KERNEL void avgpool2_adjoint_kernel(index_t planes, index_t height, index_t width, const T* yb, T* xb) {
  const index_t oh = height / 2, ow = width / 2;
  for (index_t i : grid_stride(planes * height * width)) {
    const index_t plane = i / (height * width), r = i % (height * width);
    const index_t h = r / width / 2, w = r % width / 2;
    xb[i] = (h < oh && w < ow) ? T(0.25) * yb[plane * oh * ow + h * ow + w] : T(0);
  }
}

template <class T>
void avgpool2_forward(const Device& dev, index_t planes, index_t height, index_t width, const T* x, T* y) {
  launch(dev, planes * (height / 2) * (width / 2), avgpool2_forward_kernel<T>, planes, height, width, x, y);
}
template <class T>
void avgpool2_adjoint(const Device& dev, index_t planes, index_t height, index_t width, const T* yb, T* xb) {
  launch(dev, planes * height * width, avgpool2_adjoint_kernel<T>, planes, height, width, yb, xb);
}

template void avgpool2_forward<float>(const Device&, index_t, index_t, index_t, const float*, float*);
template void avgpool2_forward<double>(const Device&, index_t, index_t, index_t, const double*, double*);
template void avgpool2_adjoint<float>(const Device&, index_t, index_t, index_t, const float*, float*);
template void avgpool2_adjoint<double>(const Device&, index_t, index_t, index_t, const double*, double*);

}  // namespace cflow::CFLOW_BACKEND
