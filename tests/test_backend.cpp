// The backend runtime: device selection, buffers, the one-source launch, BLAS and dense LAPACK.
#include <omp.h>

#include <cmath>
#include <limits>
#include <numeric>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/buffer.h"
#include "host/runtime/gemm_long_inner.h"
#include "kernels/elementwise.h"
#include "kernels/portable.h"
#include "test_support.h"

namespace cflow {
namespace {

using blas::Op;
using testing::BackendTest;
using testing::random_vector;

TEST(DeviceSelection, AutoFallsBackToCpuAndSaysWhy) {
  std::string why;
  if (cuda_available(&why)) GTEST_SKIP() << "a GPU is present: auto picks it";
  const Device dev = Device::open("auto");
  EXPECT_EQ(dev.backend(), Backend::cpu);
  EXPECT_NE(dev.selection_note().find("no CUDA device"), std::string::npos) << dev.selection_note();
}

TEST(DeviceSelection, CudaWithoutGpuIsAClearError) {
  std::string why;
  if (cuda_available(&why)) GTEST_SKIP() << "a GPU is present";
  try {
    Device::open("cuda");
    FAIL() << "opening cuda without a GPU must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(DeviceSelection, BadSpecIsRejected) {
  EXPECT_THROW(Device::open("tpu"), Error);
  EXPECT_THROW(Device::open("cuda:x"), Error);
  EXPECT_THROW(Device::open("cuda:-1"), Error);
}

TEST(BlockPartition, CoversEveryIndexOnceForAnyWorkerCount) {
  for (index_t n : {0, 1, 7, 1000003}) {
    for (index_t workers : {1, 2, 3, 7, 64, 1000}) {
      std::vector<int> visits(std::size_t(n), 0);
      for (index_t rank = 0; rank < workers; ++rank)
        for (index_t i : block_partition(n, rank, workers)) ++visits[std::size_t(i)];
      EXPECT_TRUE(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }))
          << "n=" << n << " workers=" << workers;
    }
  }
}

class Backends : public BackendTest {};

TEST_P(Backends, BufferRoundTrip) {
  const auto host = random_vector<double>(1001, 1);
  Buffer<double> a(device(), std::span<const double>(host));
  Buffer<double> b(device(), a.size());
  b.copy_from(a);
  EXPECT_EQ(b.to_host(), host);
  const auto hostf = random_vector<float>(17, 2);
  Buffer<float> f(device(), std::span<const float>(hostf));
  EXPECT_EQ(f.to_host(), hostf);
  Buffer<float> zero(device(), 5);
  EXPECT_EQ(zero.to_host(), std::vector<float>(5, 0.0f));
  EXPECT_THROW(f.upload(hostf, 1), Error);
}

TEST_P(Backends, LaunchVisitsEveryIndexExactlyOnce) {
  const int saved_threads = omp_get_max_threads();
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    for (index_t n : {0, 1, 7, 1000003}) {
      Buffer<double> x(device(), n);
      // x = 1·x + 1 per visit: an index visited twice would read 2, one never visited 0.
      CFLOW_DISPATCH(device(), affine<double>, device(), n, 1.0, 1.0, x.data());
      const auto values = x.to_host();
      EXPECT_EQ(std::count(values.begin(), values.end(), 1.0), n) << "n=" << n << " threads=" << threads;
    }
  }
  omp_set_num_threads(saved_threads);
}

// Reference column-major GEMM.
template <class T>
std::vector<T> naive_gemm(Op op_a, Op op_b, index_t m, index_t n, index_t k, T alpha, const std::vector<T>& A,
                          index_t lda, const std::vector<T>& B, index_t ldb, T beta, std::vector<T> C, index_t ldc) {
  auto a = [&](index_t i, index_t l) { return op_a == Op::N ? A[i + l * lda] : A[l + i * lda]; };
  auto b = [&](index_t l, index_t j) { return op_b == Op::N ? B[l + j * ldb] : B[j + l * ldb]; };
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < m; ++i) {
      long double sum = 0;
      for (index_t l = 0; l < k; ++l) sum += (long double)a(i, l) * b(l, j);
      C[i + j * ldc] = T(alpha * sum + beta * C[i + j * ldc]);
    }
  return C;
}

template <class T>
void check_gemm(const Device& dev, T tolerance) {
  struct Shape { index_t m, n, k; };
  for (Shape s : {Shape{1, 1, 1}, Shape{7, 5, 3}, Shape{33, 17, 65}, Shape{64, 1, 9}}) {
    for (Op op_a : {Op::N, Op::T}) {
      for (Op op_b : {Op::N, Op::T}) {
        const index_t batch = 3;
        const index_t lda = (op_a == Op::N ? s.m : s.k) + 2, ldb = (op_b == Op::N ? s.k : s.n) + 1, ldc = s.m + 3;
        const index_t size_a = lda * (op_a == Op::N ? s.k : s.m), size_b = ldb * (op_b == Op::N ? s.n : s.k),
                      size_c = ldc * s.n;
        const auto A = random_vector<T>(std::size_t(size_a * batch), 3);
        const auto B = random_vector<T>(std::size_t(size_b), 4);  // shared across the batch: stride 0
        const auto C = random_vector<T>(std::size_t(size_c * batch), 5);
        Buffer<T> dA(dev, std::span<const T>(A)), dB(dev, std::span<const T>(B)), dC(dev, std::span<const T>(C));
        const T alpha = T(0.75), beta = T(-0.5);
        blas::gemm_strided_batched(dev, op_a, op_b, s.m, s.n, s.k, alpha, dA.data(), lda, size_a, dB.data(), ldb,
                                   0, beta, dC.data(), ldc, size_c, batch);
        const auto got = dC.to_host();
        for (index_t i = 0; i < batch; ++i) {
          const std::vector<T> Ai(A.begin() + i * size_a, A.begin() + (i + 1) * size_a);
          const std::vector<T> Ci(C.begin() + i * size_c, C.begin() + (i + 1) * size_c);
          const auto want = naive_gemm(op_a, op_b, s.m, s.n, s.k, alpha, Ai, lda, B, ldb, beta, Ci, ldc);
          for (index_t j = 0; j < size_c; ++j)
            ASSERT_NEAR(got[std::size_t(i * size_c + j)], want[std::size_t(j)], tolerance * (1 + s.k))
                << "m,n,k=" << s.m << "," << s.n << "," << s.k << " ops=" << int(op_a) << int(op_b);
        }
        // The single-GEMM entry point: cuBLAS may pick another kernel for a batch of one than for a batch
        // of three (it does on an H200), so it is held to the reference, not to the batched bits.
        Buffer<T> dC1(dev, std::span<const T>(C.data(), std::size_t(size_c)));
        blas::gemm(dev, op_a, op_b, s.m, s.n, s.k, alpha, dA.data(), lda, dB.data(), ldb, beta, dC1.data(), ldc);
        const auto got1 = dC1.to_host();
        const auto want1 = naive_gemm(op_a, op_b, s.m, s.n, s.k, alpha, A, lda, B, ldb, beta,
                                      std::vector<T>(C.begin(), C.begin() + size_c), ldc);
        for (index_t j = 0; j < size_c; ++j)
          ASSERT_NEAR(got1[std::size_t(j)], want1[std::size_t(j)], tolerance * (1 + s.k));
      }
    }
  }
}

TEST_P(Backends, GemmMatchesNaiveForAllTransposesFloat) { check_gemm<float>(device(), 1e-6f); }
TEST_P(Backends, GemmMatchesNaiveForAllTransposesDouble) { check_gemm<double>(device(), 1e-14); }

// Gram products Aᵀ·B of blocks of long vectors (k = d), which blas::gemm splits along k on CUDA
// (host/runtime/gemm_long_inner.h): through blas::gemm_strided_batched (the split on CUDA, one BLAS call
// on the CPU) and through the split itself at 2, 4, 64 and 256 chunks (where k ≥ chunks²) on every backend. Checked against a
// long-double reference with an error bound relative to Σ|a||b|, batched (as LOBPCG's Rayleigh–Ritz
// calls it), with leading dimensions above k, with beta = 0 over a C full of NaN (it must not be read),
// and for the same bits on a repeated call.
template <class T>
void check_long_inner_gemm(const Device& dev, double relative_tolerance) {
  struct Shape { index_t m, n, k; };
  for (Shape s : {Shape{3, 3, (1 << 20) + 123}, Shape{24, 9, 300001}, Shape{2, 1, 8193}}) {
    const index_t batch = 2, lda = s.k + 5, ldb = s.k + 3, size_a = lda * s.m, size_b = ldb * s.n, size_c = s.m * s.n;
    const auto A = random_vector<T>(std::size_t(size_a * batch), 8), B = random_vector<T>(std::size_t(size_b * batch), 9);
    Buffer<T> dA(dev, std::span<const T>(A)), dB(dev, std::span<const T>(B));
    for (T beta : {T(0), T(-0.5)}) {
      const auto C = beta == T(0) ? std::vector<T>(std::size_t(size_c * batch), std::numeric_limits<T>::quiet_NaN())
                                  : random_vector<T>(std::size_t(size_c * batch), 10);
      std::vector<double> want(C.size()), bound(C.size());
      for (index_t b = 0; b < batch; ++b)
        for (index_t j = 0; j < s.n; ++j)
          for (index_t i = 0; i < s.m; ++i) {
            const T *a = A.data() + b * size_a + i * lda, *x = B.data() + b * size_b + j * ldb;
            long double sum = 0, magnitude = 0;
            for (index_t l = 0; l < s.k; ++l) sum += (long double)a[l] * x[l], magnitude += std::abs((long double)a[l] * x[l]);
            const std::size_t c = std::size_t(b * size_c + i + j * s.m);
            want[c] = double(0.75L * sum + (beta == T(0) ? 0.0L : (long double)beta * C[c]));
            bound[c] = relative_tolerance * double(magnitude) + 1e-30;
          }
      auto product = [&](index_t chunks) {
        Buffer<T> dC(dev, std::span<const T>(C));
        if (chunks == 0)
          blas::gemm_strided_batched(dev, Op::T, Op::N, s.m, s.n, s.k, T(0.75), dA.data(), lda, size_a, dB.data(), ldb,
                                     size_b, beta, dC.data(), s.m, size_c, batch);
        else
          blas::gemm_long_inner(dev, chunks, s.m, s.n, s.k, T(0.75), dA.data(), lda, size_a, dB.data(), ldb, size_b,
                                beta, dC.data(), s.m, size_c, batch);
        return dC.to_host();
      };
      for (index_t chunks : {0, 2, 4, 64, 256}) {
        if (chunks * chunks > s.k) continue;
        const auto got = product(chunks);
        for (std::size_t c = 0; c < got.size(); ++c)
          ASSERT_NEAR(got[c], want[c], bound[c]) << "m,n,k=" << s.m << "," << s.n << "," << s.k << " chunks "
                                                 << chunks << " beta " << beta << " entry " << c;
        EXPECT_EQ(product(chunks), got) << "a repeated call gives other bits, chunks " << chunks;
      }
    }
  }
}

TEST_P(Backends, GramOfLongVectorsMatchesNaiveFloat) { check_long_inner_gemm<float>(device(), 1e-5); }
TEST_P(Backends, GramOfLongVectorsMatchesNaiveDouble) { check_long_inner_gemm<double>(device(), 1e-13); }

TEST(LongInnerChunks, OnlyTransposedTimesPlainWithASmallOutputAndALongInnerDimensionIsSplit) {
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::N, 3, 3, 8191), 1);
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::N, 3, 3, 8192), 2);
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::N, 3, 3, 1 << 20), 256);
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::N, 3, 3, 1 << 24), 256);
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::N, 257, 3, 1 << 20), 1);
  EXPECT_EQ(blas::long_inner_chunks(Op::N, Op::N, 3, 3, 1 << 20), 1);
  EXPECT_EQ(blas::long_inner_chunks(Op::T, Op::T, 3, 3, 1 << 20), 1);
  const Device dev = Device::open("cpu", 1);
  Buffer<double> A(dev, 1000), C(dev, 1);
  for (index_t chunks : {1, 3, 64})  // not a power of two ≥ 2, or k < chunks²
    EXPECT_THROW(blas::gemm_long_inner(dev, chunks, 1, 1, 1000, 1.0, A.data(), 1000, 0, A.data(), 1000, 0, 0.0,
                                       C.data(), 1, 0, 1), Error) << chunks;
}

template <class T>
void check_vector_ops(const Device& dev, T tolerance) {
  const index_t n = 1003;
  const auto x = random_vector<T>(n, 6), y = random_vector<T>(n, 7);
  Buffer<T> dx(dev, std::span<const T>(x)), dy(dev, std::span<const T>(y));
  long double dot = 0, norm = 0;
  for (index_t i = 0; i < n; ++i) dot += (long double)x[i] * y[i], norm += (long double)x[i] * x[i];
  EXPECT_NEAR(blas::dot(dev, n, dx.data(), dy.data()), T(dot), tolerance * n);
  EXPECT_NEAR(blas::nrm2(dev, n, dx.data()), T(std::sqrt(norm)), tolerance * n);
  // Into a device scalar: the same reduction, so the same bits, and no wait until it is read.
  Buffer<T> result(dev, 2);
  const std::int64_t waits = dev.traffic().synchronizations;
  blas::dot(dev, n, dx.data(), dy.data(), result.data() + 1);
  EXPECT_EQ(dev.traffic().synchronizations, waits);
  EXPECT_EQ(result.to_host(), (std::vector<T>{T(0), blas::dot(dev, n, dx.data(), dy.data())}));
  blas::axpy(dev, n, T(2), dx.data(), dy.data());
  blas::scal(dev, n, T(-0.5), dy.data());
  const auto out = dy.to_host();
  for (index_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], T(-0.5) * (y[i] + 2 * x[i]), tolerance);
  blas::copy(dev, n, dx.data(), dy.data());
  EXPECT_EQ(dy.to_host(), x);

  // gemv, both orientations, against the GEMM with one column.
  const index_t rows = 13, cols = 9;
  const auto A = random_vector<T>(rows * cols, 8);
  Buffer<T> dA(dev, std::span<const T>(A));
  for (Op op : {Op::N, Op::T}) {
    const index_t out_len = op == Op::N ? rows : cols, in_len = op == Op::N ? cols : rows;
    Buffer<T> v(dev, std::span<const T>(x.data(), std::size_t(in_len)));
    Buffer<T> r(dev, std::span<const T>(y.data(), std::size_t(out_len)));
    blas::gemv(dev, op, rows, cols, T(1.5), dA.data(), rows, v.data(), T(0.25), r.data());
    const auto want = naive_gemm<T>(op, Op::N, out_len, 1, in_len, T(1.5), A, rows,
                                    std::vector<T>(x.begin(), x.begin() + in_len), in_len, T(0.25),
                                    std::vector<T>(y.begin(), y.begin() + out_len), out_len);
    const auto got = r.to_host();
    for (index_t i = 0; i < out_len; ++i) EXPECT_NEAR(got[i], want[i], tolerance * 10);
  }
}

TEST_P(Backends, VectorOpsFloat) { check_vector_ops<float>(device(), 1e-5f); }
TEST_P(Backends, VectorOpsDouble) { check_vector_ops<double>(device(), 1e-13); }

// A = Q diag(spectrum) Qᵀ with a Householder reflection Q; returns A column-major.
std::vector<double> matrix_with_spectrum(const std::vector<double>& spectrum, unsigned seed) {
  const std::size_t n = spectrum.size();
  const auto v = random_vector<double>(n, seed);
  const double vv = std::inner_product(v.begin(), v.end(), v.begin(), 0.0);
  std::vector<double> Q(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) Q[i + j * n] = (i == j) - 2 * v[i] * v[j] / vv;
  std::vector<double> A(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t l = 0; l < n; ++l) A[i + j * n] += Q[i + l * n] * spectrum[l] * Q[j + l * n];
  return A;
}

TEST_P(Backends, SymmetricEigenRecoversKnownSpectra) {
  for (const std::vector<double>& spectrum :
       {std::vector<double>{3.0}, std::vector<double>{-2, 0, 1e-3, 5, 7.5}, std::vector<double>{1, 1, 1, 4, 4, -3}}) {
    const index_t n = index_t(spectrum.size());
    const auto A = matrix_with_spectrum(spectrum, 11);
    Buffer<double> dA(device(), std::span<const double>(A)), values(device(), n);
    dense::symmetric_eigen(device(), n, dA.data(), n, values.data());
    auto want = spectrum;
    std::sort(want.begin(), want.end());
    const auto got = values.to_host();
    for (index_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
    const auto vectors = dA.to_host();
    for (index_t j = 0; j < n; ++j)  // A v = λ v and ‖v‖ = 1
      for (index_t i = 0; i < n; ++i) {
        double av = 0;
        for (index_t l = 0; l < n; ++l) av += A[i + l * n] * vectors[l + j * n];
        EXPECT_NEAR(av, got[j] * vectors[i + j * n], 1e-12);
      }
  }
}

TEST_P(Backends, CholeskyFactorsAndRejectsIndefinite) {
  const std::vector<double> spectrum{0.5, 1, 2, 3};
  const auto A = matrix_with_spectrum(spectrum, 12);
  const index_t n = 4;
  Buffer<double> dA(device(), std::span<const double>(A));
  dense::cholesky(device(), n, dA.data(), n);
  const auto L = dA.to_host();
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j <= i; ++j) {
      double llt = 0;
      for (index_t l = 0; l <= j; ++l) llt += L[i + l * n] * L[j + l * n];
      EXPECT_NEAR(llt, A[i + j * n], 1e-13);
    }
  // B L^{-T} undoes the factor: (B L^{-T}) Lᵀ = B.
  const auto B = random_vector<double>(3 * n, 13);
  Buffer<double> dB(device(), std::span<const double>(B));
  blas::trsm_right_lower_transposed(device(), 3, n, 1.0, dA.data(), n, dB.data(), 3);
  const auto X = dB.to_host();
  for (index_t r = 0; r < 3; ++r)
    for (index_t j = 0; j < n; ++j) {
      double back = 0;
      for (index_t l = 0; l <= j; ++l) back += X[r + l * 3] * L[j + l * n];
      EXPECT_NEAR(back, B[r + j * 3], 1e-12);
    }
  const auto indefinite = matrix_with_spectrum({1, -1, 2}, 14);
  Buffer<double> dI(device(), std::span<const double>(indefinite));
  EXPECT_THROW(dense::cholesky(device(), 3, dI.data(), 3), Error);
}

CFLOW_TEST_ON_ALL_BACKENDS(Backends);

}  // namespace
}  // namespace cflow
