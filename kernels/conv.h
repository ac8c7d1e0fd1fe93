#pragma once
// 3×3, stride 1, "same" (zero) padding convolution as im2col + GEMM (host/engine/layer_conv2d.cpp).
// Activations are NCHW per example: a batch is [C·H·W × count], column-major, one example a column.
// The GEMMs run in pixel-major ("NHWC") layout, [C × (H·W·count)] with pixel q = e·H·W + h·W + w:
//   col   [K × (H·W·count)], K = C·9, row k = c·9 + kh·3 + kw (PyTorch's weight order [out, in, kh, kw]):
//         col[k, q] = x[e, c, h + kh − 1, w + kw − 1], 0 outside the image.
//   col2im is its adjoint and gathers: each input pixel sums its (at most 9) entries itself, no atomics.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // col = im2col(x): x [C·H·W × count] → col [C·9 × H·W·count].
  template <class T>
  void im2col3x3(const Device& dev, std::int64_t channels, std::int64_t height, std::int64_t width,
                 std::int64_t count, const T* x, T* col);
  // x = im2colᵀ(col): col [C·9 × H·W·count] → x [C·H·W × count] (overwritten).
  template <class T>
  void col2im3x3(const Device& dev, std::int64_t channels, std::int64_t height, std::int64_t width,
                 std::int64_t count, const T* col, T* x);
  // dst [C × pixels·count] = src [pixels × C] per example (NCHW → NHWC).
  template <class T>
  void nchw_to_nhwc(const Device& dev, std::int64_t channels, std::int64_t pixels, std::int64_t count, const T* src,
                    T* dst);
  // dst [pixels × C] per example = src [C × pixels·count] (NHWC → NCHW).
  template <class T>
  void nhwc_to_nchw(const Device& dev, std::int64_t channels, std::int64_t pixels, std::int64_t count, const T* src,
                    T* dst);
)
}  // namespace cflow
