#pragma once
// Tracks the top eigenpairs of A = P^{-1/2} H P^{-1/2} along a trajectory (docs/design.md §5): full solves
// by warm-started LOBPCG from the previous vectors (extrapolated linearly from the two solves before),
// with signs aligned to them and the block grown
// until every eigenvalue above the track threshold is tracked; in between, cheap refreshes of the
// eigenvalues by Rayleigh quotients of the cached vectors. float and double are instantiated.
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/solvers/lobpcg.h"

namespace cflow {

// out_host[j] = u_jᵀ H u_j for the m columns of the d×m device block U (the objective's `quad`).
template <class T>
using QuadraticForm = std::function<void(const T* U, index_t m, T* out_host)>;

struct EigenTrackerOptions {
  int initial_k = 1;
  // While the smallest tracked eigenvalue is above this, a full solve adds columns and solves again
  // (one, then twice as many as the step before: a spectrum far above it costs log k solves, not k),
  // and keeps every eigenvalue above it plus one below. nullopt: k stays fixed. k never shrinks.
  std::optional<double> track_threshold = 1.5;
  int k_max = 20;  // cap on the growth (and on initial_k); also capped at d
  double tolerance = 1e-8;
  int max_iterations = 100;
  // Warm-start a full solve from 2·y_j − y_j' (y' the vectors of the solve before) for every column
  // that continues the same previous column, instead of from y_j (docs/design.md §5.3): along a
  // trajectory the start residual shrinks from first to second order in the step. Off: from y_j.
  bool extrapolate = true;
  // Stop iterating the guard (the last column of k ≥ 2, below the track threshold) once θ + ‖r‖ < threshold
  // certifies an eigenvalue below it, instead of converging it to the tolerance (docs/design.md §5.3):
  // its logged value is then an estimate within ‖r‖, not tolerance-accurate. Off: every column converges.
  bool certify_guard = true;
  // Wall-clock bound on a full solve, all its LOBPCG calls together (EigenSolveReport::timed_out).
  double max_seconds = std::numeric_limits<double>::infinity();
  unsigned seed = 0;
};

// What the last full solve did, summed over its LOBPCG calls (one plus one per growth step).
struct EigenSolveReport {
  int lobpcg_calls = 0;
  int iterations = 0;
  int operator_calls = 0;
  int operator_applications = 0;
  bool converged = false;          // of the last LOBPCG call
  bool guard_certified = false;    // its last column stopped certified below the threshold, unconverged
  bool timed_out = false;          // max_seconds ran out: the eigenpairs are not converged
  std::vector<double> residuals;   // of the last LOBPCG call
};

// The tracker's state between calls, on the host, for checkpoints (resume continues bit for bit).
struct EigenTrackerSnapshot {
  std::vector<double> Y;            // d×k tracked vectors
  std::vector<double> Y_previous;   // d×k' vectors of the solve before (extrapolation); may be empty
  std::vector<double> eigenvalues;  // k
  std::int64_t target_k = 0;
  std::int64_t lobpcg_calls = 0;    // seeds the random columns of later solves
};

template <class T>
class EigenTracker {
 public:
  EigenTracker(const Device& dev, index_t d, const EigenTrackerOptions& options);

  // Full solve for A = P^{-1/2} H P^{-1/2} (p_diag: device vector of length d, or null for P = I),
  // warm-started from the tracked vectors. Each new vector takes the sign that makes it agree with the
  // previous vector it overlaps most (by |overlap|, so a swap of two eigenvalues keeps both signs).
  const EigenSolveReport& solve(const BlockOperator<T>& H, const T* p_diag);

  // Rayleigh refresh with the current H and P: λ_j ← u_jᵀ H u_j with u_j = P^{-1/2} y_j, then the
  // pairs re-sorted by λ descending. The vectors Y are not changed (only permuted), so U, recomputed
  // with the current P, keeps UᵀPU = I, while UᵀHU is no longer exactly diagonal.
  void refresh(const QuadraticForm<T>& quad, const T* p_diag);
  // The refresh in two halves, for a caller that uses the basis before its quotients are known (the
  // central flow's d3 pass returns them, docs/design.md §6.4): rescale makes U = P^{-1/2} Y for the
  // current P; refresh_rescaled then asks quad for the quotients of that U and re-sorts. A re-sort
  // moves columns in place: U() keeps its address, and the columns that stay are not written.
  void rescale(const T* p_diag);
  void refresh_rescaled(const QuadraticForm<T>& quad);

  bool has_solution() const { return !eigenvalues_.empty(); }
  index_t dimension() const { return d_; }
  index_t k() const { return index_t(eigenvalues_.size()); }
  std::span<const T> eigenvalues() const { return eigenvalues_; }  // descending
  const T* Y() const { return Y_.data(); }                          // d×k, orthonormal
  const T* U() const { return U_.data(); }                          // d×k, P^{-1/2} Y
  const EigenSolveReport& last_solve() const { return report_; }

  EigenTrackerSnapshot snapshot() const;
  // U is recomputed by the next solve or refresh.
  void restore(const EigenTrackerSnapshot& snapshot);

 private:
  void align_signs(LobpcgResult<T>& result) const;
  void keep_leading(LobpcgResult<T>& result, index_t k) const;
  const T* extrapolated_start();
  void remember_previous();
  void size_extrapolation_workspace();
  std::optional<double> certified_guard_threshold() const;

  Device dev_;
  index_t d_;
  EigenTrackerOptions options_;
  index_t k_cap_;
  index_t target_k_;
  unsigned lobpcg_calls_ = 0;  // over the tracker's life: each call draws fresh random columns
  std::vector<T> eigenvalues_;
  Buffer<T> Y_, U_;
  Buffer<T> Y_previous_;        // the vectors of the full solve before Y_'s, when previous_valid_
  bool previous_valid_ = false;  // Y_previous_ holds that solve's vectors, with Y_'s k
  Buffer<T> start_, overlaps_;   // extrapolated_start's workspace
  EigenSolveReport report_;
};

}  // namespace cflow
