#pragma once
// What each backend provides below the public Device/blas/dense API: memory, BLAS, LAPACK.
// Implemented in backend_cpu.cpp (OpenMP, OpenBLAS, LAPACKE) and backend_cuda.cpp (CUDA runtime,
// cuBLAS, cuSOLVER); the public functions dispatch on the device.
#include <memory>
#include <string>
#include <vector>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/device.h"
#include "host/runtime/arena.h"
#include "kernels/dispatch.h"

namespace cflow {

struct Device::Impl {
  Backend backend = Backend::cpu;
  std::string description;
  std::string selection_note;
  int cpu_threads = 1;
  int cuda_index = -1;  // the CUDA device (cudaSetDevice is per host thread: Device::bind_thread)
  bool tf32 = false;    // Device::use_tf32; a lane takes its parent's
  void* stream = nullptr;
  void* blas = nullptr;
  void* solver = nullptr;
  DeviceTraffic traffic;
  CachingArena arena;
  // Device::watch: a few ranges (one per cached point), the oldest dropped beyond kMaxWatched.
  struct Watched {
    const char* begin;
    const char* end;
    std::uint64_t version;
  };
  static constexpr std::size_t kMaxWatched = 16;
  std::vector<Watched> watched;
  std::uint64_t last_version = 0;
  // Device::read_back's staging area: page-locked host memory (cudaMallocHost) on CUDA, so the copy is
  // an asynchronous DMA; aligned host memory on the CPU, counted the same (docs/design.md §7.5).
  void* staging = nullptr;
  std::size_t staging_bytes = 0;
  void* staging_for(std::size_t bytes);  // grows the area (one allocation) when bytes exceed it
  void release_pinned(void* ptr) noexcept;
  ~Impl();  // returns the arena's blocks and the staging area to the backend
};

CFLOW_BACKEND_DECLARATIONS(
  void* allocate(std::size_t bytes);
  void release(void* ptr) noexcept;
  // Ordered on the device's stream, without waiting: the caller synchronizes where the host needs it.
  void copy(const Device& dev, void* dst, const void* src, std::size_t bytes);
  void set_zero(const Device& dev, void* dst, std::size_t bytes);
  void synchronize(const Device& dev);

  template <class T>
  void gemm_strided_batched(const Device& dev, blas::Op op_a, blas::Op op_b, index_t m, index_t n,
                            index_t k, T alpha, const T* A, index_t lda, index_t stride_a, const T* B,
                            index_t ldb, index_t stride_b, T beta, T* C, index_t ldc, index_t stride_c,
                            index_t batch);
  template <class T>
  void gemv(const Device& dev, blas::Op op_a, index_t m, index_t n, T alpha, const T* A, index_t lda,
            const T* x, T beta, T* y);
  // C = alpha·A + beta·B (no transposes); C may be A, or B, with the same leading dimension.
  template <class T>
  void geam(const Device& dev, index_t m, index_t n, T alpha, const T* A, index_t lda, T beta, const T* B,
            index_t ldb, T* C, index_t ldc);
  template <class T> void axpy(const Device& dev, index_t n, T alpha, const T* x, T* y);
  template <class T> void scal(const Device& dev, index_t n, T alpha, T* x);
  template <class T> void copy(const Device& dev, index_t n, const T* x, T* y);
  // Into a device scalar, queued without waiting; the host reads it back through the staging area.
  template <class T> void dot_to_device(const Device& dev, index_t n, const T* x, const T* y, T* result);
  template <class T> void nrm2_to_device(const Device& dev, index_t n, const T* x, T* result);
  template <class T>
  void trsm_right_lower_transposed(const Device& dev, index_t m, index_t n, T alpha, const T* L,
                                   index_t ldl, T* B, index_t ldb);
  // The LAPACK info lands in *info, a device int; the caller reads it back.
  template <class T>
  void symmetric_eigen(const Device& dev, index_t n, T* A, index_t lda, T* eigenvalues, int* info);
  template <class T> void cholesky(const Device& dev, index_t n, T* A, index_t lda, int* info);
)

// Explicit instantiations of a backend's templates, for the end of each backend file.
#define CFLOW_INSTANTIATE_BACKEND(T)                                                                     \
  template void gemm_strided_batched<T>(const Device&, blas::Op, blas::Op, index_t, index_t, index_t, T, \
                                        const T*, index_t, index_t, const T*, index_t, index_t, T, T*,   \
                                        index_t, index_t, index_t);                                      \
  template void gemv<T>(const Device&, blas::Op, index_t, index_t, T, const T*, index_t, const T*, T, T*); \
  template void geam<T>(const Device&, index_t, index_t, T, const T*, index_t, T, const T*, index_t, T*,    \
                        index_t);                                                                         \
  template void axpy<T>(const Device&, index_t, T, const T*, T*);                                        \
  template void scal<T>(const Device&, index_t, T, T*);                                                  \
  template void copy<T>(const Device&, index_t, const T*, T*);                                           \
  template void dot_to_device<T>(const Device&, index_t, const T*, const T*, T*);                        \
  template void nrm2_to_device<T>(const Device&, index_t, const T*, T*);                                 \
  template void trsm_right_lower_transposed<T>(const Device&, index_t, index_t, T, const T*, index_t, T*, \
                                               index_t);                                                 \
  template void symmetric_eigen<T>(const Device&, index_t, T*, index_t, T*, int*);                       \
  template void cholesky<T>(const Device&, index_t, T*, index_t, int*);

namespace cpu {
std::shared_ptr<Device::Impl> open_device(int threads);
std::shared_ptr<Device::Impl> open_lane(const Device::Impl& parent);
void bind_thread(const Device::Impl& impl);
}
#if defined(CFLOW_WITH_CUDA)
namespace cuda {
// Number of usable devices; 0 with the reason in `why` when there are none.
int device_count(std::string* why);
std::shared_ptr<Device::Impl> open_device(int index);
std::shared_ptr<Device::Impl> open_lane(const Device::Impl& parent);
void bind_thread(const Device::Impl& impl);
void set_tf32(const Device& dev, bool on);
// Page-locked host memory (cudaMallocHost / cudaFreeHost) for Device::read_back's staging area.
void* allocate_pinned(std::size_t bytes);
void release_pinned(void* ptr) noexcept;
// Timing events on the device's stream (PhaseClock): created once, recorded, read after a wait.
void* create_event();
void destroy_event(void* event) noexcept;
void record_event(const Device& dev, void* event);
double elapsed_seconds(void* start, void* stop);
}  // namespace cuda
#endif

}  // namespace cflow
