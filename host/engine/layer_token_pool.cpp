// Mean pooling over tokens: y = (1/T) Σ_t x[:, t] for an example [D × T] (docs/design.md §3.10).
// A linear map (host/engine/layer_linear_map.h), as one batched GEMM against a ones vector per
// column: y_c = (1/T) X_c 1 and x̄_c = (1/T) ȳ_c 1ᵀ.
#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer_linear_map.h"
#include "host/engine/scratch.h"

namespace cflow {
namespace {

using blas::Op;

template <class T>
class TokenMeanPool final : public LinearMapLayer<T> {
 public:
  TokenMeanPool(index_t features, index_t tokens) : D_(features), T_(tokens) {
    CFLOW_REQUIRE(features >= 1 && tokens >= 1, "token mean pool: sizes must be positive");
  }

  TensorShape output_shape() const override { return {D_, 1, 1}; }

 private:
  void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const override {
    blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, D_, 1, T_, T(1) / T(T_), x, D_, D_ * T_, ones(p), T_, 0, T(0),
                                  y, D_, D_, columns);
  }
  void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const override {
    blas::gemm_strided_batched<T>(p.dev, Op::N, Op::N, D_, T_, 1, T(1) / T(T_), y, D_, D_, ones(p), 1, 0, T(0), x, D_,
                                  D_ * T_, columns);
  }
  index_t input_size() const override { return D_ * T_; }
  const T* ones(const JetPass<T>& p) const { return cflow::ones(p.dev, ones_, T_); }

  index_t D_, T_;
  mutable Buffer<T> ones_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_token_mean_pool(index_t features, index_t tokens) {
  return std::make_unique<TokenMeanPool<T>>(features, tokens);
}
template std::unique_ptr<Layer<float>> make_token_mean_pool<float>(index_t, index_t);
template std::unique_ptr<Layer<double>> make_token_mean_pool<double>(index_t, index_t);

}  // namespace cflow
