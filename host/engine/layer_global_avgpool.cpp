// Global average pooling: y[c] = mean over the H·W pixels of channel c (AdaptiveAvgPool2d(1) + flatten).
// A linear map (host/engine/layer_linear_map.h), as GEMMs against a vector of ones: viewing a batch as
// [H·W × C·columns], y = (1/HW)·Xᵀ·1 and x̄ = (1/HW)·1·ȳᵀ.
#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer_linear_map.h"
#include "host/engine/scratch.h"

namespace cflow {
namespace {

using blas::Op;

template <class T>
class GlobalAvgPool final : public LinearMapLayer<T> {
 public:
  explicit GlobalAvgPool(TensorShape input) : in_(input), pixels_(input.height * input.width) {
    CFLOW_REQUIRE(input.size() >= 1, "global average pool: sizes must be positive");
  }

  TensorShape output_shape() const override { return {in_.channels, 1, 1}; }

 private:
  void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const override {
    blas::gemv<T>(p.dev, Op::T, pixels_, in_.channels * columns, T(1) / T(pixels_), x, pixels_, ones(p), T(0), y);
  }
  void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const override {
    blas::gemm<T>(p.dev, Op::N, Op::N, pixels_, in_.channels * columns, 1, T(1) / T(pixels_), ones(p), pixels_, y, 1,
                  T(0), x, pixels_);
  }
  index_t input_size() const override { return in_.size(); }
  const T* ones(const JetPass<T>& p) const { return cflow::ones(p.dev, ones_, pixels_); }

  TensorShape in_;
  index_t pixels_;
  mutable Buffer<T> ones_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_global_avgpool(TensorShape input) {
  return std::make_unique<GlobalAvgPool<T>>(input);
}
template std::unique_ptr<Layer<float>> make_global_avgpool<float>(TensorShape);
template std::unique_ptr<Layer<double>> make_global_avgpool<double>(TensorShape);

}  // namespace cflow
