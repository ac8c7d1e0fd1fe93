#pragma once
// A layer of the derivative engine (docs/design.md §3). Along m directions every boundary between layers
// carries a jet (z0, z1, z2) and, in reverse, adjoints (z̄0, z̄1, z̄2):
//   z0: [f × nb] (cached primal of a chunk of nb examples)
//   z1, z2, z̄1, z̄2: [f × nb × m], direction-major;  z̄0: [f × nb × m] for orders ≥ 1 (the primal's
//   adjoint differs per direction), [f × nb] for order 0 (the gradient).
// A null tangent or adjoint means identically zero (the input data has zero tangents).
// Layers with parameters own the slice [offset, offset + parameter_count()) of the flat vector w;
// V (the directions) and G (the gradients) are d × m with leading dimension ld.
#include <memory>
#include <random>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/engine/model.h"

namespace cflow {

template <class T>
struct Jet {
  T* primal = nullptr;
  T* tangent[2] = {nullptr, nullptr};  // z1, z2
};

template <class T>
struct Adjoint {
  T* component[3] = {nullptr, nullptr, nullptr};  // z̄0, z̄1, z̄2
};

// One pass of the engine over a chunk: order 0 = gradient, 1 = Hessian-vector products,
// 2 = ∇(vᵀHv) (or, forward only, vᵀHv).
template <class T>
struct JetPass {
  const Device& dev;
  int order;
  index_t examples;    // nb
  index_t directions;  // m (1 for order 0)
  const T* w;          // d
  const T* V;          // d × m, null for order 0
  T* G;                // d × m gradients, accumulated (+=); null when only tangents are wanted
  index_t ld;          // leading dimension of V and G (= d)
  const T* ones;       // nb ones, for reductions over examples as GEMMs
};

template <class T>
class Layer {
 public:
  virtual ~Layer() = default;
  virtual TensorShape output_shape() const = 0;
  virtual index_t parameter_count() const { return 0; }
  // Values per example the layer keeps internally beside its output, counted like an output (with
  // their jets and adjoints) by the memory estimate (host/run/memory_check.cpp).
  virtual index_t internal_size() const { return 0; }
  // Values per example its forward keeps for the later passes at the same point (activations: σ', σ'',
  // σ'''), primal only: counted once by the memory estimate.
  virtual index_t kept_size() const { return 0; }
  // PyTorch-default initialization of this layer's slice (host memory, PyTorch order).
  virtual void initialize(std::mt19937_64& /*rng*/, T* /*slice*/) const {}
  // out.primal from in.primal.
  virtual void forward(const JetPass<T>& pass, const T* in, T* out) const = 0;
  // out.tangent[0 .. order-1] from in; a layer sets an output tangent to null when it is zero.
  virtual void forward_tangents(const JetPass<T>& pass, const Jet<T>& in, Jet<T>& out) const = 0;
  // Input adjoints (when in_adjoint is non-null) and parameter gradients (+= into pass.G) from the
  // output adjoints, given the jets on both sides. For orders ≥ 1 it follows forward_tangents on the
  // same chunk and pass (as in the network), so a layer may keep internal jets between the two.
  // forward_tangents and reverse at a primal input `in.primal` follow a forward at that memory with no
  // other write to it between (the network and its blocks write a primal only by running forward), so a
  // layer may also keep what its forward computed for every later pass at the same input.
  virtual void reverse(const JetPass<T>& pass, const Jet<T>& in, const Jet<T>& out, const Adjoint<T>& out_adjoint,
                       Adjoint<T>* in_adjoint) const = 0;
};

template <class T>
using LayerStack = std::vector<std::unique_ptr<Layer<T>>>;

// The layer sequence of a model (MLP or CNN, docs/design.md §2), with parameter offsets assigned in
// PyTorch order.
template <class T>
LayerStack<T> build_layers(const ModelSpec& spec);

// Layer factories (host/layer_*.cpp). `offset` is the layer's first parameter in w.
// initial_weight_scale multiplies the initial W (the transformer's --output-scale), not the bias.
template <class T>
std::unique_ptr<Layer<T>> make_linear(TensorShape input, index_t outputs, bool bias, index_t offset,
                                      double initial_weight_scale = 1.0);
template <class T>
std::unique_ptr<Layer<T>> make_activation(TensorShape shape, Activation act);
// k×k (k odd), stride s, zero padding k/2: 3×3 stride 1 keeps the image size.
template <class T>
std::unique_ptr<Layer<T>> make_conv2d(TensorShape input, index_t out_channels, bool bias, index_t offset,
                                      int kernel = 3, int stride = 1);
template <class T>
std::unique_ptr<Layer<T>> make_avgpool2(TensorShape input);
template <class T>
std::unique_ptr<Layer<T>> make_global_avgpool(TensorShape input);
// GroupNorm over `groups` groups of channels, γ initialized to initial_scale (PyTorch: 1), β to 0.
template <class T>
std::unique_ptr<Layer<T>> make_group_norm(TensorShape shape, index_t groups, double initial_scale, index_t offset);
index_t group_norm_groups(index_t channels);  // the engine's choice: gcd(channels, 8)
// LayerNorm over the `features` of each of `tokens` tokens (an example is [features × tokens]).
template <class T>
std::unique_ptr<Layer<T>> make_layer_norm(index_t features, index_t tokens, index_t offset);
// Sequences: an example is [features × tokens], each token's features contiguous (docs/design.md §3.10).
// A Linear layer applied to every token alike.
template <class T>
std::unique_ptr<Layer<T>> make_token_linear(index_t features, index_t tokens, index_t outputs, bool bias,
                                            index_t offset, double initial_weight_scale = 1.0);
// Multi-head self-attention softmax(QKᵀ/√d_head)V with Q, K, V and output projections (no biases, as
// the simple ViT), query i seeing keys 0..i only when `causal`: the layers [qkv projection, attention,
// output projection], parameters from `offset` in that order.
template <class T>
LayerStack<T> make_self_attention(index_t features, index_t tokens, index_t heads, bool causal, index_t offset);
// Mean over the tokens: [features × tokens] → [features].
template <class T>
std::unique_ptr<Layer<T>> make_token_mean_pool(index_t features, index_t tokens);
// y = x + E for a fixed table E [features × tokens] (position embeddings), and the two tables.
template <class T>
std::unique_ptr<Layer<T>> make_positions(index_t features, index_t tokens, std::vector<double> table);
std::vector<double> sincos_positions_2d(index_t features, index_t rows, index_t columns);  // features % 4 == 0
std::vector<double> sinusoidal_positions(index_t features, index_t tokens);
// Images → (H/p)·(W/p) tokens of `features`: [patches, token-wise Linear with bias, 2-D sin-cos
// positions]; `patch` must divide the height and the width (cflow::Error otherwise).
template <class T>
LayerStack<T> make_patch_embedding(TensorShape image, index_t patch, index_t features, index_t offset);
// Sequences of `tokens` ids in [0, vocab) → [token embedding, sinusoidal positions].
template <class T>
LayerStack<T> make_token_embedding(index_t vocab, index_t features, index_t tokens, index_t offset);
// y = shortcut(x) + scale · branch(x); an empty shortcut is the identity. Parameters: the branch's,
// then the shortcut's (their layers' offsets must be assigned in that order).
template <class T>
std::unique_ptr<Layer<T>> make_residual(TensorShape input, LayerStack<T> branch, LayerStack<T> shortcut,
                                        double scale);

// The ResNet, the ViT and the transformer of docs/design.md §2.2 appended to `layers`
// (host/engine/arch_*.cpp).
template <class T>
void add_resnet(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset);
template <class T>
void add_vit(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset);
template <class T>
void add_transformer(const ModelSpec& spec, LayerStack<T>& layers, index_t& offset);
// Moves `from` (one layer, or a stack) to the end of `to`, advancing `offset` past its parameters.
template <class T>
void append(LayerStack<T>& to, LayerStack<T> from, index_t& offset) {
  for (auto& layer : from) {
    offset += layer->parameter_count();
    to.push_back(std::move(layer));
  }
}
template <class T>
void append(LayerStack<T>& to, std::unique_ptr<Layer<T>> layer, index_t& offset) {
  offset += layer->parameter_count();
  to.push_back(std::move(layer));
}
// The pre-LN block of the ViT and the transformer: x + attention(LN(x)), then
// x + Linear(act(Linear(LN(x)))) with a D → 4D → D MLP with biases.
template <class T>
void append_pre_ln_block(LayerStack<T>& layers, index_t features, index_t tokens, index_t heads, bool causal,
                         Activation act, index_t& offset);

}  // namespace cflow
