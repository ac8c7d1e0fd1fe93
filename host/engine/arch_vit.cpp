// The "simple ViT" (docs/design.md §2.2; lucidrains' simple_vit, Beyer et al. 2022) with D = width
// features per token, `depth` blocks, `heads` heads and p × p patches:
//   patches → token-wise Linear (p²C → D, bias) → LayerNorm → + 2-D sin-cos positions,
//   depth × [x + attention(LN(x)),  x + Linear(act(Linear(LN(x))))]  (pre-LN; MLP D → 4D → D, biases),
//   LayerNorm → mean over tokens → Linear (D → C, bias).
// The reference also normalizes the raw patches before their Linear; cflow does not (a LayerNorm of
// the input data would carry no tangent, and the Linear that follows absorbs an affine map anyway).
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"

namespace cflow {
namespace {
constexpr index_t kMlpRatio = 4;  // hidden features of the blocks' MLP per feature
}  // namespace

template <class T>
void append_pre_ln_block(LayerStack<T>& layers, index_t D, index_t tokens, index_t heads, bool causal,
                         Activation act, index_t& offset) {
  const TensorShape stream{D * tokens, 1, 1};
  LayerStack<T> attention, mlp;  // the residual branches; their parameters follow each other in w
  append(attention, make_layer_norm<T>(D, tokens, offset), offset);
  append(attention, make_self_attention<T>(D, tokens, heads, causal, offset), offset);
  append(mlp, make_layer_norm<T>(D, tokens, offset), offset);
  append(mlp, make_token_linear<T>(D, tokens, kMlpRatio * D, true, offset), offset);
  append(mlp, make_activation<T>({kMlpRatio * D * tokens, 1, 1}, act), offset);
  append(mlp, make_token_linear<T>(kMlpRatio * D, tokens, D, true, offset), offset);
  layers.push_back(make_residual<T>(stream, std::move(attention), {}, 1.0));
  layers.push_back(make_residual<T>(stream, std::move(mlp), {}, 1.0));
}
template void append_pre_ln_block<float>(LayerStack<float>&, index_t, index_t, index_t, bool, Activation, index_t&);
template void append_pre_ln_block<double>(LayerStack<double>&, index_t, index_t, index_t, bool, Activation,
                                          index_t&);

template <class T>
void add_vit(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset) {
  CFLOW_REQUIRE(spec.depth >= 1, "ViT: --depth (blocks) must be at least 1");
  CFLOW_REQUIRE(spec.input.height >= 1 && spec.input.width >= 1, "ViT: expected image input");
  CFLOW_REQUIRE(spec.heads >= 1 && spec.width % spec.heads == 0,
                "ViT: --heads (" + std::to_string(spec.heads) + ") must divide --width (" +
                    std::to_string(spec.width) + ")");
  const index_t D = spec.width, patch = spec.patch;
  LayerStack<T> embedding = make_patch_embedding<T>(spec.input, patch, D, offset);  // [patches, Linear, positions]
  const index_t tokens = embedding.back()->output_shape().size() / D;
  auto positions = std::move(embedding.back());
  embedding.pop_back();
  append(layers, std::move(embedding), offset);
  append(layers, make_layer_norm<T>(D, tokens, offset), offset);
  append(layers, std::move(positions), offset);
  for (int b = 0; b < spec.depth; ++b)
    append_pre_ln_block(layers, D, tokens, spec.heads, false, spec.activation, offset);
  append(layers, make_layer_norm<T>(D, tokens, offset), offset);
  append(layers, make_token_mean_pool<T>(D, tokens), offset);
  append(layers, make_linear<T>({D, 1, 1}, spec.classes, true, offset), offset);
}
template void add_vit<float>(const ModelSpec&, LayerStack<float>&, index_t&);
template void add_vit<double>(const ModelSpec&, LayerStack<double>&, index_t&);

}  // namespace cflow
