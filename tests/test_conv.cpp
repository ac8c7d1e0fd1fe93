// CNN layers (Conv2d 3×3 same, AvgPool2d(2)) and their kernels, proven on their own, in float64:
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
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using Vec = std::vector<double>;

double dot(const Vec& a, const Vec& b) {
  long double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (long double)a[i] * b[i];
  return double(s);
}
double max_abs(const Vec& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}
double max_diff(const Vec& a, const Vec& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
// a + s·b (b may be empty: zero)
Vec axpy(const Vec& a, double s, const Vec& b) {
  Vec r = a;
  for (std::size_t i = 0; i < b.size(); ++i) r[i] += s * b[i];
  return r;
}
Vec slice(const Vec& v, index_t first, index_t count) {
  if (v.empty()) return {};
  return Vec(v.begin() + first, v.begin() + first + count);
}
std::string scientific(double v) {
  std::ostringstream out;
  out << std::scientific << v;
  return out.str();
}
Buffer<double> on(const Device& dev, const Vec& v) { return Buffer<double>(dev, std::span<const double>(v)); }

class ConvKernels : public BackendTest {};
class CnnLayers : public BackendTest {};

// ---- kernels ---------------------------------------------------------------------------------------

struct Image {
  index_t channels, height, width, count;
};
const Image kImages[] = {{1, 1, 1, 1}, {2, 3, 5, 2}, {3, 4, 4, 3}, {1, 7, 2, 1}, {4, 2, 6, 2}};

TEST_P(ConvKernels, Im2colAndCol2imAreAdjoint) {
  for (const Image& s : kImages) {
    const index_t xs = s.channels * s.height * s.width * s.count, cs = 9 * xs;
    const Vec x = random_vector<double>(std::size_t(xs), 11), y = random_vector<double>(std::size_t(cs), 12);
    Buffer<double> dx = on(device(), x), dy = on(device(), y), col(device(), cs), xt(device(), xs);
    CFLOW_DISPATCH(device(), im2col3x3<double>, device(), s.channels, s.height, s.width, s.count, dx.data(),
                   col.data());
    CFLOW_DISPATCH(device(), col2im3x3<double>, device(), s.channels, s.height, s.width, s.count, dy.data(),
                   xt.data());
    const Vec c = col.to_host();
    // im2col entries, directly from the definition
    const index_t K = 9 * s.channels, HW = s.height * s.width;
    for (index_t q = 0; q < HW * s.count; ++q)
      for (index_t k = 0; k < K; ++k) {
        const index_t e = q / HW, h = (q % HW) / s.width + (k % 9) / 3 - 1, w = q % s.width + k % 3 - 1;
        const bool inside = h >= 0 && h < s.height && w >= 0 && w < s.width;
        const double expected = inside ? x[std::size_t(((e * s.channels + k / 9) * s.height + h) * s.width + w)] : 0;
        ASSERT_EQ(c[std::size_t(k + q * K)], expected);
      }
    const double lhs = dot(c, y), rhs = dot(x, xt.to_host());
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << s.channels << "×" << s.height << "×" << s.width;
  }
}

TEST_P(ConvKernels, LayoutTransposesInvertEachOther) {
  const index_t C = 3, HW = 5, count = 4, n = C * HW * count;
  const Vec x = random_vector<double>(std::size_t(n), 13);
  Buffer<double> dx = on(device(), x), t(device(), n), back(device(), n);
  CFLOW_DISPATCH(device(), nchw_to_nhwc<double>, device(), C, HW, count, dx.data(), t.data());
  CFLOW_DISPATCH(device(), nhwc_to_nchw<double>, device(), C, HW, count, t.data(), back.data());
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

// ---- a host harness that runs one layer ------------------------------------------------------------

struct Tangents {
  Vec y1, y2;  // empty: the layer returned a null (zero) tangent
};
struct Reversed {
  Vec xb[3];
  Vec G;
};

class Harness {
 public:
  Harness(const Device& dev, const Layer<double>& layer, index_t in_size, index_t d, index_t ld)
      : dev_(dev), layer_(layer), in_(in_size), out_(layer.output_shape().size()), d_(d), ld_(ld) {}

  Vec forward(const Vec& w, const Vec& x0, index_t nb) const {
    Buffer<double> dw = on(dev_, w), dx = on(dev_, x0), y(dev_, out_ * nb), ones = all_ones(nb);
    const JetPass<double> p{dev_, 0, nb, 1, dw.data(), nullptr, nullptr, ld_, ones.data()};
    layer_.forward(p, dx.data(), y.data());
    return y.to_host();
  }

  // x1, x2 empty: null tangents.
  Tangents tangents(int order, index_t nb, index_t m, const Vec& w, const Vec& V, const Vec& x0, const Vec& x1,
                    const Vec& x2) const {
    Buffer<double> dw = on(dev_, w), dV = on(dev_, V), d0 = on(dev_, x0), d1 = on(dev_, x1), d2 = on(dev_, x2);
    Buffer<double> y0(dev_, out_ * nb), y1(dev_, out_ * nb * m), y2(dev_, out_ * nb * m), ones = all_ones(nb);
    const JetPass<double> p{dev_, order, nb, m, dw.data(), dV.data(), nullptr, ld_, ones.data()};
    layer_.forward(p, d0.data(), y0.data());
    Jet<double> in{d0.data(), {d1.data(), d2.data()}}, out{y0.data(), {y1.data(), order == 2 ? y2.data() : nullptr}};
    layer_.forward_tangents(p, in, out);
    Tangents t;
    if (out.tangent[0]) t.y1 = y1.to_host();
    if (order == 2 && out.tangent[1]) t.y2 = y2.to_host();
    return t;
  }

  // yb[k] for k ≤ order; want_xb: request input adjoints; G0: the accumulator's initial value.
  Reversed reverse(int order, index_t nb, index_t m, const Vec& w, const Vec& V, const Vec& x0, const Vec& x1,
                   const Vec& x2, const Vec (&yb)[3], bool want_xb, const Vec& G0) const {
    Buffer<double> dw = on(dev_, w), dV = on(dev_, V), d0 = on(dev_, x0), d1 = on(dev_, x1), d2 = on(dev_, x2);
    Buffer<double> G = on(dev_, G0), ones = all_ones(nb);
    Buffer<double> db[3] = {on(dev_, yb[0]), on(dev_, yb[1]), on(dev_, yb[2])};
    Buffer<double> xb[3] = {Buffer<double>(dev_, in_ * nb * m), Buffer<double>(dev_, in_ * nb * m),
                            Buffer<double>(dev_, in_ * nb * m)};
    const JetPass<double> p{dev_, order, nb, order ? m : 1, dw.data(), order ? dV.data() : nullptr, G.data(), ld_,
                            ones.data()};
    Jet<double> in{d0.data(), {d1.data(), d2.data()}}, out;
    Adjoint<double> ab{{db[0].data(), db[1].data(), db[2].data()}};
    Adjoint<double> xa{{xb[0].data(), xb[1].data(), xb[2].data()}};
    layer_.reverse(p, in, out, ab, want_xb ? &xa : nullptr);
    Reversed r;
    for (int k = 0; k <= order && want_xb; ++k) r.xb[k] = xb[k].to_host();
    r.G = G.to_host();
    return r;
  }

 private:
  Buffer<double> all_ones(index_t nb) const { return on(dev_, Vec(std::size_t(nb), 1.0)); }
  const Device& dev_;
  const Layer<double>& layer_;
  index_t in_, out_, d_, ld_;
};

// The column block of direction j in a [rows × nb × m] tangent (empty stays empty).
Vec block(const Vec& v, index_t rows, index_t nb, index_t j) { return slice(v, j * rows * nb, rows * nb); }

// Forward jets against finite differences of the layer's forward pass along
// w + e v_j, x0 + e x1_j + e²/2 x2_j, every direction j. Returns the largest relative error.
double check_tangents_by_differences(const Harness& h, int order, index_t in, index_t out, index_t nb, index_t m,
                                     index_t d, index_t ld, const Vec& w, const Vec& V, const Vec& x0, const Vec& x1,
                                     const Vec& x2, bool expect_null_y2) {
  const Tangents t = h.tangents(order, nb, m, w, V, x0, x1, x2);
  EXPECT_FALSE(t.y1.empty());
  if (order == 2) {
    EXPECT_EQ(t.y2.empty(), expect_null_y2);
  }
  const double step = 0.25;
  double worst = 0;
  for (index_t j = 0; j < m; ++j) {
    const Vec v = slice(V, j * ld, d), x1j = block(x1, in, nb, j), x2j = block(x2, in, nb, j);
    auto y = [&](double e) { return h.forward(axpy(w, e, v), axpy(axpy(x0, e, x1j), e * e / 2, x2j), nb); };
    const Vec ym2 = y(-2 * step), ym1 = y(-step), y0 = y(0), yp1 = y(step), yp2 = y(2 * step);
    Vec d1(y0.size()), d2(y0.size());
    for (std::size_t i = 0; i < y0.size(); ++i) {
      d1[i] = (-yp2[i] + 8 * yp1[i] - 8 * ym1[i] + ym2[i]) / (12 * step);
      d2[i] = (-yp2[i] + 16 * yp1[i] - 30 * y0[i] + 16 * ym1[i] - ym2[i]) / (12 * step * step);
    }
    worst = std::max(worst, max_diff(block(t.y1, out, nb, j), d1) / (1 + max_abs(d1)));
    if (order == 2) {
      const Vec y2 = t.y2.empty() ? Vec(d2.size(), 0.0) : block(t.y2, out, nb, j);
      worst = std::max(worst, max_diff(y2, d2) / (1 + max_abs(d2)));
    }
  }
  return worst;
}

// Reverse against the transpose of the jet map, per direction. Returns the largest relative error.
double check_reverse_is_transpose(const Harness& h, int order, index_t in, index_t out, index_t nb, index_t m,
                                  index_t d, index_t ld, index_t offset, index_t count, const Vec& w, const Vec& V,
                                  const Vec& x0, const Vec& x1, const Vec& x2, bool want_xb, unsigned seed) {
  const index_t mc = order == 0 ? 1 : m;  // columns of every component, z̄0 included
  Vec yb[3];
  for (int k = 0; k <= order; ++k) yb[k] = random_vector<double>(std::size_t(out * nb * mc), seed + 10 + k);
  const Vec G0 = random_vector<double>(std::size_t(ld * mc), seed + 20);
  const Reversed r = h.reverse(order, nb, m, w, V, x0, x1, x2, yb, want_xb, G0);
  // Only the layer's slice of every gradient column moves.
  for (index_t j = 0; j < mc; ++j)
    for (index_t i = 0; i < ld; ++i)
      if (i < offset || i >= offset + count) {
        EXPECT_EQ(r.G[std::size_t(j * ld + i)], G0[std::size_t(j * ld + i)]);
      }
  // Perturbation (ẋ, ẇ): ẇ only on the layer's slice; ẋ only where the input adjoints are asked for
  // (a zero input tangent is perturbed from zero: x̄k does not depend on xk).
  Vec wd(std::size_t(d), 0.0);
  const Vec ws = random_vector<double>(std::size_t(count), seed + 30);
  std::copy(ws.begin(), ws.end(), wd.begin() + offset);
  Vec xd[3];
  if (want_xb) {
    xd[0] = random_vector<double>(x0.size(), seed + 31);
    if (order >= 1) xd[1] = random_vector<double>(std::size_t(in * nb * m), seed + 32);
    if (order >= 2) xd[2] = random_vector<double>(std::size_t(in * nb * m), seed + 33);
  }
  // ẏ by a central difference of the jet map (quadratic in e).
  const double step = 0.5;
  auto jet = [&](double e) {
    std::vector<Vec> y;
    y.push_back(h.forward(axpy(w, e, wd), axpy(x0, e, xd[0]), nb));
    if (order >= 1) {
      auto moved = [&](const Vec& x, const Vec& dx) {
        if (dx.empty()) return x;
        return axpy(x.empty() ? Vec(dx.size(), 0.0) : x, e, dx);
      };
      const Tangents t = h.tangents(order, nb, m, axpy(w, e, wd), V, moved(x0, xd[0]), moved(x1, xd[1]),
                                    moved(x2, xd[2]));
      y.push_back(t.y1);
      if (order == 2) y.push_back(t.y2.empty() ? Vec(std::size_t(out * nb * m), 0.0) : t.y2);
    }
    return y;
  };
  const std::vector<Vec> plus = jet(step), minus = jet(-step);
  std::vector<Vec> yd(plus.size());
  for (std::size_t k = 0; k < plus.size(); ++k) {
    yd[k].resize(plus[k].size());
    for (std::size_t i = 0; i < plus[k].size(); ++i) yd[k][i] = (plus[k][i] - minus[k][i]) / (2 * step);
  }
  double worst = 0;
  for (index_t j = 0; j < mc; ++j) {
    double lhs = dot(block(yb[0], out, nb, j), yd[0]);
    for (int k = 1; k <= order; ++k) lhs += dot(block(yb[k], out, nb, j), block(yd[k], out, nb, j));
    double rhs = dot(slice(axpy(r.G, -1, G0), j * ld, d), wd);
    if (want_xb) {
      rhs += dot(block(r.xb[0], in, nb, j), xd[0]);
      for (int k = 1; k <= order; ++k) rhs += dot(block(r.xb[k], in, nb, j), block(xd[k], in, nb, j));
    }
    worst = std::max(worst, std::abs(lhs - rhs) / (1 + std::abs(lhs)));
  }
  return worst;
}

// ---- Conv2d ----------------------------------------------------------------------------------------

struct ConvCase {
  index_t channels, height, width, outputs;
  bool bias;
  index_t nb;
};
const ConvCase kConvCases[] = {{1, 5, 7, 1, false, 3}, {3, 4, 5, 4, true, 2}, {2, 1, 1, 5, true, 1},
                               {4, 6, 3, 2, false, 4}, {5, 3, 3, 8, true, 2}};

// Direct convolution, PyTorch semantics (weight [out, in, 3, 3], padding 1).
Vec naive_conv(const ConvCase& c, const Vec& params, index_t offset, const Vec& x) {
  const index_t H = c.height, W = c.width;
  Vec y(std::size_t(c.outputs * H * W * c.nb));
  for (index_t e = 0; e < c.nb; ++e)
    for (index_t o = 0; o < c.outputs; ++o)
      for (index_t h = 0; h < H; ++h)
        for (index_t w = 0; w < W; ++w) {
          long double s = c.bias ? params[std::size_t(offset + c.outputs * c.channels * 9 + o)] : 0;
          for (index_t i = 0; i < c.channels; ++i)
            for (index_t kh = 0; kh < 3; ++kh)
              for (index_t kw = 0; kw < 3; ++kw) {
                const index_t hh = h + kh - 1, ww = w + kw - 1;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                s += (long double)params[std::size_t(offset + ((o * c.channels + i) * 3 + kh) * 3 + kw)] *
                     x[std::size_t(((e * c.channels + i) * H + hh) * W + ww)];
              }
          y[std::size_t(((e * c.outputs + o) * H + h) * W + w)] = double(s);
        }
  return y;
}

TEST_P(CnnLayers, ConvForwardMatchesDirectConvolution) {
  for (const ConvCase& c : kConvCases) {
    const index_t offset = 7;
    auto layer = make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset);
    const index_t count = layer->parameter_count();
    ASSERT_EQ(count, c.outputs * c.channels * 9 + (c.bias ? c.outputs : 0));
    const TensorShape os = layer->output_shape();
    EXPECT_EQ(os.channels, c.outputs);
    EXPECT_EQ(os.height, c.height);
    EXPECT_EQ(os.width, c.width);
    // PyTorch-default init: U(±1/√(in·9)), drawn weight then bias from one generator.
    Vec w = random_vector<double>(std::size_t(offset + count + 3), 21);
    std::mt19937_64 rng(5), replay(5);
    layer->initialize(rng, w.data() + offset);
    const double bound = 1 / std::sqrt(double(c.channels * 9));
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
    auto layer = make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset);
    const index_t in = c.channels * c.height * c.width, out = layer->output_shape().size();
    const index_t d = offset + layer->parameter_count() + 2, ld = d + 3;
    const Harness h(device(), *layer, in, d, ld);
    const Vec w = random_vector<double>(std::size_t(d), 31), V = random_vector<double>(std::size_t(ld * m), 32);
    const Vec x0 = random_vector<double>(std::size_t(in * c.nb), 33);
    const Vec x1 = random_vector<double>(std::size_t(in * c.nb * m), 34);
    const Vec x2 = random_vector<double>(std::size_t(in * c.nb * m), 35);
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
    auto layer = make_conv2d<double>({c.channels, c.height, c.width}, c.outputs, c.bias, offset);
    const index_t in = c.channels * c.height * c.width, out = layer->output_shape().size();
    const index_t count = layer->parameter_count(), d = offset + count + 2, ld = d + 3;
    const Harness h(device(), *layer, in, d, ld);
    const Vec w = random_vector<double>(std::size_t(d), 41), V = random_vector<double>(std::size_t(ld * m), 42);
    const Vec x0 = random_vector<double>(std::size_t(in * c.nb), 43);
    const Vec x1 = random_vector<double>(std::size_t(in * c.nb * m), 44);
    const Vec x2 = random_vector<double>(std::size_t(in * c.nb * m), 45);
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
  const Vec w = random_vector<double>(std::size_t(d), 51), V = random_vector<double>(std::size_t(ld * m), 52);
  const Vec x0 = random_vector<double>(std::size_t(in * c.nb), 53);
  const Vec x1 = random_vector<double>(std::size_t(in * c.nb * m), 54);
  const Vec x2 = random_vector<double>(std::size_t(in * c.nb * m), 55);
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
    const Vec w = random_vector<double>(std::size_t(d), 71), V = random_vector<double>(std::size_t(ld * m), 72);
    const Vec x0 = random_vector<double>(std::size_t(in * nb), 73);
    const Vec x1 = random_vector<double>(std::size_t(in * nb * m), 74);
    const Vec x2 = random_vector<double>(std::size_t(in * nb * m), 75);
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
    const Vec w = random_vector<double>(std::size_t(d), 61), V = random_vector<double>(std::size_t(ld * m), 62);
    const Vec x0 = random_vector<double>(std::size_t(in * nb), 63);
    const Vec x1 = random_vector<double>(std::size_t(in * nb * m), 64);
    const Vec x2 = random_vector<double>(std::size_t(in * nb * m), 65);
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
