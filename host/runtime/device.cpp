#include <charconv>
#include <cstring>

#include "cflow/runtime/device.h"
#include "cflow/runtime/error.h"
#include "host/runtime/backend.h"

namespace cflow {

bool cuda_available(std::string* why) {
#if defined(CFLOW_WITH_CUDA)
  return cuda::device_count(why) > 0;
#else
  if (why) *why = "no CUDA device: cflow was built without the CUDA backend (CFLOW_CUDA=OFF)";
  return false;
#endif
}

Device Device::open(std::string_view spec, int cpu_threads) {
  if (spec == "cpu") return Device(cpu::open_device(cpu_threads));
  if (spec == "auto") {
    std::string why;
    if (cuda_available(&why)) return open("cuda:0", cpu_threads);
    auto impl = cpu::open_device(cpu_threads);
    impl->selection_note = "auto selected the CPU (" + why + ")";
    return Device(std::move(impl));
  }
  if (spec == "cuda" || spec.starts_with("cuda:")) {
    int index = 0;
    if (spec.size() > 5) {
      const auto digits = spec.substr(5);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
      if (ec != std::errc() || end != digits.data() + digits.size() || index < 0)
        throw Error("bad device '" + std::string(spec) + "': expected cuda:N with N a device index");
    }
    std::string why;
    if (!cuda_available(&why))
      throw Error("device '" + std::string(spec) + "' requested but " + why + "; use --device cpu or auto");
#if defined(CFLOW_WITH_CUDA)
    std::string count_note;
    const int count = cuda::device_count(&count_note);
    if (index >= count)
      throw Error("device '" + std::string(spec) + "' requested but only " + std::to_string(count) +
                  " CUDA device(s) exist");
    auto impl = cuda::open_device(index);
    if (spec == "cuda" || spec == "cuda:0") impl->selection_note = "selected " + impl->description;
    return Device(std::move(impl));
#endif
  }
  throw Error("bad device '" + std::string(spec) + "': expected auto, cpu, cuda or cuda:N");
}

Backend Device::backend() const { return impl_->backend; }
const std::string& Device::description() const { return impl_->description; }
const std::string& Device::selection_note() const { return impl_->selection_note; }
int Device::cpu_threads() const { return impl_->cpu_threads; }
void* Device::native_stream() const { return impl_->stream; }
void* Device::blas_handle() const { return impl_->blas; }
void* Device::solver_handle() const { return impl_->solver; }

Device Device::lane(int cpu_threads) const {
  Device lane(CFLOW_DISPATCH(*this, open_lane, *impl_));
  if (cpu_threads > 0) lane.impl_->cpu_threads = cpu_threads;
  return lane;
}
void Device::bind_thread() const { CFLOW_DISPATCH(*this, bind_thread, *impl_); }

// Memory goes through the caching arena; when the backend is out of memory, the cached blocks are
// returned to it and the allocation tried once more.
void* Device::allocate(std::size_t bytes) const {
  auto from_backend = [this](std::size_t size) -> void* {
    try {
      return CFLOW_DISPATCH(*this, allocate, size);
    } catch (const Error&) {
      if (impl_->arena.cached_bytes() == 0) throw;
      const auto [blocks, freed] = impl_->arena.trim([this](void* p) { CFLOW_DISPATCH(*this, release, p); });
      impl_->traffic.frees += std::int64_t(blocks);
      impl_->traffic.freed_bytes += std::int64_t(freed);
      return CFLOW_DISPATCH(*this, allocate, size);
    }
  };
  std::size_t fresh = 0;
  void* ptr = impl_->arena.take(bytes, from_backend, &fresh);
  if (fresh > 0) {
    impl_->traffic.allocations += 1;
    impl_->traffic.allocated_bytes += std::int64_t(fresh);
  }
  return ptr;
}
// A released block may come back as another buffer: what a cache read there is gone.
void Device::release(void* ptr) const noexcept { note_write(ptr, impl_->arena.give_back(ptr)); }
std::size_t Device::cached_bytes() const { return impl_->arena.cached_bytes(); }

// Host memory is pageable, so a transfer completes before the call returns: one synchronization.
void Device::copy_from_host(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
  note_write(dst, bytes);
  impl_->traffic.host_to_device += 1;
  impl_->traffic.host_to_device_bytes += std::int64_t(bytes);
  synchronize();
}

namespace {
constexpr std::size_t kMinStagingBytes = 4096;  // every scalar read-back of a step, with room
}  // namespace

// The staging area holds the largest read so far, rounded up to a power of two so that it grows a
// few times per run; a read-back has waited before it returns, so the old area is idle when replaced.
void* Device::Impl::staging_for(std::size_t bytes) {
  if (bytes <= staging_bytes) return staging;
  std::size_t size = kMinStagingBytes;
  while (size < bytes) size *= 2;
  if (staging) {
    release_pinned(staging);
    traffic.frees += 1;
    traffic.freed_bytes += std::int64_t(staging_bytes);
    staging = nullptr;
    staging_bytes = 0;
  }
#if defined(CFLOW_WITH_CUDA)
  if (backend == Backend::cuda) staging = cuda::allocate_pinned(size);
#endif
  if (backend == Backend::cpu) staging = cpu::allocate(size);
  staging_bytes = size;
  traffic.allocations += 1;
  traffic.allocated_bytes += std::int64_t(size);
  return staging;
}
void Device::Impl::release_pinned(void* ptr) noexcept {
#if defined(CFLOW_WITH_CUDA)
  if (backend == Backend::cuda) return cuda::release_pinned(ptr);
#endif
  cpu::release(ptr);
}

// From pinned memory the copy is a DMA on the lane's stream that returns at once; the wait is the one
// the host needs to read the value (docs/design.md §7.5).
void Device::read_back(void* dst, const void* src, std::size_t bytes) const {
  if (bytes == 0) return;
  void* staged = impl_->staging_for(bytes);
  CFLOW_DISPATCH(*this, copy, *this, staged, src, bytes);
  impl_->traffic.device_to_host += 1;
  impl_->traffic.device_to_host_bytes += std::int64_t(bytes);
  synchronize();
  std::memcpy(dst, staged, bytes);
}
// Into pageable memory the driver copies through its own bounce buffer and returns when done.
void Device::copy_to_host(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
  impl_->traffic.device_to_host += 1;
  impl_->traffic.device_to_host_bytes += std::int64_t(bytes);
  impl_->traffic.pageable_transfers += 1;
  impl_->traffic.pageable_bytes += std::int64_t(bytes);
  synchronize();
}
void Device::copy_on_device(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
  note_write(dst, bytes);
}
void Device::set_zero(void* dst, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, set_zero, *this, dst, bytes);
  note_write(dst, bytes);
}
void Device::synchronize() const {
  CFLOW_DISPATCH(*this, synchronize, *this);
  impl_->traffic.synchronizations += 1;
}
const DeviceTraffic& Device::traffic() const { return impl_->traffic; }

bool Device::use_tf32([[maybe_unused]] bool on) const {
#if defined(CFLOW_WITH_CUDA)
  if (is_cuda()) {
    cuda::set_tf32(*this, on);
    impl_->tf32 = on;
    return true;
  }
#endif
  return false;
}

std::uint64_t Device::watch(const void* ptr, std::size_t bytes) const {
  if (const std::uint64_t known = version(ptr, bytes)) return known;
  auto& watched = impl_->watched;
  if (watched.size() == Impl::kMaxWatched) watched.erase(watched.begin());
  const char* begin = static_cast<const char*>(ptr);
  watched.push_back({begin, begin + bytes, ++impl_->last_version});
  return watched.back().version;
}
std::uint64_t Device::version(const void* ptr, std::size_t bytes) const {
  const char* begin = static_cast<const char*>(ptr);
  for (const Impl::Watched& range : impl_->watched)
    if (range.begin == begin && range.end == begin + bytes) return range.version;
  return 0;
}
void Device::note_write(const void* ptr, std::size_t bytes) const {
  const char* begin = static_cast<const char*>(ptr);
  for (Impl::Watched& range : impl_->watched)
    if (begin < range.end && range.begin < begin + bytes) range.version = ++impl_->last_version;
}

Device::Impl::~Impl() {
  auto release = [this](void* p) {
#if defined(CFLOW_WITH_CUDA)
    if (backend == Backend::cuda) return cuda::release(p);
#endif
    cpu::release(p);
  };
  arena.trim(release);
  if (staging) release_pinned(staging);
}

DeviceTraffic& DeviceTraffic::operator+=(const DeviceTraffic& o) {
  allocations += o.allocations;
  allocated_bytes += o.allocated_bytes;
  frees += o.frees;
  freed_bytes += o.freed_bytes;
  host_to_device += o.host_to_device;
  host_to_device_bytes += o.host_to_device_bytes;
  device_to_host += o.device_to_host;
  device_to_host_bytes += o.device_to_host_bytes;
  pageable_transfers += o.pageable_transfers;
  pageable_bytes += o.pageable_bytes;
  synchronizations += o.synchronizations;
  return *this;
}
DeviceTraffic DeviceTraffic::operator-(const DeviceTraffic& earlier) const {
  DeviceTraffic d = earlier;
  for (std::int64_t* field : {&d.allocations, &d.allocated_bytes, &d.frees, &d.freed_bytes, &d.host_to_device,
                              &d.host_to_device_bytes, &d.device_to_host, &d.device_to_host_bytes, &d.pageable_transfers, &d.pageable_bytes,
                              &d.synchronizations})
    *field = -*field;
  d += *this;
  return d;
}

}  // namespace cflow
