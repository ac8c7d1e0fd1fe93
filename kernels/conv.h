#pragma once
// k×k convolution (k odd), stride s, zero padding k/2 (PyTorch's Conv2d(k, stride=s, padding=k//2)) as
// im2col + GEMM (host/engine/layer_conv2d.cpp). Output size OH = ⌊(H − 1)/s⌋ + 1 (= H for s = 1).
// Activations are NCHW per example: a batch is [C·H·W × count], column-major, one example a column.
// The GEMMs run in pixel-major ("NHWC") layout, [C × (OH·OW·count)] with pixel q = e·OH·OW + oh·OW + ow:
//   col   [K × (OH·OW·count)], K = C·k², row c·k² + kh·k + kw (PyTorch's weight order [out, in, kh, kw]):
//         col[row, q] = x[e, c, oh·s + kh − k/2, ow·s + kw − k/2], 0 outside the image.
//   col2im is its adjoint and gathers: each input pixel sums its (at most k²) entries itself, no atomics.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {

// The input's C × H × W and the filter's k and stride s.
struct ConvGeometry {
  std::int64_t channels, height, width;
  int kernel, stride;
  constexpr int out_height() const { return int((height - 1) / stride + 1); }
  constexpr int out_width() const { return int((width - 1) / stride + 1); }
};

CFLOW_BACKEND_DECLARATIONS(
  // col = im2col(x): x [C·H·W × count] → col [C·k² × OH·OW·count].
  template <class T>
  void im2col(const Device& dev, ConvGeometry g, std::int64_t count, const T* x, T* col);
  // x = im2colᵀ(col): col [C·k² × OH·OW·count] → x [C·H·W × count] (overwritten).
  template <class T>
  void col2im(const Device& dev, ConvGeometry g, std::int64_t count, const T* col, T* x);
  // dst[e] = src[e]ᵀ for each of `count` examples, src[e] a rows × cols row-major matrix: NCHW → NHWC
  // with rows = C, cols = pixels; NHWC → NCHW with rows = pixels, cols = C.
  template <class T>
  void transpose_each(const Device& dev, std::int64_t rows, std::int64_t cols, std::int64_t count, const T* src,
                      T* dst);
)
}  // namespace cflow
