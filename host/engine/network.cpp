// The network engine: orchestrates layers over chunks of examples and groups of directions.
#include "cflow/engine/network.h"

#include <algorithm>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "host/engine/layer.h"
#include "kernels/loss.h"
#include "kernels/polarization.h"

namespace cflow {

template <class T>
struct Network<T>::State {
  Device dev;
  ModelSpec spec;
  NetworkOptions options;
  LayerStack<T> layers;
  std::vector<index_t> features;  // per boundary: [0] the input, [l + 1] the output of layer l
  index_t n = 0, d = 0, chunk = 0;
  index_t positions = 1;  // loss terms per example (docs/design.md §3.11)
  double counted_terms = 0;  // the loss terms that count: the denominator of every mean
  LossFunction loss;
  // The data on the device, read-only after construction and shared by the network's lanes.
  struct Data {
    Buffer<T> inputs, targets, counted;  // [features[0] × n], [C × positions × n], [positions × n] (or empty)
    Buffer<T> ones;                      // at least n × positions
  };
  std::shared_ptr<Data> data = std::make_shared<Data>();
  std::vector<Buffer<T>> primal;  // per boundary ≥ 1: [features × n], valid for cached_w
  Buffer<T> example_loss, example_correct;  // per loss term
  Buffer<T> sums;  // Σ loss, Σ correct: summed on the device, read back together
  const T* cached_point = nullptr;  // the primal pass is at cached_point with write version cached_version
  std::uint64_t cached_version = 0;
  Buffer<T> cached_copy, w_difference;  // only with options.verify_cache
  // Jet workspace for (chunk, directions), grown on demand.
  std::vector<Buffer<T>> tangent1, tangent2;
  Buffer<T> adjoint[2][3];
  Buffer<T> per_example, pair_directions, pair_diagonals;  // d3: d × max_directions, d × k
  Buffer<T> pair_quads, diagonal_quads;  // d3: q(z) of the polarization directions (pairs), q(u_i) (k)
  index_t workspace_directions = 0;
  // pair_diagonals and diagonal_quads hold the jets along the k columns of diagonal_U at diagonal_w, as
  // long as both keep the write versions they had (Device::watch, docs/design.md §7): a grouped d3
  // computes them once for all its parts.
  const T *diagonal_w = nullptr, *diagonal_U = nullptr;
  std::uint64_t diagonal_w_version = 0, diagonal_U_version = 0;
  index_t diagonal_k = 0;

  State(const Device& device, const ModelSpec& model, std::span<const T> x, std::span<const T> y,
        std::span<const T> mask, NetworkOptions opts)
      : dev(device), spec(model), options(opts), layers(build_layers<T>(model)), positions(model.positions) {
    features.push_back(spec.input.size());
    for (const auto& layer : layers) {
      features.push_back(layer->output_shape().size());
      d += layer->parameter_count();
    }
    CFLOW_REQUIRE(features.back() == spec.classes * positions,
                  "network output size must equal the class count times the positions");
    CFLOW_REQUIRE(x.size() % std::size_t(features[0]) == 0 && !x.empty(), "inputs must be [features × n]");
    n = index_t(x.size()) / features[0];
    CFLOW_REQUIRE(index_t(y.size()) == spec.classes * positions * n, "targets must be [classes × positions × n]");
    CFLOW_REQUIRE(mask.empty() || index_t(mask.size()) == positions * n, "the mask must be [positions × n]");
    counted_terms = double(positions * n);
    if (!mask.empty()) {
      counted_terms = 0;
      for (const T flag : mask) counted_terms += double(flag);  // host data, once: no device loop over d
      CFLOW_REQUIRE(counted_terms > 0, "the mask leaves no position that counts");
      data->counted = Buffer<T>(dev, mask);
    }
    CFLOW_REQUIRE(options.chunk >= 0 && options.max_directions >= 1, "bad chunk or max_directions");
    chunk = options.chunk == 0 ? n : std::min(options.chunk, n);
    loss = spec.loss == LossKind::mse           ? LossFunction::mse
           : spec.classes == 1 ? LossFunction::logistic
                               : LossFunction::softmax_cross_entropy;
    data->inputs = Buffer<T>(dev, x);
    data->targets = Buffer<T>(dev, y);
    data->ones = Buffer<T>(dev, std::vector<T>(std::size_t(n * positions), T(1)));
    allocate_pass_buffers();
  }

  // On a lane: the parent's model and data, this lane's layers (their scratch), cache and workspaces.
  State(const State& parent, const Device& lane)
      : dev(lane), spec(parent.spec), options(parent.options), layers(build_layers<T>(parent.spec)),
        features(parent.features), n(parent.n), d(parent.d), chunk(parent.chunk), positions(parent.positions),
        counted_terms(parent.counted_terms), loss(parent.loss), data(parent.data) {
    // The uploads are ordered on the parent's stream: complete before another stream reads them.
    parent.dev.synchronize();
    allocate_pass_buffers();
  }

  void allocate_pass_buffers() {
    for (std::size_t b = 1; b < features.size(); ++b) primal.emplace_back(dev, features[b] * n);
    example_loss = Buffer<T>(dev, n * positions);
    example_correct = Buffer<T>(dev, n * positions);
    sums = Buffer<T>(dev, 2, Uninitialized{});
    if (options.verify_cache) {
      cached_copy = Buffer<T>(dev, d, Uninitialized{});
      w_difference = Buffer<T>(dev, d, Uninitialized{});
    }
  }

  index_t classes() const { return spec.classes; }
  const T* counted_at(index_t first) const {
    return data->counted.size() ? data->counted.data() + first * positions : nullptr;
  }
  const T* targets_at(index_t first) const { return data->targets.data() + first * positions * classes(); }
  const T* ones() const { return data->ones.data(); }
  T* primal_at(std::size_t boundary, index_t first) {
    return boundary == 0 ? data->inputs.data() + first * features[0]
                         : primal[boundary - 1].data() + first * features[boundary];
  }

  std::size_t point_bytes() const { return std::size_t(d) * sizeof(T); }
  bool is_cached(const T* w) {
    if (w != cached_point || dev.version(w, point_bytes()) != cached_version) return false;
    if (options.verify_cache) {
      w_difference.copy_from(cached_copy);
      blas::axpy<T>(dev, d, T(-1), w, w_difference.data());
      CFLOW_REQUIRE(blas::nrm2<T>(dev, d, w_difference.data()) == T(0),
                    "network cache: w changed without reporting the write to Device::note_write");
    }
    return true;
  }

  // The primal pass at w over all examples, unless w is the cached point.
  void ensure_primal(const T* w) {
    if (is_cached(w)) return;
    CFLOW_NVTX_RANGE("primal");
    for (index_t first = 0; first < n; first += chunk) {
      const index_t nb = std::min(chunk, n - first);
      const JetPass<T> pass{dev, 0, nb, 1, w, nullptr, nullptr, d, ones()};
      for (std::size_t l = 0; l < layers.size(); ++l) layers[l]->forward(pass, primal_at(l, first), primal_at(l + 1, first));
      CFLOW_DISPATCH(dev, loss_values<T>, dev, loss, classes(), nb * positions, primal_at(layers.size(), first),
                     targets_at(first), counted_at(first), example_loss.data() + first * positions,
                     example_correct.data() + first * positions);
    }
    cached_point = w;
    cached_version = dev.watch(w, point_bytes());
    if (options.verify_cache) blas::copy<T>(dev, d, w, cached_copy.data());
  }

  void ensure_workspace(index_t m) {
    if (m <= workspace_directions) return;
    const index_t widest = *std::max_element(features.begin(), features.end());
    tangent1.clear();
    tangent2.clear();
    for (std::size_t b = 0; b < features.size(); ++b) {
      tangent1.emplace_back(dev, b == 0 ? 0 : features[b] * chunk * m);
      tangent2.emplace_back(dev, b == 0 ? 0 : features[b] * chunk * m);
    }
    for (auto& side : adjoint)
      for (auto& component : side) component = Buffer<T>(dev, widest * chunk * m);
    per_example = Buffer<T>(dev, chunk * positions * m);
    workspace_directions = m;
  }

  // Forward tangents of one chunk along m directions; returns the jets at every boundary.
  std::vector<Jet<T>> forward_tangents(const JetPass<T>& pass, index_t first) {
    std::vector<Jet<T>> jets(features.size());
    jets[0].primal = primal_at(0, first);  // the data: zero tangents
    for (std::size_t b = 1; b < features.size(); ++b)
      jets[b] = Jet<T>{primal_at(b, first), {tangent1[b].data(), tangent2[b].data()}};
    if (pass.order >= 1)
      for (std::size_t l = 0; l < layers.size(); ++l) layers[l]->forward_tangents(pass, jets[l], jets[l + 1]);
    return jets;
  }

  // totals[j] += the mean over counted loss terms of ℓ2 along direction j of a pass over one chunk whose
  // output jet is f: v_jᵀHv_j.
  void add_second_order(const Jet<T>& f, index_t first, index_t nb, index_t m, T* totals) {
    const index_t terms = nb * positions;
    CFLOW_DISPATCH(dev, loss_second_order<T>, dev, loss, classes(), terms, m, f.primal, f.tangent[0], f.tangent[1],
                   targets_at(first), counted_at(first), per_example.data());
    blas::gemv<T>(dev, blas::Op::T, terms, m, T(1) / T(counted_terms), per_example.data(), terms, ones(), T(1),
                  totals);
  }

  // G (d × m) = ∇_w of the mean over counted loss terms of ℓ_order along each direction: the gradient (order 0, m = 1),
  // Hessian-vector products (order 1) or ∇(vᵀHv) (order 2); order 2 with `quads` (device, m) also vᵀHv,
  // from the forward jets the pass makes anyway.
  void differentiate(int order, const T* w, const T* V, index_t m, T* G, T* quads = nullptr) {
    ensure_primal(w);
    dev.set_zero(G, std::size_t(d * m) * sizeof(T));
    if (quads) dev.set_zero(quads, std::size_t(m) * sizeof(T));
    const index_t group = order == 0 ? 1 : options.max_directions;
    for (index_t g = 0; g < m; g += group) {
      const index_t mg = std::min(group, m - g);
      ensure_workspace(mg);
      for (index_t first = 0; first < n; first += chunk) {
        const index_t nb = std::min(chunk, n - first);
        const JetPass<T> pass{dev, order, nb, mg, w, V ? V + g * d : nullptr, G + g * d, d, ones()};
        const auto jets = forward_tangents(pass, first);
        if (quads) add_second_order(jets.back(), first, nb, mg, quads + g);
        CFLOW_NVTX_RANGE("reverse");
        Adjoint<T> out_adjoint{{adjoint[0][0].data(), adjoint[0][1].data(), adjoint[0][2].data()}};
        Adjoint<T> in_adjoint{{adjoint[1][0].data(), adjoint[1][1].data(), adjoint[1][2].data()}};
        const Jet<T>& f = jets.back();
        CFLOW_DISPATCH(dev, loss_adjoint<T>, dev, loss, order, classes(), nb * positions, mg, T(1) / T(counted_terms),
                       f.primal, f.tangent[0], f.tangent[1], targets_at(first), counted_at(first),
                       out_adjoint.component[0], out_adjoint.component[1], out_adjoint.component[2]);
        for (std::size_t l = layers.size(); l-- > 0;) {
          layers[l]->reverse(pass, jets[l], jets[l + 1], out_adjoint, l > 0 ? &in_adjoint : nullptr);
          std::swap(out_adjoint, in_adjoint);
        }
      }
    }
  }

  bool diagonals_held(const T* w, const T* U, index_t k) const {
    const std::size_t bytes = std::size_t(d * k) * sizeof(T);
    return k == diagonal_k && w == diagonal_w && U == diagonal_U && dev.version(w, point_bytes()) == diagonal_w_version &&
           dev.version(U, bytes) == diagonal_U_version;
  }

  // The diagonal jets ∇q(u_i) into pair_diagonals and q(u_i) into diagonal_quads, unless they are held.
  void ensure_diagonals(const T* w, const T* U, index_t k) {
    if (diagonals_held(w, U, k)) return;
    if (pair_diagonals.size() < d * k) pair_diagonals = Buffer<T>(dev, d * k, Uninitialized{});
    if (diagonal_quads.size() < k) diagonal_quads = Buffer<T>(dev, k, Uninitialized{});
    differentiate(2, w, U, k, pair_diagonals.data(), diagonal_quads.data());
    diagonal_w = w;
    diagonal_U = U;
    diagonal_k = k;
    diagonal_w_version = cached_version;  // differentiate's primal pass watches w
    diagonal_U_version = dev.watch(U, std::size_t(d * k) * sizeof(T));
  }
};

template <class T>
Network<T>::Network(const Device& dev, const ModelSpec& spec, std::span<const T> inputs, std::span<const T> targets,
                    NetworkOptions options)
    : state_(std::make_unique<State>(dev, spec, inputs, targets, std::span<const T>(), options)) {}
template <class T>
Network<T>::Network(const Device& dev, const ModelSpec& spec, std::span<const T> inputs, std::span<const T> targets,
                    std::span<const T> counted, NetworkOptions options)
    : state_(std::make_unique<State>(dev, spec, inputs, targets, counted, options)) {}
template <class T>
Network<T>::Network(std::unique_ptr<State> state) : state_(std::move(state)) {}
template <class T> Network<T>::~Network() = default;
template <class T> Network<T>::Network(Network&&) noexcept = default;

template <class T> index_t Network<T>::dim() const { return state_->d; }
template <class T> const Device& Network<T>::device() const { return state_->dev; }
template <class T> index_t Network<T>::examples() const { return state_->n; }
template <class T> const ModelSpec& Network<T>::spec() const { return state_->spec; }

template <class T>
Network<T> Network<T>::bound_to(const Device& lane) const {
  return Network(std::make_unique<State>(*state_, lane));
}
template <class T>
std::unique_ptr<Objective<T>> Network<T>::on_lane(const Device& lane) const {
  return std::make_unique<Network>(bound_to(lane));
}

template <class T>
std::vector<T> Network<T>::initial_parameters(std::uint64_t seed) const {
  std::vector<T> w(std::size_t(state_->d));
  std::mt19937_64 rng(seed);
  index_t offset = 0;
  for (const auto& layer : state_->layers) {
    layer->initialize(rng, w.data() + offset);
    offset += layer->parameter_count();
  }
  return w;
}

template <class T>
T Network<T>::value_grad(const T* w, T* grad) {
  CFLOW_NVTX_RANGE("value_grad");
  State& s = *state_;
  s.differentiate(0, w, nullptr, 1, grad);
  return T(double(blas::dot<T>(s.dev, s.n * s.positions, s.example_loss.data(), s.ones())) / s.counted_terms);
}

template <class T>
void Network<T>::hvp(const T* w, const T* V, index_t m, T* HV) {
  CFLOW_NVTX_RANGE("hvp");
  state_->differentiate(1, w, V, m, HV);
}

template <class T>
std::vector<T> Network<T>::quad(const T* w, const T* U, index_t m) {
  CFLOW_NVTX_RANGE("quad");
  State& s = *state_;
  s.ensure_primal(w);
  Buffer<T> sums(s.dev, m);
  for (index_t g = 0; g < m; g += s.options.max_directions) {
    const index_t mg = std::min(s.options.max_directions, m - g);
    s.ensure_workspace(mg);
    for (index_t first = 0; first < s.n; first += s.chunk) {
      const index_t nb = std::min(s.chunk, s.n - first);
      const JetPass<T> pass{s.dev, 2, nb, mg, w, U + g * s.d, nullptr, s.d, s.ones()};
      s.add_second_order(s.forward_tangents(pass, first).back(), first, nb, mg, sums.data() + g);
    }
  }
  return sums.to_host();
}

// By polarization (kernels/polarization.h). All the pairs hold the diagonal jets ∇q(u_i) they combine
// with, and their q(u_i) (the quads); a part of them computes those apart (k more jets) into d × k, or
// reuses the ones an earlier part computed at the same w and U.
template <class T>
void Network<T>::d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) {
  CFLOW_NVTX_RANGE("d3");
  State& s = *state_;
  CFLOW_REQUIRE(first >= 0 && count >= 0 && first + count <= pair_count(k), "d3: pairs out of range");
  const bool all = count == pair_count(k);
  // q(z) of every direction, when the diagonal ones are asked for and are among them.
  T* pair_quads = nullptr;
  if (quads && all) {
    if (s.pair_quads.size() < count) s.pair_quads = Buffer<T>(s.dev, count, Uninitialized{});
    pair_quads = s.pair_quads.data();
  }
  // The polarization directions are made one group of max_directions pairs at a time, the group
  // differentiate passes over anyway: d × max_directions instead of d × count, the same bits.
  const index_t group = std::max<index_t>(1, std::min(s.options.max_directions, count));
  if (s.pair_directions.size() < s.d * group) s.pair_directions = Buffer<T>(s.dev, s.d * group);
  for (index_t done = 0; done < count; done += group) {
    const index_t m = std::min(group, count - done);
    CFLOW_DISPATCH(s.dev, polarization_directions<T>, s.dev, s.d, k, first + done, m, U, s.pair_directions.data());
    s.differentiate(2, w, s.pair_directions.data(), m, D + done * s.d, pair_quads ? pair_quads + done : nullptr);
  }
  const T* diagonal = D;
  if (!all) {
    s.ensure_diagonals(w, U, k);
    diagonal = s.pair_diagonals.data();
  }
  CFLOW_DISPATCH(s.dev, polarization_combine<T>, s.dev, s.d, k, first, count, diagonal, D);
  if (!quads) return;
  const std::vector<T> values = all ? s.pair_quads.to_host() : s.diagonal_quads.to_host();
  for (index_t i = 0; i < k; ++i) quads[i] = values[std::size_t(all ? pair_index(i, i, k) : i)];
}

template <class T>
bool Network<T>::diagonal_jets_held(const T* w, const T* U, index_t k) {
  return state_->diagonals_held(w, U, k);
}

template <class T>
Evaluation Network<T>::evaluate(const T* w) {
  State& s = *state_;
  s.ensure_primal(w);
  const index_t terms = s.n * s.positions;
  blas::dot<T>(s.dev, terms, s.example_loss.data(), s.ones(), s.sums.data());
  blas::dot<T>(s.dev, terms, s.example_correct.data(), s.ones(), s.sums.data() + 1);
  T host[2];
  s.sums.download(host);  // one wait for both
  return {double(host[0]) / s.counted_terms, double(host[1]) / s.counted_terms};
}

template <class T>
void Network<T>::outputs(const T* w, T* out) {
  State& s = *state_;
  s.ensure_primal(w);
  blas::copy<T>(s.dev, s.classes() * s.positions * s.n, s.primal.back().data(), out);
}

template class Network<float>;
template class Network<double>;

}  // namespace cflow
