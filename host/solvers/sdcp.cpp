// Native SDCP solver (docs/design.md §6). An infeasible interior-point method gets close to the solution
// whatever the conditioning of 𝓑; semismooth Newton on the natural residual then converges in a few
// steps to rounding level. Everything works in svec coordinates, where the self-adjoint operator 𝓑
// is a symmetric n×n matrix, n = k(k+1)/2 ≤ 210 for k ≤ 20, so dense LAPACK is cheap.
#include "cflow/solvers/sdcp.h"

#include <cblas.h>
#include <lapacke.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "cflow/runtime/error.h"
#include "cflow/runtime/nvtx.h"
#include "host/solvers/small_dense.h"
#include "cflow/runtime/interrupt.h"

namespace cflow {
namespace {

using Matrix = std::vector<double>;  // column-major, square: HostMatrix::values of an n × n HostMatrix

// Interior-point iterates are handed to Newton once their KKT residual is this small: close enough
// for fast local convergence, and reached a few iterations before the interior-point method stalls.
constexpr double kPolishBelow = 1e-5;
// Newton steps per polishing attempt; from a good start it needs two or three.
constexpr int kNewtonStepsPerAttempt = 8;
// Fraction of the way to the boundary of the PSD cone an interior-point step may go.
constexpr double kStepToBoundary = 0.98;
// Interior-point steps shorter than this make no progress.
constexpr double kStalledStep = 1e-10;
// In the normalized problem (‖α‖ = ‖𝓑‖ = 1) solutions are at most ~cond(𝓑) large: an iterate this
// large means the objective is unbounded.
constexpr double kDivergedNorm = 1e14;
// Newton: the Jacobian's rank cut-off (relative), so that 𝓑 singular on the face gives finite steps;
constexpr double kJacobianRcond = 1e-13;
// and once the damping has halved a step below this fraction, Newton has stalled.
constexpr double kShortestNewtonStep = 1e-6;

double frobenius_norm(const Matrix& A) { return cblas_dnrm2(static_cast<int>(A.size()), A.data(), 1); }

double trace_inner(const Matrix& A, const Matrix& B) {
  return cblas_ddot(static_cast<int>(A.size()), A.data(), 1, B.data(), 1);
}

double ratio(double numerator, double denominator) { return numerator == 0 ? 0 : numerator / denominator; }

Matrix identity(int n) {
  Matrix I(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) I[i + static_cast<std::size_t>(n) * i] = 1;
  return I;
}

// Y = a A + b B
Matrix linear_combination(double a, const Matrix& A, double b, const Matrix& B) {
  Matrix Y(A.size());
  for (std::size_t i = 0; i < A.size(); ++i) Y[i] = a * A[i] + b * B[i];
  return Y;
}

Matrix scaled(double s, Matrix A) {
  for (double& entry : A) entry *= s;
  return A;
}

// op(A) op(B) for n×n matrices.
Matrix multiply(int n, const Matrix& A, const Matrix& B, CBLAS_TRANSPOSE op_a = CblasNoTrans,
                CBLAS_TRANSPOSE op_b = CblasNoTrans) {
  Matrix C(static_cast<std::size_t>(n) * n);
  cblas_dgemm(CblasColMajor, op_a, op_b, n, n, n, 1.0, A.data(), n, B.data(), n, 0.0, C.data(), n);
  return C;
}

// (A + Aᵀ)/2: also removes the rounding asymmetry of products such as V D Vᵀ.
Matrix symmetric_part(int n, Matrix A) {
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const std::size_t upper = i + static_cast<std::size_t>(n) * j, lower = j + static_cast<std::size_t>(n) * i;
      A[upper] = A[lower] = 0.5 * (A[upper] + A[lower]);
    }
  }
  return A;
}

struct SymmetricEigen {
  std::vector<double> values;  // ascending
  Matrix vectors;              // orthonormal columns
};

SymmetricEigen eigen_decomposition(int n, Matrix A) {
  HostMatrix vectors(n, n);
  vectors.values = std::move(A);
  std::vector<double> values = symmetric_eigen(vectors);
  return {std::move(values), std::move(vectors.values)};
}

std::vector<double> eigenvalues(int n, Matrix A) {
  std::vector<double> values(n);
  CFLOW_CHECK_LAPACK(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'L', n, A.data(), n, values.data()));
  return values;
}

// V diag(f(λ)) Vᵀ.
template <class Function>
Matrix spectral_function(int n, const SymmetricEigen& eigen, Function f) {
  Matrix weighted = eigen.vectors;
  for (int j = 0; j < n; ++j) cblas_dscal(n, f(eigen.values[j]), &weighted[static_cast<std::size_t>(n) * j], 1);
  Matrix result(static_cast<std::size_t>(n) * n);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, weighted.data(), n, eigen.vectors.data(), n, 0.0,
              result.data(), n);
  return result;
}

double positive_part(double v) { return std::max(v, 0.0); }

// ‖Π₋(Y)‖ for symmetric Y.
double negative_part_norm(int n, const Matrix& Y) {
  double sum = 0;
  for (double v : eigenvalues(n, Y)) sum += v < 0 ? v * v : 0;
  return std::sqrt(sum);
}

// Largest t with A + tΔ ⪰ 0 (infinite if Δ ⪰ 0), for A ≻ 0; 0 if A is not numerically definite.
double step_to_boundary(int n, Matrix A, Matrix delta) {
  std::vector<double> values(n);
  // Generalized eigenvalues Δv = λAv: A + tΔ ⪰ 0 exactly when 1 + tλ ≥ 0 for all of them.
  if (LAPACKE_dsygvd(LAPACK_COL_MAJOR, 1, 'N', 'L', n, delta.data(), n, A.data(), n, values.data()) != 0) {
    return 0;
  }
  return values.front() >= 0 ? std::numeric_limits<double>::infinity() : -1 / values.front();
}

// Orthonormal coordinates on symmetric k×k matrices: Y_aa and √2·Y_ab (a < b), column by column.
// ⟨svec Y, svec Z⟩ = ⟨Y, Z⟩, so a self-adjoint operator becomes a symmetric n×n matrix.
class Svec {
 public:
  explicit Svec(int k) : k_(k), n_(k * (k + 1) / 2) {}
  int k() const { return k_; }
  int n() const { return n_; }

  // Coordinates of the symmetric part of any k×k matrix Y.
  std::vector<double> svec(std::span<const double> Y) const {
    std::vector<double> y(n_);
    int p = 0;
    for (int b = 0; b < k_; ++b) {
      for (int a = 0; a <= b; ++a) y[p++] = a == b ? Y[a + k_ * b] : (Y[a + k_ * b] + Y[b + k_ * a]) / std::sqrt(2.0);
    }
    return y;
  }

  Matrix smat(std::span<const double> y) const {
    Matrix Y(static_cast<std::size_t>(k_) * k_);
    int p = 0;
    for (int b = 0; b < k_; ++b) {
      for (int a = 0; a <= b; ++a) Y[a + k_ * b] = Y[b + k_ * a] = a == b ? y[p++] : y[p++] / std::sqrt(2.0);
    }
    return Y;
  }

  // The n×n matrix of the linear map Y ↦ sym(map(Y)) on symmetric matrices.
  template <class Map>
  Matrix matrix_of(Map map) const {
    Matrix result(static_cast<std::size_t>(n_) * n_);
    std::vector<double> unit(n_, 0.0);
    for (int q = 0; q < n_; ++q) {
      unit[q] = 1;
      const std::vector<double> column = svec(map(smat(unit)));
      std::copy(column.begin(), column.end(), result.begin() + static_cast<std::ptrdiff_t>(n_) * q);
      unit[q] = 0;
    }
    return result;
  }

 private:
  int k_, n_;
};

// An SDCP whose operator is already cleaned: a symmetric PSD n×n matrix in svec coordinates.
struct Problem {
  Svec coordinates;
  Matrix alpha;      // k×k symmetric
  Matrix operator_;  // n×n

  int k() const { return coordinates.k(); }
  int n() const { return coordinates.n(); }

  Matrix apply(const Matrix& X) const {  // 𝓑[X]
    const std::vector<double> x = coordinates.svec(X);
    std::vector<double> y(n());
    cblas_dgemv(CblasColMajor, CblasNoTrans, n(), n(), 1.0, operator_.data(), n(), x.data(), 1, 0.0, y.data(), 1);
    return coordinates.smat(y);
  }

  Matrix margin(const Matrix& X) const { return linear_combination(1, alpha, 1, apply(X)); }  // α + 𝓑[X]
};

// The operator compressed onto symmetric matrices, symmetrized, negative eigenvalues clipped to 0.
Matrix clean_operator(const Svec& coordinates, std::span<const double> B) {
  const int k = coordinates.k(), n = coordinates.n(), kk = k * k;
  Matrix compressed(static_cast<std::size_t>(n) * n);
  std::vector<double> image(kk);  // 𝓑 applied to basis matrix (c, d): one or two columns of B
  int q = 0;
  for (int d = 0; d < k; ++d) {
    for (int c = 0; c <= d; ++c, ++q) {
      const double* column_cd = &B[static_cast<std::size_t>(kk) * (c + k * d)];
      const double* column_dc = &B[static_cast<std::size_t>(kk) * (d + k * c)];
      for (int i = 0; i < kk; ++i) {
        image[i] = c == d ? column_cd[i] : (column_cd[i] + column_dc[i]) / std::sqrt(2.0);
      }
      const std::vector<double> column = coordinates.svec(image);
      std::copy(column.begin(), column.end(), compressed.begin() + static_cast<std::ptrdiff_t>(n) * q);
    }
  }
  const SymmetricEigen eigen = eigen_decomposition(n, symmetric_part(n, std::move(compressed)));
  return symmetric_part(n, spectral_function(n, eigen, positive_part));
}

struct Kkt {
  double primal_infeasibility = 0, dual_infeasibility = 0, complementarity = 0;
  double residual() const { return std::max({primal_infeasibility, dual_infeasibility, complementarity}); }
};

// As defined in sdcp.h.
Kkt kkt_residual(const Problem& problem, const Matrix& X) {
  const int k = problem.k();
  const Matrix image = problem.apply(X);
  const Matrix M = linear_combination(1, problem.alpha, 1, image);
  const double x_norm = frobenius_norm(X);
  const double m_scale = frobenius_norm(problem.alpha) + frobenius_norm(image);
  return {ratio(negative_part_norm(k, X), x_norm), ratio(negative_part_norm(k, M), m_scale),
          ratio(frobenius_norm(multiply(k, X, M)), x_norm * m_scale)};
}

// The iterate with the smallest KKT residual seen so far.
struct BestIterate {
  Matrix X;
  double residual = std::numeric_limits<double>::infinity();

  // Returns the candidate's residual.
  double offer(const Problem& problem, const Matrix& candidate) {
    const double candidate_residual = kkt_residual(problem, candidate).residual();
    if (candidate_residual < residual) {
      X = candidate;
      residual = candidate_residual;
    }
    return candidate_residual;
  }
};

// One infeasible primal-dual interior-point iteration on X, M ≻ 0 driving M − (α + 𝓑[X]) and XM to 0:
// the HKM direction (linearize XM = σμI, symmetrize ΔX) with Mehrotra's predictor-corrector.
// Returns the step length, 0 when the iterates are no longer numerically definite.
double interior_point_step(const Problem& problem, Matrix& X, Matrix& M) {
  const int k = problem.k(), n = problem.n();
  const Svec& coordinates = problem.coordinates;
  const SymmetricEigen m_eigen = eigen_decomposition(k, M);
  if (m_eigen.values.front() <= 0) return 0;
  const Matrix M_inverse = spectral_function(k, m_eigen, [](double v) { return 1 / v; });
  const Matrix infeasibility = linear_combination(1, problem.margin(X), -1, M);

  // (X + ΔX)(M + ΔM) = σμI with its second-order term ΔXΔM replaced by C, solved for ΔX and
  // symmetrized, with ΔM = 𝓑[ΔX] + R (R the infeasibility) and 𝓔[V] = sym(X V M⁻¹), reads
  // (1 + 𝓔𝓑) ΔX = sym(σμM⁻¹ − X − C M⁻¹) − 𝓔[R]. 𝓔 is positive definite (⟨V, 𝓔V⟩ = ‖X^½ V M^-½‖²)
  // and 𝓑 ⪰ 0, so 1 + 𝓔𝓑 is invertible; LU failing means the iterates have degenerated numerically.
  const Matrix E = coordinates.matrix_of([&](const Matrix& V) { return multiply(k, X, multiply(k, V, M_inverse)); });
  Matrix system = identity(n);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, E.data(), n, problem.operator_.data(), n, 1.0,
              system.data(), n);
  std::vector<lapack_int> pivots(n);
  if (LAPACKE_dgetrf(LAPACK_COL_MAJOR, n, n, system.data(), n, pivots.data()) != 0) return 0;
  const std::vector<double> r = coordinates.svec(infeasibility);
  std::vector<double> E_r(n);
  cblas_dgemv(CblasColMajor, CblasNoTrans, n, n, 1.0, E.data(), n, r.data(), 1, 0.0, E_r.data(), 1);

  struct Direction {
    Matrix dX, dM;
  };
  auto direction = [&](double sigma_mu, const Matrix& C) {
    const Matrix target = linear_combination(sigma_mu, M_inverse, -1, X);
    std::vector<double> rhs = coordinates.svec(linear_combination(1, target, -1, multiply(k, C, M_inverse)));
    for (int i = 0; i < n; ++i) rhs[i] -= E_r[i];
    CFLOW_CHECK_LAPACK(
        LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'N', n, 1, system.data(), n, pivots.data(), rhs.data(), n));
    Matrix dX = coordinates.smat(rhs);
    Matrix dM = linear_combination(1, problem.apply(dX), 1, infeasibility);
    return Direction{std::move(dX), std::move(dM)};
  };
  auto longest_step = [&](const Direction& step) {
    return std::min(step_to_boundary(k, X, step.dX), step_to_boundary(k, M, step.dM));
  };

  // Predictor: aim straight at XM = 0; how far it gets sets the centering σ of the corrector.
  const double mu = trace_inner(X, M) / k;
  const Direction predictor = direction(0, Matrix(X.size(), 0.0));
  const double predictor_step = std::min(1.0, longest_step(predictor));
  const Matrix predicted_X = linear_combination(1, X, predictor_step, predictor.dX);
  const Matrix predicted_M = linear_combination(1, M, predictor_step, predictor.dM);
  const double predicted_mu = trace_inner(predicted_X, predicted_M) / k;
  const double sigma = std::clamp(std::pow(predicted_mu / mu, 3), 0.0, 1.0);
  // Corrector: C = ΔX ΔM of the predictor, the second-order term of the product.
  const Direction corrector = direction(sigma * mu, multiply(k, predictor.dX, predictor.dM));
  const double step = std::min(1.0, kStepToBoundary * longest_step(corrector));
  if (!(step > 0)) return 0;  // also when rounding has produced NaNs
  X = linear_combination(1, X, step, corrector.dX);
  M = linear_combination(1, M, step, corrector.dM);
  return step;
}

// F(X) = X − Π₊(X − M(X)), which vanishes exactly at solutions of the SDCP.
struct NaturalResidual {
  std::vector<double> value;  // svec F(X)
  SymmetricEigen shifted;     // eigen-decomposition of X − M(X)

  double norm() const { return cblas_dnrm2(static_cast<int>(value.size()), value.data(), 1); }
};

NaturalResidual natural_residual(const Problem& problem, const Matrix& X) {
  const int k = problem.k();
  SymmetricEigen shifted = eigen_decomposition(k, linear_combination(1, X, -1, problem.margin(X)));
  const Matrix projection = spectral_function(k, shifted, positive_part);
  return {problem.coordinates.svec(linear_combination(1, X, -1, projection)), std::move(shifted)};
}

// Divided difference of max(·, 0) between a and b; its derivative where a = b (taken as 0 at 0).
double positive_part_slope(double a, double b) {
  if (a > 0 && b > 0) return 1;
  if (a <= 0 && b <= 0) return 0;
  return (positive_part(a) - positive_part(b)) / (a - b);
}

// The n×n Jacobian of F: 1 − DΠ₊ (1 − 𝓑), with DΠ₊[H] = V (Γ ∘ VᵀHV) Vᵀ, Γ the divided differences
// of max(·, 0) at the eigenvalues d of X − M = V diag(d) Vᵀ (where some d_i = 0, an element of the
// generalized Jacobian).
Matrix natural_residual_jacobian(const Problem& problem, const SymmetricEigen& shifted) {
  const int k = problem.k(), n = problem.n();
  const std::vector<double>& d = shifted.values;
  const Matrix& V = shifted.vectors;
  Matrix divided_differences(static_cast<std::size_t>(k) * k);
  for (int j = 0; j < k; ++j) {
    for (int i = 0; i < k; ++i) divided_differences[i + k * j] = positive_part_slope(d[i], d[j]);
  }
  const Matrix projection_derivative = problem.coordinates.matrix_of([&](const Matrix& H) {
    Matrix rotated = multiply(k, V, multiply(k, H, V), CblasTrans);
    for (std::size_t i = 0; i < rotated.size(); ++i) rotated[i] *= divided_differences[i];
    return multiply(k, V, multiply(k, rotated, V, CblasNoTrans, CblasTrans));
  });
  Matrix jacobian = linear_combination(1, identity(n), -1, projection_derivative);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, projection_derivative.data(), n,
              problem.operator_.data(), n, 1.0, jacobian.data(), n);
  return jacobian;
}

// Semismooth Newton on the natural residual from X: quadratic near a strictly complementary
// solution, superlinear without strict complementarity when 𝓑 ≻ 0. Steps are halved until ‖F‖
// decreases; a rank-revealing least-squares solve keeps them finite when 𝓑 is singular on the face.
// Stops when best reaches the tolerance, after `steps` steps, or when no step decreases ‖F‖.
void newton_polish(const Problem& problem, Matrix X, double tolerance, int steps, int& iterations, BestIterate& best) {
  const int n = problem.n();
  NaturalResidual residual = natural_residual(problem, X);
  for (int step = 0; step < steps && best.residual > tolerance; ++step) {
    Matrix jacobian = natural_residual_jacobian(problem, residual.shifted);
    std::vector<double> delta(n);
    for (int i = 0; i < n; ++i) delta[i] = -residual.value[i];
    std::vector<lapack_int> pivots(n, 0);
    lapack_int rank = 0;
    CFLOW_CHECK_LAPACK(LAPACKE_dgelsy(LAPACK_COL_MAJOR, n, n, 1, jacobian.data(), n, delta.data(), n,
                                           pivots.data(), kJacobianRcond, &rank));
    ++iterations;
    const Matrix delta_X = problem.coordinates.smat(delta);
    for (double t = 1;; t /= 2) {
      if (t < kShortestNewtonStep) return;
      Matrix trial = linear_combination(1, X, t, delta_X);
      NaturalResidual trial_residual = natural_residual(problem, trial);
      if (trial_residual.norm() <= (1 - 1e-4 * t) * residual.norm()) {
        X = std::move(trial);
        residual = std::move(trial_residual);
        break;
      }
    }
    best.offer(problem, X);
  }
}

// General k, on a problem normalized to ‖α‖ = ‖𝓑‖ = 1. Interior-point iterations, each iterate
// that is close enough handed to Newton, until the tolerance, a stall, divergence, or the iteration
// or time budget (timed_out).
BestIterate solve_normalized(const Problem& problem, const SdcpOptions& options, int& iterations, bool& timed_out) {
  const int k = problem.k();
  const auto started = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() > options.max_seconds;
  };
  Matrix X = identity(k), M = identity(k);
  BestIterate best;
  best.offer(problem, X);
  auto polish_from = [&](const Matrix& start) {
    const int steps = std::min(kNewtonStepsPerAttempt, options.max_iterations - iterations);
    newton_polish(problem, start, options.tolerance, steps, iterations, best);
  };
  while (iterations < options.max_iterations && best.residual > options.tolerance) {
    if (out_of_time()) {
      timed_out = true;
      return best;
    }
    check_interrupt();  // SIGINT/SIGTERM: end within a second (cflow/runtime/interrupt.h)
    const double step = interior_point_step(problem, X, M);
    ++iterations;
    if (step < kStalledStep || frobenius_norm(X) > kDivergedNorm) break;
    if (best.offer(problem, X) <= kPolishBelow) polish_from(X);
  }
  // The interior-point method may stall before kPolishBelow (degenerate or ill-conditioned cases).
  if (best.residual > options.tolerance) polish_from(best.X);
  return best;
}

// The SDCP's matrices (n ≤ 210) are too small for threads to pay off, and OpenMP spin-waiting can
// make each BLAS call cost milliseconds when the cores are busy. OpenBLAS (OpenMP build) follows the
// calling thread's omp_get_max_threads(), so run it single-threaded for the duration of a solve.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() { omp_set_num_threads(1); }
  ~SingleThreadedBlas() { omp_set_num_threads(previous_threads_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_threads_ = omp_get_max_threads();
};

bool all_finite(std::span<const double> values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

SdcpResult solve_sdcp(int k, std::span<const double> alpha, std::span<const double> B, const SdcpOptions& options) {
  CFLOW_NVTX_RANGE("sdcp");
  CFLOW_REQUIRE(k >= 1, "solve_sdcp: k must be positive");
  const std::size_t kk = static_cast<std::size_t>(k) * k;
  CFLOW_REQUIRE(alpha.size() == kk, "solve_sdcp: alpha must have k*k entries");
  CFLOW_REQUIRE(B.size() == kk * kk, "solve_sdcp: B must have k^4 entries");
  CFLOW_REQUIRE(all_finite(alpha) && all_finite(B), "solve_sdcp: alpha and B must be finite");

  const SingleThreadedBlas single_threaded;
  const Svec coordinates(k);
  SdcpResult result;
  result.X.assign(kk, 0.0);
  Matrix alpha_symmetric = coordinates.smat(coordinates.svec(alpha));
  if (eigenvalues(k, alpha_symmetric).front() >= 0) {  // X = 0 solves it exactly
    result.converged = true;
    return result;
  }
  const Problem problem{coordinates, std::move(alpha_symmetric), clean_operator(coordinates, B)};
  // With 𝓑 = 0 the objective ⟨α, X⟩ is unbounded below (α ⋡ 0): no solution, X stays 0.
  const double operator_norm = frobenius_norm(problem.operator_);
  if (operator_norm > 0 && k == 1) {
    result.X[0] = -problem.alpha[0] / problem.operator_[0];
  } else if (operator_norm > 0) {
    // The residual is scale invariant; normalizing makes the solver's internal thresholds absolute.
    const double alpha_norm = frobenius_norm(problem.alpha);
    const Problem normalized{coordinates, scaled(1 / alpha_norm, problem.alpha),
                             scaled(1 / operator_norm, problem.operator_)};
    const BestIterate best = solve_normalized(normalized, options, result.iterations, result.timed_out);
    result.X = scaled(alpha_norm / operator_norm, best.X);
  }
  const Kkt kkt = kkt_residual(problem, result.X);
  result.residual = kkt.residual();
  result.primal_infeasibility = kkt.primal_infeasibility;
  result.dual_infeasibility = kkt.dual_infeasibility;
  result.complementarity = kkt.complementarity;
  result.converged = result.residual <= options.tolerance;
  return result;
}

}  // namespace cflow
