// The processes loop (docs/design.md §6): every process computes what it logs at time t and its next state,
// the cross-process quantities are taken at time t, then every process commits its next state.
#include "cflow/flow/experiment.h"

#include <algorithm>
#include <map>
#include <optional>

#include "cflow/runtime/blas.h"
#include "cflow/runtime/nvtx.h"
#include "host/flow/process.h"
#include "host/runtime/lane_threads.h"
#include "kernels/flow.h"

namespace cflow {

ProcessKind parse_process(std::string_view name) { return parse_choice("process", name, kProcessChoices); }
std::string to_string(ProcessKind kind) { return choice_name(kind, kProcessChoices); }

template <class T>
struct Experiment<T>::State {
  ExperimentSettings settings;
  Device dev;  // the experiment's: the warm start and the cross-process quantities
  index_t d;
  bool lanes = false;  // every process on its own lane of dev (docs/design.md §7.10)
  std::vector<Oracles> oracles;                               // per process (the same ones without lanes)
  std::vector<std::unique_ptr<ProcessContext<T>>> contexts;  // per process, on its device
  std::vector<std::unique_ptr<Process<T>>> processes;
  std::optional<LaneThreads> threads;  // settings.overlap: the host threads that run the processes
  std::int64_t steps = 0;

  // oracles_on(device) gives each process its oracles: on a lane of f's device with `lanes`, else f's.
  State(Objective<T>& f, const OraclesOn& oracles_on, bool use_lanes, std::span<const T> w0, const ExperimentSettings& s)
      : settings(s), dev(f.device()), d(f.dim()), lanes(use_lanes) {
    CFLOW_REQUIRE(index_t(w0.size()) == d, "initial parameters of the wrong size");
    CFLOW_REQUIRE(s.eig.frequency >= 1 && s.flow.central_nsubsteps >= 1 && s.flow.stable_min_nsubsteps >= 1,
                  "eigen frequency and substep counts must be positive");
    for (const auto& [kind, e] : s.process_eig)
      CFLOW_REQUIRE(e.frequency >= 1, "the eigen frequency of " + to_string(kind) + " must be positive");
    CFLOW_REQUIRE(!s.processes.empty(), "no process to run");
    CFLOW_REQUIRE(!s.overlap || lanes, "overlapping processes needs each process on its own lane (oracles per lane)");
    // Warm start: discrete steps before the processes branch.
    OptimizerState<T> state(dev, s.optimizer, d);
    Buffer<T> w(dev, w0), g(dev, d);
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
    const std::vector<T> start = w.to_host_pageable();
    dev.synchronize();  // the lanes copy the states: complete on this stream first
    std::vector<Device> lane_devices;
    for (ProcessKind kind : s.processes) {
      const Device on = lanes ? dev.lane(lane_threads()) : dev;
      oracles.push_back(oracles_on(on));
      CFLOW_REQUIRE(oracles.back().objective && oracles.back().objective->dim() == d,
                    "the oracles of a process must have the experiment's dimension");
      contexts.push_back(make_context(oracles.back(), on));
      const OptimizerState<T> branched(is_flow(kind) ? flow_state : state, on);
      processes.push_back(make_process(*contexts.back(), kind, std::span<const T>(start), branched));
      lane_devices.push_back(on);
    }
    if (s.overlap && processes.size() > 1) threads.emplace(std::move(lane_devices), lane_workers());
  }

  // A host thread per process on CUDA (each enqueues and waits on its own stream); on the CPU no more
  // threads than the device has (each lane then has one), taking the processes longest first.
  std::size_t lane_workers() const {
    if (dev.is_cuda()) return processes.size();
    return std::clamp<std::size_t>(std::size_t(std::max(1, dev.cpu_threads())), 1, processes.size());
  }

  // Under overlap the processes run at once and share the host's threads: each lane gets an equal
  // share, at least one (docs/design.md §7.10); in sequence each takes them all.
  int lane_threads() const {
    if (!settings.overlap) return 0;
    return std::max(1, dev.cpu_threads() / int(settings.processes.size()));
  }

  std::unique_ptr<ProcessContext<T>> make_context(const Oracles& o, const Device& on) const {
    std::vector<index_t> selected = selected_indices(d, settings.selected_coordinates);
    Buffer<index_t> on_device(on, std::span<const index_t>(selected));
    return std::make_unique<ProcessContext<T>>(ProcessContext<T>{CountingObjective<T>(*o.objective), o.evaluate_train,
                                                                 o.evaluate_test, settings, on, d, 0,
                                                                 std::move(on_device), std::move(selected), o.outputs});
  }

  // Process i's record at time t and its next state, on its device; an Error stops that process only
  // (e.g. an eigen-solve on an overflowing trajectory).
  ProcessRecord prepare(std::size_t i) {
    Process<T>& process = *processes[i];
    ProcessContext<T>& c = *contexts[i];
    c.step = steps;
    CFLOW_NVTX_RANGE(to_string(process.kind).c_str());
    try {
      const DeviceTraffic before = c.dev.traffic();
      ProcessRecord r = process.prepare(c);
      r.traffic = c.dev.traffic() - before;
      return r;
    } catch (const Error& e) {
      process.stop("step " + std::to_string(c.step) + ": " + user_message(e));
      ProcessRecord stopped;
      stopped.stopped = true;
      return stopped;
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
                          const ExperimentSettings& settings) {
  const Oracles shared{std::shared_ptr<Objective<T>>(&train, [](Objective<T>*) {}), std::move(evaluate_train),
                       std::move(evaluate_test), {}};
  state_ = std::make_unique<State>(train, [&](const Device&) { return shared; }, false, w0, settings);
}

template <class T>
Experiment<T>::Experiment(Objective<T>& train, const OraclesOn& oracles_on, std::span<const T> w0,
                          const ExperimentSettings& settings)
    : state_(std::make_unique<State>(train, oracles_on, true, w0, settings)) {}

template <class T>
Experiment<T>::~Experiment() = default;

template <class T>
void Experiment<T>::record_outputs(Outputs outputs) {
  // One callback for every process reads on one stream: with lanes each process has its own.
  CFLOW_REQUIRE(!state_->lanes, "record_outputs: with lanes, each process's outputs come with its Oracles");
  for (auto& context : state_->contexts) context->outputs = outputs;
}

template <class T>
StepRecord Experiment<T>::step() {
  CFLOW_NVTX_RANGE("step");
  State& s = *state_;
  const Device& dev = s.dev;
  const index_t d = s.d;
  StepRecord record;
  record.step = s.steps + s.settings.warm_start;
  std::vector<ProcessRecord> records(s.processes.size());
  const std::function<void(std::size_t)> prepare = [&](std::size_t i) { records[i] = s.prepare(i); };
  if (s.threads) {
    s.threads->run(prepare);
  } else {
    for (std::size_t i = 0; i < s.processes.size(); ++i) prepare(i);
  }
  for (std::size_t i = 0; i < s.processes.size(); ++i) record.processes.emplace_back(s.processes[i]->kind, std::move(records[i]));
  // The cross-process quantities read every process's buffers on dev's stream: each lane's work first.
  // They end in reads to the host (nrm2, the deltas), so dev is idle again before a lane next writes.
  if (s.lanes)
    for (auto& context : s.contexts) context->dev.synchronize();
  // Distances between every pair of processes at time t, names sorted as in the reference; NaN (not
  // logged) once either has no record at t (it stopped): its point is frozen where it stopped.
  Buffer<T> difference(dev, d);
  for (std::size_t a = 0; a < s.processes.size(); ++a)
    for (std::size_t b = a + 1; b < s.processes.size(); ++b) {
      std::string first = to_string(s.processes[a]->kind), second = to_string(s.processes[b]->kind);
      if (second < first) std::swap(first, second);
      if (record.processes[a].second.stopped || record.processes[b].second.stopped) {
        record.distances.emplace_back(first + "-" + second, kNotLogged);
        continue;
      }
      blas::copy<T>(dev, d, s.processes[a]->position(), difference.data());
      blas::axpy<T>(dev, d, T(-1), s.processes[b]->position(), difference.data());
      record.distances.emplace_back(first + "-" + second, double(blas::nrm2<T>(dev, d, difference.data())));
    }
  // deltas = (UQ)ᵀ P (w_discrete − w_central) along the central flow's Σ eigenvectors.
  auto* discrete = s.find(ProcessKind::discrete);
  auto* central = s.find(ProcessKind::central);
  const SigmaDirections<T> directions = central ? central->sigma_directions() : SigmaDirections<T>{};
  if (discrete && central && !central->stopped && directions.count > 0) {
    blas::copy<T>(dev, d, discrete->w.data(), difference.data());
    blas::axpy<T>(dev, d, T(-1), central->w.data(), difference.data());
    CFLOW_DISPATCH(dev, scale_rows<T>, dev, d, 1, central->p.data(), difference.data(), difference.data());
    Buffer<T> deltas(dev, directions.count);
    blas::gemv<T>(dev, blas::Op::T, d, directions.count, T(1), directions.UQ, d, difference.data(), T(0),
                  deltas.data());
    const auto host = deltas.to_host();
    record.deltas.assign(host.begin(), host.end());
  }
  for (auto& process : s.processes) process->commit();
  ++s.steps;
  return record;
}

template <class T> std::int64_t Experiment<T>::steps_done() const { return state_->steps; }
template <class T> const ExperimentSettings& Experiment<T>::settings() const { return state_->settings; }
template <class T> int Experiment<T>::max_tracked() const {
  return int(std::min<index_t>(state_->settings.eig.k_max, state_->d));
}
template <class T> typename Experiment<T>::Threads Experiment<T>::threads() const {
  const State& s = *state_;  // every process's device has the same count: its lane's, or the experiment's
  return {s.contexts.front()->dev.cpu_threads(), s.threads ? int(s.lane_workers()) : 1};
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
    const auto v = b.to_host_pageable();
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
  for (std::size_t i = 0; i < state_->processes.size(); ++i) {
    Process<T>& p = *state_->processes[i];
    ProcessContext<T>& c = *state_->contexts[i];
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
