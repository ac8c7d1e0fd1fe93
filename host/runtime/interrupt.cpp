#include "cflow/runtime/interrupt.h"

#include <csignal>
#include <ctime>

namespace cflow {

namespace {
volatile std::sig_atomic_t g_signal = 0;
// When the request came (CLOCK_MONOTONIC, clock_gettime is async-signal-safe).
timespec g_requested_at{};
bool g_within_steps = true;

double seconds_since(const timespec& then) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return double(now.tv_sec - then.tv_sec) + 1e-9 * double(now.tv_nsec - then.tv_nsec);
}
}  // namespace

void request_interrupt(int signal) noexcept {
  clock_gettime(CLOCK_MONOTONIC, &g_requested_at);
  g_signal = signal;
}

void clear_interrupt() noexcept { g_signal = 0; }

int interrupt_requested() noexcept { return g_signal; }

void allow_interrupt_within_steps(bool allowed) noexcept { g_within_steps = allowed; }

void check_interrupt() {
  if (g_within_steps && g_signal != 0 && seconds_since(g_requested_at) > kInterruptGraceSeconds) throw Interrupted();
}

}  // namespace cflow
