// The SDCP solver against problems with known solutions: pick X* ⪰ 0 and M* ⪰ 0 with X*M* = 0
// (shared eigenvectors, complementary eigenvalues), a PSD operator 𝓑, and set α = M* − 𝓑[X*].
#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cflow/runtime/error.h"
#include "cflow/solvers/sdcp.h"

namespace cflow {
namespace {

using Matrix = std::vector<double>;  // column-major

constexpr double kResidualTolerance = 1e-10;
constexpr double kRecoveryTolerance = 1e-8;

double frobenius_norm(const Matrix& A) {
  double sum = 0;
  for (double v : A) sum += v * v;
  return std::sqrt(sum);
}

double relative_error(const Matrix& actual, const Matrix& expected) {
  double sum = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) sum += (actual[i] - expected[i]) * (actual[i] - expected[i]);
  return std::sqrt(sum) / frobenius_norm(expected);
}

// C = A B, A m×l, B l×n.
Matrix multiply(int m, int l, int n, const Matrix& A, const Matrix& B) {
  Matrix C(static_cast<std::size_t>(m) * n, 0.0);
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < l; ++p) {
      for (int i = 0; i < m; ++i) C[i + m * j] += A[i + m * p] * B[p + l * j];
    }
  }
  return C;
}

Matrix transpose(int m, int n, const Matrix& A) {
  Matrix T(A.size());
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) T[j + n * i] = A[i + m * j];
  }
  return T;
}

// Eigen-decomposition of symmetric A (n×n): eigenvalues ascending, A overwritten by eigenvectors.
std::vector<double> eigen_decompose(int n, Matrix& A) {
  std::vector<double> values(n);
  EXPECT_EQ(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', n, A.data(), n, values.data()), 0);
  return values;
}

double min_eigenvalue(int n, Matrix A) { return eigen_decompose(n, A).front(); }

// Q diag(values) Qᵀ
Matrix from_eigen(int n, const Matrix& Q, const std::vector<double>& values) {
  Matrix scaled = Q;
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) scaled[i + n * j] *= values[j];
  }
  return multiply(n, n, n, scaled, transpose(n, n, Q));
}

Matrix gaussian_matrix(int m, int n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Matrix A(static_cast<std::size_t>(m) * n);
  for (double& v : A) v = normal(rng);
  return A;
}

Matrix random_orthogonal(int n, std::mt19937_64& rng) {
  const Matrix G = gaussian_matrix(n, n, rng);
  Matrix S = multiply(n, n, n, G, transpose(n, n, G));
  eigen_decompose(n, S);
  return S;
}

// The orthonormal embedding of svec coordinates into vec(k×k): column p is vec of basis matrix p
// (E_aa, or (E_ab + E_ba)/√2), so an operator S in svec coordinates is P S Pᵀ on vec(X).
Matrix svec_embedding(int k) {
  const int n = k * (k + 1) / 2, kk = k * k;
  Matrix P(static_cast<std::size_t>(kk) * n, 0.0);
  int p = 0;
  for (int b = 0; b < k; ++b) {
    for (int a = 0; a <= b; ++a, ++p) {
      const double entry = a == b ? 1.0 : 1 / std::sqrt(2.0);
      P[(a + k * b) + static_cast<std::size_t>(kk) * p] = entry;
      P[(b + k * a) + static_cast<std::size_t>(kk) * p] = entry;
    }
  }
  return P;
}

Matrix vec_operator(int k, const Matrix& svec_operator) {
  const int n = k * (k + 1) / 2, kk = k * k;
  const Matrix P = svec_embedding(k);
  return multiply(kk, n, kk, multiply(kk, n, n, P, svec_operator), transpose(kk, n, P));
}

// A random positive definite operator in svec coordinates with eigenvalues in [shift, shift + ~4].
Matrix random_pd_svec_operator(int k, std::mt19937_64& rng, double shift = 0.1) {
  const int n = k * (k + 1) / 2;
  const Matrix G = gaussian_matrix(n, n, rng);
  Matrix S = multiply(n, n, n, G, transpose(n, n, G));
  for (double& v : S) v /= n;
  for (int i = 0; i < n; ++i) S[i + n * i] += shift;
  return S;
}

// 𝓑[X] for B acting on vec(X).
Matrix apply(int k, const Matrix& B, const Matrix& X) { return multiply(k * k, k * k, 1, B, X); }

Matrix add(const Matrix& A, double s, const Matrix& B) {
  Matrix C(A.size());
  for (std::size_t i = 0; i < A.size(); ++i) C[i] = A[i] + s * B[i];
  return C;
}

struct Planted {
  int k;
  Matrix alpha, B, X, M;  // B on vec(X); X*, M* the solution and its margin
};

// X* = Q diag(x) Qᵀ, M* = Q diag(m) Qᵀ with x_i m_i = 0 for a random orthogonal Q.
Planted make_planted(int k, const std::vector<double>& x, const std::vector<double>& m, const Matrix& svec_operator,
                     std::mt19937_64& rng) {
  for (int i = 0; i < k; ++i) EXPECT_EQ(x[i] * m[i], 0.0) << "planted eigenvalues must be complementary";
  const Matrix Q = random_orthogonal(k, rng);
  Planted planted{k, {}, vec_operator(k, svec_operator), from_eigen(k, Q, x), from_eigen(k, Q, m)};
  planted.alpha = add(planted.M, -1, apply(k, planted.B, planted.X));
  return planted;
}

// Eigenvalues for a planted rank-r solution: x on the first r directions, m on the others.
std::pair<std::vector<double>, std::vector<double>> complementary_spectra(int k, int rank, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(0.5, 2.0);
  std::vector<double> x(k, 0.0), m(k, 0.0);
  for (int i = 0; i < k; ++i) (i < rank ? x : m)[i] = uniform(rng);
  return {x, m};
}

Planted random_planted(int k, int rank, std::mt19937_64& rng) {
  const auto [x, m] = complementary_spectra(k, rank, rng);
  return make_planted(k, x, m, random_pd_svec_operator(k, rng), rng);
}

// The relative KKT residual as sdcp.h defines it, recomputed here against the test's own operator.
double independent_kkt_residual(int k, const Matrix& alpha, const Matrix& B, const Matrix& X) {
  const Matrix image = apply(k, B, X);
  const Matrix M = add(alpha, 1, image);
  auto negative_part_norm = [k](const Matrix& Y) {
    double sum = 0;
    Matrix copy = Y;
    for (double v : eigen_decompose(k, copy)) sum += v < 0 ? v * v : 0;
    return std::sqrt(sum);
  };
  const double x_norm = frobenius_norm(X), m_scale = frobenius_norm(alpha) + frobenius_norm(image);
  return std::max({negative_part_norm(X) / x_norm, negative_part_norm(M) / m_scale,
                   frobenius_norm(multiply(k, k, k, X, M)) / (x_norm * m_scale)});
}

void expect_exactly_symmetric(int k, const Matrix& X) {
  for (int b = 0; b < k; ++b) {
    for (int a = 0; a < b; ++a) EXPECT_EQ(X[a + k * b], X[b + k * a]);
  }
}

// The solver converges, says so truthfully, and returns X*.
SdcpResult expect_solves(const Planted& planted) {
  const SdcpResult result = solve_sdcp(planted.k, planted.alpha, planted.B);
  EXPECT_TRUE(result.converged);
  EXPECT_LE(result.residual, kResidualTolerance);
  EXPECT_EQ(result.residual,
            std::max({result.primal_infeasibility, result.dual_infeasibility, result.complementarity}));
  EXPECT_LE(independent_kkt_residual(planted.k, planted.alpha, planted.B, result.X), kResidualTolerance);
  EXPECT_LE(relative_error(result.X, planted.X), kRecoveryTolerance);
  expect_exactly_symmetric(planted.k, result.X);
  return result;
}

TEST(Sdcp, RecoversPlantedSolutionsOfEveryRank) {
  std::mt19937_64 rng(1);
  for (int k = 1; k <= 8; ++k) {
    for (int rank = 1; rank <= k; ++rank) {  // rank k: full rank X*, M* = 0
      SCOPED_TRACE("k = " + std::to_string(k) + ", rank = " + std::to_string(rank));
      expect_solves(random_planted(k, rank, rng));
    }
  }
}

TEST(Sdcp, RecoversPlantedSolutionsAtTheLargestSize) {
  std::mt19937_64 rng(2);
  for (int rank : {7, 20}) {
    SCOPED_TRACE("rank = " + std::to_string(rank));
    const Planted planted = random_planted(20, rank, rng);
    const auto start = std::chrono::steady_clock::now();
    const SdcpResult result = expect_solves(planted);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string suffix = "_rank" + std::to_string(rank);
    RecordProperty("seconds" + suffix, std::to_string(seconds));
    RecordProperty("iterations" + suffix, result.iterations);
  }
}

// A time bound that is already over stops the solve before its first iteration: not converged, and
// timed_out says why (the central flow turns it into a stop reason).
TEST(Sdcp, ATimeBoundStopsTheSolveAndSaysSo) {
  std::mt19937_64 rng(5);
  const Planted planted = random_planted(6, 3, rng);
  const SdcpResult result = solve_sdcp(planted.k, planted.alpha, planted.B, {.max_seconds = 1e-300});
  EXPECT_FALSE(result.converged);
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.iterations, 0);
  EXPECT_FALSE(expect_solves(planted).timed_out);  // unbounded: the same problem solves
}

TEST(Sdcp, DegenerateComplementarityIsSolved) {
  // Directions where x_i = m_i = 0: strict complementarity fails, the solution is still unique.
  std::mt19937_64 rng(3);
  expect_solves(make_planted(3, {1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}, random_pd_svec_operator(3, rng), rng));
  expect_solves(make_planted(6, {1.5, 0.8, 0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0, 1.0, 2.0},
                             random_pd_svec_operator(6, rng), rng));
}

TEST(Sdcp, SolutionScalesWithTheProblem) {
  // Central-flow margins and variances can be tiny: X* ~ 1e-9 and 𝓑 ~ 1e6 give α ~ 1e-3.
  std::mt19937_64 rng(4);
  auto [x, m] = complementary_spectra(5, 2, rng);
  for (double& v : x) v *= 1e-9;
  for (double& v : m) v *= 1e-3;
  Matrix svec_operator = random_pd_svec_operator(5, rng);
  for (double& v : svec_operator) v *= 1e6;
  expect_solves(make_planted(5, x, m, svec_operator, rng));
}

TEST(Sdcp, PositiveSemidefiniteAlphaGivesZero) {
  std::mt19937_64 rng(5);
  const int k = 4;
  const Matrix Q = random_orthogonal(k, rng);
  const Matrix indefinite_operator = gaussian_matrix(k * k, k * k, rng);  // never needed when α ⪰ 0
  // Rotated, α's eigenvalues are only approximately those given, so the zero eigenvalue is diagonal.
  const Matrix singular_diagonal = {0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3};
  for (const Matrix& alpha : {Matrix(k * k, 0.0), singular_diagonal, from_eigen(k, Q, {0.1, 0.5, 1.0, 3.0})}) {
    const SdcpResult result = solve_sdcp(k, alpha, indefinite_operator);
    EXPECT_TRUE(result.converged);
    EXPECT_EQ(result.iterations, 0);
    EXPECT_EQ(result.residual, 0.0);
    EXPECT_EQ(result.X, Matrix(k * k, 0.0));
  }
}

TEST(Sdcp, OneByOneMatchesTheClosedForm) {
  for (auto [alpha, b] : {std::pair{-3.0, 2.0}, {-1e-7, 5e4}, {-2.5, 0.3}}) {
    const SdcpResult result = solve_sdcp(1, Matrix{alpha}, Matrix{b});
    EXPECT_TRUE(result.converged);
    EXPECT_DOUBLE_EQ(result.X[0], -alpha / b);
    EXPECT_LE(result.residual, kResidualTolerance);
  }
  EXPECT_EQ(solve_sdcp(1, Matrix{2.0}, Matrix{3.0}).X[0], 0.0);  // α ≥ 0
  // 𝓑 = 0 (or negative, clipped to 0) with α < 0: ⟨α, X⟩ is unbounded below, no solution.
  for (double b : {0.0, -1.0}) {
    const SdcpResult result = solve_sdcp(1, Matrix{-1.0}, Matrix{b});
    EXPECT_FALSE(result.converged);
    EXPECT_EQ(result.X[0], 0.0);
  }
}

TEST(Sdcp, ClipsRoundingLevelNegativeEigenvaluesOfTheOperator) {
  // A rank-deficient PSD operator whose computed form has eigenvalues ~ −1e-15. X need not be unique
  // then, but the margin M = α + 𝓑[X] of every solution is.
  std::mt19937_64 rng(6);
  const int k = 5, n = k * (k + 1) / 2;
  const Matrix G = gaussian_matrix(n, n - 3, rng);
  Matrix svec_operator = multiply(n, n - 3, n, G, transpose(n, n - 3, G));
  const Matrix noise = gaussian_matrix(n, n, rng);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) svec_operator[i + n * j] += 1e-15 * (noise[i + n * j] + noise[j + n * i]);
  }
  ASSERT_LT(min_eigenvalue(n, svec_operator), -1e-16);
  const auto [x, m] = complementary_spectra(k, 3, rng);
  const Planted planted = make_planted(k, x, m, svec_operator, rng);

  const SdcpResult result = solve_sdcp(k, planted.alpha, planted.B);
  EXPECT_TRUE(result.converged);
  EXPECT_LE(result.residual, kResidualTolerance);
  EXPECT_GE(min_eigenvalue(k, result.X), -1e-12 * frobenius_norm(result.X));
  const Matrix margin = add(planted.alpha, 1, apply(k, planted.B, result.X));
  EXPECT_LE(frobenius_norm(add(margin, -1, planted.M)),
            kRecoveryTolerance * (frobenius_norm(planted.alpha) + frobenius_norm(apply(k, planted.B, planted.X))));
}

TEST(Sdcp, AcceptsOperatorsSymmetricOnlyUpToRounding) {
  std::mt19937_64 rng(7);
  Planted planted = random_planted(6, 3, rng);
  const Matrix noise = gaussian_matrix(36, 36, rng);
  const double scale = *std::max_element(planted.B.begin(), planted.B.end());
  planted.B = add(planted.B, 1e-14 * scale, noise);  // neither self-adjoint nor symmetric-valued
  expect_solves(planted);
}

TEST(Sdcp, OnlyTheSymmetricActionOfTheOperatorMatters) {
  // Moving the weight of input (d, c) onto (c, d), and adding an antisymmetric output, leave 𝓑 on
  // symmetric matrices (and the symmetric part of its value) unchanged: the answer must not move.
  std::mt19937_64 rng(8);
  const int k = 5, kk = k * k;
  const Planted planted = random_planted(k, 2, rng);
  Matrix folded = planted.B;
  const Matrix antisymmetric_source = gaussian_matrix(kk, kk, rng);
  for (int d = 0; d < k; ++d) {
    for (int c = 0; c < d; ++c) {
      for (int i = 0; i < kk; ++i) {
        folded[i + kk * (c + k * d)] += folded[i + kk * (d + k * c)];
        folded[i + kk * (d + k * c)] = 0;
      }
    }
  }
  for (int column = 0; column < kk; ++column) {
    for (int b = 0; b < k; ++b) {
      for (int a = 0; a < b; ++a) {
        const double value = antisymmetric_source[(a + k * b) + kk * column];
        folded[(a + k * b) + kk * column] += value;
        folded[(b + k * a) + kk * column] -= value;
      }
    }
  }
  const SdcpResult original = solve_sdcp(k, planted.alpha, planted.B);
  const SdcpResult transformed = solve_sdcp(k, planted.alpha, folded);
  EXPECT_TRUE(transformed.converged);
  EXPECT_LE(relative_error(transformed.X, original.X), 1e-12);
  EXPECT_LE(relative_error(transformed.X, planted.X), kRecoveryTolerance);
}

TEST(Sdcp, ReportsNoSolutionWhenTheObjectiveIsUnbounded) {
  const int k = 3;
  const Matrix alpha = {-1, 0, 0, 0, 2, 0, 0, 0, 1};
  const SdcpResult zero_operator = solve_sdcp(k, alpha, Matrix(k * k * k * k, 0.0));
  EXPECT_FALSE(zero_operator.converged);
  // 𝓑 sees only X_22 and X_33, so X_11 → ∞ decreases ⟨α, X⟩ without bound.
  Matrix blind_operator(k * k * k * k, 0.0);
  for (int a : {1, 2}) blind_operator[(a + k * a) * (k * k + 1)] = 1;
  const SdcpResult blind = solve_sdcp(k, alpha, blind_operator);
  EXPECT_FALSE(blind.converged);
  EXPECT_GT(blind.residual, kResidualTolerance);
}

TEST(Sdcp, RejectsMalformedInput) {
  EXPECT_THROW(solve_sdcp(0, Matrix{}, Matrix{}), Error);
  EXPECT_THROW(solve_sdcp(2, Matrix(3, 0.0), Matrix(16, 0.0)), Error);
  EXPECT_THROW(solve_sdcp(2, Matrix(4, 0.0), Matrix(15, 0.0)), Error);
  EXPECT_THROW(solve_sdcp(1, Matrix{std::numeric_limits<double>::quiet_NaN()}, Matrix{1.0}), Error);
}

}  // namespace
}  // namespace cflow
