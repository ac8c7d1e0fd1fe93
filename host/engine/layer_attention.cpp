// Scaled dot-product attention of H heads over T tokens (docs/design.md §3.10), the parameter-free
// core of multi-head self-attention. Per example the input is [3D × T] (each token's q, k, v, head h
// at features h·dh .. (h+1)·dh of each), the output [D × T] (the heads' outputs concatenated):
//   A = α KₕᵀQₕ (scores, key-major per query: [T × T]),  P = softmax over keys,  Yₕ = Vₕ P,  α = 1/√dh.
// Along a direction the input carries the jet (X0, X1, X2), and by Leibniz's rule
//   A_k = α Σ_{a+b=k} C(k,a) K_aᵀ Q_b,   Y_k = Σ_{a+b=k} C(k,a) V_a P_b,
// with the softmax jets P_k from kernels/attention.cu. The reverse runs the same products backwards:
//   P̄_b = Σ_k C(k,b) V_{k−b}ᵀ Ȳ_k,  V̄_a = Σ_k C(k,a) Ȳ_k P_{k−a}ᵀ,
//   Q̄_b = α Σ_k C(k,b) K_{k−b} Ā_k,  K̄_a = α Σ_k C(k,a) Q_{k−a} Ā_kᵀ,
// and the softmax jet's reverse gives Ā from P̄. Every product is one strided-batched GEMM per head
// over all columns (examples × directions). The primal X0 is shared by the directions; the tangent
// passes broadcast it to every direction so that all operands have one column stride. The score and
// probability jets stay in layer-owned scratch between forward_tangents and reverse of one chunk
// (as Conv2d's: a layer must not be used by two passes at once); for order 0 reverse recomputes them.
#include <cmath>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "host/engine/scratch.h"
#include "kernels/attention.h"

namespace cflow {
namespace {

using blas::Op;

// A matrix of every (column, head): base + column·stride + head·head_stride, leading dimension ld.
template <class Pointer>
struct Operand {
  Pointer base;
  index_t ld, stride, head_stride;
};

template <class T>
class Attention final : public Layer<T> {
 public:
  Attention(index_t features, index_t tokens, index_t heads, bool causal)
      : D_(features), T_(tokens), H_(heads), dh_(heads >= 1 ? features / heads : 0), causal_(causal) {
    CFLOW_REQUIRE(heads >= 1 && features % heads == 0 && tokens >= 1,
                  "attention: the head count must divide the features (and sizes must be positive)");
    alpha_ = T(1) / std::sqrt(T(dh_));
  }

  TensorShape output_shape() const override { return {D_ * T_, 1, 1}; }
  // The scores and probabilities (T² per head; their jets and adjoints are counted with them) and the
  // primal broadcast to the directions.
  index_t internal_size() const override { return 2 * T_ * T_ * H_ + 3 * D_ * T_; }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    const T* X[3] = {x, nullptr, nullptr};
    probabilities(p, 0, p.examples, X);
    zero(p, y, D_ * T_ * p.examples);
    mix(p, p.examples, T(1), V(X[0]), probability(0), y);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    CFLOW_REQUIRE(x.tangent[0], "attention: the q, k, v projection comes first, so x1 is never zero");
    const index_t C = p.examples * p.directions;
    const T* X[3] = {broadcast_primal(p, x.primal), x.tangent[0], p.order >= 2 ? x.tangent[1] : nullptr};
    probabilities(p, p.order, C, X);
    for (int k = 1; k <= p.order; ++k) {
      zero(p, y.tangent[k - 1], D_ * T_ * C);
      for (int a = 0; a <= k; ++a)
        if (X[a]) mix(p, C, binomial(k, a), V(X[a]), probability(k - a), y.tangent[k - 1]);
    }
  }

  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    if (!xb) return;  // no parameters
    const int order = p.order;
    const index_t C = p.examples * p.directions;
    const T* X[3] = {order == 0 ? x.primal : primal_.data(), order >= 1 ? x.tangent[0] : nullptr,
                     order >= 2 ? x.tangent[1] : nullptr};
    if (order == 0) probabilities(p, 0, C, X);  // forward_tangents did not run for this chunk
    const index_t scores = T_ * T_ * H_ * C;
    T* pb[3] = {nullptr, nullptr, nullptr};
    T* sb[3] = {nullptr, nullptr, nullptr};
    for (int b = 0; b <= order; ++b) {
      pb[b] = zeroed(p, probability_bar_[b], scores);
      sb[b] = grow(p.dev, score_bar_[b], scores);
      for (int k = b; k <= order; ++k)
        if (X[k - b] && yb.component[k]) values_bar_product(p, C, binomial(k, b), V(X[k - b]), yb.component[k], pb[b]);
    }
    CFLOW_DISPATCH(p.dev, softmax_jet_reverse<T>, p.dev, rows(C), order, probability(0), score(1), score(2), pb[0],
                   pb[1], pb[2], sb[0], sb[1], sb[2]);
    for (int a = 0; a <= order; ++a) {
      T* out = xb->component[a];
      zero(p, out, 3 * D_ * T_ * C);
      for (int k = a; k <= order; ++k) {
        const T c = binomial(k, a);
        if (yb.component[k]) values_adjoint(p, C, c, yb.component[k], probability(k - a), out);
        if (!X[k - a]) continue;
        queries_adjoint(p, C, c * alpha_, K(X[k - a]), sb[k], out);
        keys_adjoint(p, C, c * alpha_, Q(X[k - a]), sb[k], out);
      }
    }
  }

 private:
  static T binomial(int k, int a) { return T(k == 2 && a == 1 ? 2 : 1); }
  SoftmaxRows rows(index_t C) const { return {T_ * H_ * C, T_, causal_}; }
  void zero(const JetPass<T>& p, T* x, index_t n) const { p.dev.set_zero(x, sizeof(T) * std::size_t(n)); }
  T* zeroed(const JetPass<T>& p, Buffer<T>& buffer, index_t n) const {
    T* x = grow(p.dev, buffer, n);
    zero(p, x, n);
    return x;
  }

  // The q, k and v parts of an input (or input adjoint) X, the [T × T] scores of S, an output Y.
  template <class P> Operand<P> Q(P X) const { return {X, 3 * D_, 3 * D_ * T_, dh_}; }
  template <class P> Operand<P> K(P X) const { return {X + D_, 3 * D_, 3 * D_ * T_, dh_}; }
  template <class P> Operand<P> V(P X) const { return {X + 2 * D_, 3 * D_, 3 * D_ * T_, dh_}; }
  template <class P> Operand<P> square(P S) const { return {S, T_, T_ * T_ * H_, T_ * T_}; }
  template <class P> Operand<P> output(P Y) const { return {Y, D_, D_ * T_, dh_}; }
  const T* score(int k) const { return scores_[k].data(); }
  const T* probability(int k) const { return probabilities_[k].data(); }

  // out += alpha op(a) op(b) for every (column, head): one strided-batched GEMM per head.
  void per_head(const JetPass<T>& p, index_t C, Op oa, Op ob, index_t rows, index_t cols, index_t inner, T alpha,
                Operand<const T*> a, Operand<const T*> b, Operand<T*> out) const {
    for (index_t h = 0; h < H_; ++h)
      blas::gemm_strided_batched<T>(p.dev, oa, ob, rows, cols, inner, alpha, a.base + h * a.head_stride, a.ld,
                                    a.stride, b.base + h * b.head_stride, b.ld, b.stride, T(1),
                                    out.base + h * out.head_stride, out.ld, out.stride, C);
  }

  // Y += c V P  (Y [D × T] per column).
  void mix(const JetPass<T>& p, index_t C, T c, Operand<const T*> v, const T* P, T* Y) const {
    per_head(p, C, Op::N, Op::N, dh_, T_, T_, c, v, square(P), output(Y));
  }
  // P̄ += c Vᵀ Ȳ.
  void values_bar_product(const JetPass<T>& p, index_t C, T c, Operand<const T*> v, const T* Yb, T* Pb) const {
    per_head(p, C, Op::T, Op::N, T_, T_, dh_, c, v, output(Yb), square(Pb));
  }
  // V̄ += c Ȳ Pᵀ (into the v part of x̄).
  void values_adjoint(const JetPass<T>& p, index_t C, T c, const T* Yb, const T* P, T* Xb) const {
    per_head(p, C, Op::N, Op::T, dh_, T_, T_, c, output(Yb), square(P), V(Xb));
  }
  // Q̄ += c K Ā.
  void queries_adjoint(const JetPass<T>& p, index_t C, T c, Operand<const T*> k, const T* Sb, T* Xb) const {
    per_head(p, C, Op::N, Op::N, dh_, T_, T_, c, k, square(Sb), Q(Xb));
  }
  // K̄ += c Q Āᵀ.
  void keys_adjoint(const JetPass<T>& p, index_t C, T c, Operand<const T*> q, const T* Sb, T* Xb) const {
    per_head(p, C, Op::N, Op::T, dh_, T_, T_, c, q, square(Sb), K(Xb));
  }

  // The score jets A_k and the probability jets P_k (k ≤ order) of C columns into scratch.
  void probabilities(const JetPass<T>& p, int order, index_t C, const T* const X[3]) const {
    const index_t n = T_ * T_ * H_ * C;
    T* A[3] = {nullptr, nullptr, nullptr};
    T* P[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k <= order; ++k) {
      A[k] = zeroed(p, scores_[k], n);
      P[k] = grow(p.dev, probabilities_[k], n);
      for (int a = 0; a <= k; ++a)
        if (X[a] && X[k - a])
          per_head(p, C, Op::T, Op::N, T_, T_, dh_, alpha_ * binomial(k, a), K(X[a]), Q(X[k - a]), square(A[k]));
    }
    CFLOW_DISPATCH(p.dev, softmax_jet<T>, p.dev, rows(C), order, A[0], A[1], A[2], P[0], P[1], P[2]);
  }

  // The primal of the nb examples repeated for each of the m directions (a [rows × 1]·[1] product per
  // direction, one batched GEMM), kept for the reverse pass.
  const T* broadcast_primal(const JetPass<T>& p, const T* x0) const {
    const index_t n = 3 * D_ * T_ * p.examples;
    T* out = grow(p.dev, primal_, n * p.directions);
    blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, n, 1, 1, T(1), x0, n, 0, p.ones, 1, 0, T(0), out, n, n,
                                  p.directions);
    return out;
  }

  index_t D_, T_, H_, dh_;
  bool causal_;
  T alpha_;
  mutable Buffer<T> primal_, scores_[3], probabilities_[3], probability_bar_[3], score_bar_[3];
};

}  // namespace

template <class T>
LayerStack<T> make_self_attention(index_t features, index_t tokens, index_t heads, bool causal, index_t offset) {
  LayerStack<T> layers;
  layers.push_back(make_token_linear<T>(features, tokens, 3 * features, false, offset));
  layers.push_back(std::make_unique<Attention<T>>(features, tokens, heads, causal));
  layers.push_back(make_token_linear<T>(features, tokens, features, false, offset + 3 * features * features));
  return layers;
}
template LayerStack<float> make_self_attention<float>(index_t, index_t, index_t, bool, index_t);
template LayerStack<double> make_self_attention<double>(index_t, index_t, index_t, bool, index_t);

}  // namespace cflow
