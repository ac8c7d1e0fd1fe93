// The stationary flow (docs/design.md §6.9): the central flow of rmsprop with ν held at its stationary
// value E[g⊙g] under the flow's own oscillation model, so that its trajectory depends on w alone.
// It logs what the central flow logs.
#include <algorithm>

#include "host/flow/process_central.h"

namespace cflow {
namespace {

template <class T>
class StationaryProcess final : public CentralProcess<T> {
 public:
  using Context = ProcessContext<T>;
  StationaryProcess(Context& c, std::span<const T> w0, const OptimizerState<T>& s)
      : CentralProcess<T>(c, w0, s, ProcessKind::stationary) {}

 protected:
  // Each iteration of the fixed point re-solves the critical set for its P by the central flow's rule
  // (full_solve_at: the process's eig.frequency, --central-eig-every-substep), a later iteration
  // counting as a substep that is not a step's first: Rayleigh refreshes by default, a full
  // (warm-started) solve at every iteration with --central-eig-every-substep (docs/design.md §6.9).
  std::optional<CentralSubstep> advance(Context& c, T* grad, T* precond, bool first, double dt) override {
    bool full = this->full_solve_at(c, first);
    const CriticalSetAt<T> critical_at = [&](const T* preconditioner, index_t at_least) {
      this->eigen(c, this->tracker, this->w_next.data(), preconditioner, full);
      full = this->full_solve_at(c, false);
      CriticalSet<T> critical = this->critical_set(c);
      const std::span<const T> lambda = this->tracker.eigenvalues();
      for (index_t i = critical.k(); i < std::min(at_least, index_t(lambda.size())); ++i)
        critical.eigenvalues.push_back(double(lambda[std::size_t(i)]));
      return critical;
    };
    try {
      return this->stationary_substep(c, grad, critical_at, precond, dt);
    } catch (const Error& e) {
      this->stop("step " + std::to_string(c.step) + ": " + user_message(e));
      return std::nullopt;
    }
  }
};

}  // namespace

template <class T>
std::unique_ptr<Process<T>> make_stationary_process(ProcessContext<T>& c, std::span<const T> w0,
                                                    const OptimizerState<T>& s) {
  if (s.spec().kind != OptimizerKind::rmsprop)
    throw Error("the stationary flow (--runs stationary) holds RMSProp's per-coordinate ν at E[g⊙g]: it needs "
                "--opt rmsprop, not " + to_string(s.spec().kind));
  return std::make_unique<StationaryProcess<T>>(c, w0, s);
}

template std::unique_ptr<Process<float>> make_stationary_process(ProcessContext<float>&, std::span<const float>,
                                                                 const OptimizerState<float>&);
template std::unique_ptr<Process<double>> make_stationary_process(ProcessContext<double>&, std::span<const double>,
                                                                  const OptimizerState<double>&);

}  // namespace cflow
