// CPU backend: aligned host memory, OpenBLAS (OpenMP build, sharing the kernels' thread pool) and
// LAPACKE.
#include <cblas.h>
#include <lapacke.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "host/runtime/backend.h"

namespace cflow::cpu {

namespace {
constexpr std::size_t kAlignment = 64;  // one cache line; also enough for AVX-512 loads

CBLAS_TRANSPOSE cblas_op(blas::Op op) { return op == blas::Op::N ? CblasNoTrans : CblasTrans; }
}  // namespace

std::shared_ptr<Device::Impl> open_device(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  auto impl = std::make_shared<Device::Impl>();
  impl->backend = Backend::cpu;
  impl->cpu_threads = omp_get_max_threads();
  impl->description = "CPU: " + std::to_string(impl->cpu_threads) + " OpenMP threads, " +
                      std::string(openblas_get_config());
  return impl;
}

// A lane of the CPU backend: its own Impl (arena, counters, watch table) over the same memory and
// thread count, so lanes run and count on the CPU the code path they run on CUDA (docs/design.md §7.10).
std::shared_ptr<Device::Impl> open_lane(const Device::Impl& parent) {
  auto impl = std::make_shared<Device::Impl>();
  impl->backend = Backend::cpu;
  impl->cpu_threads = parent.cpu_threads;
  impl->description = parent.description;
  impl->selection_note = parent.selection_note;
  return impl;
}

// The OpenMP thread count is a per-thread setting (an ICV): a new host thread starts from the default
// (all cores), and both the kernels and OpenBLAS (its OpenMP build reads omp_get_max_threads()) would
// split their work differently, changing the bits.
void bind_thread(const Device::Impl& impl) { omp_set_num_threads(impl.cpu_threads); }

void* allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  if (!ptr) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return ptr;
}
void release(void* ptr) noexcept { std::free(ptr); }
void copy(const Device&, void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
void set_zero(const Device&, void* dst, std::size_t bytes) { std::memset(dst, 0, bytes); }
void synchronize(const Device&) {}

template <class T>
void gemm_strided_batched(const Device&, blas::Op op_a, blas::Op op_b, index_t m, index_t n, index_t k,
                          T alpha, const T* A, index_t lda, index_t stride_a, const T* B, index_t ldb,
                          index_t stride_b, T beta, T* C, index_t ldc, index_t stride_c, index_t batch) {
  for (index_t i = 0; i < batch; ++i) {
    const T* a = A + i * stride_a;
    const T* b = B + i * stride_b;
    T* c = C + i * stride_c;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasColMajor, cblas_op(op_a), cblas_op(op_b), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
      cblas_dgemm(CblasColMajor, cblas_op(op_a), cblas_op(op_b), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template <class T>
void gemv(const Device&, blas::Op op_a, index_t m, index_t n, T alpha, const T* A, index_t lda, const T* x,
          T beta, T* y) {
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemv(CblasColMajor, cblas_op(op_a), m, n, alpha, A, lda, x, 1, beta, y, 1);
  else
    cblas_dgemv(CblasColMajor, cblas_op(op_a), m, n, alpha, A, lda, x, 1, beta, y, 1);
}

// Only the split Gram products use it (blas.cpp), on the CPU only when a test asks for them.
template <class T>
void geam(const Device&, index_t m, index_t n, T alpha, const T* A, index_t lda, T beta, const T* B, index_t ldb,
          T* C, index_t ldc) {
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < m; ++i)  // beta = 0: B is not read (as cuBLAS)
      C[i + j * ldc] = beta == T(0) ? alpha * A[i + j * lda] : alpha * A[i + j * lda] + beta * B[i + j * ldb];
}

template <class T>
void axpy(const Device&, index_t n, T alpha, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) cblas_saxpy(n, alpha, x, 1, y, 1);
  else cblas_daxpy(n, alpha, x, 1, y, 1);
}
template <class T>
void scal(const Device&, index_t n, T alpha, T* x) {
  if constexpr (std::is_same_v<T, float>) cblas_sscal(n, alpha, x, 1);
  else cblas_dscal(n, alpha, x, 1);
}
template <class T>
void copy(const Device&, index_t n, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) cblas_scopy(n, x, 1, y, 1);
  else cblas_dcopy(n, x, 1, y, 1);
}
// Device memory is host memory: the result is written where the caller reads it back.
template <class T>
void dot_to_device(const Device&, index_t n, const T* x, const T* y, T* result) {
  if constexpr (std::is_same_v<T, float>) *result = cblas_sdot(n, x, 1, y, 1);
  else *result = cblas_ddot(n, x, 1, y, 1);
}
template <class T>
void nrm2_to_device(const Device&, index_t n, const T* x, T* result) {
  if constexpr (std::is_same_v<T, float>) *result = cblas_snrm2(n, x, 1);
  else *result = cblas_dnrm2(n, x, 1);
}

template <class T>
void trsm_right_lower_transposed(const Device&, index_t m, index_t n, T alpha, const T* L, index_t ldl, T* B,
                                 index_t ldb) {
  if constexpr (std::is_same_v<T, float>)
    cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, m, n, alpha, L, ldl, B, ldb);
  else
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, m, n, alpha, L, ldl, B, ldb);
}

template <class T>
void symmetric_eigen(const Device&, index_t n, T* A, index_t lda, T* eigenvalues, int* info) {
  if constexpr (std::is_same_v<T, float>) *info = LAPACKE_ssyevd(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda, eigenvalues);
  else *info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda, eigenvalues);
}

template <class T>
void cholesky(const Device&, index_t n, T* A, index_t lda, int* info) {
  if constexpr (std::is_same_v<T, float>) *info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'L', n, A, lda);
  else *info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A, lda);
}

CFLOW_INSTANTIATE_BACKEND(float)
CFLOW_INSTANTIATE_BACKEND(double)

}  // namespace cflow::cpu
