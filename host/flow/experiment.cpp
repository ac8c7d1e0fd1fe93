// The processes loop (docs/design.md §6): every process computes what it logs at time t and its next state,
// the cross-process quantities are taken at time t, then every process commits its next state.
#include "cflow/flow/experiment.h"

#include <lapacke.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "cflow/runtime/blas.h"
#include "cflow/flow/central_flow.h"
#include "cflow/solvers/eigen_tracker.h"
#include "cflow/runtime/nvtx.h"
#include "host/runtime/stopwatch.h"
#include "kernels/flow.h"

namespace cflow {

namespace {
constexpr std::array<std::pair<const char*, ProcessKind>, 4> kProcesses{{{"discrete", ProcessKind::discrete},
                                                                         {"midpoint", ProcessKind::midpoint},
                                                                         {"stable", ProcessKind::stable},
                                                                         {"central", ProcessKind::central}}};
}  // namespace

ProcessKind parse_process(std::string_view name) {
  std::string valid;
  for (const auto& [key, kind] : kProcesses) {
    if (name == key) return kind;
    valid += (valid.empty() ? "" : ", ") + std::string(key);
  }
  throw Error("unknown process '" + std::string(name) + "' (valid: " + valid + ")");
}

std::string to_string(ProcessKind kind) {
  for (const auto& [key, k] : kProcesses)
    if (k == kind) return key;
  return "?";
}

template <class T>
struct Experiment<T>::State {
  // What every process shares: the oracle, the evaluators, the settings and scratch space.
  struct Context {
    Objective<T>& f;
    Evaluate evaluate_train, evaluate_test;
    ExperimentSettings settings;
    Device dev;
    index_t d;
    std::int64_t step = 0;
    Buffer<index_t> selected;  // the logged coordinates
    std::vector<index_t> selected_host;

    bool full_solve() const { return step % settings.eig.frequency == 0; }

    void solve_or_refresh(EigenTracker<T>& tracker, const T* w, const T* p, bool full) {
      if (full || !tracker.has_solution()) {
        tracker.solve([&](const T* V, index_t m, T* HV) { f.hvp(w, V, m, HV); }, p);
      } else {
        tracker.refresh(
            [&](const T* U, index_t m, T* out) {
              const auto q = f.quad(w, U, m);
              std::copy(q.begin(), q.end(), out);
            },
            p);
      }
    }
    std::vector<double> gather(const T* x, index_t cols = 1) {
      const index_t count = index_t(selected_host.size());
      Buffer<T> out(dev, count * cols);
      CFLOW_DISPATCH(dev, gather_rows<T>, dev, d, cols, count, selected.data(), x, out.data());
      const auto host = out.to_host();
      return {host.begin(), host.end()};
    }
    EigenTrackerOptions tracker_options(bool grows) const {
      const EigenSettings& e = settings.eig;
      EigenTrackerOptions o;
      o.initial_k = e.initial_k;
      o.track_threshold = grows ? std::optional<double>(e.track_threshold) : std::nullopt;
      o.k_max = e.k_max;
      o.tolerance = e.tolerance;
      o.max_iterations = e.max_iterations;
      o.seed = unsigned(settings.seed);
      return o;
    }
  };

  // One process: its point, optimizer state and eigen trackers; prepare() computes the record at
  // time t and the next state, commit() moves to it.
  struct Process {
    ProcessKind kind;
    Buffer<T> w, w_next, g, p;
    OptimizerState<T> state, state_next;
    EigenTracker<T> tracker;
    std::optional<EigenTracker<T>> raw_tracker;  // H itself, when P is not a multiple of I
    bool stopped = false;
    std::string reason;
    // midpoint: the previous iterate and the point it reports, w* = (w_prev + 2w + w_next)/4
    Buffer<T> w_prev, w_mid;
    bool has_prev = false;
    // Seconds per phase of the current step.
    double grad_seconds = 0, eig_seconds = 0, d3_seconds = 0, sdcp_seconds = 0;
    // central: the P-normalized directions of Σ's eigenvectors (UQ, d × k) and P at time t
    Buffer<T> directions;
    index_t direction_count = 0;

    Process(Context& c, ProcessKind k, std::span<const T> w0, const OptimizerState<T>& s)
        : kind(k), w(c.dev, w0), w_next(c.dev, c.d), g(c.dev, c.d), p(c.dev, c.d), state(s), state_next(s),
          tracker(c.dev, c.d, c.tracker_options(k != ProcessKind::stable)) {
      if (c.settings.eig.raw_eigenvalues && s.spec().kind == OptimizerKind::rmsprop)
        raw_tracker.emplace(c.dev, c.d, c.tracker_options(false));
      if (k == ProcessKind::midpoint) w_prev = Buffer<T>(c.dev, c.d), w_mid = Buffer<T>(c.dev, c.d);
    }

    // The point this process reports at time t.
    const T* position() const { return kind == ProcessKind::midpoint && has_prev ? w_mid.data() : w.data(); }

    void stop(std::string why) {
      stopped = true;
      reason = std::move(why);
    }

    // A non-finite loss or gradient stops the process before any eigen-solve sees it (an
    // eigen-solve on an overflowing iterate runs to its bounds and fails obscurely).
    bool diverged(Context& c, double loss, const T* grad, const std::string& where) {
      const double g2 = std::isfinite(loss) ? double(blas::dot<T>(c.dev, c.d, grad, grad)) : 0.0;
      if (std::isfinite(loss) && std::isfinite(g2)) return false;
      stop((std::isfinite(loss) ? "gradient" : "loss") + std::string(" is not finite at step ") +
           std::to_string(c.step) + where);
      return true;
    }

    // Loss, gradient norm, accuracy, state summary and selected g² at `at` (g holds ∇L there).
    ProcessRecord basic_record(Context& c, const T* at, double loss) {
      ProcessRecord r;
      const Evaluation train = c.evaluate_train(at);
      r.train_loss = loss;
      r.train_acc = train.accuracy;
      if (c.evaluate_test) {
        const Evaluation test = c.evaluate_test(at);
        r.test_loss = test.loss;
        r.test_acc = test.accuracy;
      }
      r.grad_norm_sq = double(blas::dot<T>(c.dev, c.d, g.data(), g.data()));
      r.state = state.summary();
      r.grad_sq_selected = c.gather(g.data());
      for (double& x : r.grad_sq_selected) x *= x;
      return r;
    }

    void log_eigenvalues(Context& c, ProcessRecord& r, const T* at, bool full) {
      r.effective_eigs.assign(tracker.eigenvalues().begin(), tracker.eigenvalues().end());
      if (!c.settings.eig.raw_eigenvalues) return;
      if (raw_tracker) {
        eigen(c, *raw_tracker, at, nullptr, full);
        r.hessian_eigs.assign(raw_tracker->eigenvalues().begin(), raw_tracker->eigenvalues().end());
      } else {  // P = p·I: the eigenvalues of H are the effective ones times p
        const double scale = double(p.to_host()[0]);
        for (double lambda : r.effective_eigs) r.hessian_eigs.push_back(lambda * scale);
      }
    }

    ProcessRecord prepare(Context& c) {
      ProcessRecord r;
      if (stopped) {
        r.stopped = true;
        return r;
      }
      grad_seconds = eig_seconds = d3_seconds = sdcp_seconds = 0;
      const Stopwatch total(c.dev);
      switch (kind) {
        case ProcessKind::discrete:
        case ProcessKind::midpoint: r = prepare_discrete(c); break;
        case ProcessKind::stable: r = prepare_stable(c); break;
        case ProcessKind::central: r = prepare_central(c); break;
      }
      r.seconds = {{"grad_and_value", grad_seconds}, {"eig", eig_seconds}, {"d3", d3_seconds},
                   {"sdcp", sdcp_seconds}, {"total", total.seconds()}};
      return r;
    }

    double gradient(Context& c, const T* at, T* grad) {
      const Stopwatch time(c.dev);
      const double loss = double(c.f.value_grad(at, grad));
      grad_seconds += time.seconds();
      return loss;
    }
    void eigen(Context& c, EigenTracker<T>& t, const T* at, const T* precond, bool full) {
      const Stopwatch time(c.dev);
      c.solve_or_refresh(t, at, precond, full);
      eig_seconds += time.seconds();
    }
    CentralSubstep flow_substep(Context& c, T* grad, const CriticalSet<T>& critical, double dt) {
      CentralSubstep result = central_flow_substep(c.f, state_next, w_next.data(), grad, critical, dt);
      d3_seconds += result.seconds_d3;
      sdcp_seconds += result.seconds_sdcp;
      return result;
    }

    ProcessRecord prepare_discrete(Context& c) {
      const double loss = gradient(c, w.data(), g.data());
      if (diverged(c, loss, g.data(), "")) {
        ProcessRecord r;
        r.train_loss = loss;
        r.stopped = true;
        return r;
      }
      state_next = state;
      state_next.update(g.data());
      state_next.preconditioner(p.data());
      blas::copy<T>(c.dev, c.d, w.data(), w_next.data());
      state_next.step(w_next.data(), g.data());
      const T* at = w.data();
      double logged_loss = loss;
      if (kind == ProcessKind::midpoint && has_prev) {  // w* = (w_prev + 2w + w_next)/4
        blas::copy<T>(c.dev, c.d, w_prev.data(), w_mid.data());
        blas::axpy<T>(c.dev, c.d, T(2), w.data(), w_mid.data());
        blas::axpy<T>(c.dev, c.d, T(1), w_next.data(), w_mid.data());
        blas::scal<T>(c.dev, c.d, T(0.25), w_mid.data());
        at = w_mid.data();
        logged_loss = gradient(c, at, g.data());
      }
      // The record shows the state the step uses (after its update with g).
      std::swap(state, state_next);
      ProcessRecord r = basic_record(c, at, logged_loss);
      std::swap(state, state_next);
      eigen(c, tracker, at, p.data(), c.full_solve());
      log_eigenvalues(c, r, at, c.full_solve());
      return r;
    }

    ProcessRecord prepare_stable(Context& c) {
      const double loss = gradient(c, w.data(), g.data());
      if (diverged(c, loss, g.data(), "")) {
        ProcessRecord r;
        r.train_loss = loss;
        r.stopped = true;
        return r;
      }
      state.preconditioner(p.data());
      ProcessRecord r = basic_record(c, w.data(), loss);
      eigen(c, tracker, w.data(), p.data(), c.full_solve());
      log_eigenvalues(c, r, w.data(), c.full_solve());
      const double sharpness = r.effective_eigs.empty() ? 0.0 : r.effective_eigs.front();
      if (!std::isfinite(loss) || !std::isfinite(sharpness) || sharpness > c.settings.flow.stable_max_seff) {
        stop(std::isfinite(loss) ? "effective sharpness " + std::to_string(sharpness) + " above " +
                                       std::to_string(c.settings.flow.stable_max_seff) + " at step " +
                                       std::to_string(c.step)
                                 : "loss is not finite at step " + std::to_string(c.step));
        return r;
      }
      const int nsub = std::max(c.settings.flow.stable_min_nsubsteps, int(std::ceil(2 * sharpness)));
      r.substeps = nsub;
      blas::copy<T>(c.dev, c.d, w.data(), w_next.data());
      state_next = state;
      Buffer<T> substep_gradient(c.dev, c.d);
      for (int sub = 0; sub < nsub; ++sub) {
        if (sub > 0) gradient(c, w_next.data(), substep_gradient.data());
        stable_flow_substep(c.dev, state_next, w_next.data(), sub == 0 ? g.data() : substep_gradient.data(), c.d,
                            1.0 / nsub);
      }
      return r;
    }

    ProcessRecord prepare_central(Context& c) {
      const FlowSettings& flow = c.settings.flow;
      const int nsub = flow.central_nsubsteps;
      blas::copy<T>(c.dev, c.d, w.data(), w_next.data());
      state_next = state;
      ProcessRecord r;
      Buffer<T> substep_gradient(c.dev, c.d), p_sub(c.dev, c.d);
      for (int sub = 0; sub < nsub; ++sub) {
        T* grad = sub == 0 ? g.data() : substep_gradient.data();
        T* precond = sub == 0 ? p.data() : p_sub.data();
        const double loss = gradient(c, w_next.data(), grad);
        if (diverged(c, loss, grad, ", substep " + std::to_string(sub))) {
          r.stopped = true;
          return r;
        }
        state_next.preconditioner(precond);
        if (sub == 0) r = basic_record(c, w.data(), loss);
        eigen(c, tracker, w_next.data(), precond, sub == 0 && c.full_solve());
        CriticalSet<T> critical;
        for (T lambda : tracker.eigenvalues())
          if (double(lambda) > flow.sdcp_threshold) critical.eigenvalues.push_back(double(lambda));
        critical.U = tracker.U();
        if (sub == 0) {
          log_eigenvalues(c, r, w.data(), c.full_solve());
          // central_flow_substep advances w_next; the predictions need (λ, U) at time t first.
          Buffer<T> U_t(c.dev, c.d * critical.k());
          blas::copy<T>(c.dev, c.d * critical.k(), critical.U, U_t.data());
          critical.U = U_t.data();
          CentralSubstep result;
          try {
            result = flow_substep(c, grad, critical, 1.0 / nsub);
          } catch (const Error& e) {
            stop(std::string("central flow failed at step ") + std::to_string(c.step) + ": " + e.what());
            r.stopped = true;
            return r;
          }
          predict(c, r, result, critical, loss);
        } else {
          try {
            flow_substep(c, grad, critical, 1.0 / nsub);
          } catch (const Error& e) {
            stop(std::string("central flow failed at step ") + std::to_string(c.step) + ": " + e.what());
            r.stopped = true;
            return r;
          }
        }
      }
      r.substeps = nsub;
      return r;
    }

    // Predictions from X = Q diag(ξ) Qᵀ (ξ descending), with HŨ ≈ 2PŨ on the critical span:
    // E[L] ≈ L + Σξ, E‖g‖² ≈ ‖g‖² + Σ ξ_i ‖2Pũ_i‖², E[g²] ≈ g² + Σ ξ_i (2Pũ_i)², tr Σ = Σ ξ_i ‖ũ_i‖².
    void predict(Context& c, ProcessRecord& r, const CentralSubstep& result, const CriticalSet<T>& critical,
                 double loss) {
      const index_t k = critical.k();
      r.sdcp_residual = k > 0 ? result.sdcp.residual : 0.0;
      std::vector<double> Q = result.X, xi(static_cast<std::size_t>(k));
      if (k > 0) CFLOW_REQUIRE(LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', k, Q.data(), k, xi.data()) == 0, "dsyev of X");
      std::reverse(xi.begin(), xi.end());
      std::vector<T> Q_desc(static_cast<std::size_t>(k * k));
      for (index_t j = 0; j < k; ++j)
        for (index_t i = 0; i < k; ++i) Q_desc[std::size_t(i + k * j)] = T(Q[std::size_t(i + k * (k - 1 - j))]);
      direction_count = k;
      directions = Buffer<T>(c.dev, c.d * k);
      if (k > 0) {
        Buffer<T> dQ(c.dev, std::span<const T>(Q_desc));
        blas::gemm<T>(c.dev, blas::Op::N, blas::Op::N, c.d, k, k, T(1), critical.U, c.d, dQ.data(), k, T(0),
                      directions.data(), c.d);
      }
      Buffer<T> scaled(c.dev, c.d * k);  // 2Pũ_i
      CFLOW_DISPATCH(c.dev, scale_rows<T>, c.dev, c.d, k, p.data(), directions.data(), scaled.data());
      blas::scal<T>(c.dev, c.d * k, T(2), scaled.data());
      double xi_sum = 0, grad_correction = 0, trace = 0;
      for (index_t i = 0; i < k; ++i) {
        const double x = std::max(xi[std::size_t(i)], 0.0);
        xi_sum += x;
        const double n2 = double(blas::nrm2<T>(c.dev, c.d, scaled.data() + i * c.d));
        const double nu = double(blas::nrm2<T>(c.dev, c.d, directions.data() + i * c.d));
        grad_correction += x * n2 * n2;
        trace += x * nu * nu;
      }
      r.predicted_variances = xi;
      r.predicted_loss = loss + xi_sum;
      r.predicted_grad_norm_sq = r.grad_norm_sq + grad_correction;
      r.sigma_trace = trace;
      r.predicted_grad_sq_selected = r.grad_sq_selected;
      if (k > 0) {
        const std::vector<double> rows = c.gather(scaled.data(), k);
        const std::size_t count = r.grad_sq_selected.size();
        for (index_t i = 0; i < k; ++i)
          for (std::size_t j = 0; j < count; ++j)
            r.predicted_grad_sq_selected[j] += std::max(xi[std::size_t(i)], 0.0) * rows[j + count * i] * rows[j + count * i];
      }
    }

    void commit() {
      if (stopped) return;
      if (kind == ProcessKind::midpoint) {
        std::swap(w_prev, w);  // w_prev ← w_t, then w ← w_next
        has_prev = true;
        std::swap(w, w_next);
      } else {
        std::swap(w, w_next);
      }
      std::swap(state, state_next);
    }
  };

  Context context;
  std::vector<Process> processes;
  std::int64_t steps = 0;

  State(Objective<T>& f, Evaluate train, Evaluate test, std::span<const T> w0, const ExperimentSettings& s)
      : context{f, std::move(train), std::move(test), s, f.device(), f.dim(), 0, {}, {}} {
    CFLOW_REQUIRE(index_t(w0.size()) == context.d, "initial parameters of the wrong size");
    CFLOW_REQUIRE(s.eig.frequency >= 1 && s.flow.central_nsubsteps >= 1 && s.flow.stable_min_nsubsteps >= 1,
                  "eigen frequency and substep counts must be positive");
    CFLOW_REQUIRE(!s.processes.empty(), "no process to run");
    context.selected_host = selected_indices(context.d, s.selected_coordinates);
    context.selected = Buffer<index_t>(context.dev, std::span<const index_t>(context.selected_host));
    // Warm start: discrete steps before the processes branch.
    OptimizerState<T> state(context.dev, s.optimizer, context.d);
    Buffer<T> w(context.dev, w0), g(context.dev, context.d);
    for (int i = 0; i < s.warm_start; ++i) {
      f.value_grad(w.data(), g.data());
      state.update(g.data());
      state.step(w.data(), g.data());
    }
    // The flows start from the state after one update with g(w₀), so their ν(0) is the ν the
    // discrete optimizer uses for its first step.
    OptimizerState<T> flow_state = state;
    f.value_grad(w.data(), g.data());
    flow_state.update(g.data());
    const std::vector<T> start = w.to_host();
    for (ProcessKind kind : s.processes) {
      const bool flow = kind == ProcessKind::stable || kind == ProcessKind::central;
      processes.emplace_back(context, kind, std::span<const T>(start), flow ? flow_state : state);
    }
  }

  Process* find(ProcessKind kind) {
    for (auto& p : processes)
      if (p.kind == kind) return &p;
    return nullptr;
  }
};

template <class T>
Experiment<T>::Experiment(Objective<T>& train, Evaluate evaluate_train, Evaluate evaluate_test, std::span<const T> w0,
                          const ExperimentSettings& settings)
    : state_(std::make_unique<State>(train, std::move(evaluate_train), std::move(evaluate_test), w0, settings)) {}

template <class T>
Experiment<T>::~Experiment() = default;

template <class T>
StepRecord Experiment<T>::step() {
  CFLOW_NVTX_RANGE("step");
  State& s = *state_;
  typename State::Context& c = s.context;
  c.step = s.steps;
  StepRecord record;
  record.step = s.steps + c.settings.warm_start;
  for (auto& process : s.processes) {
    CFLOW_NVTX_RANGE(to_string(process.kind).c_str());
    try {
      record.processes.emplace_back(process.kind, process.prepare(c));
    } catch (const Error& e) {  // e.g. an eigen-solve on an overflowing trajectory: stop this process only
      process.stop("step " + std::to_string(c.step) + ": " + e.what());
      ProcessRecord stopped;
      stopped.stopped = true;
      record.processes.emplace_back(process.kind, stopped);
    }
  }
  // Distances between every pair of processes at time t, names sorted as in the reference.
  Buffer<T> difference(c.dev, c.d);
  for (std::size_t a = 0; a < s.processes.size(); ++a)
    for (std::size_t b = a + 1; b < s.processes.size(); ++b) {
      std::string first = to_string(s.processes[a].kind), second = to_string(s.processes[b].kind);
      if (second < first) std::swap(first, second);
      blas::copy<T>(c.dev, c.d, s.processes[a].position(), difference.data());
      blas::axpy<T>(c.dev, c.d, T(-1), s.processes[b].position(), difference.data());
      record.distances.emplace_back(first + "-" + second, double(blas::nrm2<T>(c.dev, c.d, difference.data())));
    }
  // deltas = (UQ)ᵀ P (w_discrete − w_central) along the central flow's Σ eigenvectors.
  auto* discrete = s.find(ProcessKind::discrete);
  auto* central = s.find(ProcessKind::central);
  if (discrete && central && !central->stopped && central->direction_count > 0) {
    blas::copy<T>(c.dev, c.d, discrete->w.data(), difference.data());
    blas::axpy<T>(c.dev, c.d, T(-1), central->w.data(), difference.data());
    CFLOW_DISPATCH(c.dev, scale_rows<T>, c.dev, c.d, 1, central->p.data(), difference.data(), difference.data());
    Buffer<T> deltas(c.dev, central->direction_count);
    blas::gemv<T>(c.dev, blas::Op::T, c.d, central->direction_count, T(1), central->directions.data(), c.d,
                  difference.data(), T(0), deltas.data());
    const auto host = deltas.to_host();
    record.deltas.assign(host.begin(), host.end());
  }
  for (auto& process : s.processes) process.commit();
  ++s.steps;
  return record;
}

template <class T> std::int64_t Experiment<T>::steps_done() const { return state_->steps; }
template <class T> const ExperimentSettings& Experiment<T>::settings() const { return state_->context.settings; }
template <class T> int Experiment<T>::max_tracked() const {
  return int(std::min<index_t>(state_->context.settings.eig.k_max, state_->context.d));
}

template <class T>
std::vector<ProcessStatus> Experiment<T>::status() const {
  std::vector<ProcessStatus> out;
  for (const auto& p : state_->processes) out.push_back({p.kind, p.stopped, p.reason});
  return out;
}

template <class T>
Checkpoint Experiment<T>::checkpoint() const {
  Checkpoint cp;
  cp.step = state_->steps;
  auto add = [&](const std::string& name, std::vector<double> values) { cp.arrays.emplace_back(name, std::move(values)); };
  auto host = [](const Buffer<T>& b) {
    const auto v = b.to_host();
    return std::vector<double>(v.begin(), v.end());
  };
  for (const auto& p : state_->processes) {
    const std::string name = to_string(p.kind) + "/";
    add(name + "w", host(p.w));
    add(name + "t", {p.state.t()});
    add(name + "nu", host(p.state.nu()));
    add(name + "stopped", {p.stopped ? 1.0 : 0.0});
    add(name + "has_prev", {p.has_prev ? 1.0 : 0.0});
    if (p.kind == ProcessKind::midpoint) add(name + "w_prev", host(p.w_prev));
    const std::vector<std::pair<std::string, const EigenTracker<T>*>> trackers{
        {"eig", &p.tracker}, {"raw_eig", p.raw_tracker ? &*p.raw_tracker : nullptr}};
    for (const auto& [label, tracker] : trackers) {
      if (!tracker || !tracker->has_solution()) continue;
      const EigenTrackerSnapshot snap = tracker->snapshot();
      add(name + label + "/Y", snap.Y);
      add(name + label + "/eigenvalues", snap.eigenvalues);
      add(name + label + "/counters", {double(snap.target_k), double(snap.lobpcg_calls)});
    }
  }
  return cp;
}

template <class T>
void Experiment<T>::restore(const Checkpoint& cp) {
  std::map<std::string, const std::vector<double>*> arrays;
  for (const auto& [name, values] : cp.arrays) arrays[name] = &values;
  auto get = [&](const std::string& name) -> const std::vector<double>& {
    const auto it = arrays.find(name);
    if (it == arrays.end()) throw Error("checkpoint lacks '" + name + "' (was it written by another configuration?)");
    return *it->second;
  };
  auto load = [&](Buffer<T>& b, const std::string& name) {
    const auto& v = get(name);
    CFLOW_REQUIRE(index_t(v.size()) == b.size(), "checkpoint array '" + name + "' has the wrong size");
    const std::vector<T> t(v.begin(), v.end());
    b.upload(t);
  };
  for (auto& p : state_->processes) {
    const std::string name = to_string(p.kind) + "/";
    load(p.w, name + "w");
    p.state.set_t(get(name + "t").at(0));
    load(p.state.nu(), name + "nu");
    p.stopped = get(name + "stopped").at(0) != 0;
    if (p.stopped) p.reason = "stopped before the checkpoint";
    p.has_prev = get(name + "has_prev").at(0) != 0;
    if (p.kind == ProcessKind::midpoint) load(p.w_prev, name + "w_prev");
    const std::vector<std::pair<std::string, EigenTracker<T>*>> trackers{
        {"eig", &p.tracker}, {"raw_eig", p.raw_tracker ? &*p.raw_tracker : nullptr}};
    for (const auto& [label, tracker] : trackers) {
      if (!tracker || !arrays.count(name + label + "/Y")) continue;
      const auto& counters = get(name + label + "/counters");
      tracker->restore({get(name + label + "/Y"), get(name + label + "/eigenvalues"), std::int64_t(counters.at(0)),
                        std::int64_t(counters.at(1))});
    }
  }
  state_->steps = cp.step;
}

template class Experiment<float>;
template class Experiment<double>;

}  // namespace cflow
