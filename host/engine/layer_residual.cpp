// Residual block y = s(x) + α·b(x): a branch b and a shortcut s (identity when it has no layers), each
// a sub-stack of layers, and a constant scale α (docs/design.md §3). The sum is linear, so every jet
// component is yk = sk + α bk, and the adjoints split: the branch receives α ȳk, the shortcut ȳk, and
// x̄k is the sum of what comes back from both.
// The network caches primals only at its own boundaries, so the block recomputes its internal primals
// (cheap next to the tangents) in forward_tangents, and for order 0 in reverse; the internal jets live
// in layer-owned scratch between forward_tangents and reverse of the same chunk (like Conv2d's: a
// block must not be used by two passes at once).
#include <algorithm>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "host/engine/layer.h"
#include "host/engine/scratch.h"

namespace cflow {
namespace {

// One sub-stack with its internal jets; boundary 0 is the block's input.
template <class T>
class Path {
 public:
  Path(LayerStack<T> layers, TensorShape input) : layers_(std::move(layers)), input_(input) {}

  TensorShape output_shape() const { return layers_.empty() ? input_ : layers_.back()->output_shape(); }
  index_t parameter_count() const {
    index_t count = 0;
    for (const auto& layer : layers_) count += layer->parameter_count();
    return count;
  }
  index_t initialize(std::mt19937_64& rng, T* slice) const {
    index_t offset = 0;
    for (const auto& layer : layers_) {
      layer->initialize(rng, slice + offset);
      offset += layer->parameter_count();
    }
    return offset;
  }
  index_t internal_size() const {
    index_t size = 0;
    for (const auto& layer : layers_) size += layer->output_shape().size() + layer->internal_size();
    return size;
  }
  index_t kept_size() const {
    index_t size = 0;
    for (const auto& layer : layers_) size += layer->kept_size();
    return size;
  }
  index_t widest() const {
    index_t widest = input_.size();
    for (const auto& layer : layers_) widest = std::max(widest, layer->output_shape().size());
    return widest;
  }

  // The primal at every boundary (into scratch), from x at boundary 0.
  const Jet<T>& forward(const JetPass<T>& p, const T* x) const {
    jets_.assign(layers_.size() + 1, Jet<T>{});
    jets_[0].primal = const_cast<T*>(x);
    primal_.resize(layers_.size());
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      jets_[l + 1].primal = grow(p.dev, primal_[l], layers_[l]->output_shape().size() * p.examples);
      layers_[l]->forward(p, jets_[l].primal, jets_[l + 1].primal);
    }
    return jets_.back();
  }

  // The primal and the tangents at every boundary, from the jet x at boundary 0.
  const Jet<T>& forward_tangents(const JetPass<T>& p, const Jet<T>& x) const {
    forward(p, x.primal);
    jets_[0] = x;
    tangents_.resize(2 * layers_.size());
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const index_t size = layers_[l]->output_shape().size() * p.examples * p.directions;
      for (int k = 0; k < 2; ++k) jets_[l + 1].tangent[k] = grow(p.dev, tangents_[2 * l + k], size);
      layers_[l]->forward_tangents(p, jets_[l], jets_[l + 1]);
    }
    return jets_.back();
  }

  // Reverse from the output adjoints `top` to `bottom` (null: only parameter gradients), through two
  // scratch adjoints that alias neither.
  void reverse(const JetPass<T>& p, const Adjoint<T>& top, Adjoint<T>* bottom) const {
    const index_t size = widest() * p.examples * p.directions;
    Adjoint<T> side[2];
    for (int s = 0; s < 2; ++s)
      for (int k = 0; k < 3; ++k) side[s].component[k] = grow(p.dev, adjoints_[s][k], size);
    Adjoint<T> out = top;
    for (std::size_t l = layers_.size(); l-- > 0;) {
      Adjoint<T>* in = l > 0 ? &side[l % 2] : bottom;
      layers_[l]->reverse(p, jets_[l], jets_[l + 1], out, in);
      if (in) out = *in;
    }
  }

  bool empty() const { return layers_.empty(); }

 private:
  LayerStack<T> layers_;
  TensorShape input_;
  mutable std::vector<Jet<T>> jets_;
  mutable std::vector<Buffer<T>> primal_, tangents_;
  mutable Buffer<T> adjoints_[2][3];
};

template <class T>
class Residual final : public Layer<T> {
 public:
  Residual(TensorShape input, LayerStack<T> branch, LayerStack<T> shortcut, double scale)
      : input_(input), branch_(std::move(branch), input), shortcut_(std::move(shortcut), input), scale_(T(scale)) {
    const TensorShape b = branch_.output_shape(), s = shortcut_.output_shape();
    CFLOW_REQUIRE(b.channels == s.channels && b.height == s.height && b.width == s.width,
                  "residual: the branch and the shortcut must have the same output shape");
  }

  TensorShape output_shape() const override { return branch_.output_shape(); }
  index_t parameter_count() const override { return branch_.parameter_count() + shortcut_.parameter_count(); }
  index_t internal_size() const override { return branch_.internal_size() + shortcut_.internal_size(); }
  index_t kept_size() const override { return branch_.kept_size() + shortcut_.kept_size(); }

  void initialize(std::mt19937_64& rng, T* slice) const override {
    shortcut_.initialize(rng, slice + branch_.initialize(rng, slice));
  }

  void forward(const JetPass<T>& p, const T* x, T* y) const override {
    combine(p, p.examples, shortcut_.forward(p, x).primal, branch_.forward(p, x).primal, y);
  }

  void forward_tangents(const JetPass<T>& p, const Jet<T>& x, Jet<T>& y) const override {
    const Jet<T>& b = branch_.forward_tangents(p, x);
    const Jet<T>& s = shortcut_.forward_tangents(p, x);
    for (int k = 0; k < p.order; ++k) {
      if (!b.tangent[k] && !s.tangent[k])
        y.tangent[k] = nullptr;
      else
        combine(p, p.examples * p.directions, s.tangent[k], b.tangent[k], y.tangent[k]);
    }
  }

  void reverse(const JetPass<T>& p, const Jet<T>& x, const Jet<T>&, const Adjoint<T>& yb,
               Adjoint<T>* xb) const override {
    if (p.order == 0) {  // forward_tangents did not run for this chunk
      branch_.forward(p, x.primal);
      shortcut_.forward(p, x.primal);
    }
    const index_t out = output_shape().size() * p.examples * p.directions;
    const index_t in = input_.size() * p.examples * p.directions;
    Adjoint<T> scaled;  // α ȳ for the branch
    for (int k = 0; k <= p.order; ++k) {
      if (!yb.component[k]) continue;
      scaled.component[k] = grow(p.dev, scaled_[k], out);
      blas::copy<T>(p.dev, out, yb.component[k], scaled.component[k]);
      blas::scal<T>(p.dev, out, scale_, scaled.component[k]);
    }
    branch_.reverse(p, scaled, xb);
    if (shortcut_.empty()) {
      if (xb) add(p, in, yb, *xb);
      return;
    }
    Adjoint<T> back;
    for (int k = 0; k < 3; ++k) back.component[k] = grow(p.dev, shortcut_adjoint_[k], in);
    shortcut_.reverse(p, yb, xb ? &back : nullptr);
    if (xb) add(p, in, back, *xb);
  }

 private:
  // y = s + α b over n values (null s or b: zero).
  void combine(const JetPass<T>& p, index_t columns, const T* s, const T* b, T* y) const {
    const index_t n = output_shape().size() * columns;
    if (s)
      blas::copy<T>(p.dev, n, s, y);
    else
      p.dev.set_zero(y, sizeof(T) * std::size_t(n));
    if (b) blas::axpy<T>(p.dev, n, scale_, b, y);
  }
  // xb_k += a_k for k ≤ order (null a_k: zero).
  void add(const JetPass<T>& p, index_t n, const Adjoint<T>& a, Adjoint<T>& xb) const {
    for (int k = 0; k <= p.order; ++k)
      if (a.component[k]) blas::axpy<T>(p.dev, n, T(1), a.component[k], xb.component[k]);
  }

  TensorShape input_;
  Path<T> branch_, shortcut_;
  T scale_;
  mutable Buffer<T> scaled_[3], shortcut_adjoint_[3];
};

}  // namespace

template <class T>
std::unique_ptr<Layer<T>> make_residual(TensorShape input, LayerStack<T> branch, LayerStack<T> shortcut,
                                        double scale) {
  return std::make_unique<Residual<T>>(input, std::move(branch), std::move(shortcut), scale);
}
template std::unique_ptr<Layer<float>> make_residual<float>(TensorShape, LayerStack<float>, LayerStack<float>, double);
template std::unique_ptr<Layer<double>> make_residual<double>(TensorShape, LayerStack<double>, LayerStack<double>,
                                                              double);

}  // namespace cflow
