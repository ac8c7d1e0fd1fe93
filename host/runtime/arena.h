#pragma once
// A caching allocator behind Device::allocate/release: freed blocks are kept, by size class, and
// handed back out to the next request of the same class, so a step that creates and drops the same
// temporaries every time allocates from the backend only in its first steps. On CUDA this removes
// cudaMalloc/cudaFree (each cudaFree synchronizes the device) from the steady state; reuse is safe
// because all work runs in order on the device's one stream.
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace cflow {

class CachingArena {
 public:
  using Allocate = std::function<void*(std::size_t)>;
  using Release = std::function<void(void*)>;

  // The bytes a request of `bytes` occupies: a multiple of 256 up to 4 KiB, above that rounded up
  // to an eighth of its power of two (at most 12.5% unused), so near-equal sizes share blocks.
  static std::size_t size_class(std::size_t bytes);

  // A block of at least `bytes`: a cached one of the same class, else allocate(size_class(bytes)).
  // `fresh_bytes` is set to the bytes newly allocated (0 on a cache hit).
  void* take(std::size_t bytes, const Allocate& allocate, std::size_t* fresh_bytes);
  // Returns a block from take() to the cache; its class bytes (0 for a pointer take() did not return).
  std::size_t give_back(void* ptr) noexcept;
  // Releases every cached block; returns how many and their bytes.
  std::pair<std::size_t, std::size_t> trim(const Release& release) noexcept;
  std::size_t cached_bytes() const;

 private:
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;         // class bytes -> cached block
  std::unordered_map<void*, std::size_t> in_use_;  // block -> class bytes
  std::size_t cached_bytes_ = 0;
};

}  // namespace cflow
