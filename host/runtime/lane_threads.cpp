#include "host/runtime/lane_threads.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "cflow/runtime/error.h"

namespace cflow {

LaneThreads::LaneThreads(std::vector<Device> lanes, std::size_t workers)
    : lanes_(std::move(lanes)), expected_(lanes_.size()), errors_(lanes_.size()) {
  CFLOW_REQUIRE(workers >= 1 && workers <= lanes_.size(), "LaneThreads: between 1 and one worker per lane");
  try {
    for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { serve(); });
  } catch (...) {  // a thread that could not start: the started ones must be joined before they are destroyed
    stop_workers();
    throw;
  }
}

LaneThreads::~LaneThreads() { stop_workers(); }

void LaneThreads::stop_workers() noexcept {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  started_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void LaneThreads::run(const std::function<void(std::size_t)>& job) {
  {
    std::lock_guard lock(mutex_);
    job_ = &job;
    queue_.resize(lanes_.size());
    std::iota(queue_.begin(), queue_.end(), std::size_t(0));
    std::stable_sort(queue_.begin(), queue_.end(), [this](std::size_t a, std::size_t b) { return expected_[a] > expected_[b]; });
    next_ = 0;
    running_ = threads_.size();
    ++generation_;
  }
  started_.notify_all();
  std::unique_lock lock(mutex_);
  finished_.wait(lock, [this] { return running_ == 0; });
  job_ = nullptr;
  std::exception_ptr first;
  for (std::exception_ptr& error : errors_)
    if (std::exception_ptr e = std::exchange(error, nullptr); e && !first) first = e;
  if (first) std::rethrow_exception(first);
}

bool LaneThreads::take(std::size_t& lane) {
  if (next_ == queue_.size()) return false;
  lane = queue_[next_++];
  return true;
}

void LaneThreads::serve() {
  std::uint64_t done = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    started_.wait(lock, [&] { return closing_ || generation_ != done; });
    if (closing_) return;
    done = generation_;
    const auto* job = job_;
    for (std::size_t lane; take(lane);) {
      lock.unlock();
      const auto start = std::chrono::steady_clock::now();
      try {
        lanes_[lane].bind_thread();  // cheap (a per-thread setting): every time, so a failure is reported here
        (*job)(lane);
      } catch (...) {
        errors_[lane] = std::current_exception();
      }
      const auto took = std::chrono::steady_clock::now() - start;
      lock.lock();
      expected_[lane] = expected_[lane] == expected_[lane].zero() ? took : (expected_[lane] + took) / 2;
    }
    if (--running_ == 0) finished_.notify_one();
  }
}

}  // namespace cflow
