// Linear layer y = W x + b, W [out × in] row-major as in PyTorch (so, column-major, the buffer is
// Wᵀ with leading dimension in). Jet rules (docs/design.md §3):
//   y1 = W x1 + V x0 + vb,  y2 = W x2 + 2 V x1;
//   x̄0 = Wᵀȳ0 + Vᵀȳ1,  x̄1 = Wᵀȳ1 + 2Vᵀȳ2,  x̄2 = Wᵀȳ2;  W̄ = Σ ȳk xkᵀ,  b̄ = Σ ȳ0.
// Every W-product covers all m directions in one GEMM; the per-direction V-products are one
// strided-batched GEMM.
#include <cmath>

#include "cflow/runtime/blas.h"
#include "host/engine/layer.h"
#include "kernels/bias.h"

namespace cflow {
namespace {

using blas::Op;

template <class T>
class Linear final : public Layer<T> {
 public:
  Linear(TensorShape input, index_t outputs, bool bias, index_t offset, double weight_scale)
      : in_(input.size()), out_(outputs), bias_(bias), offset_(offset), weight_scale_(weight_scale) {}

  TensorShape output_shape() const override { return {out_, 1, 1}; }
  index_t parameter_count() const override { return in_ * out_ + (bias_ ? out_ : 0); }

  void initialize(std::mt19937_64& rng, T* slice) const override {
    const double bound = 1.0 / std::sqrt(double(in_));
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (index_t i = 0; i < parameter_count(); ++i) slice[i] = T((i < in_ * out_ ? weight_scale_ : 1.0) * uniform(rng));
  }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    blas::gemm<T>(p.dev, Op::T, Op::N, out_, p.examples, in_, T(1), weight(p.w), in_, x, in_, T(0), y, out_);
    if (bias_) CFLOW_DISPATCH(p.dev, add_bias<T>, p.dev, out_, p.examples, 1, bias(p.w), 0, y);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    const index_t nb = p.examples, m = p.directions;
    // y1 = W x1 + V x0 + vb
    T beta = T(0);
    if (x.tangent[0]) {
      blas::gemm<T>(p.dev, Op::T, Op::N, out_, nb * m, in_, T(1), weight(p.w), in_, x.tangent[0], in_, T(0),
                    y.tangent[0], out_);
      beta = T(1);
    }
    direction_products(p, T(1), x.primal, 0, beta, y.tangent[0]);
    if (bias_) CFLOW_DISPATCH(p.dev, add_bias<T>, p.dev, out_, nb, m, bias(p.V), p.ld, y.tangent[0]);
    if (p.order < 2) return;
    // y2 = W x2 + 2 V x1
    if (!x.tangent[0] && !x.tangent[1]) {
      y.tangent[1] = nullptr;
      return;
    }
    beta = T(0);
    if (x.tangent[1]) {
      blas::gemm<T>(p.dev, Op::T, Op::N, out_, nb * m, in_, T(1), weight(p.w), in_, x.tangent[1], in_, T(0),
                    y.tangent[1], out_);
      beta = T(1);
    }
    if (x.tangent[0]) direction_products(p, T(2), x.tangent[0], in_ * nb, beta, y.tangent[1]);
  }

  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    const index_t nb = p.examples, m = p.directions, order = p.order;
    if (xb) {
      // x̄k = Wᵀ ȳk (+ V-terms): one GEMM over all directions per component.
      for (int c = 0; c <= order; ++c)
        blas::gemm<T>(p.dev, Op::N, Op::N, in_, nb * m, out_, T(1), weight(p.w), in_,
                      yb.component[c], out_, T(0), xb->component[c], in_);
      if (order >= 1) transposed_direction_products(p, T(1), yb.component[1], xb->component[0]);
      if (order == 2) transposed_direction_products(p, T(2), yb.component[2], xb->component[1]);
    }
    if (!p.G) return;
    // W̄_j += Σ_k ȳk_j xk_jᵀ; x0 is shared by all directions (stride 0).
    weight_gradient(p, yb.component[0], x.primal, 0);
    for (int c = 1; c <= order; ++c)
      if (x.tangent[c - 1]) weight_gradient(p, yb.component[c], x.tangent[c - 1], in_ * nb);
    if (bias_)  // b̄_j += ȳ0_j · 1
      blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, out_, 1, nb, T(1), yb.component[0], out_, out_ * nb, p.ones,
                                    nb, 0, T(1), bias(p.G), out_, p.ld, m);
  }

 private:
  const T* weight(const T* w) const { return w + offset_; }
  T* weight(T* w) const { return w + offset_; }
  const T* bias(const T* w) const { return w + offset_ + in_ * out_; }
  T* bias(T* w) const { return w + offset_ + in_ * out_; }

  // Y_j = alpha V_j X_j + beta Y_j for every direction j (X_j at X + j·stride_x).
  void direction_products(const JetPass<T>& p, T alpha, const T* X, index_t stride_x, T beta, T* Y) const {
    blas::gemm_strided_batched<T>(p.dev, Op::T, Op::N, out_, p.examples, in_, alpha, weight(p.V), in_, p.ld, X, in_,
                                  stride_x, beta, Y, out_, out_ * p.examples, p.directions);
  }
  // X_j += alpha V_jᵀ Y_j.
  void transposed_direction_products(const JetPass<T>& p, T alpha, const T* Y, T* X) const {
    blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, in_, p.examples, out_, alpha, weight(p.V), in_, p.ld, Y, out_,
                                  out_ * p.examples, T(1), X, in_, in_ * p.examples, p.directions);
  }
  // Ḡ_j (as Wᵀ, in × out) += X_j Ȳ_jᵀ.
  void weight_gradient(const JetPass<T>& p, const T* Ybar, const T* X, index_t stride_x) const {
    blas::gemm_strided_batched<T>(p.dev, Op::N, Op::T, in_, out_, p.examples, T(1), X, in_, stride_x, Ybar, out_,
                                  out_ * p.examples, T(1), weight(p.G), in_, p.ld, p.directions);
  }

  index_t in_, out_;
  bool bias_;
  index_t offset_;
  double weight_scale_;  // multiplies the initial W (not b)
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_linear(TensorShape input, index_t outputs, bool bias, index_t offset,
                                      double initial_weight_scale) {
  return std::make_unique<Linear<T>>(input, outputs, bias, offset, initial_weight_scale);
}
template std::unique_ptr<Layer<float>> make_linear<float>(TensorShape, index_t, bool, index_t, double);
template std::unique_ptr<Layer<double>> make_linear<double>(TensorShape, index_t, bool, index_t, double);

}  // namespace cflow
