#pragma once
// Wall time of a phase, with the device synchronized at the end so asynchronous GPU work is counted
// in the phase that issued it (as the reference's times/* logs do).
#include <chrono>

#include "cflow/runtime/device.h"

namespace cflow {

class Stopwatch {
 public:
  explicit Stopwatch(const Device& dev) : dev_(dev), start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    dev_.synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  const Device& dev_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cflow
