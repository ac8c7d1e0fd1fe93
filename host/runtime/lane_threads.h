#pragma once
// Host threads that run the lanes' jobs (docs/design.md §7.10), kept across calls, so each lane's host
// code (kernel launches, its waits for k×k read-backs) runs beside the others'. Kept rather than started
// per call: a thread's OpenMP team and CUDA binding are set up once.
//
// With as many workers as lanes each lane has its own thread. With fewer (a CPU with fewer threads than
// processes) the workers take the lanes from one queue, longest expected job first (list scheduling): on 2
// cores the default run's central flow then keeps a core while discrete and stable share the other,
// instead of three threads time-sharing two cores. A lane's expected time averages its jobs, each older
// one weighing half as much, so steps that alternate a full eigen-solve and a refresh
// (--eig-frequency 2) do not reorder the queue at every step.
// Which thread runs a lane does not change its bits: bind_thread gives the worker the lane's settings
// before every job.
#include <chrono>
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
  // workers: host threads, 1 … lanes.size().
  LaneThreads(std::vector<Device> lanes, std::size_t workers);
  ~LaneThreads();
  LaneThreads(const LaneThreads&) = delete;
  LaneThreads& operator=(const LaneThreads&) = delete;

  // Calls job(i) for every lane i, on a worker bound to lanes[i] (Device::bind_thread), and returns when
  // all have returned; then rethrows the exception of the lowest i whose job threw, if any.
  void run(const std::function<void(std::size_t)>& job);

 private:
  void serve();
  bool take(std::size_t& lane);  // the next lane of this run's queue, under mutex_
  void stop_workers() noexcept;

  std::vector<Device> lanes_;
  std::mutex mutex_;
  std::condition_variable started_, finished_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::uint64_t generation_ = 0;  // one per run()
  std::vector<std::size_t> queue_;  // this run's lanes, longest expected job first
  std::size_t next_ = 0, running_ = 0;
  std::vector<std::chrono::steady_clock::duration> expected_;  // per lane: the average of its jobs, each older one halved
  bool closing_ = false;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::thread> threads_;
};

}  // namespace cflow
