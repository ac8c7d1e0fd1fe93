#include "kernels/activation.h"
#include "kernels/activation_math.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

template <class T>
CFLOW_KERNEL void activation_forward_kernel(Activation act, index_t size, const T* y0, T* a0, T* derivatives) {
  for (index_t i : grid_stride(size)) {
    const ActivationJet<T> s = activation_jet(act, y0[i]);
    a0[i] = s.value;
    derivatives[i] = s.d1;
    derivatives[size + i] = s.d2;
    derivatives[2 * size + i] = s.d3;
  }
}

// Calls f(s, i) for every element r of [0, size) in every direction j < m, i = j·size + r, with s
// σ', σ'', σ''' at y0[r] as the primal pass kept them, read once per element for all directions
// (tiles: portable.h).
template <class T, class F>
CFLOW_DEVICE inline void for_each_direction_element(index_t size, index_t m, const T* derivatives, F f) {
  for (index_t tile : grid_stride(direction_tile_count(size))) {
    const IndexRange elements = direction_tile(tile, size);
    ActivationJet<T> s[kDirectionTile];
    for (index_t r : elements)
      s[r - elements.first] = {T(0), derivatives[r], derivatives[size + r], derivatives[2 * size + r]};
    for (index_t j = 0; j < m; ++j)
      for (index_t r : elements) f(s[r - elements.first], j * size + r);
  }
}

template <class T>
CFLOW_KERNEL void activation_tangents_kernel(int order, index_t size, index_t m, const T* derivatives, const T* y1,
                                             const T* y2, T* a1, T* a2) {
  for_each_direction_element(size, m, derivatives, [=](const ActivationJet<T>& s, index_t i) {
    a1[i] = s.d1 * y1[i];
    if (order == 2) a2[i] = (y2 ? s.d1 * y2[i] : T(0)) + s.d2 * y1[i] * y1[i];
  });
}

template <class T>
CFLOW_KERNEL void activation_reverse_kernel(int order, index_t size, index_t m, const T* derivatives, const T* y1,
                                            const T* y2, const T* ab0, const T* ab1, const T* ab2, T* yb0, T* yb1,
                                            T* yb2) {
  for_each_direction_element(size, m, derivatives, [=](const ActivationJet<T>& s, index_t i) {
    T b0 = s.d1 * ab0[i];
    if (order >= 1) {
      b0 += s.d2 * y1[i] * ab1[i];
      T b1 = s.d1 * ab1[i];
      if (order == 2) {
        const T second = y2 ? y2[i] : T(0);
        b0 += (s.d2 * second + s.d3 * y1[i] * y1[i]) * ab2[i];
        b1 += T(2) * s.d2 * y1[i] * ab2[i];
        yb2[i] = s.d1 * ab2[i];
      }
      yb1[i] = b1;
    }
    yb0[i] = b0;
  });
}

template <class T>
void activation_forward(const Device& dev, Activation act, index_t size, const T* y0, T* a0, T* derivatives) {
  launch(dev, size, activation_forward_kernel<T>, act, size, y0, a0, derivatives);
}
template <class T>
void activation_tangents(const Device& dev, int order, index_t size, index_t m, const T* derivatives, const T* y1,
                         const T* y2, T* a1, T* a2) {
  launch_weighted(dev, size, m, activation_tangents_kernel<T>, order, size, m, derivatives, y1, y2, a1, a2);
}
template <class T>
void activation_reverse(const Device& dev, int order, index_t size, index_t m, const T* derivatives, const T* y1,
                        const T* y2, const T* ab0, const T* ab1, const T* ab2, T* yb0, T* yb1, T* yb2) {
  launch_weighted(dev, size, m, activation_reverse_kernel<T>, order, size, m, derivatives, y1, y2, ab0, ab1, ab2,
                  yb0, yb1, yb2);
}

#define CFLOW_INSTANTIATE(T)                                                                                     \
  template void activation_forward<T>(const Device&, Activation, index_t, const T*, T*, T*);                   \
  template void activation_tangents<T>(const Device&, int, index_t, index_t, const T*, const T*, const T*, T*, \
                                       T*);                                                                     \
  template void activation_reverse<T>(const Device&, int, index_t, index_t, const T*, const T*, const T*,      \
                                      const T*, const T*, const T*, T*, T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
