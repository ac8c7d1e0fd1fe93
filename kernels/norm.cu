#include <cmath>

#include "kernels/norm.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// The jet of one group's statistics along t (docs/design.md §3.7): means μk of xk, s = v + ε,
// v1 = dv/dt, v2 = d²v/dt², and r = s^{-1/2} with its derivatives r1, r2 along t.
template <class T>
struct GroupJet {
  T mu[3] = {T(0), T(0), T(0)};
  T s = T(0), v1 = T(0), v2 = T(0), r0 = T(0), r1 = T(0), r2 = T(0);
};

// x1 is read for order ≥ 1, x2 (null: zero) for order 2.
template <class T>
CFLOW_HD GroupJet<T> group_jet(int order, index_t n, double epsilon, const T* x0, const T* x1, const T* x2) {
  GroupJet<T> J;
  const T* x[3] = {x0, order >= 1 ? x1 : nullptr, order >= 2 ? x2 : nullptr};
  for (int k = 0; k < 3; ++k) {
    if (!x[k]) continue;
    T sum = T(0);
    for (index_t i = 0; i < n; ++i) sum += x[k][i];
    J.mu[k] = sum / T(n);
  }
  T s00 = T(0), s01 = T(0), s11 = T(0), s02 = T(0);
  for (index_t i = 0; i < n; ++i) {
    const T c0 = x0[i] - J.mu[0], c1 = x[1] ? x[1][i] - J.mu[1] : T(0), c2 = x[2] ? x[2][i] - J.mu[2] : T(0);
    s00 += c0 * c0;
    s01 += c0 * c1;
    s11 += c1 * c1;
    s02 += c0 * c2;
  }
  J.s = s00 / T(n) + T(epsilon);
  J.v1 = T(2) * s01 / T(n);
  J.v2 = T(2) * (s11 + s02) / T(n);
  J.r0 = T(1) / std::sqrt(J.s);
  J.r1 = T(-0.5) * J.r0 / J.s * J.v1;
  J.r2 = T(0.75) * J.r0 / (J.s * J.s) * J.v1 * J.v1 + T(-0.5) * J.r0 / J.s * J.v2;
  return J;
}

// Addresses of one (direction j, example e, group g) thread's data.
struct GroupSite {
  index_t primal, column, param;  // offsets: into x0/y0, into tangents/adjoints, of the group's first parameter
};
CFLOW_HD inline GroupSite group_site(const NormGeometry& g, index_t nb, index_t t) {
  const index_t group = t % g.groups, column = t / g.groups, e = column % nb;
  return {e * g.features() + group * g.group_size, column * g.features() + group * g.group_size,
          group * g.param_stride};
}

template <class T>
CFLOW_KERNEL void norm_forward_kernel(NormGeometry g, index_t nb, const T* params, const T* x0, T* y0) {
  const index_t P = g.parameters();
  for (index_t t : grid_stride(g.groups * nb)) {
    const GroupSite at = group_site(g, nb, t);
    const GroupJet<T> J = group_jet<T>(0, g.group_size, g.epsilon, x0 + at.primal, nullptr, nullptr);
    for (index_t i = 0; i < g.group_size; ++i) {
      const index_t p = at.param + i / g.inner;
      y0[at.primal + i] = params[p] * (x0[at.primal + i] - J.mu[0]) * J.r0 + params[P + p];
    }
  }
}

template <class T>
CFLOW_KERNEL void norm_tangents_kernel(NormGeometry g, int order, index_t nb, index_t m, const T* params, const T* dir,
                                       index_t ld, const T* x0, const T* x1, const T* x2, T* y1, T* y2) {
  const index_t P = g.parameters();
  for (index_t t : grid_stride(g.groups * nb * m)) {
    const GroupSite at = group_site(g, nb, t);
    const T* d = dir + (t / g.groups / nb) * ld;
    const T* x2g = x2 ? x2 + at.column : nullptr;
    const GroupJet<T> J = group_jet<T>(order, g.group_size, g.epsilon, x0 + at.primal, x1 + at.column, x2g);
    for (index_t i = 0; i < g.group_size; ++i) {
      const index_t p = at.param + i / g.inner;
      const T c0 = x0[at.primal + i] - J.mu[0], c1 = x1[at.column + i] - J.mu[1];
      const T h0 = c0 * J.r0, h1 = c1 * J.r0 + c0 * J.r1;
      y1[at.column + i] = params[p] * h1 + d[p] * h0 + d[P + p];
      if (order < 2) continue;
      const T c2 = x2g ? x2g[i] - J.mu[2] : T(0);
      y2[at.column + i] = params[p] * (c2 * J.r0 + T(2) * c1 * J.r1 + c0 * J.r2) + T(2) * d[p] * h1;
    }
  }
}

// Reverse of one group's jet (docs/design.md §3.7): ȳ → h̄ (the adjoints of x̂k) → the adjoints of r's
// jet R0..R2 → of (s, v1, v2) → c̄k → x̄k = c̄k − mean c̄k.
template <class T>
CFLOW_KERNEL void norm_reverse_kernel(NormGeometry g, int order, index_t nb, index_t m, const T* params,
                                      const T* dir, index_t ld, const T* x0, const T* x1, const T* x2, const T* yb0,
                                      const T* yb1, const T* yb2, T* xb0, T* xb1, T* xb2, T* hprod) {
  const index_t n = g.group_size;
  for (index_t t : grid_stride(g.groups * nb * m)) {
    const GroupSite at = group_site(g, nb, t);
    const T* d = order >= 1 ? dir + (t / g.groups / nb) * ld : nullptr;
    const T* xs[3] = {x0 + at.primal, order >= 1 ? x1 + at.column : nullptr,
                      order >= 2 && x2 ? x2 + at.column : nullptr};
    const T* ybs[3] = {yb0, order >= 1 ? yb1 : nullptr, order >= 2 ? yb2 : nullptr};
    const GroupJet<T> J = group_jet<T>(order, n, g.epsilon, xs[0], xs[1], xs[2]);
    // Per feature: centred tangents c, h̄ and (when record, into hprod) Σ ȳk x̂k.
    auto local = [&](index_t i, T c[3], T hb[3], bool record) {
      const index_t p = at.param + i / g.inner;
      T yb[3];
      for (int k = 0; k < 3; ++k) {
        c[k] = xs[k] ? xs[k][i] - J.mu[k] : T(0);
        yb[k] = ybs[k] ? ybs[k][at.column + i] : T(0);
      }
      const T gd = d ? d[p] : T(0);
      hb[0] = params[p] * yb[0] + gd * yb[1];
      hb[1] = params[p] * yb[1] + T(2) * gd * yb[2];
      hb[2] = params[p] * yb[2];
      if (record && hprod) {
        const T h0 = c[0] * J.r0, h1 = c[1] * J.r0 + c[0] * J.r1, h2 = c[2] * J.r0 + T(2) * c[1] * J.r1 + c[0] * J.r2;
        hprod[at.column + i] = yb[0] * h0 + yb[1] * h1 + yb[2] * h2;
      }
    };
    T R0 = T(0), R1 = T(0), R2 = T(0), c[3], hb[3];
    for (index_t i = 0; i < n; ++i) {
      local(i, c, hb, true);
      R0 += hb[0] * c[0] + hb[1] * c[1] + hb[2] * c[2];
      R1 += hb[1] * c[0] + T(2) * hb[2] * c[1];
      R2 += hb[2] * c[0];
    }
    if (!xb0) continue;
    // r0 = s^{-1/2}, r1 = −½ s^{-3/2} v1, r2 = ¾ s^{-5/2} v1² − ½ s^{-3/2} v2, differentiated.
    const T a1 = J.r0 / J.s, a2 = a1 / J.s, a3 = a2 / J.s;  // s^{-3/2}, s^{-5/2}, s^{-7/2}
    const T sb = R0 * T(-0.5) * a1 + R1 * T(0.75) * a2 * J.v1 +
                 R2 * (T(-1.875) * a3 * J.v1 * J.v1 + T(0.75) * a2 * J.v2);
    const T v1b = R1 * T(-0.5) * a1 + R2 * T(1.5) * a2 * J.v1, v2b = R2 * T(-0.5) * a1, two_n = T(2) / T(n);
    auto centred_adjoint = [&](index_t i, T cb[3]) {
      local(i, c, hb, false);
      cb[0] = hb[0] * J.r0 + hb[1] * J.r1 + hb[2] * J.r2 + two_n * (sb * c[0] + v1b * c[1] + v2b * c[2]);
      cb[1] = hb[1] * J.r0 + T(2) * hb[2] * J.r1 + two_n * (v1b * c[0] + T(2) * v2b * c[1]);
      cb[2] = hb[2] * J.r0 + two_n * v2b * c[0];
    };
    T mean[3] = {T(0), T(0), T(0)}, cb[3];
    for (index_t i = 0; i < n; ++i) {
      centred_adjoint(i, cb);
      for (int k = 0; k < 3; ++k) mean[k] += cb[k];
    }
    T* xb[3] = {xb0, xb1, xb2};
    for (index_t i = 0; i < n; ++i) {
      centred_adjoint(i, cb);
      for (int k = 0; k <= order; ++k) xb[k][at.column + i] = cb[k] - mean[k] / T(n);
    }
  }
}

// One thread per (direction j, parameter p): sums over the examples and the features that use p.
template <class T>
CFLOW_KERNEL void norm_parameter_gradient_kernel(NormGeometry g, index_t nb, index_t m, const T* hprod, const T* yb0,
                                                 T* G, index_t ld) {
  const index_t P = g.parameters(), span = g.span();
  for (index_t t : grid_stride(P * m)) {
    const index_t j = t / P, p = t % P;
    T gamma = T(0), beta = T(0);
    for (index_t e = 0; e < nb; ++e)
      for (index_t group = 0; group < g.groups; ++group) {
        const index_t r = p - group * g.param_stride;
        if (r < 0 || r >= span) continue;
        const index_t first = (j * nb + e) * g.features() + group * g.group_size + r * g.inner;
        for (index_t i = first; i < first + g.inner; ++i) {
          gamma += hprod[i];
          if (yb0) beta += yb0[i];
        }
      }
    G[j * ld + p] += gamma;
    G[j * ld + P + p] += beta;
  }
}

template <class T>
void norm_forward(const Device& dev, NormGeometry g, index_t nb, const T* params, const T* x0, T* y0) {
  launch_weighted(dev, g.groups * nb, g.group_size, norm_forward_kernel<T>, g, nb, params, x0, y0);
}
template <class T>
void norm_tangents(const Device& dev, NormGeometry g, int order, index_t nb, index_t m, const T* params, const T* dir,
                   index_t ld, const T* x0, const T* x1, const T* x2, T* y1, T* y2) {
  launch_weighted(dev, g.groups * nb * m, g.group_size, norm_tangents_kernel<T>, g, order, nb, m, params, dir, ld,
                  x0, x1, x2, y1, y2);
}
template <class T>
void norm_reverse(const Device& dev, NormGeometry g, int order, index_t nb, index_t m, const T* params, const T* dir,
                  index_t ld, const T* x0, const T* x1, const T* x2, const T* yb0, const T* yb1, const T* yb2, T* xb0,
                  T* xb1, T* xb2, T* hprod) {
  launch_weighted(dev, g.groups * nb * m, g.group_size, norm_reverse_kernel<T>, g, order, nb, m, params, dir, ld,
                  x0, x1, x2, yb0, yb1, yb2, xb0, xb1, xb2, hprod);
}
template <class T>
void norm_parameter_gradient(const Device& dev, NormGeometry g, index_t nb, index_t m, const T* hprod, const T* yb0,
                             T* G, index_t ld) {
  launch_weighted(dev, g.parameters() * m, nb * g.groups * g.inner, norm_parameter_gradient_kernel<T>, g, nb, m,
                  hprod, yb0, G, ld);
}

#define CFLOW_INSTANTIATE(T)                                                                                     \
  template void norm_forward<T>(const Device&, NormGeometry, index_t, const T*, const T*, T*);                  \
  template void norm_tangents<T>(const Device&, NormGeometry, int, index_t, index_t, const T*, const T*, index_t, \
                                 const T*, const T*, const T*, T*, T*);                                          \
  template void norm_reverse<T>(const Device&, NormGeometry, int, index_t, index_t, const T*, const T*, index_t,  \
                                const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*);     \
  template void norm_parameter_gradient<T>(const Device&, NormGeometry, index_t, index_t, const T*, const T*, T*, \
                                           index_t);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
