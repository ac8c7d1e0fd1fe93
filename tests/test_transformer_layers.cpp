// The Transformer's layers on their own, in float64 (checks in tests/layer_check.h; LayerNorm is
// checked with GroupNorm in tests/test_resnet_layers.cpp, one kernel serving both):
//   * token-wise Linear: forward = a plain loop per token; jets; reverse of orders 0–2;
//   * attention (the parameter-free core, with and without a causal mask): forward = a naive
//     softmax(QKᵀ/√dh)V per head; exact symmetries (a vector added to every key changes nothing;
//     permuting tokens permutes the output; with the mask a later token never reaches an earlier
//     output); jets of orders 1–2 = finite differences; reverse = the transpose of the jet map;
//   * the whole self-attention (projections, core, output projection) inside a residual x + attn(x):
//     forward = the naive reference, jets and reverse with parameter gradients.
#include <cmath>
#include <memory>
#include <vector>

#include "host/engine/layer.h"
#include "layer_check.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using namespace testing::layer_check;

class TransformerLayers : public BackendTest {};

// y_t = W x_t (+ b) for every token t, W [out × in] row-major at w + offset, then b.
Vec naive_token_linear(const Vec& w, index_t offset, index_t in, index_t out, bool bias, const Vec& x) {
  const index_t tokens = index_t(x.size()) / in;
  Vec y(std::size_t(tokens * out));
  for (index_t t = 0; t < tokens; ++t)
    for (index_t o = 0; o < out; ++o) {
      long double sum = bias ? w[std::size_t(offset + in * out + o)] : 0.0;
      for (index_t i = 0; i < in; ++i) sum += (long double)w[std::size_t(offset + o * in + i)] * x[std::size_t(t * in + i)];
      y[std::size_t(t * out + o)] = double(sum);
    }
  return y;
}

struct AttentionCase {
  index_t features, tokens, heads;
  bool causal;
};
const AttentionCase kAttentionCases[] = {{4, 3, 2, false}, {4, 3, 2, true}, {3, 2, 1, false}, {2, 4, 2, true}};

// Per example [3D × T] → [D × T]: out_t,h = Σ_j softmax_j(q_t,h·k_j,h/√dh) v_j,h, j ≤ t when causal.
Vec naive_attention(const AttentionCase& c, const Vec& x) {
  const index_t D = c.features, T = c.tokens, dh = D / c.heads, examples = index_t(x.size()) / (3 * D * T);
  Vec y(std::size_t(D * T * examples));
  for (index_t e = 0; e < examples; ++e)
    for (index_t h = 0; h < c.heads; ++h)
      for (index_t t = 0; t < T; ++t) {
        auto at = [&](index_t token, index_t part, index_t r) {
          return x[std::size_t(e * 3 * D * T + token * 3 * D + part * D + h * dh + r)];
        };
        const index_t visible = c.causal ? t + 1 : T;
        std::vector<long double> weight(static_cast<std::size_t>(visible));
        long double total = 0;
        for (index_t j = 0; j < visible; ++j) {
          long double score = 0;
          for (index_t r = 0; r < dh; ++r) score += (long double)at(t, 0, r) * at(j, 1, r);
          total += weight[std::size_t(j)] = std::exp(score / std::sqrt((long double)dh));
        }
        for (index_t r = 0; r < dh; ++r) {
          long double sum = 0;
          for (index_t j = 0; j < visible; ++j) sum += weight[std::size_t(j)] / total * at(j, 2, r);
          y[std::size_t(e * D * T + t * D + h * dh + r)] = double(sum);
        }
      }
  return y;
}

TEST_P(TransformerLayers, TokenLinearMatchesPerTokenLoopsJetsAndReverse) {
  const index_t in = 3, out = 2, tokens = 4, nb = 2, m = 2, offset = 2;
  double worst = 0;
  unsigned seed = 200;
  for (bool bias : {true, false}) {
    auto layer = make_token_linear<double>(in, tokens, out, bias, offset);
    ASSERT_EQ(layer->output_shape().size(), out * tokens);
    const index_t count = layer->parameter_count(), d = offset + count + 1, ld = d + 1;
    ASSERT_EQ(count, in * out + (bias ? out : 0));
    const Harness h(device(), *layer, in * tokens, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in * tokens, nb, 211);
    EXPECT_LT(max_diff(h.forward(w, x0, nb), naive_token_linear(w, offset, in, out, bias, x0)), 1e-14);
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, in * tokens, out * tokens, nb, m, d, ld, w, V,
                                                            x0, x1, x2, false));
    for (int order : {0, 1, 2})
      for (bool want_xb : {true, false})
        worst = std::max(worst, check_reverse_is_transpose(h, order, in * tokens, out * tokens, nb, m, d, ld, offset,
                                                           count, w, V, x0, order >= 1 ? x1 : Vec{},
                                                           order == 2 ? x2 : Vec{}, want_xb, seed += 50));
  }
  EXPECT_LT(worst, 1e-12);
  RecordProperty("max_relative_error", scientific(worst));
}

// The attention core: layer 1 of the self-attention stack.
std::unique_ptr<Layer<double>> attention_core(const AttentionCase& c) {
  LayerStack<double> stack = make_self_attention<double>(c.features, c.tokens, c.heads, c.causal, 0);
  return std::move(stack[1]);
}

TEST_P(TransformerLayers, AttentionMatchesTheDefinitionAndItsSymmetries) {
  const index_t nb = 2;
  for (const AttentionCase& c : kAttentionCases) {
    auto core = attention_core(c);
    const index_t D = c.features, T = c.tokens, in = 3 * D * T;
    ASSERT_EQ(core->parameter_count(), 0);
    ASSERT_EQ(core->output_shape().size(), D * T);
    const Harness h(device(), *core, in, 1, 1);
    const Vec w{0.0};
    Vec x = random_vector<double>(std::size_t(in * nb), 221, -2.0, 2.0);
    const Vec y = h.forward(w, x, nb);
    EXPECT_LT(max_diff(y, naive_attention(c, x)), 1e-14);
    // The same vector added to every token's key shifts each query's scores by a constant.
    Vec shifted = x;
    const Vec shift = random_vector<double>(std::size_t(D), 222);
    for (index_t e = 0; e < nb; ++e)
      for (index_t t = 0; t < T; ++t)
        for (index_t i = 0; i < D; ++i) shifted[std::size_t(e * in + t * 3 * D + D + i)] += shift[std::size_t(i)];
    EXPECT_LT(max_diff(h.forward(w, shifted, nb), y), 1e-14);
    if (c.causal) {  // the last token reaches only the last output
      Vec later = x;
      for (index_t e = 0; e < nb; ++e)
        for (index_t i = 0; i < 3 * D; ++i) later[std::size_t(e * in + (T - 1) * 3 * D + i)] += 0.5;
      const Vec moved = h.forward(w, later, nb);
      for (index_t e = 0; e < nb; ++e)
        for (index_t i = 0; i < D * (T - 1); ++i)
          EXPECT_EQ(moved[std::size_t(e * D * T + i)], y[std::size_t(e * D * T + i)]);
    } else {  // reversing the tokens reverses the output
      Vec reversed = x;
      for (index_t e = 0; e < nb; ++e)
        for (index_t t = 0; t < T; ++t)
          for (index_t i = 0; i < 3 * D; ++i)
            reversed[std::size_t(e * in + (T - 1 - t) * 3 * D + i)] = x[std::size_t(e * in + t * 3 * D + i)];
      const Vec moved = h.forward(w, reversed, nb);
      for (index_t e = 0; e < nb; ++e)
        for (index_t t = 0; t < T; ++t)
          for (index_t i = 0; i < D; ++i)
            EXPECT_NEAR(moved[std::size_t(e * D * T + (T - 1 - t) * D + i)], y[std::size_t(e * D * T + t * D + i)],
                        1e-14);
    }
  }
}

TEST_P(TransformerLayers, AttentionJetsMatchFiniteDifferencesAndReverseIsTheirTranspose) {
  const index_t nb = 2, m = 2, d = 1, ld = 1;
  double worst = 0;
  unsigned seed = 400;
  for (const AttentionCase& c : kAttentionCases) {
    auto core = attention_core(c);
    const index_t in = 3 * c.features * c.tokens, out = c.features * c.tokens;
    const Harness h(device(), *core, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, 231);
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, x2, false,
                                                            1e-3));
    worst = std::max(worst, check_tangents_by_differences(h, 2, in, out, nb, m, d, ld, w, V, x0, x1, {}, false, 1e-3));
    for (int order : {0, 1, 2}) {
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, nb, m, d, ld, 0, 0, w, V, x0,
                                                         order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, true,
                                                         seed += 50, 1e-4));
    }
    worst = std::max(worst, check_reverse_is_transpose(h, 2, in, out, nb, m, d, ld, 0, 0, w, V, x0, x1, {}, true,
                                                       seed += 50, 1e-4));
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

// x + attention(x) with its projections, parameters from `offset`.
std::unique_ptr<Layer<double>> attention_block(const AttentionCase& c, index_t offset) {
  return make_residual<double>({c.features * c.tokens, 1, 1},
                               make_self_attention<double>(c.features, c.tokens, c.heads, c.causal, offset), {}, 1.0);
}

TEST_P(TransformerLayers, SelfAttentionBlockMatchesTheReferenceJetsAndReverse) {
  const index_t nb = 2, m = 2, offset = 3;
  double worst = 0;
  unsigned seed = 700;
  for (const AttentionCase& c : kAttentionCases) {
    auto block = attention_block(c, offset);
    const index_t D = c.features, io = D * c.tokens, count = block->parameter_count();
    ASSERT_EQ(count, 4 * D * D);
    const index_t d = offset + count + 1, ld = d + 2;
    const Harness h(device(), *block, io, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, io, nb, 241);
    const Vec qkv = naive_token_linear(w, offset, D, 3 * D, false, x0);
    const Vec expected = axpy(x0, 1.0, naive_token_linear(w, offset + 3 * D * D, D, D, false, naive_attention(c, qkv)));
    EXPECT_LT(max_diff(h.forward(w, x0, nb), expected), 1e-14);
    for (int order : {1, 2})
      worst = std::max(worst, check_tangents_by_differences(h, order, io, io, nb, m, d, ld, w, V, x0, x1, x2, false,
                                                            1e-3));
    for (int order : {0, 1, 2})
      for (bool want_xb : {true, false})
        worst = std::max(worst, check_reverse_is_transpose(h, order, io, io, nb, m, d, ld, offset, count, w, V, x0,
                                                           order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, want_xb,
                                                           seed += 50, 1e-4));
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

CFLOW_TEST_ON_ALL_BACKENDS(TransformerLayers);

}  // namespace
}  // namespace cflow
