#pragma once
// Small dense linear algebra on the host in float64: the k × k and pair × pair matrices of the
// eigen-solver's Rayleigh–Ritz step, the SDCP and the central flow (docs/design.md §5, §6). LAPACK
// failures go through CFLOW_CHECK_LAPACK (cflow/runtime/error.h).
#include <vector>

#include "cflow/runtime/buffer.h"

namespace cflow {

// A small column-major float64 matrix on the host.
struct HostMatrix {
  index_t rows = 0, cols = 0;
  std::vector<double> values;
  HostMatrix() = default;
  HostMatrix(index_t r, index_t c) : rows(r), cols(c), values(std::size_t(r * c), 0.0) {}
  double& operator()(index_t i, index_t j) { return values[std::size_t(i + j * rows)]; }
  double operator()(index_t i, index_t j) const { return values[std::size_t(i + j * rows)]; }
};

// op(A) B, with op(A) = Aᵀ when transpose_a.
HostMatrix product(const HostMatrix& A, bool transpose_a, const HostMatrix& B);

// Eigenvalues of the symmetric A (lower triangle read), ascending; A becomes the eigenvectors.
// LAPACK dsyevd (divide and conquer).
std::vector<double> symmetric_eigen(HostMatrix& A);
// The same with LAPACK dsyev (QR iteration), for n × n column-major values.
std::vector<double> symmetric_eigen_qr(index_t n, std::vector<double>& A);

// AᵀB (rows × cols) of the device matrices A (d × rows) and B (d × cols), on the host.
template <class T>
std::vector<double> device_cross(const Device& dev, index_t d, index_t rows, index_t cols, const T* A, const T* B);
// The Gram matrix AᵀB (cols × cols) of two d × cols device matrices, on the host.
template <class T>
std::vector<double> device_gram(const Device& dev, index_t d, index_t cols, const T* A, const T* B);

}  // namespace cflow
