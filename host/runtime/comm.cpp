// The Communicator (include/cflow/runtime/comm.h): MPI, NCCL over MPI, or a single process.
#include "cflow/runtime/comm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "cflow/runtime/blas.h"

#if CFLOW_WITH_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: no link to the deprecated C++ bindings
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif
#if CFLOW_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace cflow {

namespace {

using Clock = std::chrono::steady_clock;

// The world size an MPI launcher announced in the environment (Open MPI's mpirun, PMI under srun or
// MPICH), 1 under PMIx (which announces no size), or 0 when no launcher started this process.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

double timeout_from_environment() {
  const char* text = std::getenv("CFLOW_COMM_TIMEOUT");
  if (!text || !*text) return 300;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (*end != '\0' || !(seconds > 0))
    throw Error(std::string("CFLOW_COMM_TIMEOUT=") + text + ": expected a positive number of seconds");
  return seconds;
}

}  // namespace

struct Communicator::Impl {
  int rank = 0, size = 1;
  double timeout = 300;
  bool mpi = false;
  bool broken = false;  // a collective timed out: the world cannot be finalized cleanly
  std::vector<std::byte> host_send, host_received;
  Device workspace_device{nullptr};
  void* workspace = nullptr;  // R × count elements gathered on the device
  std::size_t workspace_bytes = 0;
#if CFLOW_WITH_NCCL
  ncclComm_t nccl = nullptr;
#endif

  ~Impl() {
    if (workspace) workspace_device.release(workspace);
#if CFLOW_WITH_NCCL
    if (nccl) broken ? ncclCommAbort(nccl) : ncclCommDestroy(nccl);
#endif
#if CFLOW_WITH_MPI
    // After a timeout the others may be gone: exit without MPI_Finalize, and the launcher ends the job.
    if (mpi && !broken) MPI_Finalize();
#endif
  }

  [[noreturn]] void fail_timeout(const char* what) {
    broken = true;
    throw CommError("rank " + std::to_string(rank) + " of " + std::to_string(size) + ": no answer from the other ranks in " +
                std::to_string(int(timeout)) + " s during " + what +
                " (a rank has died or hangs; CFLOW_COMM_TIMEOUT sets the wait); stopping");
  }

#if CFLOW_WITH_MPI
  // MPI_Wait with a deadline. Polls by yielding, then (a rank still computing: a long wait) by
  // sleeping, so that a waiting rank does not take the cores that ranks sharing them need.
  void wait(MPI_Request& request, const char* what) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
    for (unsigned poll = 0;; ++poll) {
      int done = 0;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      if (done) return;
      if (poll % 64 == 0 && Clock::now() > deadline) fail_timeout(what);
      if (poll < 1000) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
#endif

  // Every rank's `bytes` bytes at `send`, concatenated in rank order into host_received.
  void gather_on_host(const void* send, std::size_t bytes, [[maybe_unused]] const char* what) {
    host_received.resize(bytes * std::size_t(size));
#if CFLOW_WITH_MPI
    CFLOW_REQUIRE(bytes <= std::size_t(std::numeric_limits<int>::max()), "a collective of more than 2 GiB per rank");
    MPI_Request request;
    MPI_Iallgather(send, int(bytes), MPI_BYTE, host_received.data(), int(bytes), MPI_BYTE, MPI_COMM_WORLD, &request);
    wait(request, what);
#else
    std::memcpy(host_received.data(), send, bytes);
#endif
  }

  void* device_workspace(const Device& dev, std::size_t bytes) {
    if (bytes > workspace_bytes || workspace_device.backend() != dev.backend()) {
      if (workspace) workspace_device.release(workspace);
      workspace_device = dev;
      workspace = dev.allocate(bytes);
      workspace_bytes = bytes;
    }
    return workspace;
  }

  // Every rank's `bytes` device bytes at `send`, in rank order into the device memory `received`.
  void gather_on_device(const Device& dev, const void* send, void* received, std::size_t bytes) {
#if CFLOW_WITH_NCCL
    if (dev.is_cuda()) return nccl_gather(dev, send, received, bytes);
#endif
    host_send.resize(bytes);
    dev.copy_to_host(host_send.data(), send, bytes);
    gather_on_host(host_send.data(), bytes, "a sum of device arrays");
    dev.copy_from_host(received, host_received.data(), host_received.size());
  }

#if CFLOW_WITH_NCCL
  static void check(ncclResult_t result, const char* call) {
    if (result != ncclSuccess && result != ncclInProgress) throw CommError(std::string(call) + ": " + ncclGetErrorString(result));
  }

  // The NCCL communicator, created on first use from a unique id that rank 0 broadcasts over MPI.
  void ensure_nccl() {
    if (nccl) return;
    ncclUniqueId id{};
    if (rank == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Request request;
    MPI_Ibcast(&id, int(sizeof id), MPI_BYTE, 0, MPI_COMM_WORLD, &request);
    wait(request, "the NCCL set-up");
    check(ncclCommInitRank(&nccl, size, id, rank), "ncclCommInitRank");
  }

  void nccl_gather(const Device& dev, const void* send, void* received, std::size_t bytes) {
    ensure_nccl();
    auto stream = static_cast<cudaStream_t>(dev.native_stream());
    check(ncclAllGather(send, received, bytes, ncclChar, nccl, stream), "ncclAllGather");
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      const cudaError_t state = cudaStreamQuery(stream);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) throw CommError(std::string("ncclAllGather: ") + cudaGetErrorString(state));
      ncclResult_t async = ncclSuccess;
      check(ncclCommGetAsyncError(nccl, &async), "ncclCommGetAsyncError");
      check(async, "ncclAllGather");
      if (Clock::now() > deadline) fail_timeout("an NCCL sum of device arrays");
      std::this_thread::yield();
    }
  }
#endif
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;

Communicator& Communicator::world() {
  static Communicator world([] {
    auto impl = std::make_unique<Impl>();
    impl->timeout = timeout_from_environment();
    const int announced = launcher_world_size();
#if CFLOW_WITH_MPI
    if (announced > 0) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      impl->mpi = true;
      MPI_Comm_rank(MPI_COMM_WORLD, &impl->rank);
      MPI_Comm_size(MPI_COMM_WORLD, &impl->size);
    }
#else
    if (announced > 1) {
      throw Error("started by an MPI launcher as one of " + std::to_string(announced) +
                  " processes, but this cflow was built without MPI (configure with -DCFLOW_MPI=ON and "
                  "libopenmpi-dev installed), so each would run alone; start it without mpirun/srun");
    }
#endif
    return impl;
  }());
  return world;
}

int Communicator::rank() const { return impl_->rank; }
int Communicator::size() const { return impl_->size; }

template <class T>
void Communicator::all_reduce_sum(const Device& dev, T* data, index_t count) {
  if (impl_->size == 1 || count == 0) return;
  const std::size_t bytes = std::size_t(count) * sizeof(T);
  T* gathered = static_cast<T*>(impl_->device_workspace(dev, bytes * std::size_t(impl_->size)));
  impl_->gather_on_device(dev, data, gathered, bytes);
  // Rank order, the same kernels on every rank: the same bits everywhere (adding 1·x is exact).
  blas::copy<T>(dev, count, gathered, data);
  for (int r = 1; r < impl_->size; ++r) blas::axpy<T>(dev, count, T(1), gathered + r * count, data);
}

void Communicator::all_reduce_sum(std::span<double> values) {
  if (impl_->size == 1 || values.empty()) return;
  impl_->gather_on_host(values.data(), values.size_bytes(), "a sum of values");
  const auto* gathered = reinterpret_cast<const double*>(impl_->host_received.data());
  for (std::size_t i = 0; i < values.size(); ++i) {
    double sum = 0;
    for (int r = 0; r < impl_->size; ++r) sum += gathered[std::size_t(r) * values.size() + i];
    values[i] = sum;
  }
}

int Communicator::all_reduce_max(int value) {
  int largest = value;
  if (impl_->size == 1) return largest;
  impl_->gather_on_host(&value, sizeof value, "an agreement between ranks");
  for (int r = 0; r < impl_->size; ++r) {
    int other = 0;
    std::memcpy(&other, impl_->host_received.data() + std::size_t(r) * sizeof other, sizeof other);
    largest = std::max(largest, other);
  }
  return largest;
}

std::vector<std::uint64_t> Communicator::all_gather(std::uint64_t value) {
  if (impl_->size == 1) return {value};
  impl_->gather_on_host(&value, sizeof value, "a comparison between ranks");
  std::vector<std::uint64_t> values(std::size_t(impl_->size));
  std::memcpy(values.data(), impl_->host_received.data(), values.size() * sizeof value);
  return values;
}

template void Communicator::all_reduce_sum<float>(const Device&, float*, index_t);
template void Communicator::all_reduce_sum<double>(const Device&, double*, index_t);

}  // namespace cflow
