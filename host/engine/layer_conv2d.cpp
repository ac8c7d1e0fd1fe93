// Conv2d: k×k kernel (k odd: 3, or 1 for projections), stride s, zero padding k/2, optional bias;
// weight [out, in, k, k] as in PyTorch (so, column-major, the buffer is Wᵀ, K × out with K = in·k² and
// leading dimension K; the bias follows it). Implemented as im2col + GEMM in pixel-major layout
// (kernels/conv.h): with col(x) [K × pixels] and Z [out × pixels], the convolution is Z = Wᵀ col(x), a
// Linear layer whose "examples" are the OH·OW·nb output pixels; Z is transposed to NCHW afterwards. So the jet rules are those
// of Linear (docs/design.md §3), W∗ acting as a convolution:
//   y1 = W∗x1 + V∗x0 + vb,  y2 = W∗x2 + 2V∗x1;
//   x̄0 = W∗ᵀȳ0 + V∗ᵀȳ1,  x̄1 = W∗ᵀȳ1 + 2V∗ᵀȳ2,  x̄2 = W∗ᵀȳ2;  W̄ = Σ_k corr(ȳk, xk),  b̄ = Σ ȳ0,
// with W∗ᵀ = col2im ∘ W (a gather, no atomics). Every W-product covers all m directions in one GEMM,
// the per-direction V-products and the gradients are one strided-batched GEMM each.
// Scratch (im2col matrices, pixel-major outputs/adjoints) is owned by the layer and grown on
// demand; its size follows the chunk (im2col is k²/s² × the layer's input), so a layer instance must not
// be used by two passes at once.
#include <cmath>
#include <limits>
#include <utility>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "kernels/bias.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"

namespace cflow {
namespace {

using blas::Op;

template <class T>
class Conv2d final : public Layer<T> {
 public:
  Conv2d(TensorShape input, index_t outputs, bool bias, index_t offset, int kernel, int stride)
      : in_(input), geometry_{input.channels, input.height, input.width, kernel, stride}, out_(outputs),
        k_(input.channels * kernel * kernel), pixels_(index_t(geometry_.out_height()) * geometry_.out_width()),
        bias_(bias), offset_(offset) {
    CFLOW_REQUIRE(input.size() >= 1 && outputs >= 1, "conv2d: sizes must be positive");
    CFLOW_REQUIRE(kernel >= 1 && kernel % 2 == 1 && stride >= 1, "conv2d: the kernel size must be odd, the stride positive");
    CFLOW_REQUIRE(index_t(kernel) * kernel * input.size() <= std::numeric_limits<int>::max(),
                  "conv2d: image too large for 32-bit indices");
  }

  TensorShape output_shape() const override { return {out_, geometry_.out_height(), geometry_.out_width()}; }
  index_t parameter_count() const override { return k_ * out_ + (bias_ ? out_ : 0); }

  void initialize(std::mt19937_64& rng, T* slice) const override {
    const double bound = 1.0 / std::sqrt(double(k_));  // fan_in = in · k · k
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (index_t i = 0; i < parameter_count(); ++i) slice[i] = T(uniform(rng));
  }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    const index_t nb = p.examples, P = pixels_ * nb;
    T* col = scratch(p, col_, k_ * P);
    T* z = scratch(p, z_[0], out_ * P);
    im2col(p, x, nb, col);
    blas::gemm<T>(p.dev, Op::T, Op::N, out_, P, k_, T(1), weight(p.w), k_, col, k_, T(0), z, out_);
    if (bias_) CFLOW_DISPATCH(p.dev, add_bias<T>, p.dev, out_, P, 1, bias(p.w), 0, z);
    CFLOW_DISPATCH(p.dev, transpose_each<T>, p.dev, pixels_, out_, nb, z, y);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    const index_t nb = p.examples, m = p.directions, P = pixels_ * nb;
    const bool tangents = x.tangent[0] || (p.order >= 2 && x.tangent[1]);
    T* col0 = scratch(p, col0_, k_ * P);
    T* col = tangents ? scratch(p, col_, k_ * P * m) : nullptr;
    T* z = scratch(p, z_[0], out_ * P * m);
    im2col(p, x.primal, nb, col0);
    // y1 = W∗x1 + V∗x0 + vb
    T beta = T(0);
    if (x.tangent[0]) {
      im2col(p, x.tangent[0], nb * m, col);
      blas::gemm<T>(p.dev, Op::T, Op::N, out_, P * m, k_, T(1), weight(p.w), k_, col, k_, T(0), z, out_);
      beta = T(1);
    }
    direction_products(p, T(1), col0, 0, beta, z);
    if (bias_) CFLOW_DISPATCH(p.dev, add_bias<T>, p.dev, out_, P, m, bias(p.V), p.ld, z);
    CFLOW_DISPATCH(p.dev, transpose_each<T>, p.dev, pixels_, out_, nb * m, z, y.tangent[0]);
    if (p.order < 2) return;
    // y2 = W∗x2 + 2V∗x1 (col still holds col(x1))
    if (!tangents) {
      y.tangent[1] = nullptr;
      return;
    }
    beta = T(0);
    if (x.tangent[0]) {
      direction_products(p, T(2), col, k_ * P, T(0), z);
      beta = T(1);
    }
    if (x.tangent[1]) {
      im2col(p, x.tangent[1], nb * m, col);
      blas::gemm<T>(p.dev, Op::T, Op::N, out_, P * m, k_, T(1), weight(p.w), k_, col, k_, beta, z, out_);
    }
    CFLOW_DISPATCH(p.dev, transpose_each<T>, p.dev, pixels_, out_, nb * m, z, y.tangent[1]);
  }

  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    const index_t nb = p.examples, m = p.directions, P = pixels_ * nb;
    const int order = p.order;
    // ȳk in pixel-major layout, transposed on first use into z_[k % 2] (Z̄0 is dead when Z̄2 is made).
    const T* zbar[3] = {nullptr, nullptr, nullptr};
    auto pixel_major = [&](int k) -> const T* {
      if (k > order || !yb.component[k]) return nullptr;
      if (!zbar[k]) {
        T* z = scratch(p, z_[k % 2], out_ * P * m);
        CFLOW_DISPATCH(p.dev, transpose_each<T>, p.dev, out_, pixels_, nb * m, yb.component[k], z);
        zbar[k] = z;
      }
      return zbar[k];
    };
    const bool tangents = order >= 1 && (x.tangent[0] || (order >= 2 && x.tangent[1]));
    T* col = (xb || (p.G && tangents)) ? scratch(p, col_, k_ * P * m) : nullptr;
    for (int k = 0; k <= order; ++k) {
      if (xb) {
        // x̄k = col2im(W Z̄k + (k+1) V_j Z̄(k+1)_j); col is the K × pixels adjoint of col(xk).
        const T* cur = pixel_major(k);
        const T* next = k < order ? pixel_major(k + 1) : nullptr;
        if (!cur && !next) {
          p.dev.set_zero(xb->component[k], sizeof(T) * std::size_t(in_.size() * nb * m));
        } else {
          T beta = T(0);
          if (cur) {
            blas::gemm<T>(p.dev, Op::N, Op::N, k_, P * m, out_, T(1), weight(p.w), k_, cur, out_, T(0), col, k_);
            beta = T(1);
          }
          if (next)
            blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, k_, P, out_, T(k + 1), weight(p.V), k_, p.ld, next,
                                          out_, out_ * P, beta, col, k_, k_ * P, m);
          CFLOW_DISPATCH(p.dev, col2im<T>, p.dev, geometry_, nb * m, col, xb->component[k]);
        }
      }
      if (!p.G) continue;
      // W̄_j += col(xk)_j Z̄k_jᵀ; x0 is shared by all directions (stride 0).
      const T* xk = k == 0 ? x.primal : x.tangent[k - 1];
      const T* cur = xk ? pixel_major(k) : nullptr;
      if (!cur) continue;
      T* colk = col;
      if (k == 0) {
        colk = scratch(p, col0_, k_ * P);
        im2col(p, x.primal, nb, colk);
      } else {
        im2col(p, xk, nb * m, colk);
      }
      blas::gemm_strided_batched<T>(p.dev, Op::N, Op::T, k_, out_, P, T(1), colk, k_, k == 0 ? 0 : k_ * P, cur, out_,
                                    out_ * P, T(1), weight(p.G), k_, p.ld, m);
      if (k == 0 && bias_)  // b̄_j += Z̄0_j · 1 over the nb·H·W pixels
        blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, out_, 1, P, T(1), cur, out_, out_ * P, ones(p, P), P, 0,
                                      T(1), bias(p.G), out_, p.ld, m);
    }
  }

 private:
  const T* weight(const T* w) const { return w + offset_; }
  T* weight(T* w) const { return w + offset_; }
  const T* bias(const T* w) const { return w + offset_ + k_ * out_; }
  T* bias(T* w) const { return w + offset_ + k_ * out_; }

  // At least n elements of a layer-owned buffer (the old one is released first: peak memory).
  T* scratch(const JetPass<T>& p, Buffer<T>& buffer, index_t n) const {
    if (buffer.size() < n) {
      buffer = Buffer<T>();
      buffer = Buffer<T>(p.dev, n);
    }
    return buffer.data();
  }
  const T* ones(const JetPass<T>& p, index_t n) const {
    if (ones_.size() < n) {
      scratch(p, ones_, n);
      CFLOW_DISPATCH(p.dev, fill<T>, p.dev, n, T(1), ones_.data());
    }
    return ones_.data();
  }
  void im2col(const JetPass<T>& p, const T* x, index_t count, T* col) const {
    CFLOW_DISPATCH(p.dev, im2col<T>, p.dev, geometry_, count, x, col);
  }
  // Z_j = alpha V_jᵀ C_j + beta Z_j for every direction j (C_j at C + j·stride_c), pixel-major.
  void direction_products(const JetPass<T>& p, T alpha, const T* C, index_t stride_c, T beta, T* Z) const {
    const index_t P = pixels_ * p.examples;
    blas::gemm_strided_batched<T>(p.dev, Op::T, Op::N, out_, P, k_, alpha, weight(p.V), k_, p.ld, C, k_, stride_c,
                                  beta, Z, out_, out_ * P, p.directions);
  }

  TensorShape in_;
  ConvGeometry geometry_;
  index_t out_, k_, pixels_;  // pixels_: output pixels per example
  bool bias_;
  index_t offset_;
  mutable Buffer<T> col_, col0_, z_[2], ones_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_conv2d(TensorShape input, index_t out_channels, bool bias, index_t offset, int kernel,
                                      int stride) {
  return std::make_unique<Conv2d<T>>(input, out_channels, bias, offset, kernel, stride);
}
template std::unique_ptr<Layer<float>> make_conv2d<float>(TensorShape, index_t, bool, index_t, int, int);
template std::unique_ptr<Layer<double>> make_conv2d<double>(TensorShape, index_t, bool, index_t, int, int);

}  // namespace cflow
