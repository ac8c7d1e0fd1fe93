// PhaseClock (host/runtime/stopwatch.h): events on CUDA, the host clock on the CPU.
#include "host/runtime/stopwatch.h"

#include "host/runtime/backend.h"

namespace cflow {

PhaseClock::~PhaseClock() {
#if defined(CFLOW_WITH_CUDA)
  for (void* event : events_) cuda::destroy_event(event);
#endif
}

PhaseClock::Mark PhaseClock::mark() {
  Mark m{std::chrono::steady_clock::now(), nullptr};
#if defined(CFLOW_WITH_CUDA)
  if (dev_.is_cuda()) {
    if (used_ == events_.size()) events_.push_back(cuda::create_event());
    m.event = events_[used_++];
    cuda::record_event(dev_, m.event);
  }
#endif
  return m;
}

int PhaseClock::start(double& total) {
  phases_.push_back({&total, mark(), {}});
  return int(phases_.size()) - 1;
}

void PhaseClock::stop(int phase) { phases_.at(std::size_t(phase)).end = mark(); }

void PhaseClock::resolve() {
  if (phases_.empty()) return;
  dev_.synchronize();  // every event recorded so far has completed (counted on the CPU too)
  for (const Phase& p : phases_) {
    if (p.end.host == std::chrono::steady_clock::time_point{}) continue;  // left by an exception
#if defined(CFLOW_WITH_CUDA)
    if (dev_.is_cuda()) {
      *p.total += cuda::elapsed_seconds(p.begin.event, p.end.event);
      continue;
    }
#endif
    *p.total += std::chrono::duration<double>(p.end.host - p.begin.host).count();
  }
  phases_.clear();
  used_ = 0;
}

}  // namespace cflow
