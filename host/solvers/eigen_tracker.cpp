// The eigenvalue tracker: LOBPCG warm starts, growth to the track threshold, sign alignment and
// Rayleigh refreshes (docs/design.md §5).
#include "cflow/solvers/eigen_tracker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/error.h"
#include "cflow/runtime/nvtx.h"

namespace cflow {
namespace {

// The columns of the d×m block put in the given order in place: its storage stays (a caller may hold
// U), and only the columns that move are written (a cache watching the others stays valid).
template <class T>
void permute_columns(const Device& dev, index_t d, Buffer<T>& block, const std::vector<index_t>& order) {
  Buffer<T> before(dev, block.size(), Uninitialized{});
  before.copy_from(block);
  for (std::size_t a = 0; a < order.size(); ++a)
    if (order[a] != index_t(a)) blas::copy(dev, d, before.data() + order[a] * d, block.data() + index_t(a) * d);
}

}  // namespace

template <class T>
EigenTracker<T>::EigenTracker(const Device& dev, index_t d, const EigenTrackerOptions& options)
    : dev_(dev), d_(d), options_(options), k_cap_(std::min<index_t>(options.k_max, d)) {
  CFLOW_REQUIRE(d > 0, "eigen tracker: the dimension must be positive");
  CFLOW_REQUIRE(options.initial_k >= 1 && options.k_max >= 1, "eigen tracker: initial_k and k_max must be positive");
  target_k_ = std::min<index_t>(options.initial_k, k_cap_);
}

template <class T>
const EigenSolveReport& EigenTracker<T>::solve(const BlockOperator<T>& H, const T* p_diag) {
  CFLOW_NVTX_RANGE("eigen_tracker/solve");
  report_ = {};
  const auto started = std::chrono::steady_clock::now();
  const index_t k_before = target_k_;
  LobpcgResult<T> result;
  const T* extrapolated = extrapolated_start();
  for (index_t growth = 1;; growth *= 2) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const LobpcgOptions lobpcg_options{.k = int(target_k_),
                                       .tolerance = options_.tolerance,
                                       .max_iterations = options_.max_iterations,
                                       .max_seconds = std::max(options_.max_seconds - elapsed, 1e-9),
                                       .seed = options_.seed + lobpcg_calls_++,
                                       .certify_last_below = certified_guard_threshold()};
    // The first call starts from the tracked vectors (extrapolated where possible), a growth step from
    // the block just solved; both get one random column per missing one.
    const Buffer<T>& warm = report_.lobpcg_calls > 0 ? result.Y : Y_;
    const T* start = report_.lobpcg_calls == 0 && extrapolated ? extrapolated : warm.data();
    result = lobpcg(dev_, d_, H, p_diag, lobpcg_options, start, warm.size() / d_);
    ++report_.lobpcg_calls;
    report_.iterations += result.iterations;
    report_.operator_calls += result.operator_calls;
    report_.operator_applications += result.operator_applications;
    report_.converged = result.converged;
    report_.guard_certified = result.last_certified;
    report_.residuals = result.residuals;
    report_.timed_out = result.timed_out;
    const bool smallest_above_threshold =
        options_.track_threshold && double(result.eigenvalues.back()) > *options_.track_threshold;
    if (!smallest_above_threshold || target_k_ == k_cap_ || result.timed_out) break;
    target_k_ = std::min(target_k_ + growth, k_cap_);
  }
  if (options_.track_threshold && target_k_ > k_before) {  // a growth step may have overshot
    const auto above = std::count_if(result.eigenvalues.begin(), result.eigenvalues.end(),
                                     [&](T lambda) { return double(lambda) > *options_.track_threshold; });
    target_k_ = std::min(target_k_, std::max(k_before, index_t(above) + 1));
    if (index_t(result.eigenvalues.size()) > target_k_) report_.guard_certified = false;  // kept: all converged
    keep_leading(result, target_k_);
  }
  if (has_solution()) align_signs(result);
  eigenvalues_ = result.eigenvalues;
  remember_previous();
  Y_ = std::move(result.Y);
  U_ = std::move(result.U);
  size_extrapolation_workspace();
  return report_;
}

// The guard is certified rather than converged only behind at least one column (k ≥ 2: the top
// eigenvalue, the logged sharpness, always meets the tolerance) and only when it is warm-started
// from the previous solve's guard (same k, first LOBPCG call): the residual bound certifies *an*
// eigenvalue near θ, which is λ_k only if the column already tracks it — a fresh random column would
// certify a bulk eigenvalue at once. docs/design.md §5.3.
template <class T>
std::optional<double> EigenTracker<T>::certified_guard_threshold() const {
  if (!options_.certify_guard || target_k_ < 2 || k() != target_k_ || report_.lobpcg_calls > 0) return std::nullopt;
  return options_.track_threshold;
}

// 2·y_j − y'_j for each column j of Y whose largest overlap with the previous solve's Y' is with its
// own column y'_j (positive: the signs are aligned), y_j for the others; null when there is nothing
// to extrapolate from (first solve, k changed, or extrapolation off). docs/design.md §5.3.
template <class T>
const T* EigenTracker<T>::extrapolated_start() {
  const index_t m = k();
  if (!options_.extrapolate || m == 0 || !previous_valid_) return nullptr;
  blas::gemm(dev_, blas::Op::T, blas::Op::N, m, m, d_, T(1), Y_previous_.data(), d_, Y_.data(), d_, T(0),
             overlaps_.data(), m);  // Y'ᵀ Y
  const std::vector<T> host = overlaps_.to_host();
  blas::copy(dev_, d_ * m, Y_.data(), start_.data());
  for (index_t j = 0; j < m; ++j) {
    const T* column = host.data() + j * m;
    const auto closest = std::max_element(column, column + m, [](T a, T b) { return std::abs(a) < std::abs(b); });
    if (closest - column != j || *closest <= 0) continue;
    blas::scal(dev_, d_, T(2), start_.data() + j * d_);
    blas::axpy(dev_, d_, T(-1), Y_previous_.data() + j * d_, start_.data() + j * d_);
  }
  return start_.data();
}

// Y' := Y before a solve replaces Y, by a copy into a kept buffer: Y' and the extrapolation workspace
// are sized at the solve that sets k (the first one included), so a later solve with the same k
// allocates nothing new, in whatever order several trackers share the arena (issue #16's counters).
template <class T>
void EigenTracker<T>::remember_previous() {
  previous_valid_ = options_.extrapolate && Y_.size() > 0 && Y_previous_.size() == Y_.size();
  if (previous_valid_) blas::copy(dev_, index_t(Y_.size()), Y_.data(), Y_previous_.data());
}

template <class T>
void EigenTracker<T>::size_extrapolation_workspace() {
  if (!options_.extrapolate) return;
  const index_t m = k();
  if (Y_previous_.size() != Y_.size()) {
    Y_previous_ = Buffer<T>(dev_, d_ * m, Uninitialized{});
    previous_valid_ = false;
  }
  if (start_.size() != Y_.size()) {
    start_ = Buffer<T>(dev_, d_ * m, Uninitialized{});
    overlaps_ = Buffer<T>(dev_, m * m, Uninitialized{});
  }
}

// The first k eigenpairs of a solve with more columns (descending, so the k largest).
template <class T>
void EigenTracker<T>::keep_leading(LobpcgResult<T>& result, index_t k) const {
  if (index_t(result.eigenvalues.size()) == k) return;
  result.eigenvalues.resize(std::size_t(k));
  result.residuals.resize(std::size_t(k));
  for (Buffer<T>* block : {&result.Y, &result.U}) {
    Buffer<T> kept(dev_, d_ * k);
    blas::copy(dev_, d_ * k, block->data(), kept.data());
    *block = std::move(kept);
  }
}

template <class T>
void EigenTracker<T>::align_signs(LobpcgResult<T>& result) const {
  const index_t previous = k(), current = index_t(result.eigenvalues.size());
  Buffer<T> overlaps(dev_, previous * current);  // Y_previousᵀ Y_new
  blas::gemm(dev_, blas::Op::T, blas::Op::N, previous, current, d_, T(1), Y_.data(), d_, result.Y.data(), d_, T(0),
             overlaps.data(), previous);
  const std::vector<T> host = overlaps.to_host();
  for (index_t j = 0; j < current; ++j) {
    const T* column = host.data() + j * previous;
    const T closest = *std::max_element(column, column + previous,
                                        [](T a, T b) { return std::abs(a) < std::abs(b); });
    if (closest < 0) {  // an overlap of exactly 0 (a new direction) keeps its sign
      blas::scal(dev_, d_, T(-1), result.Y.data() + j * d_);
      blas::scal(dev_, d_, T(-1), result.U.data() + j * d_);
    }
  }
}

template <class T>
void EigenTracker<T>::refresh(const QuadraticForm<T>& quad, const T* p_diag) {
  rescale(p_diag);
  refresh_rescaled(quad);
}

template <class T>
void EigenTracker<T>::rescale(const T* p_diag) {
  CFLOW_REQUIRE(has_solution(), "eigen tracker: refresh before the first solve");
  apply_inverse_sqrt_diagonal(dev_, d_, k(), p_diag, Y_.data(), U_.data());
}

template <class T>
void EigenTracker<T>::refresh_rescaled(const QuadraticForm<T>& quad) {
  CFLOW_NVTX_RANGE("eigen_tracker/refresh");
  CFLOW_REQUIRE(has_solution(), "eigen tracker: refresh before the first solve");
  const index_t m = k();
  std::vector<T> quotients(static_cast<std::size_t>(m));
  quad(U_.data(), m, quotients.data());
  CFLOW_REQUIRE(std::all_of(quotients.begin(), quotients.end(), [](T q) { return std::isfinite(q); }),
                "eigen tracker: the quadratic form returned non-finite values");
  std::vector<index_t> order(static_cast<std::size_t>(m));
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](index_t a, index_t b) { return quotients[std::size_t(a)] > quotients[std::size_t(b)]; });
  for (std::size_t a = 0; a < order.size(); ++a) eigenvalues_[a] = quotients[std::size_t(order[a])];
  if (!std::is_sorted(order.begin(), order.end())) {
    permute_columns(dev_, d_, Y_, order);
    permute_columns(dev_, d_, U_, order);
    if (previous_valid_) permute_columns(dev_, d_, Y_previous_, order);
  }
}

template <class T>
EigenTrackerSnapshot EigenTracker<T>::snapshot() const {
  const std::vector<T> Y = Y_.to_host_pageable(),
                       Y_previous = previous_valid_ ? Y_previous_.to_host_pageable() : std::vector<T>{};
  return {{Y.begin(), Y.end()}, {Y_previous.begin(), Y_previous.end()}, {eigenvalues_.begin(), eigenvalues_.end()},
          target_k_, std::int64_t(lobpcg_calls_)};
}

template <class T>
void EigenTracker<T>::restore(const EigenTrackerSnapshot& snapshot) {
  const index_t k = index_t(snapshot.eigenvalues.size());
  CFLOW_REQUIRE(index_t(snapshot.Y.size()) == d_ * k && snapshot.target_k >= 1 && snapshot.target_k <= k_cap_,
                "eigen tracker: a snapshot of another dimension or size");
  CFLOW_REQUIRE(index_t(snapshot.Y_previous.size()) % d_ == 0, "eigen tracker: a snapshot of another dimension");
  eigenvalues_.assign(snapshot.eigenvalues.begin(), snapshot.eigenvalues.end());
  const std::vector<T> Y(snapshot.Y.begin(), snapshot.Y.end());
  Y_ = Buffer<T>(dev_, std::span<const T>(Y));
  U_ = Buffer<T>(dev_, d_ * k);
  const std::vector<T> Y_previous(snapshot.Y_previous.begin(), snapshot.Y_previous.end());
  Y_previous_ = Buffer<T>(dev_, std::span<const T>(Y_previous));
  size_extrapolation_workspace();  // an empty or older-k Y' is not extrapolated from, as in the original run
  previous_valid_ = Y_previous_.size() == Y_.size() && !Y_previous.empty();
  target_k_ = snapshot.target_k;
  lobpcg_calls_ = unsigned(snapshot.lobpcg_calls);
}

template class EigenTracker<float>;
template class EigenTracker<double>;

}  // namespace cflow
