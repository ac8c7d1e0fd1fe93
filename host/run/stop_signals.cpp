#include "host/run/stop_signals.h"

#include <unistd.h>

#include "cflow/runtime/interrupt.h"

namespace cflow::run {

namespace {
extern "C" void on_stop_signal(int signo) {
  request_interrupt(signo);
  static const char message[] =
      "\ncflow run: interrupted: finishing this step, then flushing and writing a checkpoint "
      "(interrupt again to abort at once)\n";
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
}
}  // namespace

StopSignals::StopSignals() {
  clear_interrupt();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

}  // namespace cflow::run
