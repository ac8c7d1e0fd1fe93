#pragma once
// The one place that knows which compiler is reading a kernel file. Every kernels/*.cu is compiled
// by nvcc into the CUDA backend and by g++, as C++, into the CPU backend:
//   * kernels are grid-stride loops over `grid_stride(n)`;
//   * `launch(dev, n, kernel, args...)` runs them: a CUDA grid on the GPU; on the CPU the body runs
//     once per OpenMP thread and grid_stride hands each thread one contiguous block of [0, n)
//     (contiguous rather than interleaved, so threads never write the same cache line).
//   * launchers live in namespace cflow::CFLOW_BACKEND (cpu or cuda); host code reaches them through
//     CFLOW_DISPATCH (kernels/dispatch.h).
#include <algorithm>
#include <cstdint>

#include "cflow/runtime/device.h"
#include "cflow/runtime/error.h"
#include "kernels/dispatch.h"

#if defined(__CUDACC__)
#include "kernels/cuda_check.h"
#define CFLOW_HD __host__ __device__
#define CFLOW_DEVICE __device__
#define CFLOW_KERNEL __global__
#define CFLOW_BACKEND cuda
#else
#include <omp.h>
#define CFLOW_HD
#define CFLOW_DEVICE
#define CFLOW_KERNEL
#define CFLOW_BACKEND cpu
#endif

namespace cflow {

using index_t = std::int64_t;

// The indices first, first + step, ... below last.
struct IndexRange {
  index_t first, last, step;
  struct Iterator {
    index_t i, step;
    CFLOW_HD index_t operator*() const { return i; }
    CFLOW_HD Iterator& operator++() {
      i += step;
      return *this;
    }
    CFLOW_HD bool operator!=(const Iterator& end) const { return i < end.i; }
  };
  CFLOW_HD Iterator begin() const { return {first, step}; }
  CFLOW_HD Iterator end() const { return {last, step}; }
};

// Worker `rank` of `workers` gets one contiguous block of [0, n); together they cover it once.
CFLOW_HD inline IndexRange block_partition(index_t n, index_t rank, index_t workers) {
  const index_t per_worker = (n + workers - 1) / workers;
  const index_t first = rank * per_worker < n ? rank * per_worker : n;
  const index_t last = first + per_worker < n ? first + per_worker : n;
  return {first, last, 1};
}

// This thread's share of [0, n) inside a kernel.
CFLOW_DEVICE inline IndexRange grid_stride(index_t n) {
#if defined(__CUDACC__)
  const index_t threads = index_t(gridDim.x) * blockDim.x;
  return {index_t(blockIdx.x) * blockDim.x + threadIdx.x, n, threads};
#else
  return block_partition(n, omp_get_thread_num(), omp_get_num_threads());
#endif
}

// A kernel whose item is one element of all m directions (stored `size` apart, docs/design.md §3)
// walks them in tiles of consecutive elements: per direction, a CPU thread then streams each array
// contiguously, instead of striding by `size` across m directions at every element (which, with
// `size` a multiple of 4 KiB, puts all m addresses in one cache set and defeats the prefetchers).
// On the GPU a tile is one element: consecutive threads already read consecutive addresses.
#if defined(__CUDACC__)
inline constexpr index_t kDirectionTile = 1;
#else
inline constexpr index_t kDirectionTile = 256;
#endif
CFLOW_HD inline index_t direction_tile_count(index_t size) { return (size + kDirectionTile - 1) / kDirectionTile; }
// The elements of tile `tile` of [0, size).
CFLOW_HD inline IndexRange direction_tile(index_t tile, index_t size) {
  const index_t first = tile * kDirectionTile;
  return {first, first + kDirectionTile < size ? first + kDirectionTile : size, 1};
}

// Below this many items the CPU runs a kernel on the calling thread: a parallel region costs more.
inline constexpr index_t kCpuParallelThreshold = 2048;

// Runs `kernel` over n items that each cost about `work_per_item` elementwise operations (a kernel
// whose item loops over a normalization group or a reduction): the CPU goes parallel once the whole
// launch, not the item count, is worth a parallel region. The GPU grid is the same either way.
template <class... Params, class... Args>
void launch_weighted(const Device& dev, index_t n, index_t work_per_item, void (*kernel)(Params...), Args... args) {
  if (n <= 0) return;
#if defined(__CUDACC__)
  (void)work_per_item;
  constexpr int kBlock = 256;
  const index_t blocks = std::min<index_t>((n + kBlock - 1) / kBlock, 65536);
  kernel<<<unsigned(blocks), kBlock, 0, static_cast<cudaStream_t>(dev.native_stream())>>>(args...);
  CFLOW_CHECK_CUDA(cudaGetLastError());
#else
  (void)dev;
#pragma omp parallel if (n > 1 && n * std::max<index_t>(work_per_item, 1) >= kCpuParallelThreshold)
  kernel(args...);
#endif
}

// Runs `kernel` over n items of one elementwise operation each.
template <class... Params, class... Args>
void launch(const Device& dev, index_t n, void (*kernel)(Params...), Args... args) {
  launch_weighted(dev, n, 1, kernel, args...);
}

}  // namespace cflow
