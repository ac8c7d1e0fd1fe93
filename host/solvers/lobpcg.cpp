// Block LOBPCG (Knyazev's locally optimal block conjugate gradient; no inner preconditioner, since A is
// already the preconditioned operator) for the top k eigenpairs of A = P^{-1/2} H P^{-1/2}.
//
// Search space. One device block S = [X | P | W] (d × n, n ≤ 3k) and its image AS = [AX | AP | AW]
// share one allocation, so the Gram matrices SᵀS and SᵀAS come from one batched GEMM and the update
// [X' P'] = S C, [AX' AP'] = AS C from another. X holds the Ritz vectors, P the directions of the last
// step, W the residuals of the unconverged columns. Only W goes through the operator, in one batched
// call per iteration; AX and AP follow from AS by the same coefficients as X and P.
//
// Small matrices on the host. The Gram matrices (at most 3k × 3k) are formed on the device, copied to
// the host and factored there in float64 with LAPACK: every decision taken on them (convergence, rank,
// order) is a host decision anyway, and float64 keeps the small problems exact enough in float32 runs.
// The coefficient matrices go back to the device and are applied by GEMMs.
//
// Robustness for repeated or clustered eigenvalues, converged columns and rank-deficient warm starts:
// * residual directions are projected off [X P] and orthonormalized by Cholesky-QR; when the Cholesky
//   factor signals near-dependence, by the eigendecomposition of their Gram matrix (SVQB), which drops
//   the directions that are numerically in the span of the others. A dropped direction carries no new
//   information, and nothing is ever divided by a length at rounding level, so no NaN appears.
// * Rayleigh–Ritz does not assume S orthonormal: it orthonormalizes through the measured SᵀS with the
//   same transform, so rounding never accumulates into non-orthonormal Ritz vectors.
// * converged columns contribute no residual direction (soft locking): they stay in X, are still
//   improved by the other columns' directions, and cost no operator applications.
#include "cflow/runtime/interrupt.h"
#include "cflow/solvers/lobpcg.h"

#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "cflow/runtime/nvtx.h"
#include "host/solvers/small_dense.h"
#include "kernels/lobpcg.h"

namespace cflow {
namespace {

using blas::Op;

// Below this fraction of the largest |λ| the convergence test stops being relative (see LobpcgOptions).
constexpr double kEigenvalueFloor = 1e-3;
// Cholesky-QR is accepted while every pivot satisfies L_jj² ≥ √ε (lengths relative to each column's
// reference length; ε the working precision of the vectors): smaller pivots signal near-dependence.
// SVQB keeps the directions with squared length σ² > kKeepAboveEpsilons · ε, well above the ~ε
// rounding of a computed Gram matrix.
constexpr double kKeepAboveEpsilons = 1e3;
// Attempts at completing a rank-deficient start block with fresh random columns.
constexpr int kStartBlockAttempts = 3;

// A − B (Bᵀ A): removes from the columns of A their components in the span of orthonormal B.
HostMatrix project_out(const HostMatrix& A, const HostMatrix& B) {
  const HostMatrix along = product(B, false, product(B, true, A));
  HostMatrix result = A;
  for (std::size_t i = 0; i < result.values.size(); ++i) result.values[i] -= along.values[i];
  return result;
}

HostMatrix concatenate_columns(const HostMatrix& A, const HostMatrix& B) {
  HostMatrix C(A.rows, A.cols + B.cols);
  std::copy(A.values.begin(), A.values.end(), C.values.begin());
  std::copy(B.values.begin(), B.values.end(), C.values.begin() + std::ptrdiff_t(A.values.size()));
  return C;
}

std::vector<double> column_lengths(const HostMatrix& gram) {
  std::vector<double> lengths(std::size_t(gram.rows));
  for (index_t j = 0; j < gram.rows; ++j) lengths[std::size_t(j)] = std::sqrt(std::max(gram(j, j), 0.0));
  return lengths;
}

// F such that (V F)ᵀ (V F) = I for a block V with Gram matrix G = VᵀV, keeping only the directions
// of V that are numerically independent. `lengths` are the columns' reference lengths (their lengths
// before a projection, say): independence is judged relative to them, and a column with reference
// length 0 is dropped. Cholesky-QR first: F = D⁻¹L⁻ᵀ with D⁻¹GD⁻¹ = LLᵀ (D = diag(lengths)), which
// keeps every column and the span of every leading set of columns; if a pivot is too small, SVQB:
// D⁻¹GD⁻¹ = QΣQᵀ, F = D⁻¹ Q_kept Σ_kept^{-1/2}, which drops the near-dependent directions.
HostMatrix orthonormalizing_transform(const HostMatrix& G, const std::vector<double>& lengths, double epsilon) {
  const index_t m = G.rows;
  std::vector<double> inverse_length(static_cast<std::size_t>(m));
  for (index_t j = 0; j < m; ++j) {
    const double length = lengths[std::size_t(j)];
    inverse_length[std::size_t(j)] = length > 0 && std::isfinite(length) ? 1 / length : 0;
  }
  HostMatrix normalized(m, m);
  for (index_t j = 0; j < m; ++j)
    for (index_t i = 0; i < m; ++i)
      normalized(i, j) = G(i, j) * inverse_length[std::size_t(i)] * inverse_length[std::size_t(j)];

  HostMatrix factor = normalized;
  bool accepted = m == 0 || LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', m, factor.values.data(), m) == 0;
  for (index_t j = 0; accepted && j < m; ++j) accepted = factor(j, j) * factor(j, j) >= std::sqrt(epsilon);
  if (accepted) {
    if (m > 0) CFLOW_CHECK_LAPACK(LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', m, factor.values.data(), m));
    HostMatrix F(m, m);  // D⁻¹ (L⁻¹)ᵀ, upper triangular
    for (index_t j = 0; j < m; ++j)
      for (index_t i = 0; i <= j; ++i) F(i, j) = inverse_length[std::size_t(i)] * factor(j, i);
    return F;
  }

  const std::vector<double> ascending = symmetric_eigen(normalized);
  const auto kept = std::count_if(ascending.begin(), ascending.end(),
                                  [&](double sigma2) { return sigma2 > kKeepAboveEpsilons * epsilon; });
  HostMatrix F(m, index_t(kept));
  for (index_t c = 0; c < index_t(kept); ++c) {
    const index_t source = m - 1 - c;  // largest first
    const double inverse_sigma = 1 / std::sqrt(ascending[std::size_t(source)]);
    for (index_t i = 0; i < m; ++i)
      F(i, c) = inverse_length[std::size_t(i)] * normalized(i, source) * inverse_sigma;
  }
  return F;
}

// The columns of a host matrix, orthonormalized (near-dependent directions dropped).
HostMatrix orthonormalized(const HostMatrix& A, double epsilon) {
  const HostMatrix gram = product(A, true, A);
  return product(A, false, orthonormalizing_transform(gram, column_lengths(gram), epsilon));
}

struct RitzUpdate {
  std::vector<double> values;  // the k largest Ritz values, descending
  HostMatrix coefficients;     // n × (k + directions): [X' P'] = S · coefficients
  index_t directions = 0;      // columns of the new P
};

// Rayleigh–Ritz on the basis S (n columns) from its Gram matrix SᵀS and projection SᵀAS. The first
// previous_columns columns of S are the previous Ritz vectors (0 for the start block); the new step
// directions P' span the part of the new Ritz vectors outside them, made orthogonal to the new X.
RitzUpdate rayleigh_ritz(const HostMatrix& gram, const HostMatrix& projection, index_t k, index_t previous_columns,
                         double epsilon) {
  const HostMatrix F = orthonormalizing_transform(gram, column_lengths(gram), epsilon);  // Ŝ = S F orthonormal
  const index_t r = F.cols;
  CFLOW_REQUIRE(r >= k, "lobpcg: the search space lost rank");
  HostMatrix reduced = product(F, true, product(projection, false, F));  // Ŝᵀ A Ŝ
  for (index_t j = 0; j < r; ++j)
    for (index_t i = 0; i < j; ++i) reduced(i, j) = reduced(j, i) = 0.5 * (reduced(i, j) + reduced(j, i));
  const std::vector<double> ascending = symmetric_eigen(reduced);

  RitzUpdate update;
  HostMatrix ritz(r, k);  // the new X in Ŝ coordinates
  for (index_t c = 0; c < k; ++c) {
    const index_t source = r - 1 - c;
    update.values.push_back(ascending[std::size_t(source)]);
    std::copy_n(&reduced(0, source), r, &ritz(0, c));
  }
  HostMatrix coordinates = ritz;
  if (previous_columns > 0) {
    // The previous X in Ŝ coordinates, Ŝᵀ X = Fᵀ (SᵀS) E; orthonormal up to rounding, made exactly so.
    HostMatrix previous(gram.rows, previous_columns);
    std::copy_n(gram.values.begin(), previous.values.size(), previous.values.begin());
    previous = orthonormalized(product(F, true, previous), epsilon);
    const HostMatrix directions = orthonormalized(project_out(project_out(ritz, previous), ritz), epsilon);
    update.directions = directions.cols;
    coordinates = concatenate_columns(ritz, directions);
  }
  update.coefficients = product(F, false, coordinates);
  return update;
}

template <class T>
class LobpcgSolver {
 public:
  LobpcgSolver(const Device& dev, index_t d, const BlockOperator<T>& H, const T* p_diag, const LobpcgOptions& options,
               index_t start_columns)
      : dev_(dev),
        d_(d),
        k_(options.k),
        capacity_(std::max<index_t>(3 * options.k, start_columns)),
        H_(H),
        p_diag_(p_diag),
        options_(options),
        current_(dev, 2 * capacity_ * d),
        next_(dev, 2 * capacity_ * d),
        small_(dev, 2 * capacity_ * capacity_),
        rng_(options.seed) {}

  LobpcgResult<T> solve(const T* warm_start, index_t warm_columns) {
    CFLOW_NVTX_RANGE("lobpcg");
    const auto started = std::chrono::steady_clock::now();
    start(warm_start, warm_columns);
    LobpcgResult<T> result;
    for (;;) {
      const index_t q = k_ + directions_;  // residuals go after [X P]
      const std::vector<double> norms = residual_norms(q);
      result.residuals = relative_residuals(norms);
      result.last_certified = certified_below(norms);
      std::vector<index_t> active;
      for (index_t j = 0; j < k_; ++j)
        if (!(result.residuals[std::size_t(j)] <= options_.tolerance) && !(j == k_ - 1 && result.last_certified))
          active.push_back(j);
      if (active.empty()) {
        result.converged = true;
        break;
      }
      if (result.iterations == options_.max_iterations) break;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() > options_.max_seconds) {
        result.timed_out = true;
        break;
      }
      check_interrupt();  // SIGINT/SIGTERM: end within a second (cflow/runtime/interrupt.h)
      std::vector<double> lengths;
      for (std::size_t a = 0; a < active.size(); ++a) {
        const index_t j = active[a];
        if (j != index_t(a)) blas::copy(dev_, d_, basis(current_, q + j), basis(current_, q + index_t(a)));
        lengths.push_back(norms[std::size_t(j)]);
      }
      const index_t fresh = orthonormalize(q, index_t(active.size()), lengths);
      if (fresh == 0) break;  // every residual lies in span[X P] to working precision: no progress possible
      apply_operator(q, fresh);
      rayleigh_ritz_update(q + fresh, k_);
      ++result.iterations;
    }
    result.eigenvalues.assign(ritz_values_.begin(), ritz_values_.end());
    result.Y = Buffer<T>(dev_, d_ * k_);
    result.U = Buffer<T>(dev_, d_ * k_);
    blas::copy(dev_, d_ * k_, basis(current_, 0), result.Y.data());
    apply_inverse_sqrt_diagonal(dev_, d_, k_, p_diag_, result.Y.data(), result.U.data());
    result.operator_calls = operator_calls_;
    result.operator_applications = operator_applications_;
    return result;
  }

 private:
  static constexpr double kEpsilon = std::numeric_limits<T>::epsilon();

  T* basis(Buffer<T>& space, index_t column) const { return space.data() + column * d_; }
  T* image(Buffer<T>& space, index_t column) const { return space.data() + (capacity_ + column) * d_; }

  // The start block: the warm start completed with random columns, orthonormalized; then the first
  // Rayleigh–Ritz step on all of it.
  void start(const T* warm_start, index_t warm_columns) {
    const index_t columns = std::max(k_, warm_columns);
    if (warm_columns > 0)
      dev_.copy_on_device(basis(current_, 0), warm_start, std::size_t(d_ * warm_columns) * sizeof(T));
    fill_random(warm_columns, columns - warm_columns);
    index_t rank = orthonormalize(0, columns, {});
    for (int attempt = 0; rank < k_; ++attempt) {
      CFLOW_REQUIRE(attempt < kStartBlockAttempts, "lobpcg: could not build k independent start vectors");
      fill_random(rank, k_ - rank);
      rank += orthonormalize(rank, k_ - rank, {});
    }
    apply_operator(0, rank);
    rayleigh_ritz_update(rank, 0);
  }

  // Standard normal columns, drawn on the host so that every backend starts from the same bits.
  void fill_random(index_t first, index_t count) {
    std::normal_distribution<double> normal;
    std::vector<T> host(std::size_t(d_ * count));
    for (T& x : host) x = T(normal(rng_));
    current_.upload(host, first * d_);
  }

  // The small device matrices small_[0, count·rows·cols) as `count` float64 host matrices.
  std::vector<HostMatrix> fetch_small(index_t rows, index_t cols, index_t count = 1) {
    std::vector<T> host(std::size_t(rows * cols * count));
    small_.download(host);
    std::vector<HostMatrix> matrices(std::size_t(count), HostMatrix(rows, cols));
    for (std::size_t i = 0; i < host.size(); ++i) {
      if (!std::isfinite(host[i]))  // a stop reason users read (docs/design.md §6): no file:line
        throw Error("the eigen-solver met non-finite Hessian-vector products (NaN or Inf: the iterate or the "
                    "preconditioner is overflowing)");
      matrices[i / std::size_t(rows * cols)].values[i % std::size_t(rows * cols)] = double(host[i]);
    }
    return matrices;
  }

  void upload_small(const HostMatrix& M) {
    const std::vector<T> host(M.values.begin(), M.values.end());
    small_.upload(host);
  }

  // Orthonormalizes the m columns W of S at column q against S's first q (orthonormal) columns and
  // among themselves; keeps the numerically independent directions, packed at column q. `lengths`:
  // the columns' lengths before the projection (empty: measured after it). Returns how many are kept.
  index_t orthonormalize(index_t q, index_t m, std::vector<double> lengths) {
    T* W = basis(current_, q);
    const T* Q = basis(current_, 0);
    if (q > 0) {
      blas::gemm(dev_, Op::T, Op::N, q, m, d_, T(1), Q, d_, W, d_, T(0), small_.data(), q);
      blas::gemm(dev_, Op::N, Op::N, d_, m, q, T(-1), Q, d_, small_.data(), q, T(1), W, d_);
    }
    blas::gemm(dev_, Op::T, Op::N, m, m, d_, T(1), W, d_, W, d_, T(0), small_.data(), m);
    const HostMatrix gram = fetch_small(m, m).front();
    if (lengths.empty()) lengths = column_lengths(gram);
    const HostMatrix F = orthonormalizing_transform(gram, lengths, kEpsilon);
    if (F.cols > 0) {
      upload_small(F);
      T* scratch = basis(next_, 0);
      blas::gemm(dev_, Op::N, Op::N, d_, F.cols, m, T(1), W, d_, small_.data(), m, T(0), scratch, d_);
      blas::copy(dev_, d_ * F.cols, scratch, W);
    }
    return F.cols;
  }

  // A·S for the m columns of S at `first`, in one batched call of H.
  void apply_operator(index_t first, index_t m) {
    CFLOW_NVTX_RANGE("lobpcg/operator");
    const T* V = basis(current_, first);
    T* AV = image(current_, first);
    if (p_diag_) {
      T* scaled = basis(next_, 0);
      apply_inverse_sqrt_diagonal(dev_, d_, m, p_diag_, V, scaled);
      H_(scaled, m, AV);
      apply_inverse_sqrt_diagonal(dev_, d_, m, p_diag_, AV, AV);
    } else {
      H_(V, m, AV);
    }
    ++operator_calls_;
    operator_applications_ += int(m);
  }

  // Rayleigh–Ritz on the first n columns of S, then [X P] ← S C and [AX AP] ← AS C.
  void rayleigh_ritz_update(index_t n, index_t previous_columns) {
    CFLOW_NVTX_RANGE("lobpcg/rayleigh_ritz");
    const index_t image_offset = capacity_ * d_;
    T* S = basis(current_, 0);
    blas::gemm_strided_batched(dev_, Op::T, Op::N, n, n, d_, T(1), S, d_, 0, S, d_, image_offset, T(0),
                               small_.data(), n, n * n, 2);  // SᵀS, SᵀAS
    const std::vector<HostMatrix> grams = fetch_small(n, n, 2);
    const RitzUpdate update = rayleigh_ritz(grams[0], grams[1], k_, previous_columns, kEpsilon);
    upload_small(update.coefficients);
    blas::gemm_strided_batched(dev_, Op::N, Op::N, d_, update.coefficients.cols, n, T(1), S, d_, image_offset,
                               small_.data(), n, 0, T(0), basis(next_, 0), d_, image_offset, 2);
    std::swap(current_, next_);
    ritz_values_ = update.values;
    directions_ = update.directions;
  }

  // R = AX − XΘ into the k columns of S at q; returns ‖r_j‖.
  std::vector<double> residual_norms(index_t q) {
    T* R = basis(current_, q);
    blas::copy(dev_, d_ * k_, image(current_, 0), R);
    HostMatrix theta(k_, k_);
    for (index_t j = 0; j < k_; ++j) theta(j, j) = ritz_values_[std::size_t(j)];
    upload_small(theta);
    blas::gemm(dev_, Op::N, Op::N, d_, k_, k_, T(-1), basis(current_, 0), d_, small_.data(), k_, T(1), R, d_);
    blas::gemm(dev_, Op::T, Op::N, k_, k_, d_, T(1), R, d_, R, d_, T(0), small_.data(), k_);
    return column_lengths(fetch_small(k_, k_).front());
  }

  // θ_k + ‖r_k‖ < certify_last_below, ‖y_k‖ = 1: Weyl's residual bound puts an eigenvalue of A in
  // [θ_k − ‖r_k‖, θ_k + ‖r_k‖] (docs/design.md §5.3).
  bool certified_below(const std::vector<double>& norms) const {
    return options_.certify_last_below &&
           ritz_values_[std::size_t(k_ - 1)] + norms[std::size_t(k_ - 1)] < *options_.certify_last_below;
  }

  std::vector<double> relative_residuals(const std::vector<double>& norms) const {
    double largest = 0;
    for (double theta : ritz_values_) largest = std::max(largest, std::abs(theta));
    std::vector<double> relative(norms.size());
    for (std::size_t j = 0; j < norms.size(); ++j) {
      const double scale = std::max(std::abs(ritz_values_[j]), kEigenvalueFloor * largest);
      relative[j] = norms[j] == 0 ? 0 : scale > 0 ? norms[j] / scale : std::numeric_limits<double>::infinity();
    }
    return relative;
  }

  Device dev_;
  index_t d_, k_, capacity_;
  const BlockOperator<T>& H_;
  const T* p_diag_;
  LobpcgOptions options_;
  // Columns [0, capacity) of a space are S, columns [capacity, 2·capacity) its image AS. next_ receives
  // the update and otherwise serves as scratch.
  Buffer<T> current_, next_;
  Buffer<T> small_;  // device copies of the small matrices
  std::mt19937_64 rng_;
  std::vector<double> ritz_values_;
  index_t directions_ = 0;
  int operator_calls_ = 0, operator_applications_ = 0;
};

}  // namespace

template <class T>
LobpcgResult<T> lobpcg(const Device& dev, index_t d, const BlockOperator<T>& H, const T* p_diag,
                       const LobpcgOptions& options, const T* warm_start, index_t warm_columns) {
  CFLOW_REQUIRE(d > 0, "lobpcg: the dimension must be positive");
  CFLOW_REQUIRE(options.k >= 1 && options.k <= d, "lobpcg: k must lie in [1, d]");
  CFLOW_REQUIRE(options.tolerance > 0, "lobpcg: the tolerance must be positive");
  CFLOW_REQUIRE(options.max_iterations >= 0, "lobpcg: max_iterations must be non-negative");
  CFLOW_REQUIRE(options.max_seconds > 0, "lobpcg: max_seconds must be positive");
  CFLOW_REQUIRE(warm_columns >= 0 && (warm_columns == 0 || warm_start), "lobpcg: bad warm start");
  CFLOW_REQUIRE(bool(H), "lobpcg: no operator");
  return LobpcgSolver<T>(dev, d, H, p_diag, options, std::max<index_t>(options.k, warm_columns))
      .solve(warm_start, warm_columns);
}

template <class T>
void apply_inverse_sqrt_diagonal(const Device& dev, index_t d, index_t m, const T* p_diag, const T* Y, T* U) {
  if (d * m == 0) return;
  if (p_diag) {
    CFLOW_DISPATCH(dev, divide_rows_by_sqrt<T>, dev, d, m, p_diag, Y, U);
    dev.note_write(U, std::size_t(d * m) * sizeof(T));  // a cache of jets along U sees it (Network's d3)
  } else if (U != Y)
    blas::copy(dev, d * m, Y, U);
}

#define CFLOW_INSTANTIATE_LOBPCG(T)                                                                             \
  template LobpcgResult<T> lobpcg<T>(const Device&, index_t, const BlockOperator<T>&, const T*, const LobpcgOptions&, \
                                     const T*, index_t);                                                        \
  template void apply_inverse_sqrt_diagonal<T>(const Device&, index_t, index_t, const T*, const T*, T*);
CFLOW_INSTANTIATE_LOBPCG(float)
CFLOW_INSTANTIATE_LOBPCG(double)
#undef CFLOW_INSTANTIATE_LOBPCG

}  // namespace cflow
