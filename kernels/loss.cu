#include "kernels/activation_math.h"
#include "kernels/loss.h"
#include "kernels/portable.h"

namespace cflow::CFLOW_BACKEND {

namespace {

// Softmax statistics of one example: p_c = exp(f_c − lse).
template <class T>
CFLOW_DEVICE T log_sum_exp(index_t classes, const T* f) {
  T top = f[0];
  for (index_t c = 1; c < classes; ++c) top = f[c] > top ? f[c] : top;
  T sum = 0;
  for (index_t c = 0; c < classes; ++c) sum += std::exp(f[c] - top);
  return top + std::log(sum);
}

// Derivatives of the loss along f1 (and f2) for one example: the building blocks of every adjoint.
//   grad_c = (∇ℓ)_c, hess_c(v) = (∇²ℓ v)_c, third_c = (∇³ℓ[f1, f1])_c.
template <class T>
struct LossAt {
  LossFunction fn;
  index_t classes;
  const T* f;
  const T* t;
  T lse = 0, m1 = 0, m2 = 0;  // softmax: log-sum-exp, pᵀf1, pᵀ(f1⊙f1)
  T s = 0;                    // logistic: sigmoid(f)

  CFLOW_DEVICE LossAt(LossFunction fn_, index_t classes_, const T* f_, const T* t_, const T* f1)
      : fn(fn_), classes(classes_), f(f_), t(t_) {
    if (fn == LossFunction::softmax_cross_entropy) {
      lse = log_sum_exp(classes, f);
      if (f1)
        for (index_t c = 0; c < classes; ++c) {
          const T p = std::exp(f[c] - lse);
          m1 += p * f1[c];
          m2 += p * f1[c] * f1[c];
        }
    } else if (fn == LossFunction::logistic) {
      s = stable_sigmoid(f[0]);
    }
  }
  CFLOW_DEVICE T p(index_t c) const { return std::exp(f[c] - lse); }
  CFLOW_DEVICE T grad(index_t c) const {
    switch (fn) {
      case LossFunction::mse: return f[c] - t[c];
      case LossFunction::softmax_cross_entropy: return p(c) - t[c];
      case LossFunction::logistic: break;
    }
    return s - t[0];
  }
  // (∇²ℓ v)_c; for softmax it needs pᵀv, which is m1 when v = f1 and is passed in general.
  CFLOW_DEVICE T hess(index_t c, const T* v, T p_dot_v) const {
    switch (fn) {
      case LossFunction::mse: return v[c];
      case LossFunction::softmax_cross_entropy: return p(c) * (v[c] - p_dot_v);
      case LossFunction::logistic: break;
    }
    return s * (T(1) - s) * v[0];
  }
  CFLOW_DEVICE T p_dot(const T* v) const {
    T sum = 0;
    if (fn == LossFunction::softmax_cross_entropy)
      for (index_t c = 0; c < classes; ++c) sum += p(c) * v[c];
    return sum;
  }
  CFLOW_DEVICE T third(index_t c, const T* f1) const {
    switch (fn) {
      case LossFunction::mse: return T(0);
      case LossFunction::softmax_cross_entropy: {
        const T pc = p(c);
        return pc * (f1[c] * f1[c] - m2) - T(2) * m1 * pc * (f1[c] - m1);
      }
      case LossFunction::logistic: break;
    }
    return s * (T(1) - s) * (T(1) - T(2) * s) * f1[0] * f1[0];
  }
};

}  // namespace

// A position that does not count (counted[i] == 0, docs/design.md §3.11) contributes exactly zero: its
// outputs are not read, so even a non-finite one cannot leak into the sums.
template <class T>
CFLOW_DEVICE bool skipped(const T* counted, index_t i) {
  return counted && counted[i] == T(0);
}

template <class T>
CFLOW_KERNEL void loss_values_kernel(LossFunction fn, index_t classes, index_t nb, const T* f0, const T* targets,
                                     const T* counted, T* loss, T* correct) {
  for (index_t i : grid_stride(nb)) {
    if (skipped(counted, i)) {
      loss[i] = correct[i] = T(0);
      continue;
    }
    const T* f = f0 + i * classes;
    const T* t = targets + i * classes;
    T value = 0;
    bool right = false;
    if (fn == LossFunction::mse) {
      for (index_t c = 0; c < classes; ++c) value += T(0.5) * (f[c] - t[c]) * (f[c] - t[c]);
    } else if (fn == LossFunction::softmax_cross_entropy) {
      value = log_sum_exp(classes, f);
      for (index_t c = 0; c < classes; ++c) value -= t[c] * f[c];
    } else {  // softplus(f) − y f, stably
      value = (f[0] > T(0) ? f[0] + std::log1p(std::exp(-f[0])) : std::log1p(std::exp(f[0]))) - t[0] * f[0];
    }
    if (classes == 1) {
      right = fn == LossFunction::mse ? (f[0] > T(0)) == (t[0] > T(0)) : (f[0] > T(0)) == (t[0] > T(0.5));
    } else {
      index_t predicted = 0, target = 0;
      for (index_t c = 1; c < classes; ++c) {
        if (f[c] > f[predicted]) predicted = c;
        if (t[c] > t[target]) target = c;
      }
      right = predicted == target;
    }
    loss[i] = value;
    correct[i] = right ? T(1) : T(0);
  }
}

template <class T>
CFLOW_KERNEL void loss_adjoint_kernel(LossFunction fn, int order, index_t classes, index_t nb, index_t m, T scale,
                                      const T* f0, const T* f1, const T* f2, const T* targets, const T* counted,
                                      T* fb0, T* fb1, T* fb2) {
  for (index_t idx : grid_stride(nb * m)) {
    const index_t i = idx % nb;
    const index_t column = idx * classes;  // (example i, direction idx / nb)
    if (skipped(counted, i)) {
      for (index_t c = 0; c < classes; ++c) {
        fb0[column + c] = T(0);
        if (order >= 1) fb1[column + c] = T(0);
        if (order >= 2) fb2[column + c] = T(0);
      }
      continue;
    }
    const T* tangent1 = order >= 1 ? f1 + column : nullptr;
    const LossAt<T> at(fn, classes, f0 + i * classes, targets + i * classes, tangent1);
    if (order == 0) {
      for (index_t c = 0; c < classes; ++c) fb0[column + c] = scale * at.grad(c);
    } else if (order == 1) {
      for (index_t c = 0; c < classes; ++c) {
        fb1[column + c] = scale * at.grad(c);
        fb0[column + c] = scale * at.hess(c, tangent1, at.m1);
      }
    } else {
      const T* tangent2 = f2 ? f2 + column : nullptr;
      const T p_f2 = tangent2 ? at.p_dot(tangent2) : T(0);
      for (index_t c = 0; c < classes; ++c) {
        fb2[column + c] = scale * at.grad(c);
        fb1[column + c] = T(2) * scale * at.hess(c, tangent1, at.m1);
        fb0[column + c] = scale * ((tangent2 ? at.hess(c, tangent2, p_f2) : T(0)) + at.third(c, tangent1));
      }
    }
  }
}

template <class T>
CFLOW_KERNEL void loss_second_order_kernel(LossFunction fn, index_t classes, index_t nb, index_t m, const T* f0,
                                           const T* f1, const T* f2, const T* targets, const T* counted, T* second) {
  for (index_t idx : grid_stride(nb * m)) {
    const index_t i = idx % nb;
    if (skipped(counted, i)) {
      second[idx] = T(0);
      continue;
    }
    const index_t column = idx * classes;
    const T* tangent1 = f1 + column;
    const LossAt<T> at(fn, classes, f0 + i * classes, targets + i * classes, tangent1);
    T value = 0;
    for (index_t c = 0; c < classes; ++c)
      value += (f2 ? at.grad(c) * f2[column + c] : T(0)) + tangent1[c] * at.hess(c, tangent1, at.m1);
    second[idx] = value;
  }
}

template <class T>
void loss_values(const Device& dev, LossFunction fn, index_t classes, index_t nb, const T* f0, const T* targets,
                 const T* counted, T* loss, T* correct) {
  launch(dev, nb, loss_values_kernel<T>, fn, classes, nb, f0, targets, counted, loss, correct);
}
template <class T>
void loss_adjoint(const Device& dev, LossFunction fn, int order, index_t classes, index_t nb, index_t m, T scale,
                  const T* f0, const T* f1, const T* f2, const T* targets, const T* counted, T* fb0, T* fb1, T* fb2) {
  launch(dev, nb * m, loss_adjoint_kernel<T>, fn, order, classes, nb, m, scale, f0, f1, f2, targets, counted, fb0,
         fb1, fb2);
}
template <class T>
void loss_second_order(const Device& dev, LossFunction fn, index_t classes, index_t nb, index_t m, const T* f0,
                       const T* f1, const T* f2, const T* targets, const T* counted, T* second) {
  launch(dev, nb * m, loss_second_order_kernel<T>, fn, classes, nb, m, f0, f1, f2, targets, counted, second);
}

#define CFLOW_INSTANTIATE(T)                                                                                   \
  template void loss_values<T>(const Device&, LossFunction, index_t, index_t, const T*, const T*, const T*,  \
                               T*, T*);                                                                      \
  template void loss_adjoint<T>(const Device&, LossFunction, int, index_t, index_t, index_t, T, const T*,    \
                                const T*, const T*, const T*, const T*, T*, T*, T*);                         \
  template void loss_second_order<T>(const Device&, LossFunction, index_t, index_t, index_t, const T*,       \
                                     const T*, const T*, const T*, const T*, T*);
CFLOW_INSTANTIATE(float)
CFLOW_INSTANTIATE(double)
#undef CFLOW_INSTANTIATE

}  // namespace cflow::CFLOW_BACKEND
