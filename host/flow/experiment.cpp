// The processes loop (docs/design.md §6): every process computes what it logs at time t and its next state,
// the cross-process quantities are taken at time t, then every process commits its next state.
#include "cflow/flow/experiment.h"

#include <algorithm>
#include <map>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "host/flow/process.h"
#include "kernels/flow.h"

namespace cflow {

ProcessKind parse_process(std::string_view name) { return parse_choice("process", name, kProcessChoices); }
std::string to_string(ProcessKind kind) { return choice_name(kind, kProcessChoices); }

template <class T>
struct Experiment<T>::State {
  ProcessContext<T> context;
  std::vector<std::unique_ptr<Process<T>>> processes;
  std::int64_t steps = 0;

  State(Objective<T>& f, Evaluate train, Evaluate test, std::span<const T> w0, const ExperimentSettings& s)
      : context{CountingObjective<T>(f), std::move(train), std::move(test), s, f.device(), f.dim(), 0, {}, {}, {}} {
    CFLOW_REQUIRE(index_t(w0.size()) == context.d, "initial parameters of the wrong size");
    CFLOW_REQUIRE(s.eig.frequency >= 1 && s.flow.central_nsubsteps >= 1 && s.flow.stable_min_nsubsteps >= 1,
                  "eigen frequency and substep counts must be positive");
    for (const auto& [kind, e] : s.process_eig)
      CFLOW_REQUIRE(e.frequency >= 1, "the eigen frequency of " + to_string(kind) + " must be positive");
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
      processes.push_back(make_process(context, kind, std::span<const T>(start), is_flow(kind) ? flow_state : state));
    }
  }

  Process<T>* find(ProcessKind kind) {
    for (auto& p : processes)
      if (p->kind == kind) return p.get();
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
void Experiment<T>::record_outputs(Outputs outputs) {
  state_->context.outputs = std::move(outputs);
}

template <class T>
StepRecord Experiment<T>::step() {
  CFLOW_NVTX_RANGE("step");
  State& s = *state_;
  ProcessContext<T>& c = s.context;
  c.step = s.steps;
  StepRecord record;
  record.step = s.steps + c.settings.warm_start;
  for (auto& process_pointer : s.processes) {
    Process<T>& process = *process_pointer;
    CFLOW_NVTX_RANGE(to_string(process.kind).c_str());
    try {
      const DeviceTraffic before = c.dev.traffic();
      record.processes.emplace_back(process.kind, process.prepare(c));
      record.processes.back().second.traffic = c.dev.traffic() - before;
    } catch (const Error& e) {  // e.g. an eigen-solve on an overflowing trajectory: stop this process only
      process.stop("step " + std::to_string(c.step) + ": " + user_message(e));
      ProcessRecord stopped;
      stopped.stopped = true;
      record.processes.emplace_back(process.kind, stopped);
    }
  }
  // Distances between every pair of processes at time t, names sorted as in the reference.
  Buffer<T> difference(c.dev, c.d);
  for (std::size_t a = 0; a < s.processes.size(); ++a)
    for (std::size_t b = a + 1; b < s.processes.size(); ++b) {
      std::string first = to_string(s.processes[a]->kind), second = to_string(s.processes[b]->kind);
      if (second < first) std::swap(first, second);
      blas::copy<T>(c.dev, c.d, s.processes[a]->position(), difference.data());
      blas::axpy<T>(c.dev, c.d, T(-1), s.processes[b]->position(), difference.data());
      record.distances.emplace_back(first + "-" + second, double(blas::nrm2<T>(c.dev, c.d, difference.data())));
    }
  // deltas = (UQ)ᵀ P (w_discrete − w_central) along the central flow's Σ eigenvectors.
  auto* discrete = s.find(ProcessKind::discrete);
  auto* central = s.find(ProcessKind::central);
  const SigmaDirections<T> directions = central ? central->sigma_directions() : SigmaDirections<T>{};
  if (discrete && central && !central->stopped && directions.count > 0) {
    blas::copy<T>(c.dev, c.d, discrete->w.data(), difference.data());
    blas::axpy<T>(c.dev, c.d, T(-1), central->w.data(), difference.data());
    CFLOW_DISPATCH(c.dev, scale_rows<T>, c.dev, c.d, 1, central->p.data(), difference.data(), difference.data());
    Buffer<T> deltas(c.dev, directions.count);
    blas::gemv<T>(c.dev, blas::Op::T, c.d, directions.count, T(1), directions.UQ, c.d, difference.data(), T(0),
                  deltas.data());
    const auto host = deltas.to_host();
    record.deltas.assign(host.begin(), host.end());
  }
  for (auto& process : s.processes) process->commit();
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
  for (const auto& p : state_->processes) out.push_back({p->kind, p->stopped, p->reason});
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
  for (const auto& process : state_->processes) {
    const Process<T>& p = *process;
    const std::string name = to_string(p.kind) + "/";
    add(name + "w", host(p.w));
    add(name + "t", {p.state.t()});
    add(name + "nu", host(p.state.nu()));
    add(name + "stopped", {p.stopped ? 1.0 : 0.0});
    if (p.stopped) cp.notes[name + "reason"] = p.reason;
    add(name + "has_prev", {p.has_previous() ? 1.0 : 0.0});
    p.save_previous(cp.arrays, name + "w_prev");
    const std::vector<std::pair<std::string, const EigenTracker<T>*>> trackers{
        {"eig", &p.tracker}, {"raw_eig", p.raw_tracker ? &*p.raw_tracker : nullptr}};
    for (const auto& [label, tracker] : trackers) {
      if (!tracker || !tracker->has_solution()) continue;
      const EigenTrackerSnapshot snap = tracker->snapshot();
      add(name + label + "/Y", snap.Y);
      if (!snap.Y_previous.empty()) add(name + label + "/Y_previous", snap.Y_previous);
      add(name + label + "/eigenvalues", snap.eigenvalues);
      add(name + label + "/counters", {double(snap.target_k), double(snap.lobpcg_calls)});
    }
  }
  return cp;
}

template <class T>
void Experiment<T>::restore(const Checkpoint& cp, std::optional<ProcessKind> source) {
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
  ProcessContext<T>& c = state_->context;
  for (auto& process : state_->processes) {
    Process<T>& p = *process;
    const ProcessKind from = source.value_or(p.kind);
    const std::string name = to_string(from) + "/";
    load(p.w, name + "w");
    p.state.set_t(get(name + "t").at(0));
    load(p.state.nu(), name + "nu");
    p.stopped = get(name + "stopped").at(0) != 0;
    // Checkpoints written before the reasons were kept have none.
    const auto reason = cp.notes.find(name + "reason");
    if (p.stopped) p.reason = reason != cp.notes.end() ? reason->second : "stopped before the checkpoint";
    const bool has_prev = get(name + "has_prev").at(0) != 0;
    if (p.kind == ProcessKind::midpoint && from == ProcessKind::midpoint)
      p.restore_previous(has_prev, get(name + "w_prev"), name + "w_prev");
    if (is_flow(p.kind) && !is_flow(from)) {  // as the flows start (State's constructor)
      c.f.value_grad(p.w.data(), p.g.data());
      p.state.update(p.g.data());
    } else if (!is_flow(p.kind) && is_flow(from)) {
      p.state.set_t(p.state.t() - 1);  // the discrete count: the flow's t is one update ahead
    }
    const std::vector<std::pair<std::string, EigenTracker<T>*>> trackers{
        {"eig", &p.tracker}, {"raw_eig", p.raw_tracker ? &*p.raw_tracker : nullptr}};
    for (const auto& [label, tracker] : trackers) {
      if (!tracker || !arrays.count(name + label + "/Y")) continue;
      const auto& counters = get(name + label + "/counters");
      // Y_previous: absent in checkpoints written before the extrapolated warm starts (then the next
      // solve starts from Y alone).
      const std::vector<double> none;
      const std::vector<double>& Y_previous = arrays.count(name + label + "/Y_previous") ? get(name + label + "/Y_previous") : none;
      tracker->restore({get(name + label + "/Y"), Y_previous, get(name + label + "/eigenvalues"),
                        std::int64_t(counters.at(0)), std::int64_t(counters.at(1))});
    }
  }
  state_->steps = cp.step;
}

template class Experiment<float>;
template class Experiment<double>;

}  // namespace cflow
