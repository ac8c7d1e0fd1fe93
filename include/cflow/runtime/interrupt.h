#pragma once
// A stop request (SIGINT/SIGTERM, docs/design.md §7) that long computations honour: a run checks
// interrupt_requested() between steps and finishes the step; solvers call check_interrupt() between
// iterations, which throws Interrupted once a request has waited longer than kInterruptGrace, so a
// step stuck in an eigen-solve still ends within about a second.
#include <exception>

namespace cflow {

inline constexpr double kInterruptGraceSeconds = 0.5;

// Not a cflow::Error: code that turns an Error into a stopped process must not swallow it.
class Interrupted : public std::exception {
 public:
  const char* what() const noexcept override { return "interrupted"; }
};

// Async-signal-safe: records the signal and the time it came.
void request_interrupt(int signal) noexcept;
void clear_interrupt() noexcept;
// The signal of a pending request, or 0.
int interrupt_requested() noexcept;
// Throws Interrupted when a request has been pending for more than kInterruptGraceSeconds (and
// interrupts within steps are allowed).
void check_interrupt();
// Whether check_interrupt() may throw (the default). A data-parallel run disallows it: a rank that
// left a step alone would leave the others waiting in a collective, so its ranks stop only at step
// boundaries, where they agree on the signal (docs/design.md §7).
void allow_interrupt_within_steps(bool allowed) noexcept;

}  // namespace cflow
