#include "kernels/portable.h"
#include "kernels/tokens.h"

namespace cflow::CFLOW_BACKEND {

// One thread per token feature: the pixel it comes from.
template <class T>
CFLOW_KERNEL void patchify_kernel(PatchGeometry g, index_t columns, bool inverse, const T* from, T* to) {
  const index_t p = g.patch, grid_w = g.width / p, patch_size = p * p * g.channels;
  for (index_t i : grid_stride(g.size() * columns)) {
    const index_t column = i / g.size(), r = i % g.size();
    const index_t token = r / patch_size, f = r % patch_size;
    const index_t row = (token / grid_w) * p + f / (p * g.channels), col = (token % grid_w) * p + f / g.channels % p;
    const index_t pixel = column * g.size() + (f % g.channels) * g.height * g.width + row * g.width + col;
    if (inverse)
      to[pixel] = from[i];
    else
      to[i] = from[pixel];
  }
}

// The id of token t of example e as an index.
template <class T>
CFLOW_HD index_t token_id(const T* ids, index_t n) {
  return index_t(ids[n]);
}

template <class T>
CFLOW_KERNEL void embedding_gather_kernel(index_t features, index_t tokens, index_t nb, index_t blocks, const T* ids,
                                          const T* table, index_t ld, T* y) {
  for (index_t i : grid_stride(features * tokens * nb * blocks)) {
    const index_t column = i / features, j = column / (tokens * nb), n = column % (tokens * nb);
    y[i] = table[j * ld + token_id(ids, n) * features + i % features];
  }
}

// One thread per (direction, table entry): a sequential sum over the chunk's tokens (no atomics).
template <class T>
CFLOW_KERNEL void embedding_gradient_kernel(index_t vocab, index_t features, index_t tokens, index_t nb,
                                            index_t blocks, const T* ids, const T* yb, T* G, index_t ld) {
  for (index_t i : grid_stride(vocab * features * blocks)) {
    const index_t j = i / (vocab * features), entry = i % (vocab * features), id = entry / features;
    T sum = T(0);
    for (index_t n = 0; n < tokens * nb; ++n)
      if (token_id(ids, n) == id) sum += yb[(j * tokens * nb + n) * features + entry % features];
    G[j * ld + entry] += sum;
  }
}

template <class T>
void patchify(const Device& dev, PatchGeometry g, index_t columns, bool inverse, const T* from, T* to) {
  launch(dev, g.size() * columns, patchify_kernel<T>, g, columns, inverse, from, to);
}
template <class T>
void embedding_gather(const Device& dev, index_t features, index_t tokens, index_t nb, index_t blocks, const T* ids,
                      const T* table, index_t ld, T* y) {
  launch(dev, features * tokens * nb * blocks, embedding_gather_kernel<T>, features, tokens, nb, blocks, ids, table, ld,
         y);
}
template <class T>
void embedding_gradient(const Device& dev, index_t vocab, index_t features, index_t tokens, index_t nb, index_t blocks,
                        const T* ids, const T* yb, T* G, index_t ld) {
  launch(dev, vocab * features * blocks, embedding_gradient_kernel<T>, vocab, features, tokens, nb, blocks, ids, yb,
         G, ld);
}

#define CFLOW_INSTANTIATE(T)                                                                                         \
  template void patchify<T>(const Device&, PatchGeometry, index_t, bool, const T*, T*);                             \
  template void embedding_gather<T>(const Device&, index_t, index_t, index_t, index_t, const T*, const T*, index_t, \
                                    T*);                                                                             \
  template void embedding_gradient<T>(const Device&, index_t, index_t, index_t, index_t, index_t, const T*, const T*, \
                                      T*, index_t);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
