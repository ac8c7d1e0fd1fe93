#pragma once
// The Hessian as an explicit d×d matrix, formed column by column from batched Hessian-vector
// products with blocks of identity columns, and its dense eigendecomposition: the reference the
// iterative eigen-solver is checked against on small models (docs/design.md §5), by the tests and by
// `cflow hessian --dense`. Forming H costs d HVPs and d² memory, diagonalizing it O(d³): small models
// only. Everything stays on the device. float and double are instantiated.
#include <span>
#include <vector>

#include "cflow/runtime/buffer.h"
#include "cflow/solvers/lobpcg.h"
#include "cflow/engine/objective.h"

namespace cflow {

// The largest dimension `cflow hessian --dense` accepts (a float64 Hessian of 200 MB).
inline constexpr index_t kMaxDenseHessianDimension = 5000;

template <class T>
struct DenseHessian {
  Buffer<T> matrix;            // d×d column-major, symmetrized: ½(H + Hᵀ) of the columns as formed
  double asymmetry = 0;        // ‖H − Hᵀ‖_F / ‖H‖_F of the columns as formed (0 when H = 0)
  int operator_calls = 0;      // batched calls of H
  int operator_applications = 0;  // columns fed to H: d
};

// Forms H column by column: one call of H per block of `block` identity columns e_c … e_{c+block−1},
// each writing its columns of the matrix directly; then symmetrizes. Throws cflow::Error on bad
// arguments or a non-finite entry.
template <class T>
DenseHessian<T> dense_hessian(const Device& dev, index_t d, const BlockOperator<T>& H, index_t block = 64);

// The network's (or any objective's) Hessian at w, as above.
template <class T>
DenseHessian<T> dense_hessian(Objective<T>& objective, const T* w, index_t block = 64);

template <class T>
struct DenseEigen {
  std::vector<T> eigenvalues;  // all d, descending
  Buffer<T> vectors;           // d×top: the eigenvectors of the `top` largest, in the same order
};

// The eigendecomposition of a symmetric d×d device matrix (lower triangle read; overwritten).
template <class T>
DenseEigen<T> dense_eigen(const Device& dev, index_t d, Buffer<T>& matrix, index_t top);

// |a_j − b_j| / max(|b_j|, 1e-3 · max_i |b_i|): the difference of `a` from the reference `b`, relative
// in the same sense as the LOBPCG convergence test (absolute for eigenvalues near zero). The spans
// must have equal lengths.
template <class T>
std::vector<double> relative_differences(std::span<const T> a, std::span<const T> b);
// Their maximum; 0 for empty spans.
template <class T>
double max_relative_difference(std::span<const T> a, std::span<const T> b);

struct HessianSpectrumOptions {
  LobpcgOptions lobpcg;      // k, tolerance, iterations, seed
  bool dense = false;        // also form and diagonalize the dense Hessian and compare
  index_t dense_block = 64;  // identity columns per HVP call when forming it
};

// What `cflow hessian` computes: the top-k eigenpairs of the raw Hessian at w by LOBPCG (P = I),
// and optionally the dense reference.
template <class T>
struct HessianSpectrum {
  T loss = 0;                // L(w)
  LobpcgResult<T> solution;  // eigenvalues descending, U = Y the eigenvectors
  double solve_seconds = 0;  // wall time of the LOBPCG solve (the primal at w already cached)

  bool has_dense = false;
  std::vector<T> dense_eigenvalues;       // all d, descending
  double max_relative_difference = 0;     // LOBPCG top k against the dense top k
  double asymmetry = 0;                   // of the dense Hessian as formed
  int dense_operator_calls = 0;
  double dense_seconds = 0;               // forming and diagonalizing it
};

template <class T>
HessianSpectrum<T> hessian_spectrum(Objective<T>& objective, const T* w, const HessianSpectrumOptions& options);

}  // namespace cflow
