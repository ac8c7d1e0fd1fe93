// The ResNet (docs/design.md §2), in the shape of the central-flows reference: a 3×3 conv stem with
// GroupNorm and activation, kResnetStages stages of `depth` basic blocks with width, 2·width, 4·width
// channels (the first block of every later stage downsamples by stride 2), global average pooling
// and a linear head. A basic block is shortcut(x) + α·branch(x) (no activation after the sum, as in
// the block conv–GN–act–conv–GN: the residual stream stays linear, and a block at its
// initialization is exactly the identity, with no ReLU evaluated at its kink) with
//   branch   = conv3×3(stride) – GN – act – conv3×3 – GN, the second GN's scale initialized to 0
//              (so every block starts as the identity),
//   shortcut = identity, or conv1×1(stride) – GN when the shape changes,
//   α        = 1/√(number of blocks).
// Convolutions have no bias (GroupNorm's shift takes its place).
#include <cmath>

#include "cflow/runtime/error.h"
#include "host/engine/layer.h"

namespace cflow {
namespace {

constexpr int kResnetStages = 3;

template <class T>
class Builder {
 public:
  Builder(LayerStack<T>& layers, index_t& offset, TensorShape input) : layers_(layers), offset_(offset), shape_(input) {}

  // conv – GN (– act) appended to `to`, starting from shape_.
  void conv_norm(LayerStack<T>& to, index_t channels, int kernel, int stride, double scale, const Activation* act) {
    add(to, make_conv2d<T>(shape_, channels, false, offset_, kernel, stride));
    add(to, make_group_norm<T>(shape_, group_norm_groups(channels), scale, offset_));
    if (act) add(to, make_activation<T>(shape_, *act));
  }

  void block(index_t channels, int stride, double alpha, Activation act) {
    const TensorShape input = shape_;
    LayerStack<T> branch, shortcut;
    conv_norm(branch, channels, 3, stride, 1.0, &act);
    conv_norm(branch, channels, 3, 1, 0.0, nullptr);
    const TensorShape output = shape_;
    if (stride != 1 || input.channels != channels) {
      shape_ = input;
      conv_norm(shortcut, channels, 1, stride, 1.0, nullptr);
    }
    layers_.push_back(make_residual<T>(input, std::move(branch), std::move(shortcut), alpha));
    shape_ = output;
  }

  void add(LayerStack<T>& to, std::unique_ptr<Layer<T>> layer) {
    offset_ += layer->parameter_count();
    shape_ = layer->output_shape();
    to.push_back(std::move(layer));
  }

 private:
  LayerStack<T>& layers_;
  index_t& offset_;
  TensorShape shape_;
};

}  // namespace

template <class T>
void add_resnet(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset) {
  CFLOW_REQUIRE(spec.depth >= 1, "ResNet: --depth (basic blocks per stage) must be at least 1");
  CFLOW_REQUIRE(spec.input.height >= 1 && spec.input.width >= 1 && spec.input.channels >= 1,
                "ResNet: expected image input");
  Builder<T> build(layers, offset, spec.input);
  build.conv_norm(layers, spec.width, 3, 1, 1.0, &spec.activation);
  const double alpha = 1.0 / std::sqrt(double(kResnetStages * spec.depth));
  for (int stage = 0; stage < kResnetStages; ++stage)
    for (int b = 0; b < spec.depth; ++b)
      build.block(spec.width << stage, stage > 0 && b == 0 ? 2 : 1, alpha, spec.activation);
  build.add(layers, make_global_avgpool<T>(layers.back()->output_shape()));
  build.add(layers, make_linear<T>(layers.back()->output_shape(), spec.classes, true, offset));
}
template void add_resnet<float>(const ModelSpec&, LayerStack<float>&, index_t&);
template void add_resnet<double>(const ModelSpec&, LayerStack<double>&, index_t&);

}  // namespace cflow
