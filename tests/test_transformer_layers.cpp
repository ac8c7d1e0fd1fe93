// The Transformer's layers on their own, in float64 (checks in tests/layer_check.h; LayerNorm is
// checked with GroupNorm in tests/test_resnet_layers.cpp, one kernel serving both):
//   * token-wise Linear: forward = a plain loop per token; jets; reverse of orders 0–2;
//   * attention (the parameter-free core, with and without a causal mask): forward = a naive
//     softmax(QKᵀ/√dh)V per head; exact symmetries (a vector added to every key changes nothing;
//     permuting tokens permutes the output; with the mask a later token never reaches an earlier
//     output); jets of orders 1–2 = finite differences; reverse = the transpose of the jet map;
//   * the whole self-attention (projections, core, output projection) inside a residual x + attn(x):
//     forward = the naive reference, jets and reverse with parameter gradients;
//   * token mean pooling: exact means, jets and reverse;
//   * patch embedding: the patches, the 2-D sin-cos table and the whole embedding against plain
//     loops, each layer's jets and reverse, the error for a patch size that does not divide;
//   * token embedding with sinusoidal positions: table lookups against plain loops, jets (y2 = 0) and
//     the table's gradient;
//   * the memory estimate counts the attention scores, T² per head, inside the ViT's residual blocks.
#include <cmath>
#include <memory>
#include <vector>

#include "host/engine/layer.h"
#include "host/run/memory_check.h"
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
  const index_t in = 3, out = 2, tokens = 4, nb = 2, offset = 2;
  double worst = 0;
  for (bool bias : {true, false}) {
    auto layer = make_token_linear<double>(in, tokens, out, bias, offset);
    ASSERT_EQ(layer->output_shape().size(), out * tokens);
    const index_t count = layer->parameter_count();
    ASSERT_EQ(count, in * out + (bias ? out : 0));
    const Vec w = random_vector<double>(std::size_t(offset + count), 211);
    const Vec x = random_vector<double>(std::size_t(in * tokens * nb), 212);
    const Harness h(device(), *layer, in * tokens, offset + count, offset + count);
    EXPECT_LT(max_diff(h.forward(w, x, nb), naive_token_linear(w, offset, in, out, bias, x)), 1e-14);
    worst = std::max(worst, check_jets_and_reverse(device(), *layer, in * tokens, offset, bias ? 213 : 313, 0.25, 0.5));
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
  const index_t nb = 2, offset = 3;
  double worst = 0;
  unsigned seed = 700;
  for (const AttentionCase& c : kAttentionCases) {
    auto block = attention_block(c, offset);
    const index_t D = c.features, io = D * c.tokens, count = block->parameter_count();
    ASSERT_EQ(count, 4 * D * D);
    const Vec w = random_vector<double>(std::size_t(offset + count), 241);
    const Vec x = random_vector<double>(std::size_t(io * nb), 242);
    const Harness h(device(), *block, io, offset + count, offset + count);
    const Vec qkv = naive_token_linear(w, offset, D, 3 * D, false, x);
    const Vec expected = axpy(x, 1.0, naive_token_linear(w, offset + 3 * D * D, D, D, false, naive_attention(c, qkv)));
    EXPECT_LT(max_diff(h.forward(w, x, nb), expected), 1e-14);
    worst = std::max(worst, check_jets_and_reverse(device(), *block, io, offset, seed += 1000, 1e-3, 1e-4));
  }
  EXPECT_LT(worst, 1e-8);
  RecordProperty("max_relative_error", scientific(worst));
}

TEST_P(TransformerLayers, TokenMeanPoolAveragesTokens) {
  const index_t D = 3, T = 4, nb = 2;
  auto pool = make_token_mean_pool<double>(D, T);
  ASSERT_EQ(pool->output_shape().size(), D);
  const Harness h(device(), *pool, D * T, 1, 1);
  const Vec x = random_vector<double>(std::size_t(D * T * nb), 251);
  const Vec y = h.forward({0.0}, x, nb);
  for (index_t e = 0; e < nb; ++e)
    for (index_t i = 0; i < D; ++i) {
      long double sum = 0;
      for (index_t t = 0; t < T; ++t) sum += x[std::size_t(e * D * T + t * D + i)];
      EXPECT_NEAR(y[std::size_t(e * D + i)], double(sum / T), 1e-15);
    }
  const double worst = check_jets_and_reverse(device(), *pool, D * T, 0, 252, 0.25, 0.5);
  EXPECT_LT(worst, 1e-13);
  RecordProperty("max_relative_error", scientific(worst));
}

// The simple ViT's posemb_sincos_2d for a rows × columns grid, written out.
Vec naive_sincos_2d(index_t D, index_t rows, index_t columns) {
  Vec table;
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < columns; ++c) {
      Vec parts[4];
      for (index_t i = 0; i < D / 4; ++i) {
        const double omega = 1.0 / std::pow(10000.0, double(i) / double(D / 4 - 1));
        parts[0].push_back(std::sin(double(c) * omega));
        parts[1].push_back(std::cos(double(c) * omega));
        parts[2].push_back(std::sin(double(r) * omega));
        parts[3].push_back(std::cos(double(r) * omega));
      }
      for (const Vec& part : parts) table.insert(table.end(), part.begin(), part.end());
    }
  return table;
}

TEST_P(TransformerLayers, PatchEmbeddingMatchesPlainLoops) {
  const TensorShape image{2, 4, 6};
  const index_t patch = 2, D = 8, nb = 2, offset = 1, rows = 2, columns = 3, T = rows * columns;
  const index_t patch_size = patch * patch * image.channels;
  LayerStack<double> layers = make_patch_embedding<double>(image, patch, D, offset);
  ASSERT_EQ(layers.size(), 3u);
  ASSERT_EQ(layers[2]->output_shape().size(), D * T);
  EXPECT_LT(max_diff(sincos_positions_2d(D, rows, columns), naive_sincos_2d(D, rows, columns)), 1e-15);
  // The whole embedding, layer after layer, against one plain loop.
  const index_t count = layers[1]->parameter_count(), d = offset + count;
  ASSERT_EQ(count, patch_size * D + D);
  const Vec w = random_vector<double>(std::size_t(d), 261), x = random_vector<double>(std::size_t(image.size() * nb), 262);
  Vec y = x;
  index_t in = image.size();
  for (const auto& layer : layers) {
    y = Harness(device(), *layer, in, d, d).forward(w, y, nb);
    in = layer->output_shape().size();
  }
  const Vec positions = naive_sincos_2d(D, rows, columns);
  double worst = 0;
  for (index_t e = 0; e < nb; ++e)
    for (index_t t = 0; t < T; ++t) {
      Vec pixels;  // (row in patch, column in patch, channel)
      for (index_t pr = 0; pr < patch; ++pr)
        for (index_t pc = 0; pc < patch; ++pc)
          for (index_t ch = 0; ch < image.channels; ++ch)
            pixels.push_back(x[std::size_t(e * image.size() + ch * image.height * image.width +
                                           ((t / columns) * patch + pr) * image.width + (t % columns) * patch + pc)]);
      const Vec token = naive_token_linear(w, offset, patch_size, D, true, pixels);
      for (index_t i = 0; i < D; ++i)
        worst = std::max(worst, std::abs(y[std::size_t(e * D * T + t * D + i)] -
                                         (token[std::size_t(i)] + positions[std::size_t(t * D + i)])));
    }
  EXPECT_LT(worst, 1e-14);
  double jets = 0;
  in = image.size();
  for (const auto& layer : layers) {
    jets = std::max(jets, check_jets_and_reverse(device(), *layer, in, offset, 263, 0.25, 0.5));
    in = layer->output_shape().size();
  }
  EXPECT_LT(jets, 1e-12);
  RecordProperty("max_relative_error", scientific(jets));
  try {
    make_patch_embedding<double>({1, 28, 28}, 5, D, 0);
    ADD_FAILURE() << "a patch size that does not divide the image must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must divide"), std::string::npos) << e.what();
  }
}

TEST_P(TransformerLayers, TokenEmbeddingLooksUpRowsAndAddsSinusoids) {
  const index_t vocab = 5, D = 4, T = 3, nb = 2, m = 2, offset = 2;
  LayerStack<double> layers = make_token_embedding<double>(vocab, D, T, offset);
  ASSERT_EQ(layers.size(), 2u);
  const Layer<double>& embedding = *layers[0];
  const index_t count = embedding.parameter_count(), d = offset + count + 1, ld = d + 2;
  ASSERT_EQ(count, vocab * D);
  const Vec ids{0, 4, 2, 3, 3, 1};  // nb examples of T tokens
  const Vec w = random_vector<double>(std::size_t(d), 271), V = random_vector<double>(std::size_t(ld * m), 272);
  const Harness h(device(), embedding, T, d, ld), hp(device(), *layers[1], D * T, d, ld);
  const Vec y = hp.forward(w, h.forward(w, ids, nb), nb);
  double worst = 0;
  for (index_t n = 0; n < T * nb; ++n)
    for (index_t i = 0; i < D; ++i) {
      const double t = double(n % T), angle = t / std::pow(10000.0, double(2 * (i / 2)) / double(D));
      const double expected = w[std::size_t(offset + index_t(ids[std::size_t(n)]) * D + i)] +
                              (i % 2 == 0 ? std::sin(angle) : std::cos(angle));
      worst = std::max(worst, std::abs(y[std::size_t(n * D + i)] - expected));
    }
  EXPECT_LT(worst, 1e-15);
  // The ids are data: no input tangents, y2 = 0; the table's gradient is the transpose of the jets.
  double jets = 0;
  for (int order : {1, 2})
    jets = std::max(jets, check_tangents_by_differences(h, order, T, D * T, nb, m, d, ld, w, V, ids, {}, {}, true));
  for (int order : {0, 1, 2})
    jets = std::max(jets, check_reverse_is_transpose(h, order, T, D * T, nb, m, d, ld, offset, count, w, V, ids, {}, {},
                                                     false, 280 + 10 * unsigned(order)));
  jets = std::max(jets, check_jets_and_reverse(device(), *layers[1], D * T, 0, 290, 0.25, 0.5));
  EXPECT_LT(jets, 1e-12);
  RecordProperty("max_relative_error", scientific(jets));
}

CFLOW_TEST_ON_ALL_BACKENDS(TransformerLayers);

TEST(TransformerMemory, TheEstimateCountsTheAttentionScores) {
  ModelSpec spec;
  spec.arch = Architecture::vit;
  spec.width = 8;
  spec.depth = 1;
  spec.heads = 2;
  spec.patch = 1;  // 64 tokens
  spec.input = {1, 8, 8};
  spec.classes = 3;
  const double examples = 10, tokens = 64, scores_per_example = 2 * tokens * tokens * double(spec.heads);
  // Every value counted with at least its two tangents (float32 here).
  EXPECT_GE(run::network_bytes(spec, examples, 4, 1), 4 * 3 * examples * scores_per_example);
}

}  // namespace
}  // namespace cflow
