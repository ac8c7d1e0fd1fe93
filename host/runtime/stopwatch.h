#pragma once
// Timing the phases of a step (docs/design.md §7.5).
#include <chrono>
#include <vector>

#include "cflow/runtime/device.h"

namespace cflow {

// Wall time of a phase, with the device synchronized at the end so asynchronous GPU work is counted
// in the phase that issued it (as the reference's times/* logs do). One wait per phase: for phases
// inside a step, PhaseClock times them with a single wait.
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

// The phases of one step, timed without a wait per phase. On CUDA a phase is a pair of events on the
// device's stream, so it measures the device work the phase issued; resolve() waits once for the
// stream and reads them all. On the CPU a phase's work is done when its calls return: the host clock
// times it and nothing waits. Events are kept for the next step (no creation in the steady state).
class PhaseClock {
 public:
  explicit PhaseClock(const Device& dev) : dev_(dev) {}
  ~PhaseClock();
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;

  // A phase starts now; its seconds are added to `total` by resolve().
  int start(double& total);
  void stop(int phase);
  // Adds every stopped phase's seconds to its total and forgets the phases: one wait on CUDA.
  void resolve();

 private:
  struct Mark {
    std::chrono::steady_clock::time_point host;
    void* event = nullptr;  // CUDA only
  };
  struct Phase {
    double* total;
    Mark begin, end;
  };
  Mark mark();

  Device dev_;
  std::vector<Phase> phases_;
  std::vector<void*> events_;  // every event created; the first `used_` are in phases_
  std::size_t used_ = 0;
};

}  // namespace cflow
