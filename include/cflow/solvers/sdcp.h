#pragma once
// The semidefinite complementarity problem (SDCP) that the central flow solves at every substep
// (docs/design.md §6): for symmetric k×k α and a linear operator 𝓑 on symmetric k×k matrices, find X with
//
//     X ⪰ 0,   M = α + 𝓑[X] ⪰ 0,   ⟨X, M⟩ = 0,
//
// the optimality condition of min_{X ⪰ 0} ⟨α, X⟩ + ½⟨X, 𝓑[X]⟩. Solved on the host in float64.
#include <limits>
#include <span>
#include <vector>

namespace cflow {

struct SdcpOptions {
  double tolerance = 1e-10;  // converged once SdcpResult::residual ≤ tolerance
  int max_iterations = 200;  // interior-point plus Newton iterations
  // Wall-clock bound: past it the solve returns its best iterate, converged = false, timed_out = true.
  double max_seconds = std::numeric_limits<double>::infinity();
};

// The KKT residual of X, measured against the cleaned operator 𝓑 (see solve_sdcp), with
// M = α + 𝓑[X], Frobenius norms ‖·‖ and Π₋ the negative part (eigenvalues clipped at 0 from above):
//
//     primal_infeasibility = ‖Π₋(X)‖ / ‖X‖
//     dual_infeasibility   = ‖Π₋(M)‖ / (‖α‖ + ‖𝓑[X]‖)
//     complementarity      = ‖X M‖ / (‖X‖ (‖α‖ + ‖𝓑[X]‖))
//     residual             = the largest of the three (0/0 is read as 0).
//
// Each part lies in [0, 1] and is invariant under X → sX, α → tα, 𝓑 → (t/s)𝓑 and under orthogonal
// changes of basis, so one tolerance serves problems of any scale. The denominators are the sizes of
// the terms that cancel in M, so rounding in α + 𝓑[X] reads as ~1e-16. ‖XM‖ rather than |⟨X, M⟩|:
// nothing cancels when X or M is slightly indefinite, and it is first order (⟨X, M⟩ second order)
// in the error of range(X).
struct SdcpResult {
  std::vector<double> X;  // k×k, column-major, exactly symmetric
  int iterations = 0;
  double residual = 0;
  double primal_infeasibility = 0;
  double dual_infeasibility = 0;
  double complementarity = 0;
  bool converged = false;  // residual ≤ tolerance; false also when the SDCP has no solution
  bool timed_out = false;  // stopped by max_seconds
};

// alpha: k×k column-major (symmetrized before use). B: (k²)×(k²) column-major matrix acting on
// vec(X) (index a + k·b), i.e. 𝓑[X]_ab = Σ_cd B[(a + k·b) + k²·(c + k·d)] X_cd.
//
// B only needs to be symmetric and PSD up to rounding: like the reference implementation, the solver
// first compresses it onto symmetric matrices (orthonormal svec coordinates), symmetrizes it and
// clips its negative eigenvalues to zero; it then solves the SDCP of that cleaned operator.
//
// α ⪰ 0 returns X = 0 exactly; k = 1 returns X = max(0, −α/𝓑). Otherwise an infeasible primal-dual
// interior-point method (HKM direction, Mehrotra predictor-corrector) approaches the solution and
// semismooth Newton on the natural residual X − Π₊(X − M) polishes it to the tolerance. When no
// solution exists (𝓑 = 0 with α ⋡ 0, or more generally an unbounded objective) converged is false.
// Throws cflow::Error on wrong sizes or non-finite input.
SdcpResult solve_sdcp(int k, std::span<const double> alpha, std::span<const double> B, const SdcpOptions& options = {});

}  // namespace cflow
