#include "host/runtime/lane_threads.h"

#include <utility>

namespace cflow {

LaneThreads::LaneThreads(std::vector<Device> lanes) : lanes_(std::move(lanes)), errors_(lanes_.size()) {
  for (std::size_t i = 0; i < lanes_.size(); ++i) threads_.emplace_back([this, i] { serve(i); });
}

LaneThreads::~LaneThreads() {
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

void LaneThreads::serve(std::size_t i) {
  std::uint64_t done = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    started_.wait(lock, [&] { return closing_ || generation_ != done; });
    if (closing_) return;
    done = generation_;
    const auto* job = job_;
    lock.unlock();
    try {
      lanes_[i].bind_thread();  // cheap (a per-thread setting): every time, so a failure is reported here
      (*job)(i);
    } catch (...) {
      errors_[i] = std::current_exception();
    }
    lock.lock();
    if (--running_ == 0) finished_.notify_one();
  }
}

}  // namespace cflow
