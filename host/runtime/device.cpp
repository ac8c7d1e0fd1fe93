#include <charconv>

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

void* Device::allocate(std::size_t bytes) const { return CFLOW_DISPATCH(*this, allocate, bytes); }
void Device::release(void* ptr) const noexcept { CFLOW_DISPATCH(*this, release, ptr); }
void Device::copy_from_host(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
}
void Device::copy_to_host(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
}
void Device::copy_on_device(void* dst, const void* src, std::size_t bytes) const {
  CFLOW_DISPATCH(*this, copy, *this, dst, src, bytes);
}
void Device::set_zero(void* dst, std::size_t bytes) const { CFLOW_DISPATCH(*this, set_zero, *this, dst, bytes); }
void Device::synchronize() const { CFLOW_DISPATCH(*this, synchronize, *this); }

}  // namespace cflow
