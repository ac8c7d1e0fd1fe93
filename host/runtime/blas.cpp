// The public BLAS/LAPACK API: argument checks, then the device's backend.
#include "cflow/runtime/blas.h"

#include "host/runtime/backend.h"
#include "host/runtime/gemm_long_inner.h"

namespace cflow::blas {

template <class T>
void gemm(const Device& dev, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  gemm_strided_batched(dev, op_a, op_b, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

namespace {
void check_gemm(Op op_a, Op op_b, index_t m, index_t n, index_t k, index_t lda, index_t ldb, index_t ldc,
                index_t batch) {
  CFLOW_REQUIRE(m >= 0 && n >= 0 && k >= 0 && batch >= 0, "gemm: negative dimension");
  CFLOW_REQUIRE(lda >= std::max<index_t>(1, op_a == Op::N ? m : k), "gemm: lda too small");
  CFLOW_REQUIRE(ldb >= std::max<index_t>(1, op_b == Op::N ? k : n), "gemm: ldb too small");
  CFLOW_REQUIRE(ldc >= std::max<index_t>(1, m), "gemm: ldc too small");
}
}  // namespace

template <class T>
void gemm_strided_batched(const Device& dev, Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha,
                          const T* A, index_t lda, index_t stride_a, const T* B, index_t ldb, index_t stride_b,
                          T beta, T* C, index_t ldc, index_t stride_c, index_t batch) {
  check_gemm(op_a, op_b, m, n, k, lda, ldb, ldc, batch);
  if (m == 0 || n == 0 || batch == 0) return;
  if (const index_t chunks = dev.is_cuda() ? long_inner_chunks(op_a, op_b, m, n, k) : 1; chunks > 1)
    return gemm_long_inner(dev, chunks, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
                           batch);
  CFLOW_DISPATCH(dev, gemm_strided_batched<T>, dev, op_a, op_b, m, n, k, alpha, A, lda, stride_a, B, ldb,
                 stride_b, beta, C, ldc, stride_c, batch);
  dev.note_write(C, std::size_t(stride_c * (batch - 1) + ldc * n) * sizeof(T));
}

constexpr index_t kMaxChunks = 256, kMinChunk = 4096, kMaxOutput = 256;

index_t long_inner_chunks(Op op_a, Op op_b, index_t m, index_t n, index_t k) {
  if (op_a != Op::T || op_b != Op::N || m > kMaxOutput || n > kMaxOutput) return 1;
  index_t chunks = 1;
  while (chunks < kMaxChunks && k / (2 * chunks) >= kMinChunk) chunks *= 2;
  return chunks;
}

template <class T>
void gemm_long_inner(const Device& dev, index_t chunks, index_t m, index_t n, index_t k, T alpha, const T* A,
                     index_t lda, index_t stride_a, const T* B, index_t ldb, index_t stride_b, T beta, T* C,
                     index_t ldc, index_t stride_c, index_t batch) {
  check_gemm(Op::T, Op::N, m, n, k, lda, ldb, ldc, batch);
  CFLOW_REQUIRE(chunks >= 2 && (chunks & (chunks - 1)) == 0 && k >= chunks * chunks,
                "gemm_long_inner: chunks must be a power of two ≥ 2 with k ≥ chunks²");
  if (m == 0 || n == 0 || batch == 0) return;
  // The last chunk takes the rows left over: between 1 and a chunk, since k ≥ chunks².
  const index_t chunk = (k + chunks - 1) / chunks, tail = (chunks - 1) * chunk, mn = m * n;
  Buffer<T> partial(dev, chunks * mn, Uninitialized{});
  T* X = partial.data();
  for (index_t i = 0; i < batch; ++i) {
    const T *Ai = A + i * stride_a, *Bi = B + i * stride_b;
    T* Ci = C + i * stride_c;
    CFLOW_DISPATCH(dev, gemm_strided_batched<T>, dev, Op::T, Op::N, m, n, chunk, alpha, Ai, lda, chunk, Bi, ldb,
                   chunk, T(0), X, m, mn, chunks - 1);
    CFLOW_DISPATCH(dev, gemm_strided_batched<T>, dev, Op::T, Op::N, m, n, k - tail, alpha, Ai + tail, lda, 0,
                   Bi + tail, ldb, 0, T(0), X + (chunks - 1) * mn, m, 0, 1);
    for (index_t half = chunks / 2; half >= 1; half /= 2)  // the first half += the second, as one long column
      CFLOW_DISPATCH(dev, geam<T>, dev, half * mn, 1, T(1), X, half * mn, T(1), X + half * mn, half * mn, X, half * mn);
    if (beta == T(0)) CFLOW_DISPATCH(dev, geam<T>, dev, m, n, T(1), X, m, T(0), X, m, Ci, ldc);  // Ci may hold NaN
    else CFLOW_DISPATCH(dev, geam<T>, dev, m, n, T(1), X, m, beta, Ci, ldc, Ci, ldc);
  }
  dev.note_write(C, std::size_t(stride_c * (batch - 1) + ldc * n) * sizeof(T));
}

template <class T>
void gemv(const Device& dev, Op op_a, index_t m, index_t n, T alpha, const T* A, index_t lda, const T* x, T beta,
          T* y) {
  CFLOW_REQUIRE(m >= 0 && n >= 0 && lda >= std::max<index_t>(1, m), "gemv: bad dimensions");
  if (m == 0 || n == 0) return;
  CFLOW_DISPATCH(dev, gemv<T>, dev, op_a, m, n, alpha, A, lda, x, beta, y);
  dev.note_write(y, std::size_t(op_a == Op::N ? m : n) * sizeof(T));
}

// Every output is reported to Device::note_write: a cache watching it sees the change (device.h).
template <class T> void axpy(const Device& dev, index_t n, T alpha, const T* x, T* y) {
  if (n <= 0) return;
  CFLOW_DISPATCH(dev, axpy<T>, dev, n, alpha, x, y);
  dev.note_write(y, std::size_t(n) * sizeof(T));
}
template <class T> void scal(const Device& dev, index_t n, T alpha, T* x) {
  if (n <= 0) return;
  CFLOW_DISPATCH(dev, scal<T>, dev, n, alpha, x);
  dev.note_write(x, std::size_t(n) * sizeof(T));
}
template <class T> void copy(const Device& dev, index_t n, const T* x, T* y) {
  if (n <= 0) return;
  CFLOW_DISPATCH(dev, copy<T>, dev, n, x, y);
  dev.note_write(y, std::size_t(n) * sizeof(T));
}
// A scalar the host reads: computed into a device scalar (a block the arena keeps) and read back
// through the staging area, one transfer and one wait (docs/design.md §7.5).
template <class T> T dot(const Device& dev, index_t n, const T* x, const T* y) {
  if (n <= 0) return T(0);
  Buffer<T> result(dev, 1, Uninitialized{});
  dot(dev, n, x, y, result.data());
  return result.to_host()[0];
}
template <class T> void dot(const Device& dev, index_t n, const T* x, const T* y, T* result) {
  if (n <= 0) return dev.set_zero(result, sizeof(T));
  CFLOW_DISPATCH(dev, dot_to_device<T>, dev, n, x, y, result);
  dev.note_write(result, sizeof(T));
}
template <class T> T nrm2(const Device& dev, index_t n, const T* x) {
  if (n <= 0) return T(0);
  Buffer<T> result(dev, 1, Uninitialized{});
  CFLOW_DISPATCH(dev, nrm2_to_device<T>, dev, n, x, result.data());
  return result.to_host()[0];  // through the staging area, as dot's
}
template <class T>
void trsm_right_lower_transposed(const Device& dev, index_t m, index_t n, T alpha, const T* L, index_t ldl, T* B,
                                 index_t ldb) {
  if (m <= 0 || n <= 0) return;
  CFLOW_DISPATCH(dev, trsm_right_lower_transposed<T>, dev, m, n, alpha, L, ldl, B, ldb);
  dev.note_write(B, std::size_t(ldb * n) * sizeof(T));
}

#define CFLOW_INSTANTIATE_BLAS(T)                                                                               \
  template void gemm<T>(const Device&, Op, Op, index_t, index_t, index_t, T, const T*, index_t, const T*,       \
                        index_t, T, T*, index_t);                                                               \
  template void gemm_strided_batched<T>(const Device&, Op, Op, index_t, index_t, index_t, T, const T*, index_t, \
                                        index_t, const T*, index_t, index_t, T, T*, index_t, index_t, index_t); \
  template void gemm_long_inner<T>(const Device&, index_t, index_t, index_t, index_t, T, const T*, index_t,      \
                                   index_t, const T*, index_t, index_t, T, T*, index_t, index_t, index_t);      \
  template void gemv<T>(const Device&, Op, index_t, index_t, T, const T*, index_t, const T*, T, T*);           \
  template void axpy<T>(const Device&, index_t, T, const T*, T*);                                               \
  template void scal<T>(const Device&, index_t, T, T*);                                                         \
  template void copy<T>(const Device&, index_t, const T*, T*);                                                  \
  template T dot<T>(const Device&, index_t, const T*, const T*);                                                \
  template void dot<T>(const Device&, index_t, const T*, const T*, T*);                                         \
  template T nrm2<T>(const Device&, index_t, const T*);                                                         \
  template void trsm_right_lower_transposed<T>(const Device&, index_t, index_t, T, const T*, index_t, T*, index_t);
CFLOW_INSTANTIATE_BLAS(float)
CFLOW_INSTANTIATE_BLAS(double)

}  // namespace cflow::blas

namespace cflow::dense {

namespace {
// The solver's info, read back from the device (one int, one wait); throws when it is not 0.
void check_info(const Buffer<int>& info, const char* routine) {
  int value = 0;
  info.download(std::span<int>(&value, 1));
  if (value != 0) throw Error(std::string(routine) + " failed: LAPACK info = " + std::to_string(value));
}
}  // namespace

template <class T>
void symmetric_eigen(const Device& dev, index_t n, T* A, index_t lda, T* eigenvalues) {
  CFLOW_REQUIRE(n >= 0 && lda >= std::max<index_t>(1, n), "symmetric_eigen: bad dimensions");
  if (n == 0) return;
  Buffer<int> info(dev, 1, Uninitialized{});
  CFLOW_DISPATCH(dev, symmetric_eigen<T>, dev, n, A, lda, eigenvalues, info.data());
  check_info(info, "symmetric_eigen (?syevd)");
}
template <class T>
void cholesky(const Device& dev, index_t n, T* A, index_t lda) {
  CFLOW_REQUIRE(n >= 0 && lda >= std::max<index_t>(1, n), "cholesky: bad dimensions");
  if (n == 0) return;
  Buffer<int> info(dev, 1, Uninitialized{});
  CFLOW_DISPATCH(dev, cholesky<T>, dev, n, A, lda, info.data());
  check_info(info, "cholesky (?potrf: matrix not positive definite?)");
}
template void symmetric_eigen<float>(const Device&, index_t, float*, index_t, float*);
template void symmetric_eigen<double>(const Device&, index_t, double*, index_t, double*);
template void cholesky<float>(const Device&, index_t, float*, index_t);
template void cholesky<double>(const Device&, index_t, double*, index_t);

}  // namespace cflow::dense
