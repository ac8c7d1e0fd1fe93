// CUDA backend: device memory on one stream, cuBLAS and cuSOLVER on that stream. Compiled only
// when the CUDA backend is built. The CUDA runtime is linked statically, so a binary runs (on its
// CPU backend) on machines without a driver.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "cflow/runtime/buffer.h"
#include "host/runtime/backend.h"
#include "kernels/cuda_check.h"

#define CFLOW_CHECK_CUBLAS(call)                                                                       \
  do {                                                                                                 \
    const cublasStatus_t cflow_status_ = (call);                                                       \
    if (cflow_status_ != CUBLAS_STATUS_SUCCESS)                                                        \
      ::cflow::throw_call_error(#call, __FILE__, __LINE__, cublasGetStatusString(cflow_status_));      \
  } while (0)
#define CFLOW_CHECK_CUSOLVER(call)                                                                     \
  do {                                                                                                 \
    const cusolverStatus_t cflow_status_ = (call);                                                     \
    if (cflow_status_ != CUSOLVER_STATUS_SUCCESS)                                                      \
      ::cflow::throw_call_error(#call, __FILE__, __LINE__,                                             \
                                "cusolver status " + std::to_string(int(cflow_status_)));              \
  } while (0)

namespace cflow::cuda {

namespace {
cudaStream_t stream_of(const Device& dev) { return static_cast<cudaStream_t>(dev.native_stream()); }
cublasHandle_t blas_of(const Device& dev) { return static_cast<cublasHandle_t>(dev.blas_handle()); }
cusolverDnHandle_t solver_of(const Device& dev) { return static_cast<cusolverDnHandle_t>(dev.solver_handle()); }
cublasOperation_t cublas_op(blas::Op op) { return op == blas::Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }

// Scratch memory for one cuSOLVER call, from the device's caching arena (kept between calls).
template <class T>
Buffer<T> scratch(const Device& dev, int count) {
  return Buffer<T>(dev, std::max(count, 1), Uninitialized{});
}
}  // namespace

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) *why = std::string("no CUDA device: ") + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later runtime calls are not poisoned
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device: the driver reports zero devices";
  return count;
}

namespace {
// A stream (non-blocking: it never waits for the legacy default stream) with its cuBLAS and cuSOLVER
// handles, owned by the returned Impl.
std::shared_ptr<Device::Impl> open_stream(int index) {
  CFLOW_CHECK_CUDA(cudaSetDevice(index));
  cudaStream_t stream = nullptr;
  CFLOW_CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t blas = nullptr;
  CFLOW_CHECK_CUBLAS(cublasCreate(&blas));
  CFLOW_CHECK_CUBLAS(cublasSetStream(blas, stream));
  // Reproducibility: no atomics inside cuBLAS reductions.
  CFLOW_CHECK_CUBLAS(cublasSetAtomicsMode(blas, CUBLAS_ATOMICS_NOT_ALLOWED));
  cusolverDnHandle_t solver = nullptr;
  CFLOW_CHECK_CUSOLVER(cusolverDnCreate(&solver));
  CFLOW_CHECK_CUSOLVER(cusolverDnSetStream(solver, stream));

  auto* impl = new Device::Impl;
  impl->backend = Backend::cuda;
  impl->cuda_index = index;
  impl->stream = stream;
  impl->blas = blas;
  impl->solver = solver;
  return std::shared_ptr<Device::Impl>(impl, [](Device::Impl* p) {
    cusolverDnDestroy(static_cast<cusolverDnHandle_t>(p->solver));
    cublasDestroy(static_cast<cublasHandle_t>(p->blas));
    cudaStreamDestroy(static_cast<cudaStream_t>(p->stream));
    delete p;
  });
}
}  // namespace

std::shared_ptr<Device::Impl> open_device(int index) {
  auto impl = open_stream(index);
  cudaDeviceProp prop{};
  CFLOW_CHECK_CUDA(cudaGetDeviceProperties(&prop, index));
  impl->description = "CUDA device " + std::to_string(index) + ": " + prop.name + " (sm_" +
                      std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                      std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
  return impl;
}

// A lane (docs/design.md §7.10): its own stream and handles on the parent's device, the parent's TF32 mode.
std::shared_ptr<Device::Impl> open_lane(const Device::Impl& parent) {
  auto impl = open_stream(parent.cuda_index);
  impl->description = parent.description;
  impl->selection_note = parent.selection_note;
  impl->cpu_threads = parent.cpu_threads;
  impl->tf32 = parent.tf32;
  CFLOW_CHECK_CUBLAS(cublasSetMathMode(static_cast<cublasHandle_t>(impl->blas),
                                       impl->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return impl;
}

// The current device is a per-thread setting of the CUDA runtime: a worker thread starts on device 0.
void bind_thread(const Device::Impl& impl) { CFLOW_CHECK_CUDA(cudaSetDevice(impl.cuda_index)); }

void* allocate(std::size_t bytes) {
  void* ptr = nullptr;
  CFLOW_CHECK_CUDA(cudaMalloc(&ptr, bytes));
  return ptr;
}
void release(void* ptr) noexcept { cudaFree(ptr); }
void copy(const Device& dev, void* dst, const void* src, std::size_t bytes) {
  CFLOW_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(dev)));
}
void set_zero(const Device& dev, void* dst, std::size_t bytes) {
  CFLOW_CHECK_CUDA(cudaMemsetAsync(dst, 0, bytes, stream_of(dev)));
}
void synchronize(const Device& dev) { CFLOW_CHECK_CUDA(cudaStreamSynchronize(stream_of(dev))); }

template <class T>
void gemm_strided_batched(const Device& dev, blas::Op op_a, blas::Op op_b, index_t m, index_t n, index_t k,
                          T alpha, const T* A, index_t lda, index_t stride_a, const T* B, index_t ldb,
                          index_t stride_b, T beta, T* C, index_t ldc, index_t stride_c, index_t batch) {
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUBLAS(cublasSgemmStridedBatched_64(blas_of(dev), cublas_op(op_a), cublas_op(op_b), m, n, k,
                                                    &alpha, A, lda, stride_a, B, ldb, stride_b, &beta, C, ldc,
                                                    stride_c, batch));
  else
    CFLOW_CHECK_CUBLAS(cublasDgemmStridedBatched_64(blas_of(dev), cublas_op(op_a), cublas_op(op_b), m, n, k,
                                                    &alpha, A, lda, stride_a, B, ldb, stride_b, &beta, C, ldc,
                                                    stride_c, batch));
}

template <class T>
void geam(const Device& dev, index_t m, index_t n, T alpha, const T* A, index_t lda, T beta, const T* B,
          index_t ldb, T* C, index_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUBLAS(cublasSgeam_64(blas_of(dev), CUBLAS_OP_N, CUBLAS_OP_N, m, n, &alpha, A, lda, &beta, B, ldb, C, ldc));
  else
    CFLOW_CHECK_CUBLAS(cublasDgeam_64(blas_of(dev), CUBLAS_OP_N, CUBLAS_OP_N, m, n, &alpha, A, lda, &beta, B, ldb, C, ldc));
}

template <class T>
void gemv(const Device& dev, blas::Op op_a, index_t m, index_t n, T alpha, const T* A, index_t lda, const T* x,
          T beta, T* y) {
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUBLAS(cublasSgemv_64(blas_of(dev), cublas_op(op_a), m, n, &alpha, A, lda, x, 1, &beta, y, 1));
  else
    CFLOW_CHECK_CUBLAS(cublasDgemv_64(blas_of(dev), cublas_op(op_a), m, n, &alpha, A, lda, x, 1, &beta, y, 1));
}

template <class T>
void axpy(const Device& dev, index_t n, T alpha, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) CFLOW_CHECK_CUBLAS(cublasSaxpy_64(blas_of(dev), n, &alpha, x, 1, y, 1));
  else CFLOW_CHECK_CUBLAS(cublasDaxpy_64(blas_of(dev), n, &alpha, x, 1, y, 1));
}
template <class T>
void scal(const Device& dev, index_t n, T alpha, T* x) {
  if constexpr (std::is_same_v<T, float>) CFLOW_CHECK_CUBLAS(cublasSscal_64(blas_of(dev), n, &alpha, x, 1));
  else CFLOW_CHECK_CUBLAS(cublasDscal_64(blas_of(dev), n, &alpha, x, 1));
}
template <class T>
void copy(const Device& dev, index_t n, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) CFLOW_CHECK_CUBLAS(cublasScopy_64(blas_of(dev), n, x, 1, y, 1));
  else CFLOW_CHECK_CUBLAS(cublasDcopy_64(blas_of(dev), n, x, 1, y, 1));
}
// The result pointer is on the device (cuBLAS device pointer mode): the call is queued on the stream
// and returns at once; every other call expects host pointer mode, restored before the status is checked.
template <class Call>
void with_device_pointer(const Device& dev, Call call) {
  cublasHandle_t handle = blas_of(dev);
  CFLOW_CHECK_CUBLAS(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_DEVICE));
  const cublasStatus_t status = call(handle);
  CFLOW_CHECK_CUBLAS(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  CFLOW_CHECK_CUBLAS(status);
}
template <class T>
void dot_to_device(const Device& dev, index_t n, const T* x, const T* y, T* result) {
  with_device_pointer(dev, [&](cublasHandle_t handle) {
    if constexpr (std::is_same_v<T, float>) return cublasSdot_64(handle, n, x, 1, y, 1, result);
    else return cublasDdot_64(handle, n, x, 1, y, 1, result);
  });
}
template <class T>
void nrm2_to_device(const Device& dev, index_t n, const T* x, T* result) {
  with_device_pointer(dev, [&](cublasHandle_t handle) {
    if constexpr (std::is_same_v<T, float>) return cublasSnrm2_64(handle, n, x, 1, result);
    else return cublasDnrm2_64(handle, n, x, 1, result);
  });
}

template <class T>
void trsm_right_lower_transposed(const Device& dev, index_t m, index_t n, T alpha, const T* L, index_t ldl, T* B,
                                 index_t ldb) {
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUBLAS(cublasStrsm_64(blas_of(dev), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
                                      CUBLAS_DIAG_NON_UNIT, m, n, &alpha, L, ldl, B, ldb));
  else
    CFLOW_CHECK_CUBLAS(cublasDtrsm_64(blas_of(dev), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
                                      CUBLAS_DIAG_NON_UNIT, m, n, &alpha, L, ldl, B, ldb));
}

template <class T>
void symmetric_eigen(const Device& dev, index_t n, T* A, index_t lda, T* eigenvalues, int* info) {
  const auto jobz = CUSOLVER_EIG_MODE_VECTOR;
  const auto uplo = CUBLAS_FILL_MODE_LOWER;
  int work_size = 0;
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUSOLVER(cusolverDnSsyevd_bufferSize(solver_of(dev), jobz, uplo, n, A, lda, eigenvalues, &work_size));
  else
    CFLOW_CHECK_CUSOLVER(cusolverDnDsyevd_bufferSize(solver_of(dev), jobz, uplo, n, A, lda, eigenvalues, &work_size));
  Buffer<T> work = scratch<T>(dev, work_size);
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUSOLVER(cusolverDnSsyevd(solver_of(dev), jobz, uplo, n, A, lda, eigenvalues, work.data(), work_size, info));
  else
    CFLOW_CHECK_CUSOLVER(cusolverDnDsyevd(solver_of(dev), jobz, uplo, n, A, lda, eigenvalues, work.data(), work_size, info));
}

template <class T>
void cholesky(const Device& dev, index_t n, T* A, index_t lda, int* info) {
  const auto uplo = CUBLAS_FILL_MODE_LOWER;
  int work_size = 0;
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUSOLVER(cusolverDnSpotrf_bufferSize(solver_of(dev), uplo, n, A, lda, &work_size));
  else
    CFLOW_CHECK_CUSOLVER(cusolverDnDpotrf_bufferSize(solver_of(dev), uplo, n, A, lda, &work_size));
  Buffer<T> work = scratch<T>(dev, work_size);
  if constexpr (std::is_same_v<T, float>)
    CFLOW_CHECK_CUSOLVER(cusolverDnSpotrf(solver_of(dev), uplo, n, A, lda, work.data(), work_size, info));
  else
    CFLOW_CHECK_CUSOLVER(cusolverDnDpotrf(solver_of(dev), uplo, n, A, lda, work.data(), work_size, info));
}

CFLOW_INSTANTIATE_BACKEND(float)
CFLOW_INSTANTIATE_BACKEND(double)

void set_tf32(const Device& dev, bool on) {
  CFLOW_CHECK_CUBLAS(cublasSetMathMode(blas_of(dev), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

void* allocate_pinned(std::size_t bytes) {
  void* ptr = nullptr;
  CFLOW_CHECK_CUDA(cudaMallocHost(&ptr, bytes));
  return ptr;
}
void release_pinned(void* ptr) noexcept { cudaFreeHost(ptr); }

void* create_event() {
  cudaEvent_t event = nullptr;
  CFLOW_CHECK_CUDA(cudaEventCreate(&event));
  return event;
}
void destroy_event(void* event) noexcept { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }
void record_event(const Device& dev, void* event) {
  CFLOW_CHECK_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(event), stream_of(dev)));
}
double elapsed_seconds(void* start, void* stop) {
  float milliseconds = 0;
  CFLOW_CHECK_CUDA(cudaEventElapsedTime(&milliseconds, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(stop)));
  return 1e-3 * double(milliseconds);
}

}  // namespace cflow::cuda
