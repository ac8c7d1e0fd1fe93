#pragma once
// Typed RAII memory on a Device, with host<->device copies.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "cflow/runtime/device.h"
#include "cflow/runtime/error.h"

namespace cflow {

using index_t = std::int64_t;

// Tag for a Buffer whose contents the next kernel overwrites: no zero-fill (a memset per allocation).
struct Uninitialized {};

template <class T>
class Buffer {
 public:
  Buffer() = default;
  // Zero-filled, so a buffer never exposes garbage.
  Buffer(const Device& device, index_t size) : Buffer(device, size, Uninitialized{}) { set_zero(); }
  Buffer(const Device& device, index_t size, Uninitialized) : device_(device), size_(size) {
    CFLOW_REQUIRE(size >= 0, "buffer size must be non-negative");
    if (size_ > 0) data_ = static_cast<T*>(device_.allocate(bytes()));
  }
  Buffer(const Device& device, std::span<const T> host) : Buffer(device, index_t(host.size()), Uninitialized{}) {
    upload(host);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer(std::move(other)).swap(*this);
    return *this;
  }
  ~Buffer() {
    if (data_) device_.release(data_);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  index_t size() const { return size_; }
  std::size_t bytes() const { return std::size_t(size_) * sizeof(T); }
  const Device& device() const { return device_; }

  void upload(std::span<const T> host, index_t offset = 0) {
    CFLOW_REQUIRE(offset >= 0 && offset + index_t(host.size()) <= size_, "upload out of range");
    if (!host.empty()) device_.copy_from_host(data_ + offset, host.data(), host.size_bytes());
  }
  // What the host reads (scalars, small matrices): through the device's pinned staging area
  // (Device::read_back).
  void download(std::span<T> host, index_t offset = 0) const {
    CFLOW_REQUIRE(offset >= 0 && offset + index_t(host.size()) <= size_, "download out of range");
    if (!host.empty()) device_.read_back(host.data(), data_ + offset, host.size_bytes());
  }
  std::vector<T> to_host() const {
    std::vector<T> host(static_cast<std::size_t>(size_));
    download(host);
    return host;
  }
  // A whole vector (a checkpoint's w, the start point) straight into pageable memory, so the staging
  // area stays small (Device::copy_to_host; counted as a pageable transfer).
  std::vector<T> to_host_pageable() const {
    std::vector<T> host(static_cast<std::size_t>(size_));
    if (size_ > 0) device_.copy_to_host(host.data(), data_, bytes());
    return host;
  }
  void copy_from(const Buffer& other) {
    CFLOW_REQUIRE(other.size_ == size_, "copy between buffers of different sizes");
    if (size_ > 0) device_.copy_on_device(data_, other.data_, bytes());
  }
  void set_zero() {
    if (size_ > 0) device_.set_zero(data_, bytes());
  }

 private:
  void swap(Buffer& other) noexcept {
    std::swap(device_, other.device_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }
  Device device_{nullptr};
  T* data_ = nullptr;
  index_t size_ = 0;
};

}  // namespace cflow
