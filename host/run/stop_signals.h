#pragma once
// SIGINT and SIGTERM during a run: while a StopSignals lives, the first one requests an interrupt
// (cflow/runtime/interrupt.h) and prints what happens next; the handler resets itself, so a second
// signal kills the process the default way.
#include <csignal>

namespace cflow::run {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace cflow::run
