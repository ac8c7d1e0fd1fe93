// CNN layers (Conv2d k×k stride s, AvgPool2d(2)) and their kernels, proven on their own, in float64
// (the jet and reverse checks are in tests/layer_check.h):
//   * im2col/col2im and the pooling kernels are exact adjoints; conv forward = a naive direct conv;
//   * the forward jets equal finite differences of the layer's own forward pass along
//     w + e v, x0 + e x1 + e²/2 x2 (y(e) is a cubic, so the 5-point stencils are exact up to rounding);
//   * the reverse is the transpose of the jet map: for every direction j,
//     Σ_k ⟨ȳk_j, ẏk_j⟩ = ⟨x̄0_j, ẋ0⟩ + Σ_{k≥1} ⟨x̄k_j, ẋk_j⟩ + ⟨Ḡ_j, ẇ⟩, with ẏ the derivative of the
//     jet map along (ẋ, ẇ) (a quadratic in e, so a central difference is exact up to rounding).
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <span>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "host/engine/layer.h"
#include "kernels/conv.h"
#include "kernels/pool.h"
#include "layer_check.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using namespace testing::layer_check;

class ConvKernels : public BackendTest {};
class CnnLayers : public BackendTest {};

// ---- kernels ---------------------------------------------------------------------------------------

struct Image {
  index_t channels, height, width, count;
};
const Image kImages[] = {{1, 1, 1, 1}, {2, 3, 5, 2}, {3, 4, 4, 3}, {1, 7, 2, 1}, {4, 2, 6, 2}};

TEST_P(ConvKernels, Im2colAndCol2imAreAdjoint) {
  for (const Image& s : kImages)
    for (auto [k, stride] : {std::pair{3, 1}, {3, 2}, {1, 1}, {1, 2}, {5, 3}}) {
      const ConvGeometry g{s.channels, s.height, s.width, k, stride};
      const index_t OH = g.out_height(), OW = g.out_width(), k2 = k * k;
      const index_t xs = s.channels * s.height * s.width * s.count, cs = k2 * s.channels * OH * OW * s.count;
      const Vec x = random_vector<double>(std::size_t(xs), 11), y = random_vector<double>(std::size_t(cs), 12);
      Buffer<double> dx = on(device(), x), dy = on(device(), y), col(device(), cs), xt(device(), xs);
      CFLOW_DISPATCH(device(), im2col<double>, device(), g, s.count, dx.data(), col.data());
      CFLOW_DISPATCH(device(), col2im<double>, device(), g, s.count, dy.data(), xt.data());
      const Vec c = col.to_host();
      // im2col entries, directly from the definition
      const index_t K = k2 * s.channels, OHW = OH * OW;
      for (index_t q = 0; q < OHW * s.count; ++q)
        for (index_t r = 0; r < K; ++r) {
          const index_t e = q / OHW, tap = r % k2;
          const index_t h = (q % OHW) / OW * stride + tap / k - k / 2, w = q % OW * stride + tap % k - k / 2;
          const bool inside = h >= 0 && h < s.height && w >= 0 && w < s.width;
          const double expected =
              inside ? x[std::size_t(((e * s.channels + r / k2) * s.height + h) * s.width + w)] : 0;
          ASSERT_EQ(c[std::size_t(r + q * K)], expected);
        }
      const double lhs = dot(c, y), rhs = dot(x, xt.to_host());
      EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs)))
          << s.channels << "×" << s.height << "×" << s.width << " k" << k << " s" << stride;
    }
}

TEST_P(ConvKernels, LayoutTransposesInvertEachOther) {
  const index_t C = 3, HW = 5, count = 4, n = C * HW * count;
  const Vec x = random_vector<double>(std::size_t(n), 13);
  Buffer<double> dx = on(device(), x), t(device(), n), back(device(), n);
  CFLOW_DISPATCH(device(), transpose_each<double>, device(), C, HW, count, dx.data(), t.data());
  CFLOW_DISPATCH(device(), transpose_each<double>, device(), HW, C, count, t.data(), back.data());
  const Vec tv = t.to_host();
  for (index_t e = 0; e < count; ++e)
    for (index_t c = 0; c < C; ++c)
      for (index_t p = 0; p < HW; ++p)
        EXPECT_EQ(tv[std::size_t(c + (e * HW + p) * C)], x[std::size_t((e * C + c) * HW + p)]);
  EXPECT_EQ(back.to_host(), x);
}

TEST_P(ConvKernels, PoolingMatchesWindowMeansAndIsAdjoint) {
  for (const Image& s : kImages) {
    if (s.height < 2 || s.width < 2) continue;
    const index_t planes = s.channels * s.count, oh = s.height / 2, ow = s.width / 2;
    const index_t xs = planes * s.height * s.width, ys = planes * oh * ow;
    const Vec x = random_vector<double>(std::size_t(xs), 14), yb = random_vector<double>(std::size_t(ys), 15);
    Buffer<double> dx = on(device(), x), dyb = on(device(), yb), y(device(), ys), xb(device(), xs);
    CFLOW_DISPATCH(device(), avgpool2_forward<double>, device(), planes, s.height, s.width, dx.data(), y.data());
    CFLOW_DISPATCH(device(), avgpool2_adjoint<double>, device(), planes, s.height, s.width, dyb.data(), xb.data());
    const Vec yv = y.to_host();
    for (index_t pl = 0; pl < planes; ++pl)
      for (index_t i = 0; i < oh; ++i)
        for (index_t j = 0; j < ow; ++j) {
          auto at = [&](index_t h, index_t w) { return x[std::size_t((pl * s.height + h) * s.width + w)]; };
          const double mean =
              (at(2 * i, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j) + at(2 * i + 1, 2 * j + 1)) / 4;
          EXPECT_NEAR(yv[std::size_t((pl * oh + i) * ow + j)], mean, 1e-15);
        }
    const double lhs = dot(yv, yb), rhs = dot(x, xb.to_host());
    EXPECT_NEAR(lhs, rhs, 1e-13 * (1 + std::abs(lhs)));
  }
}

// ---- Conv2d ----------------------------------------------------------------------------------------

struct ConvCase {
  index_t channels, height, width, outputs;
  bool bias;
  index_t nb;
  int kernel = 3, stride = 1;
};
const ConvCase kConvCases[] = {{1, 5, 7, 1, false, 3},       {3, 4, 5, 4, true, 2},        {2, 1, 1, 5, true, 1},
                               {4, 6, 3, 2, false, 4},       {5, 3, 3, 8, true, 2},        {2, 5, 4, 3, false, 2, 3, 2},
                               {3, 6, 6, 2, true, 2, 3, 2}, {3, 5, 3, 4, false, 3, 1, 1}, {2, 7, 4, 3, false, 2, 1, 2}};

std::unique_ptr<Layer<double>> make_conv(const ConvCase& c, index_t offset) {
  return make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset, c.kernel, c.stride);
}

// Direct convolution, PyTorch semantics (weight [out, in, k, k], padding k/2, stride s).
Vec naive_conv(const ConvCase& c, const Vec& params, index_t offset, const Vec& x) {
  const index_t H = c.height, W = c.width, k = c.kernel, s = c.stride, pad = k / 2;
  const index_t OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
  Vec y(std::size_t(c.outputs * OH * OW * c.nb));
  for (index_t e = 0; e < c.nb; ++e)
    for (index_t o = 0; o < c.outputs; ++o)
      for (index_t h = 0; h < OH; ++h)
        for (index_t w = 0; w < OW; ++w) {
          long double sum = c.bias ? params[std::size_t(offset + c.outputs * c.channels * k * k + o)] : 0;
          for (index_t i = 0; i < c.channels; ++i)
            for (index_t kh = 0; kh < k; ++kh)
              for (index_t kw = 0; kw < k; ++kw) {
                const index_t hh = h * s + kh - pad, ww = w * s + kw - pad;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                sum += (long double)params[std::size_t(offset + ((o * c.channels + i) * k + kh) * k + kw)] *
                       x[std::size_t(((e * c.channels + i) * H + hh) * W + ww)];
              }
          y[std::size_t(((e * c.outputs + o) * OH + h) * OW + w)] = double(sum);
        }
  return y;
}

TEST_P(CnnLayers, ConvForwardMatchesDirectConvolution) {
  for (const ConvCase& c : kConvCases) {
    const index_t offset = 7;
    auto layer = make_conv(c, offset);
    const index_t count = layer->parameter_count(), k2 = c.kernel * c.kernel;
    ASSERT_EQ(count, c.outputs * c.channels * k2 + (c.bias ? c.outputs : 0));
    const TensorShape os = layer->output_shape();
    EXPECT_EQ(os.channels, c.outputs);
    EXPECT_EQ(os.height, (c.height - 1) / c.stride + 1);  // PyTorch: ⌊(H + 2·(k/2) − k)/s⌋ + 1
    EXPECT_EQ(os.width, (c.width - 1) / c.stride + 1);
    // PyTorch-default init: U(±1/√(in·k²)), drawn weight then bias from one generator.
    Vec w = random_vector<double>(std::size_t(offset + count + 3), 21);
    std::mt19937_64 rng(5), replay(5);
    layer->initialize(rng, w.data() + offset);
    const double bound = 1 / std::sqrt(double(c.channels * k2));
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (index_t i = 0; i < count; ++i) EXPECT_EQ(w[std::size_t(offset + i)], uniform(replay));
    const Vec x = random_vector<double>(std::size_t(c.channels * c.height * c.width * c.nb), 22);
    const Harness h(device(), *layer, c.channels * c.height * c.width, index_t(w.size()), index_t(w.size()));
    const Vec y = h.forward(w, x, c.nb), expected = naive_conv(c, w, offset, x);
    EXPECT_LT(max_diff(y, expected), 1e-14) << c.channels << "→" << c.outputs << " " << c.height << "×" << c.width;
  }
}

TEST_P(CnnLayers, ConvTangentsMatchFiniteDifferences) {
  const index_t m = 3, offset = 5;
  double worst = 0;
  for (const ConvCase& c : kConvCases) {
    auto layer = make_conv(c, offset);
    const index_t in = c.channels * c.height * c.width, out = layer->output_shape().size();
    const index_t d = offset + layer->parameter_count() + 2, ld = d + 3;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, c.nb, 31);
    for (int order : {1, 2}) {
      worst =
          std::max(worst, check_tangents_by_differences(h, order, in, out, c.nb, m, d, ld, w, V, x0, x1, x2, false));
      // The first layer: the input data has zero tangents, so y2 = 0 (null).
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, c.nb, m, d, ld, w, V, x0, {}, {}, true));
    }
    // x1 without x2 (y2 = 2 V∗x1) and x2 without x1 (y2 = W∗x2).
    worst = std::max(worst, check_tangents_by_differences(h, 2, in, out, c.nb, m, d, ld, w, V, x0, x1, {}, false));
    worst = std::max(worst, check_tangents_by_differences(h, 2, in, out, c.nb, m, d, ld, w, V, x0, {}, x2, false));
  }
  EXPECT_LT(worst, 1e-12);
  RecordProperty("max_relative_error", scientific(worst));
}

TEST_P(CnnLayers, ConvReverseIsTheTransposeOfTheJetMap) {
  const index_t m = 3, offset = 4;
  double worst = 0;
  unsigned seed = 100;
  for (const ConvCase& c : kConvCases) {
    auto layer = make_conv(c, offset);
    const index_t in = c.channels * c.height * c.width, out = layer->output_shape().size();
    const index_t count = layer->parameter_count(), d = offset + count + 2, ld = d + 3;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, c.nb, 41);
    for (int order : {0, 1, 2}) {
      // Inside a network: input tangents and adjoints.
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, c.nb, m, d, ld, offset, count, w, V, x0,
                                                         order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, true,
                                                         seed += 50));
      // The first layer: no input tangents, no input adjoints; only the gradient.
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, c.nb, m, d, ld, offset, count, w, V, x0,
                                                         {}, {}, false, seed += 50));
      // Input adjoints asked for although the input tangents are zero.
      if (order >= 1)
        worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, c.nb, m, d, ld, offset, count, w, V, x0,
                                                           {}, {}, true, seed += 50));
    }
  }
  EXPECT_LT(worst, 1e-12);
  RecordProperty("max_relative_error", scientific(worst));
}

// Scratch grown for a big chunk and reused for smaller ones: chunked gradients add up to the
// unchunked ones (to rounding), whatever ran before.
TEST_P(CnnLayers, ConvChunksAgreeWithOneBatch) {
  const ConvCase c{3, 5, 4, 4, true, 5};
  const index_t m = 2, offset = 0, in = c.channels * c.height * c.width;
  auto layer = make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset);
  auto fresh = make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset);
  const index_t out = layer->output_shape().size(), d = layer->parameter_count(), ld = d;
  const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, c.nb, 51);
  Vec yb[3];
  for (int k = 0; k < 3; ++k) yb[k] = random_vector<double>(std::size_t(out * c.nb * m), 56 + k);
  const Vec zero(std::size_t(ld * m), 0.0);
  const Harness big(device(), *layer, in, d, ld), small(device(), *fresh, in, d, ld);
  const Reversed all = big.reverse(2, c.nb, m, w, V, x0, x1, x2, yb, true, zero);
  // Chunks of 3 and 2 examples on the layer that has seen 5, and on a fresh one.
  auto columns = [&](const Vec& v, index_t rows, index_t first, index_t n, index_t dirs) {
    Vec r;
    for (index_t j = 0; j < dirs; ++j) {
      const Vec b = slice(v, (j * c.nb + first) * rows, n * rows);
      r.insert(r.end(), b.begin(), b.end());
    }
    return r;
  };
  for (const Harness* h : {&big, &small}) {
    Vec G = zero;
    for (auto [first, n] : {std::pair<index_t, index_t>{0, 3}, {3, 2}}) {
      const Vec chunk_yb[3] = {columns(yb[0], out, first, n, m), columns(yb[1], out, first, n, m),
                               columns(yb[2], out, first, n, m)};
      const Reversed part = h->reverse(2, n, m, w, V, columns(x0, in, first, n, 1), columns(x1, in, first, n, m),
                                       columns(x2, in, first, n, m), chunk_yb, true, G);
      G = part.G;
      for (int k = 0; k < 3; ++k) EXPECT_LT(max_diff(part.xb[k], columns(all.xb[k], in, first, n, m)), 1e-13);
      const Tangents t = h->tangents(2, n, m, w, V, columns(x0, in, first, n, 1), columns(x1, in, first, n, m),
                                     columns(x2, in, first, n, m));
      const Tangents whole = big.tangents(2, c.nb, m, w, V, x0, x1, x2);
      EXPECT_LT(max_diff(t.y1, columns(whole.y1, out, first, n, m)), 1e-13);
      EXPECT_LT(max_diff(t.y2, columns(whole.y2, out, first, n, m)), 1e-13);
    }
    EXPECT_LT(max_diff(G, all.G), 1e-12 * (1 + max_abs(all.G)));
  }
}

// A null output adjoint component means zero, for both layers.
TEST_P(CnnLayers, NullAdjointsMeanZero) {
  const index_t m = 2, nb = 2;
  const TensorShape s{2, 4, 5};
  std::unique_ptr<Layer<double>> layers[] = {make_conv2d<double>(s, 3, true, 1), make_avgpool2<double>(s)};
  for (const auto& layer : layers) {
    const index_t in = s.size(), out = layer->output_shape().size(), d = layer->parameter_count() + 2, ld = d;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, 71);
    const Vec G0 = random_vector<double>(std::size_t(ld * m), 76), zero(std::size_t(out * nb * m), 0.0);
    const Vec yb = random_vector<double>(std::size_t(out * nb * m), 77);
    for (int missing = 0; missing < 3; ++missing) {
      Vec with_null[3] = {yb, yb, yb}, with_zero[3] = {yb, yb, yb};
      with_null[missing].clear();
      with_zero[missing] = zero;
      const Reversed a = h.reverse(2, nb, m, w, V, x0, x1, x2, with_null, true, G0);
      const Reversed b = h.reverse(2, nb, m, w, V, x0, x1, x2, with_zero, true, G0);
      EXPECT_LT(max_diff(a.G, b.G), 1e-14) << "ȳ" << missing;
      for (int k = 0; k < 3; ++k) EXPECT_LT(max_diff(a.xb[k], b.xb[k]), 1e-14) << "ȳ" << missing << " x̄" << k;
    }
  }
}

// ---- AvgPool2d -------------------------------------------------------------------------------------

TEST_P(CnnLayers, PoolJetsAndReverse) {
  const index_t m = 2, nb = 3;
  double worst = 0;
  unsigned seed = 700;
  for (TensorShape s : {TensorShape{2, 4, 6}, TensorShape{3, 5, 3}, TensorShape{1, 2, 2}}) {
    auto layer = make_avgpool2<double>(s);
    EXPECT_EQ(layer->parameter_count(), 0);
    const TensorShape os = layer->output_shape();
    EXPECT_EQ(os.channels, s.channels);
    EXPECT_EQ(os.height, s.height / 2);
    EXPECT_EQ(os.width, s.width / 2);
    const index_t in = s.size(), out = os.size(), d = 3, ld = d;
    const Harness h(device(), *layer, in, d, ld);
    const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, 61);
    for (int order : {1, 2}) {
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, x2, false));
      worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, {}, true));
    }
    EXPECT_TRUE(h.tangents(1, nb, m, w, V, x0, {}, {}).y1.empty()) << "a zero tangent stays null";
    for (int order : {0, 1, 2})
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, nb, m, d, ld, 0, 0, w, V, x0,
                                                         order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, true,
                                                         seed += 50));
  }
  EXPECT_LT(worst, 1e-13);
  RecordProperty("max_relative_error", scientific(worst));
}

CFLOW_TEST_ON_ALL_BACKENDS(ConvKernels);
CFLOW_TEST_ON_ALL_BACKENDS(CnnLayers);

}  // namespace
}  // namespace cflow
