#include "kernels/conv.h"
#include "kernels/fast_divisor.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// Index arithmetic: the flat index is split by FastDivisors (kernels/fast_divisor.h, no hardware
// divide per element); everything inside one example (C·H·W ≤ 2³¹, checked by the layer) is 32-bit.

// The divisors of one launch, built on the host.
struct ConvSplit {
  FastDivisor image, first, second;  // the example's size, then the two splits inside it
  FastDivisor stride;                // col2im's taps
};

// One thread per (output pixel q, channel c), channel fastest: it writes the k² contiguous entries
// col[c·k² .. c·k² + k² − 1, q] = col[k²·i ..], so consecutive threads write consecutive memory.
// split: image C·OH·OW, first C, second OW.
template <class T>
CFLOW_KERNEL void im2col_kernel(ConvGeometry g, ConvSplit split, index_t count, const T* x, T* col) {
  const int H = int(g.height), W = int(g.width), k = g.kernel, s = g.stride, pad = k / 2, k2 = k * k;
  const int C = int(g.channels);
  const index_t pixels = index_t(H) * W, image = split.image.divisor();
  for (index_t i : grid_stride(image * count)) {
    const index_t e = split.image.div(i);
    const index_t r = i - e * image, p = split.first.div(r);
    const int c = int(r - p * C), oh = int(split.second.div(p)), ow = int(p) - oh * g.out_width();
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
// oh·s + kh − pad = h and ow·s + kw − pad = w inside the output. split: image C·H·W, first H·W,
// second W.
template <class T>
CFLOW_KERNEL void col2im_kernel(ConvGeometry g, ConvSplit split, index_t count, const T* col, T* x) {
  const int C = int(g.channels), H = int(g.height), W = int(g.width), k = g.kernel, s = g.stride, pad = k / 2;
  const int OH = g.out_height(), OW = g.out_width(), HW = H * W, k2 = k * k;
  const index_t K = index_t(C) * k2, out_pixels = index_t(OH) * OW, image = split.image.divisor();
  for (index_t i : grid_stride(image * count)) {
    const index_t e = split.image.div(i);
    const index_t r = i - e * image, c = split.first.div(r);
    const int p = int(r - c * HW), h = int(split.second.div(p)), w = p - h * W;
    const T* block = col + e * out_pixels * K + c * k2;
    T sum = T(0);
    for (int kh = 0; kh < k; ++kh) {
      const int hs = h + pad - kh;
      const int oh = hs < 0 ? -1 : int(split.stride.div(hs));
      if (hs < 0 || oh * s != hs || oh >= OH) continue;
      for (int kw = 0; kw < k; ++kw) {
        const int ws = w + pad - kw;
        const int ow = ws < 0 ? -1 : int(split.stride.div(ws));
        if (ws < 0 || ow * s != ws || ow >= OW) continue;
        sum += block[(oh * OW + ow) * K + kh * k + kw];
      }
    }
    x[i] = sum;
  }
}

// dst[e, j, i] = src[e, i, j]: each example's rows × cols matrix (row-major) transposed.
// split: image rows·cols, first rows.
template <class T>
CFLOW_KERNEL void transpose_each_kernel(ConvSplit split, index_t cols, index_t count, const T* src, T* dst) {
  const index_t image = split.image.divisor(), rows = split.first.divisor();
  for (index_t i : grid_stride(image * count)) {
    const index_t e = split.image.div(i);
    const index_t r = i - e * image, j = split.first.div(r), row = r - j * rows;
    dst[i] = src[e * image + row * cols + j];
  }
}

template <class T>
void im2col(const Device& dev, ConvGeometry g, index_t count, const T* x, T* col) {
  const index_t image = g.channels * g.out_height() * g.out_width();
  if (image * count <= 0) return;
  const ConvSplit split{FastDivisor(image), FastDivisor(g.channels), FastDivisor(g.out_width()), {}};
  launch(dev, image * count, im2col_kernel<T>, g, split, count, x, col);
}
template <class T>
void col2im(const Device& dev, ConvGeometry g, index_t count, const T* col, T* x) {
  const index_t image = g.channels * g.height * g.width;
  if (image * count <= 0) return;
  const ConvSplit split{FastDivisor(image), FastDivisor(g.height * g.width), FastDivisor(g.width),
                        FastDivisor(g.stride)};
  launch(dev, image * count, col2im_kernel<T>, g, split, count, col, x);
}
template <class T>
void transpose_each(const Device& dev, index_t rows, index_t cols, index_t count, const T* src, T* dst) {
  if (rows * cols * count <= 0) return;
  const ConvSplit split{FastDivisor(rows * cols), FastDivisor(rows), {}, {}};
  launch(dev, rows * cols * count, transpose_each_kernel<T>, split, cols, count, src, dst);
}

#define CFLOW_INSTANTIATE(T)                                                                                  \
  template void im2col<T>(const Device&, ConvGeometry, index_t, const T*, T*);                               \
  template void col2im<T>(const Device&, ConvGeometry, index_t, const T*, T*);                               \
  template void transpose_each<T>(const Device&, index_t, index_t, index_t, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
