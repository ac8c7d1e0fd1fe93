#pragma once
// The top-k eigenpairs of A = P^{-1/2} H P^{-1/2} for a symmetric operator H (the Hessian) and a
// diagonal positive preconditioner P, by warm-started block LOBPCG (docs/design.md §5). The solver sees H
// only through batched products with blocks of device vectors, so the network's Hessian oracle, a
// dense matrix or a synthetic test operator plug in alike. float and double are instantiated.
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "cflow/runtime/buffer.h"

namespace cflow {

// HV = H·V for a d×m column-major block V of device vectors; HV is d×m and never aliases V.
template <class T>
using BlockOperator = std::function<void(const T* V, index_t m, T* HV)>;

struct LobpcgOptions {
  int k = 1;  // eigenpairs wanted, 1 ≤ k ≤ d
  // Column j is converged when ‖A y_j − λ_j y_j‖ ≤ tolerance · max(|λ_j|, 1e-3 · max_i |λ_i|): a
  // relative residual, floored so that eigenvalues near zero converge in the absolute sense instead
  // of never. Rounding limits what is reachable to a small multiple of ε·‖A‖/|λ_j| (ε = 1.2e-7 in
  // float32, 2.2e-16 in float64); a tolerance below it runs to max_iterations and reports
  // converged = false, with the vectors still orthonormal and the best found so far.
  double tolerance = 1e-8;
  int max_iterations = 100;
  // Wall-clock bound on the iterations: past it the solve stops where it is, converged = false and
  // timed_out = true (docs/design.md §5; a trajectory that overflows must not hold a run for hours).
  double max_seconds = std::numeric_limits<double>::infinity();
  unsigned seed = 0;  // random start columns (drawn on the host: the same bits on every backend)
  // The last column is also done, unconverged, once θ_k + ‖r_k‖ < certify_last_below: A is symmetric
  // and y_k a unit vector, so an eigenvalue of A lies within ‖r_k‖ of θ_k, certified below the bound
  // (the tracker's guard column, docs/design.md §5.3). The other columns always meet the tolerance.
  std::optional<double> certify_last_below = std::nullopt;
};

template <class T>
struct LobpcgResult {
  std::vector<T> eigenvalues;  // descending, length k
  Buffer<T> Y;                 // d×k orthonormal eigenvectors of A
  Buffer<T> U;                 // P^{-1/2} Y: H U = P U Λ and Uᵀ P U = I
  int iterations = 0;          // LOBPCG iterations after the initial Rayleigh–Ritz step
  int operator_calls = 0;      // batched calls of H: one for the start block plus one per iteration
  int operator_applications = 0;  // columns fed to H over all calls
  std::vector<double> residuals;  // per column, the relative residual the tolerance is compared with
  bool converged = false;         // every column met the tolerance, the last one possibly certified instead
  bool last_certified = false;    // the last column stopped by certify_last_below, not by the tolerance
  bool timed_out = false;  // stopped by max_seconds
};

// warm_start: d×warm_columns device block (null when warm_columns = 0). Any number of columns works:
// fewer than k are completed with random ones, more than k widen the first Rayleigh–Ritz step.
// The solve costs the start block's applications for that step and its residuals, and iterates only
// while a residual is above the tolerance (docs/design.md §5): a converged warm start costs k.
// p_diag: device vector of length d with positive entries, or null for P = I.
// Throws cflow::Error on bad arguments or when the operator returns non-finite values.
template <class T>
LobpcgResult<T> lobpcg(const Device& dev, index_t d, const BlockOperator<T>& H, const T* p_diag,
                       const LobpcgOptions& options, const T* warm_start = nullptr, index_t warm_columns = 0);

// U = P^{-1/2} Y for a d×m block (p_diag null: U = Y). U may alias Y.
template <class T>
void apply_inverse_sqrt_diagonal(const Device& dev, index_t d, index_t m, const T* p_diag, const T* Y, T* U);

}  // namespace cflow
