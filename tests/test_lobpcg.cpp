// The LOBPCG eigen-solver and the eigenvalue tracker against synthetic operators with known spectra.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "cflow/runtime/blas.h"
#include "cflow/solvers/eigen_tracker.h"
#include "cflow/solvers/lobpcg.h"
#include "kernels/elementwise.h"
#include "test_support.h"

namespace cflow {
namespace {

using blas::Op;
using testing::BackendTest;
using testing::random_vector;

std::vector<double> gaussian(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

// The d×r columns, orthonormalized by two rounds of Cholesky-QR on the device (well-conditioned for
// the tall Gaussian blocks used here).
std::vector<double> orthonormalize_columns(const Device& dev, index_t d, index_t r,
                                           const std::vector<double>& columns) {
  Buffer<double> Q(dev, std::span<const double>(columns)), gram(dev, r * r);
  for (int round = 0; round < 2; ++round) {
    blas::gemm(dev, Op::T, Op::N, r, r, d, 1.0, Q.data(), d, Q.data(), d, 0.0, gram.data(), r);
    dense::cholesky(dev, r, gram.data(), r);
    blas::trsm_right_lower_transposed(dev, d, r, 1.0, gram.data(), r, Q.data(), d);
  }
  return Q.to_host();
}

template <class To, class From>
std::vector<To> converted(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// H = Q diag(λ − σ) Qᵀ + σ I for an orthonormal d×r basis Q: eigenvalues λ on span(Q) and the
// background σ on its complement. Two GEMMs per block product.
template <class T>
class SyntheticOperator {
 public:
  static constexpr index_t kMaxColumns = 64;

  SyntheticOperator(const Device& dev, index_t d, const std::vector<double>& Q, std::vector<double> spectrum,
                    double background = 0)
      : dev_(dev), d_(d), r_(index_t(spectrum.size())), spectrum_(std::move(spectrum)), background_(background),
        Q_(dev, std::span<const T>(converted<T>(Q))), scaled_Q_(dev, d * r_), coordinates_(dev, r_ * kMaxColumns) {
    std::vector<double> scaled = Q;
    for (index_t j = 0; j < r_; ++j)
      for (index_t i = 0; i < d_; ++i) scaled[std::size_t(i + j * d_)] *= spectrum_[std::size_t(j)] - background_;
    scaled_Q_.upload(converted<T>(scaled));
  }

  void apply(const T* V, index_t m, T* HV) {
    ASSERT_LE(m, kMaxColumns);
    ++calls_;
    applications_ += int(m);
    blas::gemm(dev_, Op::T, Op::N, r_, m, d_, T(1), Q_.data(), d_, V, d_, T(0), coordinates_.data(), r_);
    blas::copy(dev_, d_ * m, V, HV);
    blas::scal(dev_, d_ * m, T(background_), HV);
    blas::gemm(dev_, Op::N, Op::N, d_, m, r_, T(1), scaled_Q_.data(), d_, coordinates_.data(), r_, T(1), HV, d_);
  }
  BlockOperator<T> op() {
    return [this](const T* V, index_t m, T* HV) { apply(V, m, HV); };
  }
  // u_jᵀ H u_j per column, as the objective's `quad` would return it.
  QuadraticForm<T> quad() {
    return [this](const T* U, index_t m, T* out) {
      Buffer<T> HU(dev_, d_ * m), gram(dev_, m * m);
      apply(U, m, HU.data());
      blas::gemm(dev_, Op::T, Op::N, m, m, d_, T(1), U, d_, HU.data(), d_, T(0), gram.data(), m);
      const std::vector<T> host = gram.to_host();
      for (index_t j = 0; j < m; ++j) out[j] = host[std::size_t(j + j * m)];
    };
  }
  // The k largest eigenvalues of H, descending.
  std::vector<double> top(index_t k) const {
    std::vector<double> all = spectrum_;
    all.resize(std::size_t(std::min(d_, r_ + k)), background_);
    std::sort(all.rbegin(), all.rend());
    all.resize(std::size_t(k));
    return all;
  }
  int calls() const { return calls_; }
  int applications() const { return applications_; }

 private:
  Device dev_;
  index_t d_, r_;
  std::vector<double> spectrum_;
  double background_;
  Buffer<T> Q_, scaled_Q_, coordinates_;
  int calls_ = 0, applications_ = 0;
};

// A test problem: dimension, basis and spectrum.
struct Problem {
  index_t d;
  std::vector<double> spectrum;
  double background = 0;
  unsigned seed = 1;
  std::vector<double> basis(const Device& dev) const {
    const index_t r = index_t(spectrum.size());
    return orthonormalize_columns(dev, d, r, gaussian(std::size_t(d * r), seed));
  }
};

// A spectrum: the given leading eigenvalues, then `bulk` values spread uniformly over [low, high].
std::vector<double> spectrum(std::vector<double> leading, int bulk, double low, double high, unsigned seed = 7) {
  const auto rest = random_vector<double>(std::size_t(bulk), seed, low, high);
  leading.insert(leading.end(), rest.begin(), rest.end());
  return leading;
}

struct Tolerances {
  double eigenvalue;       // |λ − λ*| ≤ this · max(|λ*|, 1e-3 max|λ*|)
  double orthonormality;   // |YᵀY − I|, |UᵀPU − I| entrywise
  double residual;         // ‖H u − λ P u‖ ≤ this · max(|λ|, 1e-3 max|λ|) · ‖P u‖
};

// Checks a solver result against the operator itself, independently of the solver's own bookkeeping.
// p_host: the diagonal of P, or empty for P = I.
template <class T>
void expect_eigenpairs(const Device& dev, index_t d, SyntheticOperator<T>& H, const std::vector<T>& p_host,
                       const std::vector<T>& eigenvalues, const T* Y_device, const T* U_device,
                       const std::vector<double>& expected, const Tolerances& tol) {
  const index_t k = index_t(eigenvalues.size());
  ASSERT_EQ(k, index_t(expected.size()));
  double largest = 0;
  for (double e : expected) largest = std::max(largest, std::abs(e));
  const auto scale = [&](double lambda) { return std::max(std::abs(lambda), 1e-3 * largest); };
  for (index_t j = 0; j < k; ++j)
    EXPECT_NEAR(eigenvalues[std::size_t(j)], expected[std::size_t(j)], tol.eigenvalue * scale(expected[std::size_t(j)]))
        << "eigenvalue " << j;

  Buffer<T> Y(dev, d * k), U(dev, d * k), HU(dev, d * k);
  blas::copy(dev, d * k, Y_device, Y.data());
  blas::copy(dev, d * k, U_device, U.data());
  H.apply(U.data(), k, HU.data());
  const auto y = Y.to_host(), u = U.to_host(), hu = HU.to_host();
  const auto p = [&](index_t i) { return p_host.empty() ? 1.0 : double(p_host[std::size_t(i)]); };
  for (std::size_t i = 0; i < y.size(); ++i) {
    ASSERT_TRUE(std::isfinite(y[i]) && std::isfinite(u[i])) << "non-finite vector entry " << i;
    ASSERT_NEAR(u[i], y[i] / std::sqrt(p(index_t(i) % d)), 1e-6 * std::abs(u[i]) + 1e-30)
        << "U ≠ P^{-1/2} Y at " << i;
  }
  for (index_t a = 0; a < k; ++a)
    for (index_t b = 0; b < k; ++b) {
      double yy = 0, upu = 0;
      for (index_t i = 0; i < d; ++i) {
        yy += double(y[std::size_t(i + a * d)]) * y[std::size_t(i + b * d)];
        upu += double(u[std::size_t(i + a * d)]) * p(i) * u[std::size_t(i + b * d)];
      }
      EXPECT_NEAR(yy, a == b, tol.orthonormality) << "YᵀY at " << a << "," << b;
      EXPECT_NEAR(upu, a == b, tol.orthonormality) << "UᵀPU at " << a << "," << b;
    }
  for (index_t j = 0; j < k; ++j) {
    double residual = 0, pu = 0;
    for (index_t i = 0; i < d; ++i) {
      const std::size_t at = std::size_t(i + j * d);
      const double Pu = p(i) * u[at];
      residual += std::pow(hu[at] - double(eigenvalues[std::size_t(j)]) * Pu, 2);
      pu += Pu * Pu;
    }
    EXPECT_LE(std::sqrt(residual), tol.residual * scale(eigenvalues[std::size_t(j)]) * std::sqrt(pu))
        << "HU = PUΛ fails for column " << j;
  }
}

template <class T>
void expect_solution(const Device& dev, index_t d, SyntheticOperator<T>& H, const std::vector<T>& p_host,
                     const LobpcgResult<T>& result, const std::vector<double>& expected, const Tolerances& tol) {
  EXPECT_TRUE(result.converged);
  ASSERT_EQ(result.Y.size(), d * index_t(expected.size()));
  ASSERT_EQ(result.U.size(), d * index_t(expected.size()));
  expect_eigenpairs(dev, d, H, p_host, result.eigenvalues, result.Y.data(), result.U.data(), expected, tol);
}

constexpr Tolerances kDouble{1e-8, 1e-12, 1e-8};

// A P = I tracker's state checked like a solver result.
// The guard (last) column, measured independently: θ + ‖Hy − θy‖ < threshold, and the known
// eigenvalue it approximates lies within ‖Hy − θy‖ of θ (docs/design.md §5.3). P = I.
void expect_certified_guard(const Device& dev, const EigenTracker<double>& tracker, SyntheticOperator<double>& H,
                            double expected, double threshold) {
  const index_t d = tracker.dimension(), last = tracker.k() - 1;
  Buffer<double> Hy(dev, d);
  H.op()(tracker.Y() + last * d, 1, Hy.data());
  Buffer<double> Y(dev, d * tracker.k());
  blas::copy(dev, d * tracker.k(), tracker.Y(), Y.data());
  const std::vector<double> y = Y.to_host(), hy = Hy.to_host();
  const double theta = tracker.eigenvalues()[std::size_t(last)];
  double residual2 = 0;
  for (index_t i = 0; i < d; ++i) residual2 += std::pow(hy[std::size_t(i)] - theta * y[std::size_t(i + last * d)], 2);
  const double residual = std::sqrt(residual2);
  EXPECT_LT(theta + residual, threshold);
  EXPECT_LE(std::abs(theta - expected), residual * (1 + 1e-10));
}

// Every tracked pair to the tolerance; a certified guard (EigenSolveReport::guard_certified) only
// certified below the threshold.
void expect_tracked(const Device& dev, const EigenTracker<double>& tracker, SyntheticOperator<double>& H,
                    const std::vector<double>& expected, std::optional<double> threshold = std::nullopt) {
  std::vector<double> eigenvalues(tracker.eigenvalues().begin(), tracker.eigenvalues().end());
  std::vector<double> accurate = expected;
  if (tracker.last_solve().guard_certified) {
    ASSERT_TRUE(threshold) << "a certified guard needs the threshold it was certified against";
    expect_certified_guard(dev, tracker, H, expected.back(), *threshold);
    eigenvalues.pop_back();
    accurate.pop_back();
  }
  expect_eigenpairs(dev, tracker.dimension(), H, {}, eigenvalues, tracker.Y(), tracker.U(), accurate, kDouble);
}

void record_counts(const std::string& name, int iterations, int calls, int applications) {
  ::testing::Test::RecordProperty(name + "_iterations", iterations);
  ::testing::Test::RecordProperty(name + "_operator_calls", calls);
  ::testing::Test::RecordProperty(name + "_operator_applications", applications);
}

class Lobpcg : public BackendTest {};

TEST_P(Lobpcg, TopEigenpairsOfAKnownSpectrum) {
  const Problem problem{1000, spectrum({10, 8, 7, 6.5, 5, 4.5}, 294, -3, 3)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  const LobpcgOptions options{.k = 5, .tolerance = 1e-8, .max_iterations = 100, .seed = 3};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), nullptr, options);
  // Counting: one call for the start block, then one per iteration, each on the unconverged columns.
  EXPECT_EQ(result.operator_calls, result.iterations + 1);
  EXPECT_EQ(H.calls(), result.operator_calls);
  EXPECT_EQ(H.applications(), result.operator_applications);
  EXPECT_LE(result.operator_applications, 5 * (result.iterations + 1));
  expect_solution(device(), problem.d, H, {}, result, H.top(5), kDouble);
  EXPECT_LT(result.iterations, 100);
  for (double residual : result.residuals) EXPECT_LE(residual, 1e-8);
  record_counts("top5", result.iterations, result.operator_calls, result.operator_applications);
}

TEST_P(Lobpcg, RepeatedAndNearlyRepeatedEigenvalues) {
  // A triple eigenvalue, a fourth one 1e-10 below it, and a pair that the block boundary cuts.
  const Problem problem{600, spectrum({5, 5, 5, 5 * (1 - 1e-10), 3, 3}, 200, -2, 2)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  const LobpcgOptions options{.k = 5, .tolerance = 1e-8, .max_iterations = 100, .seed = 4};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), nullptr, options);
  expect_solution(device(), problem.d, H, {}, result, H.top(5), kDouble);
  record_counts("clustered", result.iterations, result.operator_calls, result.operator_applications);
}

TEST_P(Lobpcg, MoreColumnsThanDistinctEigenvalues) {
  // Rank 3 with a double eigenvalue: k = 6 asks for three copies of the zero eigenvalue of an operator
  // whose null space has dimension 197. Zero eigenvalues converge in the absolute sense.
  const Problem problem{200, {3, 3, 1}};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  const LobpcgOptions options{.k = 6, .tolerance = 1e-8, .max_iterations = 100, .seed = 5};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), nullptr, options);
  expect_solution(device(), problem.d, H, {}, result, {3, 3, 1, 0, 0, 0}, kDouble);
  record_counts("rank3_k6", result.iterations, result.operator_calls, result.operator_applications);
}

TEST_P(Lobpcg, NegativeEigenvalues) {
  // Every eigenvalue but one is negative; the background −4 fills the complement of the basis.
  const Problem problem{500, spectrum({2, -0.5, -1, -1.5}, 150, -3.8, -2), -4};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum, problem.background);
  const LobpcgOptions options{.k = 3, .tolerance = 1e-8, .max_iterations = 100, .seed = 6};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), nullptr, options);
  expect_solution(device(), problem.d, H, {}, result, {2, -0.5, -1}, kDouble);
}

TEST_P(Lobpcg, WarmStartFromConvergedVectors) {
  const Problem problem{800, spectrum({9, 7, 6, 5.5, 4}, 200, -2, 3)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  const LobpcgOptions options{.k = 4, .tolerance = 1e-8, .max_iterations = 100, .seed = 7};
  const auto cold = lobpcg<double>(device(), problem.d, H.op(), nullptr, options);
  ASSERT_TRUE(cold.converged);
  const auto warm = lobpcg<double>(device(), problem.d, H.op(), nullptr, options, cold.Y.data(), 4);
  expect_solution(device(), problem.d, H, {}, warm, H.top(4), kDouble);
  EXPECT_LE(warm.iterations, 2);
  // k + small: the start block's k applications, at most one more block (measured: 4, no iteration).
  EXPECT_LE(warm.operator_applications, 4 + 4);
  for (double residual : warm.residuals) EXPECT_LE(residual, options.tolerance);
  record_counts("cold", cold.iterations, cold.operator_calls, cold.operator_applications);
  record_counts("warm", warm.iterations, warm.operator_calls, warm.operator_applications);
  // A warm start may have fewer columns than k (completed at random) or more (a wider first step).
  const LobpcgOptions more{.k = 5, .tolerance = 1e-8, .max_iterations = 100, .seed = 8};
  const auto grown = lobpcg<double>(device(), problem.d, H.op(), nullptr, more, cold.Y.data(), 4);
  expect_solution(device(), problem.d, H, {}, grown, H.top(5), kDouble);
  const LobpcgOptions fewer{.k = 2, .tolerance = 1e-8, .max_iterations = 100, .seed = 9};
  const auto narrowed = lobpcg<double>(device(), problem.d, H.op(), nullptr, fewer, cold.Y.data(), 4);
  expect_solution(device(), problem.d, H, {}, narrowed, H.top(2), kDouble);
  EXPECT_LE(narrowed.iterations, 2);
}

TEST_P(Lobpcg, RankDeficientWarmStartIsCompleted) {
  const Problem problem{300, spectrum({6, 5, 4}, 100, -1, 2)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  // Three copies of one vector and a zero column: rank 1 where 4 columns are needed.
  const auto column = random_vector<double>(std::size_t(problem.d), 10);
  std::vector<double> start(std::size_t(4 * problem.d), 0.0);
  for (int c = 0; c < 3; ++c) std::copy(column.begin(), column.end(), start.begin() + c * problem.d);
  Buffer<double> warm(device(), std::span<const double>(start));
  const LobpcgOptions options{.k = 4, .tolerance = 1e-8, .max_iterations = 100, .seed = 11};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), nullptr, options, warm.data(), 4);
  expect_solution(device(), problem.d, H, {}, result, H.top(4), kDouble);
}

TEST_P(Lobpcg, DiagonalPreconditioner) {
  const Problem problem{400, spectrum({12, 9, 8, 6}, 146, -4, 4)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  std::vector<double> p = random_vector<double>(std::size_t(problem.d), 12, -1, 1);
  for (double& x : p) x = std::exp(x);
  Buffer<double> p_device(device(), std::span<const double>(p));
  const LobpcgOptions options{.k = 4, .tolerance = 1e-10, .max_iterations = 100, .seed = 13};
  const auto result = lobpcg<double>(device(), problem.d, H.op(), p_device.data(), options);

  // The reference: a dense eigendecomposition of A = P^{-1/2} H P^{-1/2}, formed column by column.
  const index_t d = problem.d;
  std::vector<double> identity(std::size_t(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) identity[std::size_t(i + i * d)] = 1;
  Buffer<double> A(device(), std::span<const double>(identity)), HA(device(), d * d), eigenvalues(device(), d);
  for (index_t c = 0; c < d; c += SyntheticOperator<double>::kMaxColumns) {
    const index_t m = std::min(SyntheticOperator<double>::kMaxColumns, d - c);
    apply_inverse_sqrt_diagonal(device(), d, m, p_device.data(), A.data() + c * d, A.data() + c * d);
    H.apply(A.data() + c * d, m, HA.data() + c * d);
    apply_inverse_sqrt_diagonal(device(), d, m, p_device.data(), HA.data() + c * d, HA.data() + c * d);
  }
  dense::symmetric_eigen(device(), d, HA.data(), d, eigenvalues.data());
  auto expected = eigenvalues.to_host();
  std::reverse(expected.begin(), expected.end());
  expected.resize(4);
  expect_solution(device(), d, H, converted<double>(p), result, expected, kDouble);
  record_counts("preconditioned", result.iterations, result.operator_calls, result.operator_applications);
}

TEST_P(Lobpcg, Float32ReachesFloat32Accuracy) {
  const Problem problem{1000, spectrum({10, 8, 7, 6.5, 5, 4.5}, 294, -3, 3)};
  SyntheticOperator<float> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  std::vector<float> p = random_vector<float>(std::size_t(problem.d), 14, 0.5f, 2.0f);
  Buffer<float> p_device(device(), std::span<const float>(p));
  // The solver stops on its own float32 residual (from a carried A·X that drifts by rounding); the
  // residual recomputed in float64 may exceed the tolerance by that drift, whatever the thread count.
  const LobpcgOptions options{.k = 5, .tolerance = 1e-4, .max_iterations = 100, .seed = 15};
  const auto plain = lobpcg<float>(device(), problem.d, H.op(), nullptr, options);
  expect_solution(device(), problem.d, H, {}, plain, H.top(5), {1e-5, 1e-5, 2e-4});
  record_counts("float32", plain.iterations, plain.operator_calls, plain.operator_applications);
  const auto preconditioned = lobpcg<float>(device(), problem.d, H.op(), p_device.data(), options);
  EXPECT_TRUE(preconditioned.converged);
  expect_eigenpairs(device(), problem.d, H, p, preconditioned.eigenvalues, preconditioned.Y.data(),
                    preconditioned.U.data(), converted<double>(preconditioned.eigenvalues), {0, 1e-5, 2e-4});
}

TEST_P(Lobpcg, RejectsBadArgumentsAndNonFiniteOperators) {
  const index_t d = 50;
  const BlockOperator<double> nan_operator = [&](const double*, index_t m, double* HV) {
    CFLOW_DISPATCH(device(), fill<double>, device(), d * m, std::numeric_limits<double>::quiet_NaN(), HV);
  };
  EXPECT_THROW(lobpcg<double>(device(), d, nan_operator, nullptr, {.k = 2}), Error);
  EXPECT_THROW(lobpcg<double>(device(), d, nan_operator, nullptr, {.k = 51}), Error);
  EXPECT_THROW(lobpcg<double>(device(), d, nan_operator, nullptr, {.k = 0}), Error);
  EXPECT_THROW(lobpcg<double>(device(), d, nan_operator, nullptr, {.k = 1}, nullptr, 3), Error);
}

// A time bound that is over stops the iterations: not converged, and timed_out says why; the
// vectors are still the orthonormal best found so far.
TEST_P(Lobpcg, ATimeBoundStopsTheIterationsAndSaysSo) {
  const Problem problem{500, spectrum({10, 8, 7}, 197, -3, 3)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  const auto bounded =
      lobpcg<double>(device(), problem.d, H.op(), nullptr, {.k = 3, .max_seconds = 1e-300, .seed = 3});
  EXPECT_FALSE(bounded.converged);
  EXPECT_TRUE(bounded.timed_out);
  EXPECT_EQ(bounded.iterations, 0);
  const auto unbounded = lobpcg<double>(device(), problem.d, H.op(), nullptr, {.k = 3, .seed = 3});
  EXPECT_TRUE(unbounded.converged);
  EXPECT_FALSE(unbounded.timed_out);
  EigenTracker<double> tracker(device(), problem.d, {.initial_k = 1, .track_threshold = 1, .max_seconds = 1e-300, .seed = 3});
  const EigenSolveReport& report = tracker.solve(H.op(), nullptr);
  EXPECT_TRUE(report.timed_out);
  EXPECT_EQ(report.lobpcg_calls, 1);  // no growth after a timed-out call
}

CFLOW_TEST_ON_ALL_BACKENDS(Lobpcg);

class EigenTracking : public BackendTest {};

TEST_P(EigenTracking, GrowsUntilEveryEigenvalueAboveTheThresholdIsTracked) {
  // Seven eigenvalues above 1.5, one just below it.
  const Problem problem{500, spectrum({6, 5, 4, 3, 2.5, 2, 1.6, 1.4, 1.2}, 191, -1, 1)};
  SyntheticOperator<double> H(device(), problem.d, problem.basis(device()), problem.spectrum);
  EigenTracker<double> tracker(device(), problem.d, {.initial_k = 1, .track_threshold = 1.5, .k_max = 20});
  const EigenSolveReport& first = tracker.solve(H.op(), nullptr);
  ASSERT_EQ(tracker.k(), 8);
  EXPECT_EQ(first.lobpcg_calls, 4);  // k = 1, 2, 4, 8: each growth step twice the one before
  expect_tracked(device(), tracker, H, H.top(8), 1.5);
  record_counts("growth", first.iterations, first.operator_calls, first.operator_applications);

  // Solving again at the same point: no growth, and the warm start is already converged.
  const EigenSolveReport& second = tracker.solve(H.op(), nullptr);
  EXPECT_EQ(tracker.k(), 8);
  EXPECT_EQ(second.lobpcg_calls, 1);
  EXPECT_LE(second.iterations, 2);
  EXPECT_TRUE(second.converged);

  // Five above 2.2: k = 1, 2, 4, 8, and the overshoot trimmed to the five plus one below.
  EigenTracker<double> trimmed(device(), problem.d, {.initial_k = 1, .track_threshold = 2.2, .k_max = 20});
  EXPECT_EQ(trimmed.solve(H.op(), nullptr).lobpcg_calls, 4);
  ASSERT_EQ(trimmed.k(), 6);
  expect_tracked(device(), trimmed, H, H.top(6), 2.2);
  // Eight above 1.3: k = 1, 2, 4, 8 (all above), 16, trimmed to nine.
  EigenTracker<double> far(device(), problem.d, {.initial_k = 1, .track_threshold = 1.3, .k_max = 20});
  EXPECT_EQ(far.solve(H.op(), nullptr).lobpcg_calls, 5);
  ASSERT_EQ(far.k(), 9);
  expect_tracked(device(), far, H, H.top(9), 1.3);

  // The cap stops the growth.
  EigenTracker<double> capped(device(), problem.d, {.initial_k = 2, .track_threshold = 1.5, .k_max = 4});
  capped.solve(H.op(), nullptr);
  EXPECT_EQ(capped.k(), 4);
  // No threshold: k stays where it starts.
  EigenTracker<double> fixed(device(), problem.d, {.initial_k = 3, .track_threshold = std::nullopt});
  fixed.solve(H.op(), nullptr);
  EXPECT_EQ(fixed.k(), 3);
  expect_tracked(device(), fixed, H, H.top(3));
}

// ⟨y_new_j, y_previous_i⟩ for the d×k blocks, on the host.
std::vector<double> overlaps(const std::vector<double>& previous, const std::vector<double>& current, index_t d) {
  const index_t kp = index_t(previous.size()) / d, kc = index_t(current.size()) / d;
  std::vector<double> o(std::size_t(kp * kc), 0.0);
  for (index_t j = 0; j < kc; ++j)
    for (index_t i = 0; i < kp; ++i)
      for (index_t l = 0; l < d; ++l)
        o[std::size_t(i + j * kp)] += previous[std::size_t(l + i * d)] * current[std::size_t(l + j * d)];
  return o;
}

TEST_P(EigenTracking, SignsFollowThePreviousVectors) {
  const index_t d = 400;
  const std::vector<double> eigenvalues = spectrum({5, 4.5, 3, 2.5}, 100, -1, 1);
  const auto Q = orthonormalize_columns(device(), d, 104, gaussian(std::size_t(d * 104), 20));
  SyntheticOperator<double> before(device(), d, Q, eigenvalues);
  EigenTracker<double> tracker(device(), d, {.initial_k = 4, .track_threshold = std::nullopt, .seed = 21});
  tracker.solve(before.op(), nullptr);
  Buffer<double> first(device(), d * 4);
  blas::copy(device(), d * 4, tracker.Y(), first.data());

  // The basis turns a little and the top two eigenvalues swap places.
  auto turned = gaussian(std::size_t(d * 104), 22);
  for (std::size_t i = 0; i < turned.size(); ++i) turned[i] = Q[i] + 2e-4 * turned[i];
  std::vector<double> swapped = eigenvalues;
  std::swap(swapped[0], swapped[1]);
  SyntheticOperator<double> after(device(), d, orthonormalize_columns(device(), d, 104, turned), swapped);
  tracker.solve(after.op(), nullptr);
  Buffer<double> second(device(), d * 4);
  blas::copy(device(), d * 4, tracker.Y(), second.data());
  const auto o = overlaps(first.to_host(), second.to_host(), d);
  // Column j of the new block continues the previous column it overlaps most, with a positive sign.
  const std::vector<index_t> continues = {1, 0, 2, 3};
  for (index_t j = 0; j < 4; ++j) {
    EXPECT_GT(o[std::size_t(continues[std::size_t(j)] + j * 4)], 0.98) << "column " << j;
  }
}

TEST_P(EigenTracking, RayleighRefreshGivesTheCurrentQuotients) {
  const index_t d = 300;
  const auto Q = orthonormalize_columns(device(), d, 80, gaussian(std::size_t(d * 80), 30));
  const std::vector<double> eigenvalues = spectrum({8, 7, 6, 5}, 76, -2, 2);
  std::vector<double> p1 = random_vector<double>(std::size_t(d), 31, 0.5, 2), p2 = p1;
  for (double& x : p2) x *= 1 + 0.3 * std::sin(x * 7);
  Buffer<double> p1_device(device(), std::span<const double>(p1)), p2_device(device(), std::span<const double>(p2));
  SyntheticOperator<double> H1(device(), d, Q, eigenvalues);
  EigenTracker<double> tracker(device(), d, {.initial_k = 4, .track_threshold = std::nullopt});
  tracker.solve(H1.op(), p1_device.data());
  Buffer<double> Y_before(device(), d * 4);
  blas::copy(device(), d * 4, tracker.Y(), Y_before.data());

  // A new point: the spectrum reordered (the top two far apart now) and a new preconditioner.
  std::vector<double> moved = eigenvalues;
  moved[0] = 4, moved[3] = 9;
  SyntheticOperator<double> H2(device(), d, Q, moved);
  tracker.refresh(H2.quad(), p2_device.data());

  // The quotients, computed here from the cached vectors: u = P2^{-1/2} y, uᵀ H2 u.
  const auto y = Y_before.to_host();
  Buffer<double> U(device(), d * 4), HU(device(), d * 4);
  apply_inverse_sqrt_diagonal(device(), d, 4, p2_device.data(), Y_before.data(), U.data());
  H2.apply(U.data(), 4, HU.data());
  const auto u = U.to_host(), hu = HU.to_host();
  std::vector<double> quotients(4, 0.0);
  for (index_t j = 0; j < 4; ++j)
    for (index_t i = 0; i < d; ++i) quotients[std::size_t(j)] += u[std::size_t(i + j * d)] * hu[std::size_t(i + j * d)];
  std::vector<index_t> order(4);
  std::iota(order.begin(), order.end(), index_t(0));
  std::sort(order.begin(), order.end(),
            [&](index_t a, index_t b) { return quotients[std::size_t(a)] > quotients[std::size_t(b)]; });
  ASSERT_NE(order, (std::vector<index_t>{0, 1, 2, 3})) << "the test should reorder the pairs";

  Buffer<double> Y_after(device(), d * 4), U_after(device(), d * 4);
  blas::copy(device(), d * 4, tracker.Y(), Y_after.data());
  blas::copy(device(), d * 4, tracker.U(), U_after.data());
  const auto y_after = Y_after.to_host(), u_after = U_after.to_host();
  for (index_t a = 0; a < 4; ++a) {
    const index_t source = order[std::size_t(a)];
    const double want = quotients[std::size_t(source)];
    EXPECT_NEAR(tracker.eigenvalues()[std::size_t(a)], want, 1e-12 * std::abs(want));
    for (index_t i = 0; i < d; ++i) {
      ASSERT_EQ(y_after[std::size_t(i + a * d)], y[std::size_t(i + source * d)]) << "Y is permuted, never changed";
      ASSERT_NEAR(u_after[std::size_t(i + a * d)], u[std::size_t(i + source * d)], 1e-15);
    }
  }
}

// A spectrum whose eigenvectors turn steadily: H(t) on the basis orthonormalize(Q₀ + t·δ·G).
struct TurningSpectrum {
  index_t d = 400, r = 64;
  std::vector<double> eigenvalues = spectrum({6, 5, 4, 3.5}, 60, -1, 1);
  std::vector<double> Q0 = gaussian(std::size_t(d * r), 40), G = gaussian(std::size_t(d * r), 41);
  SyntheticOperator<double> at(const Device& dev, int t) const {
    std::vector<double> turned = Q0;
    for (std::size_t i = 0; i < turned.size(); ++i) turned[i] += 2e-3 * t * G[i];
    return SyntheticOperator<double>(dev, d, orthonormalize_columns(dev, d, r, turned), eigenvalues);
  }
};

TEST_P(EigenTracking, ExtrapolatedWarmStartsCostLessAndKeepTheTolerance) {
  const TurningSpectrum turning;
  int applications[2] = {0, 0};  // solves 2–5, extrapolating and not
  for (const bool extrapolate : {true, false}) {
    EigenTracker<double> tracker(device(), turning.d,
                                 {.initial_k = 3, .track_threshold = std::nullopt, .tolerance = 1e-8,
                                  .extrapolate = extrapolate, .seed = 42});
    for (int t = 0; t <= 5; ++t) {
      SyntheticOperator<double> H = turning.at(device(), t);
      const EigenSolveReport& report = tracker.solve(H.op(), nullptr);
      ASSERT_TRUE(report.converged) << "t = " << t;
      for (double residual : report.residuals) EXPECT_LE(residual, 1e-8) << "t = " << t;
      expect_tracked(device(), tracker, H, H.top(3));  // HU = UΛ and the known spectrum
      if (t >= 2) applications[extrapolate ? 0 : 1] += report.operator_applications;
    }
  }
  RecordProperty("extrapolated_applications", applications[0]);
  RecordProperty("plain_applications", applications[1]);
  EXPECT_LT(applications[0], applications[1]);
}

TEST_P(EigenTracking, ACertifiedGuardCostsLessAndTheColumnsAboveKeepTheTolerance) {
  // Four above 1.5; the guard is the top of a bulk clustered in [-1, 1], slow to converge. The first
  // solve (growth from random columns) never certifies.
  const TurningSpectrum turning;
  int applications[2] = {0, 0};  // solves 1–5, certifying and not
  for (const bool certify : {true, false}) {
    EigenTracker<double> tracker(device(), turning.d,
                                 {.initial_k = 1, .track_threshold = 1.5, .tolerance = 1e-8,
                                  .certify_guard = certify, .seed = 44});
    for (int t = 0; t <= 5; ++t) {
      SyntheticOperator<double> H = turning.at(device(), t);
      const EigenSolveReport& report = tracker.solve(H.op(), nullptr);
      ASSERT_EQ(tracker.k(), 5) << "t = " << t;
      ASSERT_TRUE(report.converged) << "t = " << t;
      EXPECT_EQ(report.guard_certified, certify && t >= 1) << "t = " << t;
      for (index_t j = 0; j < 4; ++j) EXPECT_LE(report.residuals[std::size_t(j)], 1e-8) << "t = " << t;
      expect_tracked(device(), tracker, H, H.top(5), 1.5);
      if (t >= 1) applications[certify ? 0 : 1] += report.operator_applications;
    }
  }
  RecordProperty("certified_applications", applications[0]);
  RecordProperty("converged_applications", applications[1]);
  EXPECT_LT(applications[0], applications[1]);
}

TEST_P(EigenTracking, AGuardThatCrossesTheThresholdStillGrowsTheBlock) {
  const index_t d = 300;
  const std::vector<double> below = spectrum({6, 5, 4, 1.4}, 60, -1, 1);
  std::vector<double> crossed = below;
  crossed[3] = 1.6;  // the guard's eigenvalue moves above the threshold
  const std::vector<double> Q = Problem{d, below}.basis(device());
  EigenTracker<double> tracker(device(), d, {.initial_k = 4, .track_threshold = 1.5, .seed = 45});
  SyntheticOperator<double> before(device(), d, Q, below), after(device(), d, Q, crossed);
  tracker.solve(before.op(), nullptr);
  ASSERT_EQ(tracker.k(), 4);
  expect_tracked(device(), tracker, before, before.top(4), 1.5);
  tracker.solve(after.op(), nullptr);
  ASSERT_EQ(tracker.k(), 5) << "1.6 is tracked, plus one below";
  expect_tracked(device(), tracker, after, after.top(5), 1.5);
}

TEST_P(EigenTracking, ARestoredSnapshotExtrapolatesLikeTheOriginal) {
  const TurningSpectrum turning;
  const EigenTrackerOptions options{.initial_k = 3, .track_threshold = std::nullopt, .seed = 43};
  EigenTracker<double> original(device(), turning.d, options), restored(device(), turning.d, options);
  for (int t = 0; t <= 2; ++t) original.solve(turning.at(device(), t).op(), nullptr);
  const EigenTrackerSnapshot snapshot = original.snapshot();
  ASSERT_EQ(index_t(snapshot.Y_previous.size()), turning.d * 3) << "the solve before is part of the state";
  restored.restore(snapshot);
  SyntheticOperator<double> H = turning.at(device(), 3);
  const int original_applications = original.solve(H.op(), nullptr).operator_applications;
  EXPECT_EQ(restored.solve(H.op(), nullptr).operator_applications, original_applications);
  Buffer<double> a(device(), turning.d * 3), b(device(), turning.d * 3);
  blas::copy(device(), turning.d * 3, original.Y(), a.data());
  blas::copy(device(), turning.d * 3, restored.Y(), b.data());
  EXPECT_EQ(a.to_host(), b.to_host()) << "a resumed tracker continues bit for bit";
}

TEST_P(EigenTracking, RefreshBeforeSolveIsAnError) {
  EigenTracker<double> tracker(device(), 10, {});
  SyntheticOperator<double> H(device(), 10, orthonormalize_columns(device(), 10, 2, gaussian(20, 1)), {2, 1});
  EXPECT_THROW(tracker.refresh(H.quad(), nullptr), Error);
}

CFLOW_TEST_ON_ALL_BACKENDS(EigenTracking);

}  // namespace
}  // namespace cflow
