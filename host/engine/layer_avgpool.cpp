// AvgPool2d(2): 2×2 windows, stride 2, no parameters; a linear map (host/engine/layer_linear_map.h).
#include "cflow/runtime/error.h"
#include "host/engine/layer_linear_map.h"
#include "kernels/pool.h"

namespace cflow {
namespace {

template <class T>
class AvgPool2 final : public LinearMapLayer<T> {
 public:
  explicit AvgPool2(TensorShape input) : in_(input) {
    CFLOW_REQUIRE(input.height >= 2 && input.width >= 2, "avgpool2: the input must be at least 2×2");
  }

  TensorShape output_shape() const override { return {in_.channels, in_.height / 2, in_.width / 2}; }

 private:
  void apply(const JetPass<T>& p, index_t columns, const T* x, T* y) const override {
    CFLOW_DISPATCH(p.dev, avgpool2_forward<T>, p.dev, in_.channels * columns, in_.height, in_.width, x, y);
  }
  void adjoint(const JetPass<T>& p, index_t columns, const T* y, T* x) const override {
    CFLOW_DISPATCH(p.dev, avgpool2_adjoint<T>, p.dev, in_.channels * columns, in_.height, in_.width, y, x);
  }
  index_t input_size() const override { return in_.size(); }

  TensorShape in_;
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_avgpool2(TensorShape input) {
  return std::make_unique<AvgPool2<T>>(input);
}
template std::unique_ptr<Layer<float>> make_avgpool2<float>(TensorShape);
template std::unique_ptr<Layer<double>> make_avgpool2<double>(TensorShape);

}  // namespace cflow
