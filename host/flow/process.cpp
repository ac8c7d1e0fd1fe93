// What every process of docs/design.md §6 shares: the context, the timed phases of a step, the
// logged record, and the choice of process by kind.
#include "host/flow/process.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "host/runtime/stopwatch.h"
#include "kernels/flow.h"

namespace cflow {

template <class T>
void ProcessContext<T>::solve_or_refresh(EigenTracker<T>& tracker, const T* w, const T* p, bool full,
                                         std::span<const T> known) {
  if (full || !tracker.has_solution()) {
    tracker.solve([&](const T* V, index_t m, T* HV) { f.hvp(w, V, m, HV); }, p);
    return;
  }
  const QuadraticForm<T> quad = [&](const T* U, index_t m, T* out) {
    const index_t n = std::min(m, index_t(known.size()));
    std::copy(known.begin(), known.begin() + n, out);
    if (n == m) return;
    const auto q = f.quad(w, U + n * d, m - n);
    std::copy(q.begin(), q.end(), out + n);
  };
  if (known.empty())
    tracker.refresh(quad, p);
  else
    tracker.refresh_rescaled(quad);
}

template <class T>
void ProcessContext<T>::gather_to(const T* x, index_t cols, const T* norm_of, T* out) {
  const index_t count = index_t(selected_host.size());
  CFLOW_DISPATCH(dev, gather_rows<T>, dev, d, cols, count, selected.data(), x, out);
  if (norm_of) blas::dot<T>(dev, d, norm_of, norm_of, out + count * cols);
}

template <class T>
std::vector<double> ProcessContext<T>::gather(const T* x, index_t cols) {
  Buffer<T> out(dev, index_t(selected_host.size()) * cols, Uninitialized{});
  gather_to(x, cols, nullptr, out.data());
  const auto host = out.to_host();
  return {host.begin(), host.end()};
}

template <class T>
EigenTrackerOptions ProcessContext<T>::tracker_options(const EigenSettings& e, bool grows) const {
  EigenTrackerOptions o;
  o.initial_k = e.initial_k;
  o.track_threshold = grows ? std::optional<double>(e.track_threshold) : std::nullopt;
  o.k_max = e.k_max;
  o.tolerance = e.tolerance;
  o.max_iterations = e.max_iterations;
  o.max_seconds = settings.solver_max_seconds;
  o.seed = unsigned(settings.seed);
  return o;
}

template <class T>
Process<T>::Process(Context& c, ProcessKind k, std::span<const T> w0, const OptimizerState<T>& s)
    : kind(k), eig(c.settings.eig_of(k)), w(c.dev, w0), w_next(c.dev, c.d), g(c.dev, c.d), p(c.dev, c.d), state(s),
      state_next(s), tracker(c.dev, c.d, c.tracker_options(eig, k != ProcessKind::stable)), clock_(c.dev) {
  if (c.settings.eig.raw_eigenvalues && s.spec().kind == OptimizerKind::rmsprop)
    raw_tracker.emplace(c.dev, c.d, c.tracker_options(eig, false));
}

template <class T>
bool Process<T>::diverged(Context& c, double loss, const T* grad, const std::string& where) {
  const double g2 = std::isfinite(loss) ? double(blas::dot<T>(c.dev, c.d, grad, grad)) : 0.0;
  if (std::isfinite(loss) && std::isfinite(g2)) return false;
  stop((std::isfinite(loss) ? "gradient" : "loss") + std::string(" is not finite at step ") + std::to_string(c.step) +
       where);
  return true;
}

template <class T>
void Process<T>::stop(std::string why) {
  stopped = true;
  reason = std::move(why);
}

template <class T>
ProcessRecord Process<T>::prepare(Context& c) {
  ProcessRecord r;
  if (stopped) {
    r.stopped = true;
    return r;
  }
  grad_seconds_ = eig_seconds_ = d3_seconds_ = sdcp_seconds_ = 0;
  lobpcg_iterations_ = 0;
  const OracleWork work_before = c.f.work();
  double total_seconds = 0;
  const int total = clock_.start(total_seconds);
  r = prepare_step(c);
  clock_.stop(total);
  clock_.resolve();  // the step's one wait for its phase times
  r.seconds = {{"grad_and_value", grad_seconds_}, {"eig", eig_seconds_}, {"d3", d3_seconds_},
               {"sdcp", sdcp_seconds_}, {"total", total_seconds}};
  const OracleWork work = c.f.work() - work_before;
  const std::int64_t counts[] = {work.gradients, work.hvps, work.quads, work.jets, lobpcg_iterations_};
  static_assert(std::size(counts) == std::size(kWorkNames));
  for (std::size_t i = 0; i < std::size(counts); ++i) r.work.emplace_back(kWorkNames[i], double(counts[i]));
  return r;
}

template <class T>
void Process<T>::commit() {
  if (stopped) return;
  std::swap(w, w_next);
  std::swap(state, state_next);
}

template <class T>
ProcessRecord Process<T>::basic_record(Context& c, const T* at, double loss) {
  ProcessRecord r;
  r.train_loss = loss;
  {
    CFLOW_NVTX_RANGE("evaluation");
    r.train_acc = c.evaluate_train(at).accuracy;
    if (c.evaluate_test) {
      const Evaluation test = c.evaluate_test(at);
      r.test_loss = test.loss;
      r.test_acc = test.accuracy;
    }
  }
  if (c.outputs) r.outputs = c.outputs(at);
  // The optimizer's summary, the selected coordinates of g and ‖g‖² gather on the device and cross
  // in one transfer (docs/design.md §7.5).
  const index_t state_size = state.summary_size(), count = index_t(c.selected_host.size());
  Buffer<T> logged(c.dev, state_size + count + 1, Uninitialized{});
  state.summary_values(logged.data());
  c.gather_to(g.data(), 1, g.data(), logged.data() + state_size);
  const std::vector<T> host = logged.to_host();
  r.state = state.summary_of(std::span<const T>(host).first(std::size_t(state_size)));
  for (std::size_t i = 0; i < std::size_t(count); ++i) {
    const double x = double(host[std::size_t(state_size) + i]);
    r.grad_sq_selected.push_back(x * x);
  }
  r.grad_norm_sq = double(host.back());
  return r;
}

template <class T>
void Process<T>::log_eigenvalues(Context& c, ProcessRecord& r, const T* at, bool full) {
  r.effective_eigs.assign(tracker.eigenvalues().begin(), tracker.eigenvalues().end());
  if (!c.settings.eig.raw_eigenvalues) return;
  if (raw_tracker) {
    eigen(c, *raw_tracker, at, nullptr, full);
    r.hessian_eigs.assign(raw_tracker->eigenvalues().begin(), raw_tracker->eigenvalues().end());
  } else {  // P = p·I: the eigenvalues of H are the effective ones times p
    T p0{};  // one element, not the d-vector
    p.download(std::span<T>(&p0, 1));
    const double scale = double(p0);
    for (double lambda : r.effective_eigs) r.hessian_eigs.push_back(lambda * scale);
  }
}

template <class T>
double Process<T>::gradient(Context& c, const T* at, T* grad) {
  const int phase = clock_.start(grad_seconds_);
  const double loss = double(c.f.value_grad(at, grad));
  clock_.stop(phase);
  return loss;
}

template <class T>
void Process<T>::eigen(Context& c, EigenTracker<T>& t, const T* at, const T* precond, bool full,
                       std::span<const T> known) {
  const int phase = clock_.start(eig_seconds_);
  const bool solves = full || !t.has_solution();
  c.solve_or_refresh(t, at, precond, full, known);
  clock_.stop(phase);
  if (!solves) return;
  lobpcg_iterations_ += t.last_solve().iterations;
  if (t.last_solve().timed_out) {
    std::ostringstream message;
    message << "the eigen-solve did not converge within its time bound of " << c.settings.solver_max_seconds
            << " s (k = " << t.k() << "): the trajectory is probably diverging; lower --lr, or raise "
            << "--solver-max-seconds";
    throw Error(message.str());
  }
}

template <class T>
CentralSubstep Process<T>::flow_substep(Context& c, T* grad, const CriticalSet<T>& critical, double dt,
                                        const ConfirmCritical<T>& confirm) {
  const SdcpOptions sdcp{.max_seconds = c.settings.solver_max_seconds};
  CentralSubstep result = central_flow_substep(c.f, state_next, w_next.data(), grad, critical, dt, sdcp,
                                               c.settings.flow.pair_group, confirm);
  d3_seconds_ += result.seconds_d3;
  sdcp_seconds_ += result.seconds_sdcp;
  return result;
}

template <class T>
CentralSubstep Process<T>::stationary_substep(Context& c, T* grad, const CriticalSetAt<T>& critical_at, T* precond,
                                              double dt) {
  const SdcpOptions sdcp{.max_seconds = c.settings.solver_max_seconds};
  CentralSubstep result = stationary_flow_substep(c.f, state_next, w_next.data(), grad, critical_at, precond, dt,
                                                  c.settings.flow.stationary, sdcp, c.settings.flow.pair_group);
  d3_seconds_ += result.seconds_d3;
  sdcp_seconds_ += result.seconds_sdcp;
  return result;
}

template <class T>
std::unique_ptr<Process<T>> make_process(ProcessContext<T>& c, ProcessKind kind, std::span<const T> w0,
                                         const OptimizerState<T>& s) {
  switch (kind) {
    case ProcessKind::discrete: return std::make_unique<DiscreteProcess<T>>(c, kind, w0, s);
    case ProcessKind::midpoint: return make_midpoint_process(c, w0, s);
    case ProcessKind::stable: return make_stable_process(c, w0, s);
    case ProcessKind::central: return make_central_process(c, w0, s);
    case ProcessKind::stationary: return make_stationary_process(c, w0, s);
  }
  throw Error("unknown ProcessKind");
}

template struct ProcessContext<float>;
template struct ProcessContext<double>;
template class Process<float>;
template class Process<double>;
template std::unique_ptr<Process<float>> make_process(ProcessContext<float>&, ProcessKind, std::span<const float>,
                                                      const OptimizerState<float>&);
template std::unique_ptr<Process<double>> make_process(ProcessContext<double>&, ProcessKind, std::span<const double>,
                                                       const OptimizerState<double>&);

}  // namespace cflow
