#pragma once
// The progress line of `cflow run` on stderr: redrawn in place on a terminal (at most 10 times a
// second), printed every tenth of the run or every minute otherwise.
#include <chrono>
#include <cstdint>
#include <string>

#include "cflow/flow/experiment.h"

namespace cflow::run {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  // Steps count from `first` to `end`; `done` are done when the session starts.
  Progress(bool enabled, std::int64_t first, std::int64_t end, std::int64_t done);
  void update(std::int64_t done, const StepRecord& record);
  // A line above the bar (warnings).
  void message(const std::string& text);
  void end_line();

 private:
  std::string line(std::int64_t done, const StepRecord& record, Clock::time_point now) const;

  bool enabled_, tty_;
  std::int64_t first_, end_, session_start_;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace cflow::run
