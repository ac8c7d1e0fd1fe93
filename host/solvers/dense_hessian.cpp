// The explicit Hessian from batched HVPs with identity blocks, and its dense eigendecomposition.
//
// Everything is BLAS on the device, with two batched-GEMM idioms for the strided accesses that have
// no BLAS-1 call:
// * identity columns: a batch of 1×1 products 1·1 written with stride d + 1 puts the ones of
//   e_c … e_{c+m−1} on the diagonal of a zeroed d×m block;
// * symmetrization: a batch of d products (d×1) = rowᵀ(1×d)·(1×1), where row j of H is a 1×d matrix
//   with leading dimension d starting at H + j, adds ½ row j of H to ½ column j.
#include "cflow/solvers/dense_hessian.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "cflow/runtime/nvtx.h"

namespace cflow {

using blas::Op;

template <class T>
DenseHessian<T> dense_hessian(const Device& dev, index_t d, const BlockOperator<T>& H, index_t block) {
  CFLOW_NVTX_RANGE("dense_hessian");
  CFLOW_REQUIRE(d >= 1, "dense_hessian: the dimension must be positive");
  CFLOW_REQUIRE(block >= 1, "dense_hessian: the block size must be positive");
  const index_t width = std::min(block, d);
  const T unit[1] = {T(1)};
  Buffer<T> one(dev, std::span<const T>(unit)), identity(dev, d * width), formed(dev, d * d);
  DenseHessian<T> result;
  for (index_t c = 0; c < d; c += width) {
    const index_t m = std::min(width, d - c);
    identity.set_zero();
    blas::gemm_strided_batched(dev, Op::N, Op::N, 1, 1, 1, T(1), one.data(), 1, 0, one.data(), 1, 0, T(0),
                               identity.data() + c, d, d + 1, m);  // e_{c+j} in column j
    H(identity.data(), m, formed.data() + c * d);
    ++result.operator_calls;
    result.operator_applications += int(m);
  }
  const double norm = double(blas::nrm2(dev, d * d, formed.data()));
  if (!std::isfinite(norm)) throw Error("dense_hessian: the Hessian has non-finite entries");

  // ½(H + Hᵀ): the columns as formed, then ½ of row j added to ½ of column j.
  result.matrix = Buffer<T>(dev, d * d);
  result.matrix.copy_from(formed);
  blas::gemm_strided_batched(dev, Op::T, Op::N, d, 1, 1, T(0.5), formed.data(), d, 1, one.data(), 1, 0, T(0.5),
                             result.matrix.data(), d, d, d);
  // H − ½(H + Hᵀ) = ½(H − Hᵀ).
  blas::axpy(dev, d * d, T(-1), result.matrix.data(), formed.data());
  result.asymmetry = norm > 0 ? 2 * double(blas::nrm2(dev, d * d, formed.data())) / norm : 0.0;
  return result;
}

template <class T>
DenseHessian<T> dense_hessian(Objective<T>& objective, const T* w, index_t block) {
  const BlockOperator<T> H = [&](const T* V, index_t m, T* HV) { objective.hvp(w, V, m, HV); };
  return dense_hessian<T>(objective.device(), objective.dim(), H, block);
}

template <class T>
DenseEigen<T> dense_eigen(const Device& dev, index_t d, Buffer<T>& matrix, index_t top) {
  CFLOW_NVTX_RANGE("dense_eigen");
  CFLOW_REQUIRE(d >= 1 && matrix.size() == d * d, "dense_eigen: the matrix must be d×d");
  CFLOW_REQUIRE(top >= 0 && top <= d, "dense_eigen: 0 ≤ top ≤ d eigenvectors");
  Buffer<T> ascending(dev, d);
  dense::symmetric_eigen(dev, d, matrix.data(), d, ascending.data());
  DenseEigen<T> result;
  result.eigenvalues = ascending.to_host_pageable();  // d of them: a whole vector
  std::reverse(result.eigenvalues.begin(), result.eigenvalues.end());
  result.vectors = Buffer<T>(dev, d * top);
  for (index_t j = 0; j < top; ++j)
    blas::copy(dev, d, matrix.data() + (d - 1 - j) * d, result.vectors.data() + j * d);
  return result;
}

template <class T>
std::vector<double> relative_differences(std::span<const T> a, std::span<const T> b) {
  CFLOW_REQUIRE(a.size() == b.size(), "relative_differences: spans of different lengths");
  double largest = 0;
  for (const T x : b) largest = std::max(largest, std::abs(double(x)));
  std::vector<double> differences(a.size());
  for (std::size_t j = 0; j < a.size(); ++j) {
    const double scale = std::max(std::abs(double(b[j])), 1e-3 * largest);
    const double difference = std::abs(double(a[j]) - double(b[j]));
    differences[j] = scale > 0 ? difference / scale : difference;
  }
  return differences;
}

template <class T>
double max_relative_difference(std::span<const T> a, std::span<const T> b) {
  const std::vector<double> differences = relative_differences(a, b);
  return differences.empty() ? 0.0 : *std::max_element(differences.begin(), differences.end());
}

template <class T>
HessianSpectrum<T> hessian_spectrum(Objective<T>& objective, const T* w, const HessianSpectrumOptions& options) {
  CFLOW_NVTX_RANGE("hessian_spectrum");
  using clock = std::chrono::steady_clock;
  const Device& dev = objective.device();
  const index_t d = objective.dim();
  HessianSpectrum<T> result;
  {
    Buffer<T> gradient(dev, d);
    result.loss = objective.value_grad(w, gradient.data());  // also caches the primal pass at w
  }
  const BlockOperator<T> H = [&](const T* V, index_t m, T* HV) { objective.hvp(w, V, m, HV); };
  const auto start = clock::now();
  result.solution = lobpcg<T>(dev, d, H, nullptr, options.lobpcg);
  dev.synchronize();
  result.solve_seconds = std::chrono::duration<double>(clock::now() - start).count();
  if (!options.dense) return result;

  const auto dense_start = clock::now();
  DenseHessian<T> hessian = dense_hessian<T>(dev, d, H, options.dense_block);
  DenseEigen<T> eigen = dense_eigen<T>(dev, d, hessian.matrix, 0);
  result.dense_seconds = std::chrono::duration<double>(clock::now() - dense_start).count();
  result.has_dense = true;
  result.dense_eigenvalues = std::move(eigen.eigenvalues);
  result.asymmetry = hessian.asymmetry;
  result.dense_operator_calls = hessian.operator_calls;
  const std::size_t k = result.solution.eigenvalues.size();
  result.max_relative_difference = max_relative_difference<T>(
      result.solution.eigenvalues, std::span<const T>(result.dense_eigenvalues).first(k));
  return result;
}

#define CFLOW_INSTANTIATE_DENSE_HESSIAN(T)                                                                   \
  template DenseHessian<T> dense_hessian<T>(const Device&, index_t, const BlockOperator<T>&, index_t);      \
  template DenseHessian<T> dense_hessian<T>(Objective<T>&, const T*, index_t);                              \
  template DenseEigen<T> dense_eigen<T>(const Device&, index_t, Buffer<T>&, index_t);                       \
  template std::vector<double> relative_differences<T>(std::span<const T>, std::span<const T>);            \
  template double max_relative_difference<T>(std::span<const T>, std::span<const T>);                      \
  template HessianSpectrum<T> hessian_spectrum<T>(Objective<T>&, const T*, const HessianSpectrumOptions&);
CFLOW_INSTANTIATE_DENSE_HESSIAN(float)
CFLOW_INSTANTIATE_DENSE_HESSIAN(double)

}  // namespace cflow
