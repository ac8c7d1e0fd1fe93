#pragma once
// One process of docs/design.md §6 behind the interface the processes loop (experiment.cpp) uses:
// prepare() computes the record at time t and the next state, commit() moves to it. One file per
// kind: process_discrete.cpp (and its midpoint view, process_midpoint.cpp), process_stable.cpp,
// process_central.cpp, process_stationary.cpp; the shared context and helpers are in process.cpp.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cflow/flow/central_flow.h"
#include "cflow/flow/experiment.h"
#include "cflow/solvers/eigen_tracker.h"
#include "cflow/engine/counting_objective.h"
#include "host/runtime/stopwatch.h"

namespace cflow {

// What every process shares: the oracle, the evaluators, the settings and scratch space.
template <class T>
struct ProcessContext {
  using Evaluate = typename Experiment<T>::Evaluate;
  CountingObjective<T> f;  // every query of every process is counted (ProcessRecord::work)
  Evaluate evaluate_train, evaluate_test;
  ExperimentSettings settings;
  Device dev;
  index_t d;
  std::int64_t step = 0;
  Buffer<index_t> selected;  // the logged coordinates
  std::vector<index_t> selected_host;
  typename Experiment<T>::Outputs outputs;  // empty: the records carry no outputs

  // A full LOBPCG solve of P⁻¹H at w (preconditioner p), or a Rayleigh refresh of the tracked basis.
  // A refresh given `known` takes them for the quotients of the leading columns of the basis the caller
  // rescaled (EigenTracker::rescale with this p) and asks quad() only for the others.
  void solve_or_refresh(EigenTracker<T>& tracker, const T* w, const T* p, bool full, std::span<const T> known = {});
  // Rows `selected` of the d × cols device matrix x, on the host (one wait).
  std::vector<double> gather(const T* x, index_t cols = 1);
  // The same values into the device array `out` (count·cols, then ‖norm_of‖² when norm_of is given,
  // to cross in the same transfer), without waiting.
  void gather_to(const T* x, index_t cols, const T* norm_of, T* out);
  // Options of a tracker under `eig` (a process's settings); one that grows tracks every eigenvalue
  // above the threshold.
  EigenTrackerOptions tracker_options(const EigenSettings& eig, bool grows) const;
};

// The P-normalized directions of the central flow's Σ eigenvectors (UQ, d × count) at time t.
template <class T>
struct SigmaDirections {
  const T* UQ = nullptr;
  index_t count = 0;
};

// The record of a process that stopped at this step, with the loss that stopped it.
inline ProcessRecord stopped_record(double loss) {
  ProcessRecord r;
  r.train_loss = loss;
  r.stopped = true;
  return r;
}

// A process: its point, optimizer state and eigen trackers.
template <class T>
class Process {
 public:
  using Context = ProcessContext<T>;
  Process(Context& c, ProcessKind kind, std::span<const T> w0, const OptimizerState<T>& s);
  virtual ~Process() = default;

  // The record at time t (timed per phase) and the next state; a stopped process reports stopped.
  ProcessRecord prepare(Context& c);
  // Moves to the next state.
  virtual void commit();
  // The point this process reports at time t.
  virtual const T* position() const { return w.data(); }
  virtual SigmaDirections<T> sigma_directions() const { return {}; }
  void stop(std::string why);
  // A non-finite loss or gradient stops the process before any eigen-solve sees it (an eigen-solve
  // on an overflowing iterate runs to its bounds and fails obscurely); `where` ends the reason.
  bool diverged(Context& c, double loss, const T* grad, const std::string& where);

  // Checkpoint arrays beyond w, t, ν, stopped and the trackers (the midpoint's previous iterate).
  virtual bool has_previous() const { return false; }
  virtual void save_previous(std::vector<std::pair<std::string, std::vector<double>>>&, const std::string&) const {}
  virtual void restore_previous(bool /*has_prev*/, const std::vector<double>& /*w_prev*/, const std::string& /*name*/) {}

  ProcessKind kind;
  EigenSettings eig;  // this process's (ExperimentSettings::eig_of)
  Buffer<T> w, w_next, g, p;
  OptimizerState<T> state, state_next;
  EigenTracker<T> tracker;
  std::optional<EigenTracker<T>> raw_tracker;  // H itself, when P is not a multiple of I
  bool stopped = false;
  std::string reason;

 protected:
  // A full eigen-solve at this step (else a Rayleigh refresh), every eig.frequency steps.
  bool full_solve(const Context& c) const { return c.step % eig.frequency == 0; }
  virtual ProcessRecord prepare_step(Context& c) = 0;
  // Loss, gradient norm, accuracy, state summary and selected g² at `at` (g holds ∇L there).
  ProcessRecord basic_record(Context& c, const T* at, double loss);
  void log_eigenvalues(Context& c, ProcessRecord& r, const T* at, bool full);
  // The timed phases of a step.
  double gradient(Context& c, const T* at, T* grad);
  void eigen(Context& c, EigenTracker<T>& t, const T* at, const T* precond, bool full, std::span<const T> known = {});
  CentralSubstep flow_substep(Context& c, T* grad, const CriticalSet<T>& critical, double dt,
                              const ConfirmCritical<T>& confirm = {});
  CentralSubstep stationary_substep(Context& c, T* grad, const CriticalSetAt<T>& critical_at, T* precond, double dt);

 private:
  double grad_seconds_ = 0, eig_seconds_ = 0, d3_seconds_ = 0, sdcp_seconds_ = 0;
  PhaseClock clock_;  // the step's phases (grad_and_value, eig, total): one wait per step
  std::int64_t lobpcg_iterations_ = 0;  // of the current step
};

// The optimizer itself: one discrete step per unit of time, reported at w_t.
template <class T>
class DiscreteProcess : public Process<T> {
 public:
  using Process<T>::Process;

 protected:
  using Context = ProcessContext<T>;
  ProcessRecord prepare_step(Context& c) override;
  // The point reported at time t, once w_next is known, and the loss there (g then holds ∇L there).
  virtual const T* reported_point(Context&, double& /*loss*/) { return this->w.data(); }
};

template <class T>
std::unique_ptr<Process<T>> make_process(ProcessContext<T>& c, ProcessKind kind, std::span<const T> w0,
                                         const OptimizerState<T>& s);
// The kinds other than discrete, each defined in its own file.
template <class T>
std::unique_ptr<Process<T>> make_midpoint_process(ProcessContext<T>& c, std::span<const T> w0,
                                                  const OptimizerState<T>& s);
template <class T>
std::unique_ptr<Process<T>> make_stable_process(ProcessContext<T>& c, std::span<const T> w0,
                                                const OptimizerState<T>& s);
template <class T>
std::unique_ptr<Process<T>> make_central_process(ProcessContext<T>& c, std::span<const T> w0,
                                                 const OptimizerState<T>& s);
template <class T>
std::unique_ptr<Process<T>> make_stationary_process(ProcessContext<T>& c, std::span<const T> w0,
                                                    const OptimizerState<T>& s);

}  // namespace cflow
