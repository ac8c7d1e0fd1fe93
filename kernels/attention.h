#pragma once
// The softmax of scaled dot-product attention with its Taylor jets along a line and the reverse of
// those jets (docs/design.md §3.10). Scores are stored key-major per query: a "row" is the T scores
// of one query against the T keys, contiguous, and there are `rows` of them (query i of a row r is
// r % T). With a causal mask query i sees keys 0..i only; masked probabilities and adjoints are 0.
//   p0 = softmax(s0),  u_k = s_k − ⟨p0, s_k⟩,
//   p1 = p0 ⊙ u1,      p2 = p0 ⊙ (u2 + u1² − ⟨p0, u1²⟩).
// Null pointers: s1, s2 (and p1, p2) are not read (written) above `order`; adjoints p̄1, p̄2 may be
// null (zero). One thread per row, sequential reductions: deterministic, no atomics.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {

struct SoftmaxRows {
  std::int64_t rows, keys;  // keys = T; a row's query is r % T
  bool causal;
};

CFLOW_BACKEND_DECLARATIONS(
  // (p0, p1, p2) from (s0, s1, s2) up to `order`.
  template <class T>
  void softmax_jet(const Device& dev, SoftmaxRows g, int order, const T* s0, const T* s1, const T* s2, T* p0, T* p1,
                   T* p2);
  // The adjoints s̄k (k ≤ order) of the scores from the adjoints p̄k of the probabilities, given p0 and
  // the score tangents s1, s2.
  template <class T>
  void softmax_jet_reverse(const Device& dev, SoftmaxRows g, int order, const T* p0, const T* s1, const T* s2,
                           const T* pb0, const T* pb1, const T* pb2, T* sb0, T* sb1, T* sb2);
)
}  // namespace cflow
