// Small dense host linear algebra (small_dense.h).
#include "host/solvers/small_dense.h"

#include <lapacke.h>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"

namespace cflow {

HostMatrix product(const HostMatrix& A, bool transpose_a, const HostMatrix& B) {
  const index_t rows = transpose_a ? A.cols : A.rows, inner = transpose_a ? A.rows : A.cols;
  CFLOW_REQUIRE(inner == B.rows, "mismatched small matrices");
  HostMatrix C(rows, B.cols);
  for (index_t j = 0; j < B.cols; ++j)
    for (index_t i = 0; i < rows; ++i) {
      double sum = 0;
      for (index_t l = 0; l < inner; ++l) sum += (transpose_a ? A(l, i) : A(i, l)) * B(l, j);
      C(i, j) = sum;
    }
  return C;
}

std::vector<double> symmetric_eigen(HostMatrix& A) {
  std::vector<double> eigenvalues(std::size_t(A.rows));
  if (A.rows > 0)
    CFLOW_CHECK_LAPACK(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', A.rows, A.values.data(), A.rows, eigenvalues.data()));
  return eigenvalues;
}

std::vector<double> symmetric_eigen_qr(index_t n, std::vector<double>& A) {
  std::vector<double> eigenvalues(static_cast<std::size_t>(n));
  if (n > 0) CFLOW_CHECK_LAPACK(LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', n, A.data(), n, eigenvalues.data()));
  return eigenvalues;
}

template <class T>
std::vector<double> device_cross(const Device& dev, index_t d, index_t rows, index_t cols, const T* A, const T* B) {
  Buffer<T> out(dev, rows * cols);
  blas::gemm<T>(dev, blas::Op::T, blas::Op::N, rows, cols, d, T(1), A, d, B, d, T(0), out.data(), rows);
  const auto host = out.to_host();
  return {host.begin(), host.end()};
}

template <class T>
std::vector<double> device_gram(const Device& dev, index_t d, index_t cols, const T* A, const T* B) {
  return device_cross(dev, d, cols, cols, A, B);
}

template std::vector<double> device_cross<float>(const Device&, index_t, index_t, index_t, const float*, const float*);
template std::vector<double> device_cross<double>(const Device&, index_t, index_t, index_t, const double*,
                                                  const double*);
template std::vector<double> device_gram<float>(const Device&, index_t, index_t, const float*, const float*);
template std::vector<double> device_gram<double>(const Device&, index_t, index_t, const double*, const double*);

}  // namespace cflow
