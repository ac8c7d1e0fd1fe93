#pragma once
// σ and its first three derivatives for every activation (docs/design.md §2 table), as one element function
// shared by the kernels and their CPU reference checks.
#include <cmath>

#include "cflow/engine/model.h"
#include "kernels/portable.h"

namespace cflow {

template <class T>
struct ActivationJet {
  T value, d1, d2, d3;
};

template <class T>
CFLOW_HD inline T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
CFLOW_HD inline ActivationJet<T> activation_jet(Activation act, T x) {
  switch (act) {
    case Activation::gelu: {
      const T pdf = T(0.398942280401432677939946059934) * std::exp(T(-0.5) * x * x);
      const T cdf = T(0.5) * std::erfc(T(-0.707106781186547524400844362105) * x);
      return {x * cdf, cdf + x * pdf, pdf * (T(2) - x * x), pdf * (x * x * x - T(4) * x)};
    }
    case Activation::tanh: {
      const T t = std::tanh(x), q = T(1) - t * t;
      return {t, q, T(-2) * t * q, q * (T(6) * t * t - T(2))};
    }
    case Activation::softplus: {
      const T s = stable_sigmoid(x), q = s * (T(1) - s);
      const T value = x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
      return {value, s, q, q * (T(1) - T(2) * s)};
    }
    case Activation::silu: {
      const T s = stable_sigmoid(x), q = s * (T(1) - s), r = T(1) - T(2) * s;
      return {x * s, s + x * q, q * (T(2) + x * r), q * (T(3) * r + x * r * r - T(2) * x * q)};
    }
    case Activation::relu:
      return {x > T(0) ? x : T(0), x > T(0) ? T(1) : T(0), T(0), T(0)};
    case Activation::identity:
      break;
  }
  return {x, T(1), T(0), T(0)};
}

}  // namespace cflow
