// The toy objective is a handful of coordinates: its queries copy w (and the directions) to the host,
// evaluate the closed forms in double and copy the results back. That host loop over entries is the
// exception to "host code never loops over parameters", acceptable here because d = K + 1 is tiny
// and the object exists for tests and small demonstrations, never for a network-sized problem.
#include "cflow/flow/toy_objective.h"

#include <algorithm>
#include <utility>

#include "cflow/runtime/error.h"

namespace cflow {
namespace {

template <class T>
std::vector<double> to_host(const Device& dev, const T* src, index_t n) {
  std::vector<T> raw(static_cast<std::size_t>(n));
  dev.read_back(raw.data(), src, raw.size() * sizeof(T));  // d = K + 1 values: staged
  return std::vector<double>(raw.begin(), raw.end());
}

template <class T>
void to_device(const Device& dev, const std::vector<double>& src, T* dst) {
  const std::vector<T> raw(src.begin(), src.end());
  if (!raw.empty()) dev.copy_from_host(dst, raw.data(), raw.size() * sizeof(T));
}

}  // namespace

template <class T>
ToyObjective<T>::ToyObjective(const Device& dev, double a, std::vector<double> b)
    : dev_(dev), a_(a), b_(std::move(b)) {
  CFLOW_REQUIRE(!b_.empty(), "toy objective: needs at least one oscillating coordinate");
}

template <class T>
T ToyObjective<T>::value_grad(const T* w, T* grad) {
  const index_t K = index_t(b_.size()), d = K + 1;
  const std::vector<double> x = to_host(dev_, w, d);
  const double y = x[std::size_t(K)];
  std::vector<double> g(std::size_t(d), 0.0);
  double loss = -a_ * y, half_norm = 0;
  for (std::size_t j = 0; j < b_.size(); ++j) {
    loss += 0.5 * (b_[j] + y) * x[j] * x[j];
    g[j] = (b_[j] + y) * x[j];
    half_norm += 0.5 * x[j] * x[j];
  }
  g[std::size_t(K)] = -a_ + half_norm;
  to_device(dev_, g, grad);
  return T(loss);
}

template <class T>
void ToyObjective<T>::hvp(const T* w, const T* V, index_t m, T* HV) {
  const index_t K = index_t(b_.size()), d = K + 1;
  const std::vector<double> x = to_host(dev_, w, d), v = to_host(dev_, V, d * m);
  const double y = x[std::size_t(K)];
  std::vector<double> hv(std::size_t(d * m), 0.0);
  for (index_t c = 0; c < m; ++c) {
    const double* vc = v.data() + c * d;
    double* out = hv.data() + c * d;
    for (index_t j = 0; j < K; ++j) {
      out[j] = (b_[std::size_t(j)] + y) * vc[j] + x[std::size_t(j)] * vc[K];
      out[K] += x[std::size_t(j)] * vc[j];
    }
  }
  to_device(dev_, hv, HV);
}

template <class T>
std::vector<T> ToyObjective<T>::quad(const T* w, const T* U, index_t m) {
  const index_t K = index_t(b_.size()), d = K + 1;
  const std::vector<double> x = to_host(dev_, w, d), u = to_host(dev_, U, d * m);
  const double y = x[std::size_t(K)];
  std::vector<T> out(static_cast<std::size_t>(m));
  for (index_t c = 0; c < m; ++c) {
    const double* uc = u.data() + c * d;
    double q = 0, xu = 0;
    for (index_t j = 0; j < K; ++j) {
      q += (b_[std::size_t(j)] + y) * uc[j] * uc[j];
      xu += x[std::size_t(j)] * uc[j];
    }
    out[std::size_t(c)] = T(q + 2 * uc[K] * xu);
  }
  return out;
}

template <class T>
void ToyObjective<T>::d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) {
  if (quads) {  // D³L is constant, uᵀHu is not
    const std::vector<T> values = quad(w, U, k);
    std::copy(values.begin(), values.end(), quads);
  }
  const index_t K = index_t(b_.size()), d = K + 1;
  const std::vector<double> u = to_host(dev_, U, d * k);
  std::vector<double> out(std::size_t(d * pair_count(k)), 0.0);
  for (index_t i = 0; i < k; ++i)
    for (index_t l = i; l < k; ++l) {
      const double *ui = u.data() + i * d, *ul = u.data() + l * d;
      double* o = out.data() + pair_index(i, l, k) * d;
      for (index_t j = 0; j < K; ++j) {
        o[j] = ui[K] * ul[j] + ul[K] * ui[j];
        o[K] += ui[j] * ul[j];
      }
    }
  out.erase(out.begin() + (first + count) * d, out.end());
  out.erase(out.begin(), out.begin() + first * d);
  to_device(dev_, out, D);
}

template class ToyObjective<float>;
template class ToyObjective<double>;

}  // namespace cflow
