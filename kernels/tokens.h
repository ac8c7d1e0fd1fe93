#pragma once
// Turning inputs into tokens (docs/design.md §3.10): image patches and a token-embedding table.
// Tokens are [features × tokens] per example, each token's features contiguous.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {

// Images [C × H × W] (NCHW) cut into p × p patches on a (H/p) × (W/p) grid; token t = row-major grid
// position, its p·p·C features in the order (row in patch, column in patch, channel), as the simple
// ViT's Rearrange('c (h p1) (w p2) -> (h w) (p1 p2 c)').
struct PatchGeometry {
  std::int64_t channels, height, width, patch;
  constexpr std::int64_t size() const { return channels * height * width; }
};

CFLOW_BACKEND_DECLARATIONS(
  // y = the patches of x for `columns` images, or (inverse) x from y: a permutation, so its adjoint
  // is its inverse. The output is overwritten.
  template <class T>
  void patchify(const Device& dev, PatchGeometry g, std::int64_t columns, bool inverse, const T* from, T* to);
  // y[:, t] = table[id_t, :] for the `columns`·tokens ids (stored as values of T; table [vocab × D]
  // row-major, PyTorch's Embedding weight), table rows at table + j·ld for column block j of `blocks`
  // (blocks of columns/blocks columns each: the directions).
  template <class T>
  void embedding_gather(const Device& dev, std::int64_t features, std::int64_t tokens, std::int64_t nb,
                        std::int64_t blocks, const T* ids, const T* table, std::int64_t ld, T* y);
  // G[j·ld + id·D + i] += Σ over the nb examples' tokens with that id of yb[j][i, token], j < blocks.
  template <class T>
  void embedding_gradient(const Device& dev, std::int64_t vocab, std::int64_t features, std::int64_t tokens,
                          std::int64_t nb, std::int64_t blocks, const T* ids, const T* yb, T* G, std::int64_t ld);
)
}  // namespace cflow
