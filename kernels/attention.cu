#include <cmath>

#include "kernels/attention.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

// The keys row r may see.
CFLOW_HD inline index_t visible_keys(const SoftmaxRows& g, index_t r) { return g.causal ? r % g.keys + 1 : g.keys; }

// ⟨p, s⟩ over the first n entries (s null: 0).
template <class T>
CFLOW_HD T weighted_mean(index_t n, const T* p, const T* s) {
  T sum = T(0);
  if (s)
    for (index_t j = 0; j < n; ++j) sum += p[j] * s[j];
  return sum;
}

template <class T>
CFLOW_KERNEL void softmax_jet_kernel(SoftmaxRows g, int order, const T* s0, const T* s1, const T* s2, T* p0, T* p1,
                                     T* p2) {
  for (index_t r : grid_stride(g.rows)) {
    const index_t first = r * g.keys, n = visible_keys(g, r);
    T* p = p0 + first;
    T top = s0[first];
    for (index_t j = 1; j < n; ++j) top = s0[first + j] > top ? s0[first + j] : top;
    T total = T(0);
    for (index_t j = 0; j < n; ++j) total += (p[j] = std::exp(s0[first + j] - top));
    for (index_t j = 0; j < g.keys; ++j) p[j] = j < n ? p[j] / total : T(0);
    if (order < 1) continue;
    const T a1 = weighted_mean(n, p, s1 + first), a2 = order >= 2 ? weighted_mean(n, p, s2 + first) : T(0);
    T b = T(0);  // ⟨p0, u1²⟩
    for (index_t j = 0; j < n; ++j) b += p[j] * (s1[first + j] - a1) * (s1[first + j] - a1);
    for (index_t j = 0; j < g.keys; ++j) {
      const T u1 = j < n ? s1[first + j] - a1 : T(0);
      p1[first + j] = p[j] * u1;
      if (order >= 2) p2[first + j] = j < n ? p[j] * (s2[first + j] - a2 + u1 * u1 - b) : T(0);
    }
  }
}

// Reverse of softmax_jet_kernel, step by step (docs/design.md §3.10):
//   b̄ = −⟨p̄2, p⟩,  ū2 = p p̄2,  ū1 = p (p̄1 + 2u1(p̄2 + b̄)),  s̄k = ūk − (Σūk) p  (k = 1, 2),
//   p̄ = p̄0 + p̄1 u1 + p̄2 (u2 + u1² − b) + b̄ u1² − (Σū1) u1 − (Σū2) u2,  s̄0 = p (p̄ − ⟨p, p̄⟩).
template <class T>
CFLOW_KERNEL void softmax_jet_reverse_kernel(SoftmaxRows g, int order, const T* p0, const T* s1, const T* s2,
                                             const T* pb0, const T* pb1, const T* pb2, T* sb0, T* sb1, T* sb2) {
  for (index_t r : grid_stride(g.rows)) {
    const index_t first = r * g.keys, n = visible_keys(g, r);
    const T* p = p0 + first;
    const T a1 = order >= 1 ? weighted_mean(n, p, s1 + first) : T(0);
    const T a2 = order >= 2 ? weighted_mean(n, p, s2 + first) : T(0);
    // Per visible key: u1, u2, p̄0, p̄1, p̄2 (zero above the order or when null).
    auto at = [&](index_t j, T& u1, T& u2, T& q0, T& q1, T& q2) {
      u1 = order >= 1 ? s1[first + j] - a1 : T(0);
      u2 = order >= 2 ? s2[first + j] - a2 : T(0);
      q0 = pb0[first + j];
      q1 = order >= 1 && pb1 ? pb1[first + j] : T(0);
      q2 = order >= 2 && pb2 ? pb2[first + j] : T(0);
    };
    T u1, u2, q0, q1, q2, b = T(0), bb = T(0);
    for (index_t j = 0; j < n; ++j) {
      at(j, u1, u2, q0, q1, q2);
      b += p[j] * u1 * u1;
      bb -= q2 * p[j];
    }
    auto ubar = [&](index_t j, T& ub1, T& ub2) {
      at(j, u1, u2, q0, q1, q2);
      ub1 = p[j] * (q1 + T(2) * u1 * (q2 + bb));
      ub2 = p[j] * q2;
    };
    T sum1 = T(0), sum2 = T(0), ub1, ub2;
    for (index_t j = 0; j < n; ++j) {
      ubar(j, ub1, ub2);
      sum1 += ub1;
      sum2 += ub2;
    }
    auto pbar = [&](index_t j) {
      at(j, u1, u2, q0, q1, q2);
      return q0 + q1 * u1 + q2 * (u2 + u1 * u1 - b) + bb * u1 * u1 - sum1 * u1 - sum2 * u2;
    };
    T mean = T(0);
    for (index_t j = 0; j < n; ++j) mean += p[j] * pbar(j);
    for (index_t j = 0; j < g.keys; ++j) {
      const bool seen = j < n;
      sb0[first + j] = seen ? p[j] * (pbar(j) - mean) : T(0);
      if (order < 1) continue;
      if (seen) ubar(j, ub1, ub2);
      sb1[first + j] = seen ? ub1 - sum1 * p[j] : T(0);
      if (order >= 2) sb2[first + j] = seen ? ub2 - sum2 * p[j] : T(0);
    }
  }
}

template <class T>
void softmax_jet(const Device& dev, SoftmaxRows g, int order, const T* s0, const T* s1, const T* s2, T* p0, T* p1,
                 T* p2) {
  launch(dev, g.rows, softmax_jet_kernel<T>, g, order, s0, s1, s2, p0, p1, p2);
}
template <class T>
void softmax_jet_reverse(const Device& dev, SoftmaxRows g, int order, const T* p0, const T* s1, const T* s2,
                         const T* pb0, const T* pb1, const T* pb2, T* sb0, T* sb1, T* sb2) {
  launch(dev, g.rows, softmax_jet_reverse_kernel<T>, g, order, p0, s1, s2, pb0, pb1, pb2, sb0, sb1, sb2);
}

#define CFLOW_INSTANTIATE(T)                                                                                        \
  template void softmax_jet<T>(const Device&, SoftmaxRows, int, const T*, const T*, const T*, T*, T*, T*);         \
  template void softmax_jet_reverse<T>(const Device&, SoftmaxRows, int, const T*, const T*, const T*, const T*,   \
                                       const T*, const T*, T*, T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
