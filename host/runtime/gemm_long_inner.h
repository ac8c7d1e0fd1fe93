#pragma once
// Gram products Aᵀ·B whose inner dimension is long (k = d: the blocks of d-vectors of LOBPCG, the
// tracker, small_dense) and whose output is small, split along k (docs/design.md §7.3). blas::gemm
// takes this path on CUDA, where cuBLAS ran these shapes on a few thread blocks that each walked all
// of k; tests call it on the CPU too, so the code the GPU runs is the code they check.
#include "cflow/runtime/blas.h"

namespace cflow::blas {

// The chunks such a product is split into: 1 (not split) unless op_a = T, op_b = N, m, n ≤ 256 and
// k ≥ 8192; then the largest power of two ≤ 256 with k / chunks ≥ 4096.
index_t long_inner_chunks(Op op_a, Op op_b, index_t m, index_t n, index_t k);

// C_i = alpha·A_iᵀB_i + beta·C_i for the batch (A_i: k × m at A + i·stride_a, lda ≥ k; B_i likewise;
// C_i: m × n, ldc ≥ m), over `chunks` chunks of k (a power of two ≥ 2, k ≥ chunks²): one batched GEMM
// of the partial products of all chunks but the last, one GEMM for the last (the rows left over, at
// most a chunk), then a fixed binary tree of in-place additions: the same bits on every call, no
// atomics. C is not read when beta = 0.
template <class T>
void gemm_long_inner(const Device& dev, index_t chunks, index_t m, index_t n, index_t k, T alpha, const T* A,
                     index_t lda, index_t stride_a, const T* B, index_t ldb, index_t stride_b, T beta, T* C,
                     index_t ldc, index_t stride_c, index_t batch);

}  // namespace cflow::blas
