// The sequence transformer (docs/design.md §2.2): a causal decoder-only language model on the `T`
// input tokens of an example, with D = width features, `depth` blocks and `heads` heads:
//   token embedding (vocab = classes → D) + 1-D sinusoidal positions,
//   depth × pre-LN blocks [x + causal attention(LN(x)),  x + Linear(act(Linear(LN(x))))],
//   LayerNorm → token-wise Linear (D → classes, bias): the next-token logits at every position.
// The head's initial weights are multiplied by spec.output_scale (the reference's
// weight_multiplier, default 0: the network starts as a constant function of its input).
// Differences from the reference (centralflows' TransformerLM on PyTorch's TransformerDecoderLayer):
// its blocks are post-LN and also cross-attend to the embeddings; its matrices start Xavier-uniform
// and the embedding is scaled by √D. cflow uses the pre-LN block (the ViT's, causal) and
// PyTorch's default initializations, whose embedding N(0, 1) has about the reference's scale.
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"

namespace cflow {

template <class T>
void add_transformer(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset) {
  CFLOW_REQUIRE(spec.depth >= 1, "transformer: --depth (blocks) must be at least 1");
  CFLOW_REQUIRE(spec.classes >= 2, "transformer: the vocabulary (classes) must have at least 2 tokens");
  CFLOW_REQUIRE(spec.heads >= 1 && spec.width % spec.heads == 0,
                "transformer: --heads (" + std::to_string(spec.heads) + ") must divide --width (" +
                    std::to_string(spec.width) + ")");
  const index_t D = spec.width, tokens = spec.input.size();
  CFLOW_REQUIRE(spec.positions == tokens, "transformer: one loss position per input token");
  append(layers, make_token_embedding<T>(spec.classes, D, tokens, offset), offset);
  for (int b = 0; b < spec.depth; ++b)
    append_pre_ln_block(layers, D, tokens, spec.heads, true, spec.activation, offset);
  append(layers, make_layer_norm<T>(D, tokens, offset), offset);
  append(layers, make_token_linear<T>(D, tokens, spec.classes, true, offset, spec.output_scale), offset);
}
template void add_transformer<float>(const ModelSpec&, LayerStack<float>&, index_t&);
template void add_transformer<double>(const ModelSpec&, LayerStack<double>&, index_t&);

}  // namespace cflow
