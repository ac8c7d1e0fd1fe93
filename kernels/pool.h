#pragma once
// 2×2 average pooling, stride 2 (PyTorch's AvgPool2d(2): a trailing odd row or column is dropped).
// Images are planes of height × width, contiguous; an NCHW batch of `count` examples with C channels
// is C·count planes. The pool is linear, so jets and adjoints apply it to every component.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {
CFLOW_BACKEND_DECLARATIONS(
  // y [planes × ⌊H/2⌋ × ⌊W/2⌋] = window means of x [planes × H × W].
  template <class T>
  void avgpool2_forward(const Device& dev, std::int64_t planes, std::int64_t height, std::int64_t width, const T* x,
                        T* y);
  // The adjoint, a gather: xb[h, w] = ¼ yb[h/2, w/2] (0 for a dropped row or column); xb overwritten.
  template <class T>
  void avgpool2_adjoint(const Device& dev, std::int64_t planes, std::int64_t height, std::int64_t width,
                        const T* yb, T* xb);
)
}  // namespace cflow
