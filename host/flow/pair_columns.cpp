#include "host/flow/pair_columns.h"

#include "cflow/runtime/blas.h"
#include "host/solvers/small_dense.h"
#include "kernels/flow.h"

namespace cflow {
namespace {

// Writes block (rows of group gi) × (columns of group gj) of the pairs × pairs matrix M, and its
// transpose at (gj, gi) when gi ≠ gj (a diagonal block is placed as computed).
void place_block(std::vector<double>& M, const PairGroups& groups, index_t gi, index_t gj,
                 const std::vector<double>& block) {
  const index_t rows = groups.length(gi), cols = groups.length(gj), pairs = groups.pairs;
  for (index_t b = 0; b < cols; ++b)
    for (index_t a = 0; a < rows; ++a) {
      const double value = block[std::size_t(a + rows * b)];
      const index_t row = groups.first(gi) + a, col = groups.first(gj) + b;
      M[std::size_t(row + pairs * col)] = value;
      if (gi != gj) M[std::size_t(col + pairs * row)] = value;
    }
}

}  // namespace

template <class T>
PairColumns<T>::PairColumns(const Device& dev, index_t d, const PairGroups& groups, Fill fill)
    : dev_(dev),
      d_(d),
      groups_(groups),
      fill_(std::move(fill)),
      columns_(dev, d * groups.size, Uninitialized{}) {}

template <class T>
const T* PairColumns<T>::hold(index_t g) {
  if (held_ != g) {
    fill_(groups_.first(g), groups_.length(g), columns_.data());
    held_ = g;
  }
  return columns_.data();
}

template <class T>
const T* PairColumns<T>::hold_scaled(index_t g) {
  if (scaled_group_ != g) {
    if (scaled_.size() == 0) scaled_ = Buffer<T>(dev_, d_ * groups_.size, Uninitialized{});  // gd's products need none
    CFLOW_DISPATCH(dev_, scale_rows<T>, dev_, d_, groups_.length(g), s_, hold(g), scaled_.data());
    scaled_group_ = g;
  }
  return scaled_.data();
}

// Block (i, j ≥ i) of AᵀS is S_iᵀA_j (S = diag(s)·A), so row block i needs S_i and each later A_j in
// turn; the symmetric block (j, i) is its transpose.
template <class T>
std::vector<double> PairColumns<T>::gram(const T* s, const Visit& visit) {
  const index_t G = groups_.count();
  s_ = s;
  scaled_group_ = -1;
  std::vector<double> M(std::size_t(groups_.pairs * groups_.pairs), 0.0);
  for (index_t gi = 0; gi < G; ++gi) {
    const index_t rows = groups_.length(gi);
    const T* A_i = hold(gi);
    const T* S_i = hold_scaled(gi);
    if (visit) visit(groups_.first(gi), rows, A_i);
    place_block(M, groups_, gi, gi, device_gram(dev_, d_, rows, A_i, S_i));
    for (index_t gj = gi + 1; gj < G; ++gj)
      place_block(M, groups_, gi, gj, device_cross(dev_, d_, rows, groups_.length(gj), S_i, hold(gj)));
  }
  return M;
}

template <class T>
void PairColumns<T>::accumulate(bool scaled, const T* weights, T beta, T* out) {
  for (index_t g = groups_.count() - 1; g >= 0; --g) {
    const T* columns = scaled ? hold_scaled(g) : hold(g);
    blas::gemv<T>(dev_, blas::Op::N, d_, groups_.length(g), T(1), columns, d_, weights + groups_.first(g), beta, out);
    beta = T(1);
  }
}

template <class T>
typename PairColumns<T>::Fill pair_products_of(const Device& dev, index_t d, index_t k, const T* U) {
  return [dev, d, k, U](index_t first, index_t count, T* out) {
    CFLOW_DISPATCH(dev, pair_products<T>, dev, d, k, first, count, U, out);
  };
}

template class PairColumns<float>;
template class PairColumns<double>;
template PairColumns<float>::Fill pair_products_of<float>(const Device&, index_t, index_t, const float*);
template PairColumns<double>::Fill pair_products_of<double>(const Device&, index_t, index_t, const double*);

}  // namespace cflow
