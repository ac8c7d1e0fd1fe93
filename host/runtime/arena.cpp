#include "host/runtime/arena.h"

#include <bit>

namespace cflow {

std::size_t CachingArena::size_class(std::size_t bytes) {
  constexpr std::size_t kSmall = 4096, kGranule = 256;
  if (bytes <= kSmall) return std::max<std::size_t>(kGranule, (bytes + kGranule - 1) / kGranule * kGranule);
  const std::size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingArena::take(std::size_t bytes, const Allocate& allocate, std::size_t* fresh_bytes) {
  const std::size_t size = size_class(bytes);
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = free_.find(size); it != free_.end()) {
      void* ptr = it->second;
      free_.erase(it);
      cached_bytes_ -= size;
      in_use_.emplace(ptr, size);
      *fresh_bytes = 0;
      return ptr;
    }
  }
  void* ptr = allocate(size);  // outside the lock: it may throw, or trim() and retry
  const std::lock_guard lock(mutex_);
  in_use_.emplace(ptr, size);
  *fresh_bytes = size;
  return ptr;
}

std::size_t CachingArena::give_back(void* ptr) noexcept {
  const std::lock_guard lock(mutex_);
  const auto it = in_use_.find(ptr);
  if (it == in_use_.end()) return 0;
  const std::size_t bytes = it->second;
  free_.emplace(bytes, ptr);
  cached_bytes_ += bytes;
  in_use_.erase(it);
  return bytes;
}

std::pair<std::size_t, std::size_t> CachingArena::trim(const Release& release) noexcept {
  const std::lock_guard lock(mutex_);
  const std::pair<std::size_t, std::size_t> released{free_.size(), cached_bytes_};
  for (const auto& [size, ptr] : free_) release(ptr);
  free_.clear();
  cached_bytes_ = 0;
  return released;
}

std::size_t CachingArena::cached_bytes() const {
  const std::lock_guard lock(mutex_);
  return cached_bytes_;
}

}  // namespace cflow
