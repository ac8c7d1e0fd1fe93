// The stable flow (docs/design.md §6): the optimizer's gradient flow −P⁻¹∇L with the state dynamics,
// in ⌈2 S_eff⌉ (at least stable_min_nsubsteps) Euler substeps per unit of time; it stops once the
// effective sharpness passes stable_max_seff.
#include <algorithm>
#include <cmath>

#include "cflow/runtime/blas.h"
#include "host/flow/process.h"

namespace cflow {
namespace {

template <class T>
class StableProcess final : public Process<T> {
 public:
  using Context = ProcessContext<T>;
  StableProcess(Context& c, std::span<const T> w0, const OptimizerState<T>& s)
      : Process<T>(c, ProcessKind::stable, w0, s) {}

 protected:
  ProcessRecord prepare_step(Context& c) override {
    const double loss = this->gradient(c, this->w.data(), this->g.data());
    if (this->diverged(c, loss, this->g.data(), "")) return stopped_record(loss);
    this->state.preconditioner(this->p.data());
    ProcessRecord r = this->basic_record(c, this->w.data(), loss);
    this->eigen(c, this->tracker, this->w.data(), this->p.data(), this->full_solve(c));
    this->log_eigenvalues(c, r, this->w.data(), this->full_solve(c));
    const double sharpness = r.effective_eigs.empty() ? 0.0 : r.effective_eigs.front();
    const double max_seff = c.settings.flow.stable_max_seff;
    if (!std::isfinite(loss) || !std::isfinite(sharpness) || sharpness > max_seff) {
      this->stop(std::isfinite(loss) ? "effective sharpness " + std::to_string(sharpness) + " above " +
                                           std::to_string(max_seff) + " at step " + std::to_string(c.step)
                                     : "loss is not finite at step " + std::to_string(c.step));
      return r;
    }
    const int nsub = std::max(c.settings.flow.stable_min_nsubsteps, int(std::ceil(2 * sharpness)));
    r.substeps = nsub;
    advance(c, nsub);
    return r;
  }

 private:
  // w_next, state_next ← nsub Euler substeps of length 1/nsub from (w, state); g holds ∇L(w).
  void advance(Context& c, int nsub) {
    blas::copy<T>(c.dev, c.d, this->w.data(), this->w_next.data());
    this->state_next = this->state;
    Buffer<T> substep_gradient(c.dev, c.d);
    for (int sub = 0; sub < nsub; ++sub) {
      if (sub > 0) this->gradient(c, this->w_next.data(), substep_gradient.data());
      stable_flow_substep(c.dev, this->state_next, this->w_next.data(),
                          sub == 0 ? this->g.data() : substep_gradient.data(), c.d, 1.0 / nsub);
    }
  }
};

}  // namespace

template <class T>
std::unique_ptr<Process<T>> make_stable_process(ProcessContext<T>& c, std::span<const T> w0,
                                                const OptimizerState<T>& s) {
  return std::make_unique<StableProcess<T>>(c, w0, s);
}

template std::unique_ptr<Process<float>> make_stable_process(ProcessContext<float>&, std::span<const float>,
                                                             const OptimizerState<float>&);
template std::unique_ptr<Process<double>> make_stable_process(ProcessContext<double>&, std::span<const double>,
                                                              const OptimizerState<double>&);

}  // namespace cflow
