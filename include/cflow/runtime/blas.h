#pragma once
// Dense linear algebra with one semantics on both backends (cuBLAS/cuSOLVER on the GPU,
// OpenBLAS/LAPACKE on the CPU). Matrices are column-major; all pointers are device pointers.
// float and double are instantiated.
#include "cflow/runtime/buffer.h"

namespace cflow::blas {

enum class Op { N, T };

// C = alpha op(A) op(B) + beta C, with op(A) m×k, op(B) k×n, C m×n.
template <class T>
void gemm(const Device& dev, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// For i in [0, batch): C_i = alpha op(A_i) op(B_i) + beta C_i with X_i = X + i * stride_x.
// A stride of 0 shares one matrix across the batch.
template <class T>
void gemm_strided_batched(const Device& dev, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha,
                          const T* A, index_t lda, index_t stride_a, const T* B, index_t ldb,
                          index_t stride_b, T beta, T* C, index_t ldc, index_t stride_c, index_t batch);

// y = alpha op(A) x + beta y, A m×n.
template <class T>
void gemv(const Device& dev, Op op_a, index_t m, index_t n, T alpha, const T* A, index_t lda, const T* x,
          T beta, T* y);

template <class T> void axpy(const Device& dev, index_t n, T alpha, const T* x, T* y);  // y += alpha x
template <class T> void scal(const Device& dev, index_t n, T alpha, T* x);              // x *= alpha
template <class T> void copy(const Device& dev, index_t n, const T* x, T* y);           // y = x
// xᵀy and ‖x‖₂ for the host: computed on the device and read back through the staging area (one
// transfer, one wait).
template <class T> T dot(const Device& dev, index_t n, const T* x, const T* y);
template <class T> T nrm2(const Device& dev, index_t n, const T* x);
// xᵀy into the device scalar *result, without waiting (cuBLAS device pointer mode): the scalars
// of a computation gather on the device and cross to the host once (docs/design.md §7.5).
template <class T> void dot(const Device& dev, index_t n, const T* x, const T* y, T* result);

// B = alpha B L^{-T} for lower-triangular L (n×n), B m×n: orthonormalization after a Cholesky.
template <class T>
void trsm_right_lower_transposed(const Device& dev, index_t m, index_t n, T alpha, const T* L, index_t ldl,
                                 T* B, index_t ldb);

}  // namespace cflow::blas

namespace cflow::dense {

// Eigen-decomposition of a symmetric n×n matrix A (lower triangle read): on return A holds the
// orthonormal eigenvectors as columns and `eigenvalues` (device, length n) the eigenvalues ascending.
template <class T>
void symmetric_eigen(const Device& dev, index_t n, T* A, index_t lda, T* eigenvalues);

// In-place lower Cholesky factor A = L L^T. Throws cflow::Error if A is not positive definite.
template <class T>
void cholesky(const Device& dev, index_t n, T* A, index_t lda);

}  // namespace cflow::dense
