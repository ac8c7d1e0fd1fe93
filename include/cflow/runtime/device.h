#pragma once
// The compute device, chosen at run time: the CPU backend (OpenMP + OpenBLAS/LAPACKE) or a CUDA GPU
// (cuBLAS/cuSOLVER). A Device is a cheap shared handle; copies refer to the same stream and handles.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cflow {

enum class Backend { cpu, cuda };

// What the runtime did for its callers since the device was opened: calls into the backend's
// allocator (the caching arena hands freed blocks back out without one, the pinned staging area grows
// rarely), host<->device transfers and waits for the device. Counted in the functions both backends
// share (Device, blas::, dense::), so the CPU backend counts what the CUDA backend does at the same
// call sites (docs/design.md §7).
struct DeviceTraffic {
  std::int64_t allocations = 0, allocated_bytes = 0;  // cudaMalloc / aligned_alloc calls, staging growths
  std::int64_t frees = 0, freed_bytes = 0;            // blocks the arena returned, outgrown staging areas
  std::int64_t host_to_device = 0, host_to_device_bytes = 0;
  std::int64_t device_to_host = 0, device_to_host_bytes = 0;  // all of them, staged or not
  // Of those, the ones that bypassed the pinned staging area into pageable memory (Device::copy_to_host:
  // whole vectors for checkpoints and the start point, none in a steady step; and the host
  // collectives of a multi-rank run without NCCL, every step).
  std::int64_t pageable_transfers = 0, pageable_bytes = 0;
  std::int64_t synchronizations = 0;  // the host waits for the device (explicitly or inside a call)

  DeviceTraffic& operator+=(const DeviceTraffic& other);
  DeviceTraffic operator-(const DeviceTraffic& earlier) const;
};

class Device {
 public:
  // spec: "auto" (CUDA when a usable GPU exists, else CPU), "cpu", "cuda" or "cuda:N".
  // cpu_threads > 0 sets the OpenMP thread count shared by kernels and OpenBLAS.
  // Throws cflow::Error saying why when the requested device cannot be used.
  static Device open(std::string_view spec = "auto", int cpu_threads = 0);

  Backend backend() const;
  bool is_cuda() const { return backend() == Backend::cuda; }
  // e.g. "CPU: 2 OpenMP threads, OpenBLAS" or "CUDA device 0: NVIDIA H100 (sm_90, 80 GiB)".
  const std::string& description() const;
  // Why `auto` chose this device, e.g. "no CUDA device: CUDA driver version is insufficient".
  const std::string& selection_note() const;
  int cpu_threads() const;

  void* allocate(std::size_t bytes) const;
  void release(void* ptr) const noexcept;
  void copy_from_host(void* dst, const void* src, std::size_t bytes) const;
  // Device→host for what the host reads (scalars, k×k matrices, solver infos): an asynchronous copy on
  // this lane's stream into its pinned staging area (cudaMallocHost; aligned host memory on the CPU),
  // the one wait the host needs, then a host copy to dst (docs/design.md §7.5). The area grows to the
  // largest read seen (each growth counted as an allocation) and is kept.
  void read_back(void* dst, const void* src, std::size_t bytes) const;
  // Device→host straight into pageable memory, for whole vectors (checkpoints, the start point, host
  // collectives) that the staging area should not grow to: also counted in pageable_transfers.
  void copy_to_host(void* dst, const void* src, std::size_t bytes) const;
  void copy_on_device(void* dst, const void* src, std::size_t bytes) const;
  void set_zero(void* dst, std::size_t bytes) const;
  void synchronize() const;
  const DeviceTraffic& traffic() const;

  // Write versions of watched device ranges (docs/design.md §7). A cache keyed on device data (the
  // network's primal pass at w) watches the range it read; every runtime call that writes device
  // memory (the copies, set_zero, the blas:: outputs, a released block) and every kernel that writes
  // a process's point (OptimizerState::step) reports the range it wrote, which bumps the version of
  // each watched range it overlaps. Checking a cache is then a host comparison: no device work, no wait.
  // watch: starts (or keeps) watching [ptr, ptr + bytes) and returns its version (never 0).
  std::uint64_t watch(const void* ptr, std::size_t bytes) const;
  // The version of a watched range; 0 when [ptr, ptr + bytes) is not watched.
  std::uint64_t version(const void* ptr, std::size_t bytes) const;
  void note_write(const void* ptr, std::size_t bytes) const;
  // Bytes the caching arena holds for reuse (allocated from the backend, not in use).
  std::size_t cached_bytes() const;

  // float32 GEMMs on TF32 tensor cores (cuBLAS CUBLAS_TF32_TENSOR_OP_MATH: 10-bit mantissa inputs,
  // float32 accumulation) or not (the default). Returns false and changes nothing on the CPU backend,
  // which has no TF32. float64 GEMMs are unaffected.
  bool use_tf32(bool on) const;

  // A lane: another handle on the same physical device with its own stream (CUDA: non-blocking),
  // cuBLAS/cuSOLVER handles on it (this device's TF32 mode), caching arena (a block never moves
  // between streams), traffic counters and watch table; on the CPU the same structure over the same
  // memory. Work on different lanes is unordered: before a lane (or the parent) reads memory another
  // lane writes, the host synchronizes that lane (docs/design.md §7.10). cpu_threads: the OpenMP
  // threads a host thread bound to the lane (bind_thread) runs the CPU kernels and BLAS with (0: this
  // device's count).
  Device lane(int cpu_threads = 0) const;
  // Makes the calling host thread drive this device as the thread that opened it does (the CUDA
  // device index and the OpenMP thread count are per-thread settings): a worker thread calls it first.
  void bind_thread() const;

  // Backend handles (cudaStream_t, cublasHandle_t, cusolverDnHandle_t); null on the CPU.
  void* native_stream() const;
  void* blas_handle() const;
  void* solver_handle() const;

  struct Impl;
  explicit Device(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

// Is a CUDA device usable here? If not, `why` says why (no driver, no device, built without CUDA).
bool cuda_available(std::string* why = nullptr);

}  // namespace cflow
