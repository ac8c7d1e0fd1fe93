#pragma once
// Checks of one engine layer on its own, in float64 (tests/test_conv.cpp and the other layer tests):
//   * a host harness that runs the layer's forward, forward_tangents and reverse on host vectors;
//   * the forward jets equal finite differences of the layer's own forward pass along
//     w + e v, x0 + e x1 + e²/2 x2 (y(e) is a polynomial of low degree for linear layers, smooth
//     otherwise: the 5-point stencils are exact up to rounding or O(step⁴));
//   * the reverse is the transpose of the jet map: for every direction j,
//     Σ_k ⟨ȳk_j, ẏk_j⟩ = ⟨x̄0_j, ẋ0⟩ + Σ_{k≥1} ⟨x̄k_j, ẋk_j⟩ + ⟨Ḡ_j, ẇ⟩, with ẏ the derivative of the
//     jet map along (ẋ, ẇ) (by a central difference: exact for a quadratic, O(step²) otherwise).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <span>
#include <string>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "host/engine/layer.h"
#include "test_support.h"

namespace cflow::testing::layer_check {

using Vec = std::vector<double>;

inline double dot(const Vec& a, const Vec& b) {
  long double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (long double)a[i] * b[i];
  return double(s);
}
inline double max_abs(const Vec& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}
inline double max_diff(const Vec& a, const Vec& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
// a + s·b (b may be empty: zero)
inline Vec axpy(const Vec& a, double s, const Vec& b) {
  Vec r = a;
  for (std::size_t i = 0; i < b.size(); ++i) r[i] += s * b[i];
  return r;
}
inline Vec slice(const Vec& v, index_t first, index_t count) {
  if (v.empty()) return {};
  Vec part(static_cast<std::size_t>(count));  // (not the iterator-range constructor: GCC 12 warns falsely on it inlined)
  std::copy_n(v.begin() + first, count, part.begin());
  return part;
}
inline std::string scientific(double v) {
  std::ostringstream out;
  out << std::scientific << v;
  return out.str();
}
inline Buffer<double> on(const Device& dev, const Vec& v) { return Buffer<double>(dev, std::span<const double>(v)); }

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
    // As the network does: the primal, then (orders ≥ 1) the tangents of this chunk, then the reverse.
    Buffer<double> y0(dev_, out_ * nb), y1(dev_, out_ * nb * m), y2(dev_, out_ * nb * m);
    Jet<double> in{d0.data(), {d1.data(), d2.data()}}, out{y0.data(), {y1.data(), y2.data()}};
    layer_.forward(p, in.primal, out.primal);
    if (order >= 1) layer_.forward_tangents(p, in, out);
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

// A point, directions and an input jet for one layer: w [d], V [ld × m], x0 [in × nb], x1, x2
// [in × nb × m], from the seeds seed .. seed + 4.
struct Inputs {
  Vec w, V, x0, x1, x2;
};
inline Inputs random_inputs(index_t d, index_t ld, index_t m, index_t in, index_t nb, unsigned seed) {
  auto draw = [&](index_t n, unsigned k) { return random_vector<double>(std::size_t(n), seed + k); };
  return {draw(d, 0), draw(ld * m, 1), draw(in * nb, 2), draw(in * nb * m, 3), draw(in * nb * m, 4)};
}

// The column block of direction j in a [rows × nb × m] tangent (empty stays empty).
inline Vec block(const Vec& v, index_t rows, index_t nb, index_t j) { return slice(v, j * rows * nb, rows * nb); }

// Forward jets against finite differences of the layer's forward pass along
// w + e v_j, x0 + e x1_j + e²/2 x2_j, every direction j. Returns the largest relative error.
inline double check_tangents_by_differences(const Harness& h, int order, index_t in, index_t out, index_t nb, index_t m,
                                     index_t d, index_t ld, const Vec& w, const Vec& V, const Vec& x0, const Vec& x1,
                                     const Vec& x2, bool expect_null_y2, double step = 0.25) {
  const Tangents t = h.tangents(order, nb, m, w, V, x0, x1, x2);
  EXPECT_FALSE(t.y1.empty());
  if (order == 2) {
    EXPECT_EQ(t.y2.empty(), expect_null_y2);
  }
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
inline double check_reverse_is_transpose(const Harness& h, int order, index_t in, index_t out, index_t nb, index_t m,
                                  index_t d, index_t ld, index_t offset, index_t count, const Vec& w, const Vec& V,
                                  const Vec& x0, const Vec& x1, const Vec& x2, bool want_xb, unsigned seed,
                                  double step = 0.5) {
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
  // ẏ by a 5-point central difference of the jet map (exact for polynomials of degree ≤ 4: the
  // linear layers' jet maps are quadratic in e).
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
  const std::vector<Vec> p2 = jet(2 * step), p1 = jet(step), m1 = jet(-step), m2 = jet(-2 * step);
  std::vector<Vec> yd(p1.size());
  for (std::size_t k = 0; k < p1.size(); ++k) {
    yd[k].resize(p1[k].size());
    for (std::size_t i = 0; i < p1[k].size(); ++i)
      yd[k][i] = (-p2[k][i] + 8 * p1[k][i] - 8 * m1[k][i] + m2[k][i]) / (12 * step);
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

// Both checks above for one layer whose parameters are [offset, offset + parameter_count()) of w, at
// a random point (nb = 2 examples, m = 2 directions, seeds from `seed`): jets of orders 1–2 (steps of
// tangent_step) and the reverse of orders 0–2 with and without input adjoints (steps of reverse_step).
// Returns the largest relative error.
inline double check_jets_and_reverse(const Device& dev, const Layer<double>& layer, index_t in, index_t offset,
                                     unsigned seed, double tangent_step, double reverse_step) {
  const index_t nb = 2, m = 2, out = layer.output_shape().size(), count = layer.parameter_count();
  const index_t d = offset + count + 1, ld = d + 1;
  const Harness h(dev, layer, in, d, ld);
  const auto [w, V, x0, x1, x2] = random_inputs(d, ld, m, in, nb, seed);
  double worst = 0;
  for (int order : {1, 2})
    worst = std::max(worst, check_tangents_by_differences(h, order, in, out, nb, m, d, ld, w, V, x0, x1, x2, false,
                                                          tangent_step));
  for (int order : {0, 1, 2})
    for (bool want_xb : {true, false})
      worst = std::max(worst, check_reverse_is_transpose(h, order, in, out, nb, m, d, ld, offset, count, w, V, x0,
                                                         order >= 1 ? x1 : Vec{}, order == 2 ? x2 : Vec{}, want_xb,
                                                         seed + 100 * unsigned(order) + (want_xb ? 50 : 0),
                                                         reverse_step));
  return worst;
}

}  // namespace cflow::testing::layer_check
