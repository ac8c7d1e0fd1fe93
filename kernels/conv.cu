#include "kernels/conv.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// Index arithmetic: only the split of the flat index into (example, rest) is 64-bit; everything
// inside one example (C·H·W ≤ 2³¹, checked by the layer) is 32-bit, which is much cheaper.

// One thread per (pixel q, channel c), channel fastest: it writes the 9 contiguous entries
// col[c·9 .. c·9 + 8, q] = col[9i .. 9i + 8], so consecutive threads write consecutive memory.
template <class T>
CFLOW_KERNEL void im2col3x3_kernel(index_t channels, index_t height, index_t width, index_t count, const T* x,
                                   T* col) {
  const index_t pixels = height * width, image = channels * pixels;
  const int C = int(channels), H = int(height), W = int(width);
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), p = r / C, c = r - p * C, h = p / W, w = p - h * W;
    const T* plane = x + (e * channels + c) * pixels;
    T* out = col + 9 * i;
    for (int kh = 0; kh < 3; ++kh) {
      const int hs = h + kh - 1;
      for (int kw = 0; kw < 3; ++kw) {
        const int ws = w + kw - 1;
        out[kh * 3 + kw] = (hs >= 0 && hs < H && ws >= 0 && ws < W) ? plane[hs * W + ws] : T(0);
      }
    }
  }
}

// One thread per input pixel: x[e, c, h, w] = Σ_{kh, kw} col[c·9 + kh·3 + kw, (e, h − kh + 1, w − kw + 1)].
template <class T>
CFLOW_KERNEL void col2im3x3_kernel(index_t channels, index_t height, index_t width, index_t count, const T* col,
                                   T* x) {
  const index_t K = channels * 9, pixels = height * width, image = channels * pixels;
  const int H = int(height), W = int(width), HW = int(pixels);
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), c = r / HW, p = r - c * HW, h = p / W, w = p - h * W;
    const T* block = col + e * pixels * K + c * 9;
    T sum = T(0);
    for (int kh = 0; kh < 3; ++kh) {
      const int hs = h - kh + 1;
      if (hs < 0 || hs >= H) continue;
      for (int kw = 0; kw < 3; ++kw) {
        const int ws = w - kw + 1;
        if (ws < 0 || ws >= W) continue;
        sum += block[(hs * W + ws) * K + kh * 3 + kw];
      }
    }
    x[i] = sum;
  }
}

template <class T>
CFLOW_KERNEL void nchw_to_nhwc_kernel(index_t channels, index_t pixels, index_t count, const T* src, T* dst) {
  const index_t image = channels * pixels;
  const int C = int(channels);
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), p = r / C, c = r - p * C;
    dst[i] = src[e * image + index_t(c) * pixels + p];
  }
}

template <class T>
CFLOW_KERNEL void nhwc_to_nchw_kernel(index_t channels, index_t pixels, index_t count, const T* src, T* dst) {
  const index_t image = channels * pixels;
  const int HW = int(pixels);
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), c = r / HW, p = r - c * HW;
    dst[i] = src[e * image + index_t(p) * channels + c];
  }
}

template <class T>
void im2col3x3(const Device& dev, index_t channels, index_t height, index_t width, index_t count, const T* x,
               T* col) {
  launch(dev, channels * height * width * count, im2col3x3_kernel<T>, channels, height, width, count, x, col);
}
template <class T>
void col2im3x3(const Device& dev, index_t channels, index_t height, index_t width, index_t count, const T* col,
               T* x) {
  launch(dev, channels * height * width * count, col2im3x3_kernel<T>, channels, height, width, count, col, x);
}
template <class T>
void nchw_to_nhwc(const Device& dev, index_t channels, index_t pixels, index_t count, const T* src, T* dst) {
  launch(dev, channels * pixels * count, nchw_to_nhwc_kernel<T>, channels, pixels, count, src, dst);
}
template <class T>
void nhwc_to_nchw(const Device& dev, index_t channels, index_t pixels, index_t count, const T* src, T* dst) {
  launch(dev, channels * pixels * count, nhwc_to_nchw_kernel<T>, channels, pixels, count, src, dst);
}

#define CFLOW_INSTANTIATE(T)                                                                                  \
  template void im2col3x3<T>(const Device&, index_t, index_t, index_t, index_t, const T*, T*);               \
  template void col2im3x3<T>(const Device&, index_t, index_t, index_t, index_t, const T*, T*);               \
  template void nchw_to_nhwc<T>(const Device&, index_t, index_t, index_t, const T*, T*);                     \
  template void nhwc_to_nchw<T>(const Device&, index_t, index_t, index_t, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
