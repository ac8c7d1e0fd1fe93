#pragma once
// The processes of docs/design.md §6 — the optimizer itself (discrete), its iterates seen at second-order
// midpoints (midpoint), the stable flow and the central flow — advancing side by side from one
// initialization, one unit of time per step(), all through one Objective and one OptimizerState type.
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cflow/engine/objective.h"
#include "cflow/runtime/choice.h"
#include "cflow/flow/central_flow.h"
#include "cflow/flow/optimizer.h"

namespace cflow {

enum class ProcessKind { discrete, midpoint, stable, central, stationary };
inline constexpr ChoiceTable<ProcessKind, 5> kProcessChoices{{{"discrete", ProcessKind::discrete},
                                                              {"central", ProcessKind::central},
                                                              {"stable", ProcessKind::stable},
                                                              {"midpoint", ProcessKind::midpoint},
                                                              {"stationary", ProcessKind::stationary}}};
ProcessKind parse_process(std::string_view name);  // throws cflow::Error naming the valid choices
std::string to_string(ProcessKind kind);
// The flows: they start from the state after one update with g(w₀) and log their Euler substeps.
inline bool is_flow(ProcessKind kind) {
  return kind == ProcessKind::stable || kind == ProcessKind::central || kind == ProcessKind::stationary;
}
// The flows that model the oscillation by an SDCP and log the central flow's predictions (§6.6).
inline bool models_oscillation(ProcessKind kind) {
  return kind == ProcessKind::central || kind == ProcessKind::stationary;
}

struct EigenSettings {
  int frequency = 1;             // a full LOBPCG solve every `frequency` steps, Rayleigh refreshes between
  int initial_k = 1;
  double track_threshold = 1.5;  // effective units: every eigenvalue above it is tracked
  int k_max = 20;
  double tolerance = 1e-8;       // LOBPCG relative residual
  int max_iterations = 100;
  bool raw_eigenvalues = true;   // also log eigenvalues of H itself (a second solve for rmsprop)
  bool track_discrete = true;    // false: the discrete and midpoint processes log no eigenvalues
};

struct FlowSettings {
  int central_nsubsteps = 4;
  index_t pair_group = 0;  // pairs of critical directions streamed at a time (0: all; central_flow.h)
  double sdcp_threshold = 1.95;  // critical set: effective eigenvalues above it
  int stable_min_nsubsteps = 4;
  double stable_max_seff = 100;  // the stable flow stops past this effective sharpness
  bool central_eig_every_substep = false;  // a full eigen-solve at every central substep, not once per step
  FixedPoint stationary;  // the stationary flow's ν = E[g⊙g] per substep (docs/design.md §6.9)
};

struct ExperimentSettings {
  OptimizerSpec optimizer;
  std::vector<ProcessKind> processes{ProcessKind::discrete, ProcessKind::central, ProcessKind::stable};
  int warm_start = 0;  // discrete steps taken before the processes branch
  EigenSettings eig;
  // Per-process eigen settings (frequency, initial_k, track_threshold, tolerance) that replace `eig`
  // for that process; k_max, max_iterations, raw_eigenvalues and track_discrete are eig's for all.
  std::vector<std::pair<ProcessKind, EigenSettings>> process_eig;
  FlowSettings flow;
  std::uint64_t seed = 0;  // eigen-solver start vectors
  int selected_coordinates = 25;
  // Wall-clock bound on each full eigen-solve and each SDCP solve: one that runs past it stops its
  // process with that reason (docs/design.md §5). Far above what a healthy run's solves take.
  double solver_max_seconds = 3600;
  // With lanes (Experiment's OraclesOn constructor): the processes' prepare() at once on host threads
  // (CUDA: one each; CPU: min(processes, threads), longest first), so one process's host waits
  // (LOBPCG's k×k read-backs, the SDCP) leave the device to the others (docs/design.md §7.10). The
  // records are the same bits either way.
  bool overlap = false;

  // `kind`'s eigen settings: its entry of process_eig, else eig.
  const EigenSettings& eig_of(ProcessKind kind) const {
    for (const auto& [k, e] : process_eig)
      if (k == kind) return e;
    return eig;
  }
};

inline constexpr double kNotLogged = std::numeric_limits<double>::quiet_NaN();

// The counts in ProcessRecord::work, in its order (the run log's <process>/work/<name> series).
inline constexpr const char* kWorkNames[] = {"gradients", "hvps", "quads", "jets", "lobpcg_iterations"};

// What one process reports at time t (before it advances). Central-only fields stay NaN/empty for
// the other processes.
struct ProcessRecord {
  double train_loss = kNotLogged, train_acc = kNotLogged, test_loss = kNotLogged, test_acc = kNotLogged;
  double grad_norm_sq = kNotLogged;
  std::vector<double> effective_eigs;  // tracked eigenvalues of P⁻¹H, descending
  std::vector<double> hessian_eigs;    // eigenvalues of H, descending
  StateSummary state;                  // opt.* summaries
  std::vector<double> grad_sq_selected;
  int substeps = 0;
  bool stopped = false;  // the process has stopped (diverged, or the stable flow past max S_eff)
  // central flow:
  double predicted_loss = kNotLogged, predicted_grad_norm_sq = kNotLogged, sigma_trace = kNotLogged;
  std::vector<double> predicted_variances;  // ξ: eigenvalues of X, descending
  std::vector<double> predicted_grad_sq_selected;
  double sdcp_residual = kNotLogged;
  // Where the step's time went (seconds): "grad_and_value", "eig", "d3", "sdcp", "total".
  std::vector<std::pair<std::string, double>> seconds;
  // The oracle work of the step (directions asked for, see CountingObjective), named as in kWorkNames.
  std::vector<std::pair<std::string, double>> work;
  // The network's outputs (logits) at the reported point on the examples of Experiment::record_outputs,
  // row-major [examples x classes]; empty when not recorded (docs/design.md §8).
  std::vector<double> outputs;
  // What the runtime did while this process computed its record and next state: its lane's counters
  // (with the shared-oracle constructor, its share of the one device's).
  DeviceTraffic traffic;
};

struct StepRecord {
  std::int64_t step = 0;
  std::vector<std::pair<ProcessKind, ProcessRecord>> processes;  // in ExperimentSettings order
  std::vector<std::pair<std::string, double>> distances;         // "a-b" (names sorted), ‖w_a − w_b‖
  std::vector<double> deltas;  // (UQ)ᵀP(w_discrete − w_central), when both run
};

struct ProcessStatus {
  ProcessKind kind;
  bool stopped = false;
  std::string reason;  // why it stopped, e.g. "loss is NaN at step 412"
};

// Everything needed to continue a run bit for bit: named host arrays and scalars.
struct Checkpoint {
  std::int64_t step = 0;
  std::vector<std::pair<std::string, std::vector<double>>> arrays;
  // Texts that must survive a resume, e.g. "stable/reason" → why that process stopped.
  std::map<std::string, std::string> notes;
};

template <class T>
class Experiment {
 public:
  using Evaluate = std::function<Evaluation(const T* w)>;
  // The network's outputs at a point on fixed examples, row-major [examples x classes] (host).
  using Outputs = std::function<std::vector<double>(const T* w)>;
  // What one process computes with, all on one device: the oracle, loss and accuracy at a point
  // (evaluate_test may be empty) and the outputs (may be empty). Shared: a lane's networks live as
  // long as the processes that use them.
  struct Oracles {
    std::shared_ptr<Objective<T>> objective;
    Evaluate evaluate_train, evaluate_test;
    Outputs outputs;
  };
  using OraclesOn = std::function<Oracles(const Device& lane)>;

  // train: the oracle; evaluate_train/evaluate_test: loss and accuracy at a point (evaluate_test may
  // be empty); w0: the initialization (host). Warm-start steps are taken here. Every process uses
  // these, in sequence, on train's device (settings.overlap must be off).
  Experiment(Objective<T>& train, Evaluate evaluate_train, Evaluate evaluate_test, std::span<const T> w0,
             const ExperimentSettings& settings);
  // Every process on its own lane of train.device() (Device::lane: its own stream, arena and traffic
  // counters) with oracles_on(lane); train takes the warm-start steps (docs/design.md §7.10).
  Experiment(Objective<T>& train, const OraclesOn& oracles_on, std::span<const T> w0,
             const ExperimentSettings& settings);
  ~Experiment();

  // Logs every process at the current time, then advances each by one unit of time.
  StepRecord step();
  std::int64_t steps_done() const;
  std::vector<ProcessStatus> status() const;
  const ExperimentSettings& settings() const;
  // Largest number of eigenvalues any process can track (columns of the eigenvalue datasets).
  int max_tracked() const;
  // How the processes step: the CPU threads each one's kernels and BLAS calls use (its bits depend on
  // it) and the host threads that run them (1 without overlap).
  struct Threads {
    int per_process = 1, host = 1;
  };
  Threads threads() const;

  // From the next step on, every process's record carries `outputs` at its reported point (for the
  // shared-oracle constructor; with lanes, Oracles::outputs).
  void record_outputs(Outputs outputs);

  Checkpoint checkpoint() const;
  // Continues from `checkpoint`: every process from its own saved state, or, with `source`, every
  // process from that process's state (branching, docs/design.md §8). A flow started from a discrete
  // or midpoint state first updates ν with the gradient there, as the flows do at the start; a
  // discrete or midpoint process started from a flow takes the flow's ν as its ν before its next update.
  void restore(const Checkpoint& checkpoint, std::optional<ProcessKind> source = std::nullopt);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cflow
