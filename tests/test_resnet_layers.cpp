// The ResNet's layers on their own, in float64 (checks in tests/layer_check.h):
//   * GroupNorm / LayerNorm: forward = a naive long-double reference; exact symmetries (a constant
//     added to a group changes neither the output nor, along a constant tangent, the jets); jets of
//     orders 1–2 = finite differences; reverse of orders 0–2 = the transpose of the jet map;
//   * global average pooling: exact means, jets and reverse;
//   * residual block: identity at initialization (zero second scale), jets and reverse, the identity
//     and the projection shortcut.
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "host/engine/layer.h"
#include "layer_check.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using namespace testing::layer_check;

class ResnetLayers : public BackendTest {};

struct NormCase {
  TensorShape shape;
  index_t groups;  // 0: LayerNorm over `shape.channels` features of `shape.width` tokens
  index_t nb;
};
const NormCase kNormCases[] = {{{4, 2, 3}, 2, 3}, {{3, 1, 5}, 3, 2}, {{6, 2, 2}, 1, 2}, {{5, 1, 3}, 0, 2},
                               {{2, 1, 1}, 0, 3}};

std::unique_ptr<Layer<double>> make_norm(const NormCase& c, index_t offset) {
  if (c.groups == 0) return make_layer_norm<double>(c.shape.channels, c.shape.width, offset);
  return make_group_norm<double>(c.shape, c.groups, 1.0, offset);
}

// Per group: y = γ_p (x − μ)/√(v + 1e-5) + β_p, directly from the definition.
Vec naive_norm(const NormCase& c, const Vec& params, index_t offset, const Vec& x) {
  const index_t f = c.shape.size(), groups = c.groups ? c.groups : c.shape.width;
  const index_t size = f / groups, P = c.shape.channels;  // GN: C channels; LN: C features
  const index_t inner = c.groups ? c.shape.height * c.shape.width : 1;
  Vec y(x.size());
  for (index_t e = 0; e < c.nb; ++e)
    for (index_t g = 0; g < groups; ++g) {
      const double* xs = x.data() + e * f + g * size;
      long double mean = 0, var = 0;
      for (index_t i = 0; i < size; ++i) mean += xs[i];
      mean /= size;
      for (index_t i = 0; i < size; ++i) var += (xs[i] - mean) * (xs[i] - mean);
      var /= size;
      for (index_t i = 0; i < size; ++i) {
        const index_t p = (c.groups ? g * (size / inner) : 0) + i / inner;
        y[std::size_t(e * f + g * size + i)] =
            double(params[std::size_t(offset + p)] * (xs[i] - mean) / std::sqrt(var + 1e-5L) +
                   params[std::size_t(offset + P + p)]);
      }
    }
  return y;
}

TEST_P(ResnetLayers, NormForwardMatchesTheDefinitionAndIgnoresGroupShifts) {
  for (const NormCase& c : kNormCases) {
    const index_t offset = 3, in = c.shape.size();
    auto layer = make_norm(c, offset);
    ASSERT_EQ(layer->parameter_count(), 2 * c.shape.channels);
    Vec w = random_vector<double>(std::size_t(offset + layer->parameter_count() + 2), 81);
    std::mt19937_64 rng(1);
    layer->initialize(rng, w.data() + offset);  // PyTorch: γ = 1, β = 0
    for (index_t i = 0; i < layer->parameter_count(); ++i)
      EXPECT_EQ(w[std::size_t(offset + i)], i < c.shape.channels ? 1.0 : 0.0);
    w = random_vector<double>(w.size(), 82);
    const Harness h(device(), *layer, in, index_t(w.size()), index_t(w.size()));
    Vec x = random_vector<double>(std::size_t(in * c.nb), 83);
    const Vec y = h.forward(w, x, c.nb);
    EXPECT_LT(max_diff(y, naive_norm(c, w, offset, x)), 1e-13);
    // A constant per group (here: per example, which covers every group) changes nothing.
    for (index_t i = 0; i < in * c.nb; ++i) x[std::size_t(i)] += 0.75 + double(i / in);
    EXPECT_LT(max_diff(h.forward(w, x, c.nb), y), 1e-13);
  }
}

TEST_P(ResnetLayers, NormTangentsMatchFiniteDifferencesAndAreShiftInvariant) {
  const index_t m = 2, offset = 2;
  double worst = 0;
  for (const NormCase& c : kNormCases) {
    auto layer = make_norm(c, offset);
    const index_t in = c.shape.size(), d = offset + layer->parameter_count() + 1, ld = d + 2;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, c.nb, 91);
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, in, in, c.nb, m, d, ld, w, V, x0, x1, x2, false,
                                                            1e-3));
    worst = std::max(worst, check_tangents_by_differences(h, 2, in, in, c.nb, m, d, ld, w, V, x0, x1, {}, false, 1e-3));
    // Exact symmetry: tangents that are constant on every example do not move the output jets
    // beyond what the parameter directions do.
    const Tangents base = h.tangents(2, c.nb, m, w, V, x0, x1, x2);
    Vec x1s = x1, x2s = x2;
    for (std::size_t i = 0; i < x1s.size(); ++i) {
      x1s[i] += 0.5 + double(i / std::size_t(in));
      x2s[i] -= 0.25 * double(i / std::size_t(in));
    }
    const Tangents shifted = h.tangents(2, c.nb, m, w, V, x0, x1s, x2s);
    EXPECT_LT(max_diff(shifted.y1, base.y1), 1e-12);
    EXPECT_LT(max_diff(shifted.y2, base.y2), 1e-11);
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

TEST_P(ResnetLayers, NormReverseIsTheTransposeOfTheJetMap) {
  const index_t m = 2, offset = 1;
  double worst = 0;
  unsigned seed = 300;
  for (const NormCase& c : kNormCases) {
    auto layer = make_norm(c, offset);
    const index_t in = c.shape.size(), count = layer->parameter_count(), d = offset + count + 2, ld = d + 1;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, c.nb, 101);
    for (int order : {0, 1, 2}) {
      const Vec t1 = order >= 1 ? x1 : Vec{}, t2 = order == 2 ? x2 : Vec{};
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, in, c.nb, m, d, ld, offset, count, w, V, x0, t1,
                                                         t2, true, seed += 50, 1e-4));
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, in, c.nb, m, d, ld, offset, count, w, V, x0, t1,
                                                         t2, false, seed += 50, 1e-4));
    }
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

TEST_P(ResnetLayers, GlobalAveragePoolJetsAndReverse) {
  const index_t m = 2, nb = 3;
  double worst = 0;
  unsigned seed = 500;
  for (TensorShape s : {TensorShape{2, 3, 4}, TensorShape{3, 1, 1}, TensorShape{1, 5, 2}}) {
    auto layer = make_global_avgpool<double>(s);
    const TensorShape os = layer->output_shape();
    EXPECT_EQ(os.size(), s.channels);
    const index_t in = s.size(), out = os.size(), d = 2, ld = d;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, 111);
    const Vec y = h.forward(w, x0, nb);
    const index_t HW = s.height * s.width;
    for (index_t plane = 0; plane < s.channels * nb; ++plane) {
      long double sum = 0;
      for (index_t p = 0; p < HW; ++p) sum += x0[std::size_t(plane * HW + p)];
      EXPECT_NEAR(y[std::size_t(plane)], double(sum / HW), 1e-15);
    }
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, x2, false));
    EXPECT_TRUE(h.tangents(1, nb, m, w, V, x0, {}, {}).y1.empty()) << "a zero tangent stays null";
    for (int order : {0, 1, 2})
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, nb, m, d, ld, 0, 0, w, V, x0,
                                                         order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, true,
                                                         seed += 50));
  }
  EXPECT_LT(worst, 1e-13);
  RecordProperty("max_relative_error", scientific(worst));
}

// A basic block conv–GN–act–conv–GN with the given shortcut; offsets from `offset` in PyTorch order.
std::unique_ptr<Layer<double>> basic_block(TensorShape in, index_t channels, int stride, bool projection,
                                           double second_scale, index_t offset) {
  LayerStack<double> branch, shortcut;
  auto add = [&](LayerStack<double>& to, std::unique_ptr<Layer<double>> layer) {
    offset += layer->parameter_count();
    to.push_back(std::move(layer));
  };
  add(branch, make_conv2d<double>(in, channels, false, offset, 3, stride));
  const TensorShape mid = branch.back()->output_shape();
  add(branch, make_group_norm<double>(mid, 2, 1.0, offset));
  add(branch, make_activation<double>(mid, Activation::tanh));
  add(branch, make_conv2d<double>(mid, channels, false, offset));
  add(branch, make_group_norm<double>(mid, 2, second_scale, offset));
  if (projection) {
    add(shortcut, make_conv2d<double>(in, channels, false, offset, 1, stride));
    add(shortcut, make_group_norm<double>(mid, 2, 1.0, offset));
  }
  return make_residual<double>(in, std::move(branch), std::move(shortcut), 0.7);
}

TEST_P(ResnetLayers, ResidualBlockStartsAsTheIdentity) {
  const TensorShape s{2, 3, 4};
  const index_t nb = 2;
  auto block = basic_block(s, 2, 1, false, 0.0, 0);
  Vec w(std::size_t(block->parameter_count()));
  std::mt19937_64 rng(4);
  block->initialize(rng, w.data());
  const Harness h(device(), *block, s.size(), index_t(w.size()), index_t(w.size()));
  const Vec x = random_vector<double>(std::size_t(s.size() * nb), 121);
  EXPECT_EQ(h.forward(w, x, nb), x);
}

TEST_P(ResnetLayers, ResidualBlockJetsAndReverse) {
  const index_t m = 2, nb = 2, offset = 3;
  double worst = 0;
  unsigned seed = 900;
  struct BlockCase {
    TensorShape in;
    index_t channels;
    int stride;
    bool projection;
  };
  for (const BlockCase& c : {BlockCase{{2, 3, 4}, 2, 1, false}, BlockCase{{2, 4, 3}, 4, 2, true}}) {
    auto block = basic_block(c.in, c.channels, c.stride, c.projection, 1.0, offset);
    const index_t in = c.in.size(), out = block->output_shape().size(), count = block->parameter_count();
    const index_t d = offset + count + 1, ld = d;
    const Harness h(device(), *block, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, 131);
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, x2, false,
                                                            1e-3));
    for (int order : {0, 1, 2})
      for (bool want_xb : {true, false})
        worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, nb, m, d, ld, offset, count, w, V, x0,
                                                           order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, want_xb,
                                                           seed += 50, 1e-4));
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

CFLOW_TEST_ON_ALL_BACKENDS(ResnetLayers);

}  // namespace
}  // namespace cflow
