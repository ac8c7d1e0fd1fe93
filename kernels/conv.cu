#include "kernels/conv.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// Index arithmetic: only the split of the flat index into (example, rest) is 64-bit; everything
// inside one example (C·H·W ≤ 2³¹, checked by the layer) is 32-bit, which is much cheaper.

// One thread per (output pixel q, channel c), channel fastest: it writes the k² contiguous entries
// col[c·k² .. c·k² + k² − 1, q] = col[k²·i ..], so consecutive threads write consecutive memory.
template <class T>
CFLOW_KERNEL void im2col_kernel(ConvGeometry g, index_t count, const T* x, T* col) {
  const int C = int(g.channels), H = int(g.height), W = int(g.width), k = g.kernel, s = g.stride, pad = k / 2;
  const int OW = g.out_width(), k2 = k * k;
  const index_t pixels = index_t(H) * W, image = index_t(C) * g.out_height() * OW;
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), p = r / C, c = r - p * C, oh = p / OW, ow = p - oh * OW;
    const T* plane = x + (e * C + c) * pixels;
    T* out = col + k2 * i;
    for (int kh = 0; kh < k; ++kh) {
      const int hs = oh * s + kh - pad;
      for (int kw = 0; kw < k; ++kw) {
        const int ws = ow * s + kw - pad;
        out[kh * k + kw] = (hs >= 0 && hs < H && ws >= 0 && ws < W) ? plane[hs * W + ws] : T(0);
      }
    }
  }
}

// One thread per input pixel: x[e, c, h, w] = Σ col[c·k² + kh·k + kw, (e, oh, ow)] over the taps with
// oh·s + kh − pad = h and ow·s + kw − pad = w inside the output.
template <class T>
CFLOW_KERNEL void col2im_kernel(ConvGeometry g, index_t count, const T* col, T* x) {
  const int C = int(g.channels), H = int(g.height), W = int(g.width), k = g.kernel, s = g.stride, pad = k / 2;
  const int OH = g.out_height(), OW = g.out_width(), HW = H * W, k2 = k * k;
  const index_t K = index_t(C) * k2, out_pixels = index_t(OH) * OW, image = index_t(C) * HW;
  for (index_t i : grid_stride(image * count)) {
    const index_t e = i / image;
    const int r = int(i - e * image), c = r / HW, p = r - c * HW, h = p / W, w = p - h * W;
    const T* block = col + e * out_pixels * K + c * k2;
    T sum = T(0);
    for (int kh = 0; kh < k; ++kh) {
      const int hs = h + pad - kh;
      if (hs < 0 || hs % s != 0 || hs / s >= OH) continue;
      for (int kw = 0; kw < k; ++kw) {
        const int ws = w + pad - kw;
        if (ws < 0 || ws % s != 0 || ws / s >= OW) continue;
        sum += block[((hs / s) * OW + ws / s) * K + kh * k + kw];
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
void im2col(const Device& dev, ConvGeometry g, index_t count, const T* x, T* col) {
  launch(dev, g.channels * g.out_height() * g.out_width() * count, im2col_kernel<T>, g, count, x, col);
}
template <class T>
void col2im(const Device& dev, ConvGeometry g, index_t count, const T* col, T* x) {
  launch(dev, g.channels * g.height * g.width * count, col2im_kernel<T>, g, count, col, x);
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
  template void im2col<T>(const Device&, ConvGeometry, index_t, const T*, T*);                               \
  template void col2im<T>(const Device&, ConvGeometry, index_t, const T*, T*);                               \
  template void nchw_to_nhwc<T>(const Device&, index_t, index_t, index_t, const T*, T*);                     \
  template void nhwc_to_nchw<T>(const Device&, index_t, index_t, index_t, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
