#pragma once
// One host thread per lane, kept across calls, so each lane's host code (kernel launches, its waits
// for k×k read-backs) runs beside the others' (docs/design.md §7.10). Kept rather than started per
// call: a thread's OpenMP team and CUDA binding are set up once.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "cflow/runtime/device.h"

namespace cflow {

class LaneThreads {
 public:
  explicit LaneThreads(std::vector<Device> lanes);
  ~LaneThreads();
  LaneThreads(const LaneThreads&) = delete;
  LaneThreads& operator=(const LaneThreads&) = delete;

  // Calls job(i) on thread i (bound to lanes[i], Device::bind_thread) for every lane and returns when
  // all have returned; then rethrows the exception of the lowest i whose job threw, if any.
  void run(const std::function<void(std::size_t)>& job);

 private:
  void serve(std::size_t i);

  std::vector<Device> lanes_;
  std::mutex mutex_;
  std::condition_variable started_, finished_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::uint64_t generation_ = 0;  // one per run()
  std::size_t running_ = 0;
  bool closing_ = false;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::thread> threads_;
};

}  // namespace cflow
