// Anderson acceleration (docs/design.md §6.9). The d-sized work is BLAS and kernels on the device;
// only the memory × memory least squares run on the host, in float64.
#include "host/solvers/anderson.h"

#include <algorithm>
#include <cmath>

#include "cflow/runtime/blas.h"
#include "host/solvers/small_dense.h"
#include "kernels/elementwise.h"

namespace cflow {

template <class T>
AndersonMixing<T>::AndersonMixing(const Device& dev, index_t d, int memory)
    : dev_(dev), d_(d), memory_(std::max(memory, 0)),
      image_differences_(dev, d * memory_), residual_differences_(dev, d * memory_),
      last_image_(dev, d), last_residual_(dev, d) {}

template <class T>
void AndersonMixing<T>::restart() {
  has_last_ = false;
  count_ = slot_ = 0;
}

// γ = argmin ‖r − ΔR γ‖ by the normal equations, Jacobi-scaled and solved in the eigenbasis of the
// scaled Gram matrix with its near-null directions dropped (a pseudo-inverse): differences that are
// nearly parallel get no huge, cancelling coefficients.
template <class T>
std::vector<double> AndersonMixing<T>::coefficients(const T* residual) const {
  const index_t n = count_;
  std::vector<double> gram = device_gram(dev_, d_, n, residual_differences_.data(), residual_differences_.data());
  Buffer<T> projected(dev_, n);
  blas::gemv<T>(dev_, blas::Op::T, d_, n, T(1), residual_differences_.data(), d_, residual, T(0), projected.data());
  const std::vector<T> rhs_device = projected.to_host();
  std::vector<double> scale(static_cast<std::size_t>(n)), rhs(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const double diagonal = gram[std::size_t(i + n * i)];
    scale[std::size_t(i)] = diagonal > 0 ? 1 / std::sqrt(diagonal) : 0.0;
    rhs[std::size_t(i)] = scale[std::size_t(i)] * double(rhs_device[std::size_t(i)]);
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) gram[std::size_t(i + n * j)] *= scale[std::size_t(i)] * scale[std::size_t(j)];
  const std::vector<double> mu = symmetric_eigen_qr(n, gram);  // ascending; gram holds the eigenvectors
  std::vector<double> gamma(std::size_t(n), 0.0);
  for (index_t m = 0; m < n; ++m) {
    if (!(mu[std::size_t(m)] > kGramCutoff * mu.back())) continue;
    double along = 0;
    for (index_t i = 0; i < n; ++i) along += gram[std::size_t(i + n * m)] * rhs[std::size_t(i)];
    for (index_t i = 0; i < n; ++i) gamma[std::size_t(i)] += gram[std::size_t(i + n * m)] * along / mu[std::size_t(m)];
  }
  for (index_t i = 0; i < n; ++i) gamma[std::size_t(i)] *= scale[std::size_t(i)];
  return gamma;
}

template <class T>
void AndersonMixing<T>::step(const T* image, const T* residual, T* next) {
  const double norm = double(blas::nrm2<T>(dev_, d_, residual));
  if (has_last_ && norm > last_norm_) restart();
  if (has_last_ && memory_ > 0) {
    T* dG = image_differences_.data() + slot_ * d_;
    T* dR = residual_differences_.data() + slot_ * d_;
    blas::copy<T>(dev_, d_, image, dG);
    blas::axpy<T>(dev_, d_, T(-1), last_image_.data(), dG);
    blas::copy<T>(dev_, d_, residual, dR);
    blas::axpy<T>(dev_, d_, T(-1), last_residual_.data(), dR);
    count_ = std::min(count_ + 1, memory_);
    slot_ = (slot_ + 1) % memory_;
  }
  blas::copy<T>(dev_, d_, image, last_image_.data());
  blas::copy<T>(dev_, d_, residual, last_residual_.data());
  last_norm_ = norm;
  has_last_ = true;
  columns_ = count_;
  blas::copy<T>(dev_, d_, image, next);
  if (count_ == 0) return;
  const std::vector<double> gamma = coefficients(residual);
  const Buffer<T> weights(dev_, std::span<const T>(std::vector<T>(gamma.begin(), gamma.end())));
  blas::gemv<T>(dev_, blas::Op::N, d_, count_, T(-1), image_differences_.data(), d_, weights.data(), T(1), next);
  CFLOW_DISPATCH(dev_, max_scaled<T>, dev_, d_, T(kFloor), image, next);
}

template class AndersonMixing<float>;
template class AndersonMixing<double>;

}  // namespace cflow
