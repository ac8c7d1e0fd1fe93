// Token embedding (docs/design.md §3.10): ids → rows of a trainable table E [vocab × D] (PyTorch's
// Embedding weight, initialized N(0, 1)). y0 = E[id], y1 = Ė[id] along a direction, y2 = 0; the ids
// are data, so the input adjoints are zero and Ē receives ȳ0 summed over the tokens with each id
// (one thread per table entry: no atomics). Ids are stored as values of T and must lie in [0, vocab).
#include <random>

#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "kernels/tokens.h"

namespace cflow {
namespace {

template <class T>
class TokenEmbedding final : public Layer<T> {
 public:
  TokenEmbedding(index_t vocab, index_t features, index_t tokens, index_t offset)
      : vocab_(vocab), D_(features), T_(tokens), offset_(offset) {
    CFLOW_REQUIRE(vocab >= 1 && features >= 1 && tokens >= 1, "token embedding: sizes must be positive");
  }

  TensorShape output_shape() const override { return {D_ * T_, 1, 1}; }
  index_t parameter_count() const override { return vocab_ * D_; }
  void initialize(std::mt19937_64& rng, T* slice) const override {
    std::normal_distribution<double> normal(0.0, 1.0);
    for (index_t i = 0; i < parameter_count(); ++i) slice[i] = T(normal(rng));
  }

  void forward(const JetPass<T>& p, const T* ids, T* y) const override {
    CFLOW_DISPATCH(p.dev, embedding_gather<T>, p.dev, D_, T_, p.examples, 1, ids, p.w + offset_, 0, y);
  }
  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    CFLOW_DISPATCH(p.dev, embedding_gather<T>, p.dev, D_, T_, p.examples, p.directions, x.primal, p.V + offset_, p.ld,
                   y.tangent[0]);
    if (p.order >= 2) y.tangent[1] = nullptr;
  }
  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    for (int k = 0; xb && k <= p.order; ++k)
      p.dev.set_zero(xb->component[k], sizeof(T) * std::size_t(T_ * p.examples * p.directions));
    if (p.G && yb.component[0])
      CFLOW_DISPATCH(p.dev, embedding_gradient<T>, p.dev, vocab_, D_, T_, p.examples, p.directions, x.primal,
                     yb.component[0], p.G + offset_, p.ld);
  }

 private:
  index_t vocab_, D_, T_, offset_;
};

}  // namespace

template <class T>
LayerStack<T> make_token_embedding(index_t vocab, index_t features, index_t tokens, index_t offset) {
  LayerStack<T> layers;
  layers.push_back(std::make_unique<TokenEmbedding<T>>(vocab, features, tokens, offset));
  layers.push_back(make_positions<T>(features, tokens, sinusoidal_positions(features, tokens)));
  return layers;
}
template LayerStack<float> make_token_embedding<float>(index_t, index_t, index_t, index_t);
template LayerStack<double> make_token_embedding<double>(index_t, index_t, index_t, index_t);

}  // namespace cflow
