#include "host/run/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <utility>

#include "cflow/data/shard.h"
#include "cflow/engine/network.h"
#include "cflow/engine/sharded_objective.h"
#include "cflow/flow/experiment.h"
#include "cflow/run/log.h"
#include "cflow/runtime/comm.h"
#include "cflow/runtime/interrupt.h"
#include "cflow/runtime/nvtx.h"
#include "host/run/lane_oracles.h"
#include "host/run/memory_check.h"
#include "host/run/output.h"
#include "host/run/plots.h"
#include "host/run/progress.h"
#include "host/run/provenance.h"
#include "host/run/stop_signals.h"
#include "host/run/summary.h"
#include "host/run/traffic.h"

namespace cflow::run {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

template <class T>
std::vector<T> converted(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

json or_null(bool has, const json& value) { return has ? value : json(nullptr); }

// The one-screen header of a run on stdout.
void print_header(const RunConfig& c, const DataSplits& data, const std::string& model, index_t parameters,
                  const Device& dev, const std::filesystem::path& dir) {
  std::cout << "cflow run: " << dir.string() << "\n"
            << "  data       " << c.data << ": " << data.train.n << " training, "
            << (c.n_test == 0 ? std::string("no") : std::to_string(data.test.n)) << " test examples, classes "
            << c.classes << "\n"
            << "  model      " << model << ", " << parameters << " parameters\n"
            << "  optimizer  " << c.opt << ", lr " << c.lr << "\n"
            << "  processes  ";
  for (std::size_t i = 0; i < c.runs.size(); ++i) std::cout << (i ? ", " : "") << c.runs[i];
  std::cout << "; " << c.steps << " steps"
            << (c.warm_start ? " after " + std::to_string(c.warm_start) + " warm-start steps" : "") << "\n"
            << "  device     " << dev.description() << ", " << (c.is_float32() ? "float32" : "float64")
            << (c.tf32 && dev.is_cuda() ? " (TF32 GEMMs)" : "")
            << (c.device == "auto" && !dev.selection_note().empty() ? " (" + dev.selection_note() + ")" : "") << "\n";
}

// A stop reason a user understands: a non-finite loss, gradient or Hessian-vector product gets the
// stability limit 2/λ it crossed, from the last effective sharpness S = lr·λ measured before
// (docs/design.md §4).
std::string explained(const std::string& reason, double lr, std::optional<std::pair<std::int64_t, double>> last) {
  const bool overflow = reason.find("not finite") != std::string::npos || reason.find("non-finite") != std::string::npos;
  if (!overflow) return reason;
  char text[256];
  if (last && last->second > 0) {
    std::snprintf(text, sizeof text,
                  " (the run diverged: lr %g is past the stability limit 2/λ = %.3g, from the effective "
                  "sharpness %.3g measured at step %lld; lower --lr)",
                  lr, 2 * lr / last->second, last->second, static_cast<long long>(last->first));
  } else {
    std::snprintf(text, sizeof text, " (the run diverged before any sharpness was measured: lr %g is far past "
                  "the stability limit; lower --lr)", lr);
  }
  return reason + text;
}

// Only the rank that writes (rank 0 of a data-parallel run, docs/design.md §7) owns the run directory.
std::optional<RunLock> lock_if_writing(const std::filesystem::path& dir, bool create) {
  if (Communicator::world().rank() != 0) return std::nullopt;
  return RunLock::acquire(dir, create);
}

// One run from setup to summary, in precision T. In a data-parallel run every rank runs it on its
// shard of the examples and computes the same bits (docs/design.md §7), so every decision (the stop
// at divergence included) is the same on all ranks; only rank 0 (`writes_`) writes and prints, and
// the ranks agree on a stop signal at each step boundary.
template <class T>
class Runner {
 public:
  Runner(Plan& plan, const std::filesystem::path& dir, const std::function<std::string(const ModelSpec&)>& describe)
      : plan_(plan), c_(plan.config), dir_(dir), describe_(describe) {
    if (!writes_) c_.quiet = c_.no_plots = true;
  }

  int run() {
    StopSignals signals;  // from the start: an interrupt during start-up leaves no partial file
    allow_interrupt_within_steps(comm_.size() == 1);
    setup();
    write_config();
    if (!c_.quiet) print_start();
    loop();
    return finish();
  }

 private:
  void setup() {
    data_ = load_dataset(c_.data_spec());  // first: a missing data set fails fast
    dev_.emplace(Device::open(c_.device, c_.threads));
    c_.threads = dev_->cpu_threads();  // recorded, so a resumed run uses the same count (bitwise results)
    if (c_.tf32 && !dev_->use_tf32(true) && writes_)
      std::cerr << "note: --tf32 is ignored on the CPU backend (it has no TF32); the GEMMs run in full float32\n";
    spec_ = c_.model_spec(data_.train.shape());
    model_text_ = describe_(spec_);
    const Dataset train_shard = shard(data_.train, comm_.rank(), comm_.size());
    check_memory_on_every_rank(
        run_examples(c_, double(train_shard.n), double(shard_range(data_.test.n, comm_.rank(), comm_.size()).count)));
    train_n_ = index_t(train_shard.n);
    train_.emplace(network_of(train_shard));
    if (c_.n_test != 0) {
      const Dataset test_shard = shard(data_.test, comm_.rank(), comm_.size());
      test_n_ = index_t(test_shard.n);
      test_.emplace(network_of(test_shard));
    }
    objective_.emplace(*train_, train_n_, index_t(data_.train.n), comm_);
    // --log-outputs K: each process's logits on the first K training examples, by one forward of a
    // network that holds just those examples; K x classes values cross to the host (docs/design.md §8).
    // Every rank loads the whole training set before taking its shard and holds the whole w, so in a
    // data-parallel run the writing rank computes them alone, whichever shards the K examples are on.
    if (c_.log_outputs > 0 && writes_)
      probe_ = std::make_shared<Network<T>>(network_of(examples_in(data_.train, {0, std::size_t(c_.log_outputs)})));
    settings_ = c_.experiment_settings();
    settings_.overlap = overlaps(c_.overlap_processes, comm_.size());
    const std::vector<T> w0 = train_->initial_parameters(c_.seed);
    if (comm_.size() == 1) {
      const RunNetworks<T> networks{&*train_, test_ ? &*test_ : nullptr, probe_.get()};
      experiment_.emplace(*objective_, [networks](const Device& lane) { return networks.on(lane); }, w0, settings_);
      return;
    }
    // Several ranks: the collectives of one communicator must not be issued from several threads, so
    // the processes share the sharded objective and run in sequence on one stream (docs/design.md §7.10).
    typename Experiment<T>::Evaluate evaluate_train = [this](const T* w) {
      return combine_shards(comm_, train_->evaluate(w), train_n_, index_t(data_.train.n));
    };
    typename Experiment<T>::Evaluate evaluate_test;
    if (test_)
      evaluate_test = [this](const T* w) {
        return combine_shards(comm_, test_->evaluate(w), test_n_, index_t(data_.test.n));
      };
    experiment_.emplace(*objective_, evaluate_train, evaluate_test, w0, settings_);
    if (probe_) experiment_->record_outputs(outputs_of<T>(probe_));
  }

  // --overlap-processes: auto is on with one rank, on either backend. On the CPU the processes then
  // split the threads (Experiment: each lane max(1, threads / processes)): on this project's 2 cores
  // the default run's step is faster than one team of 2 running every process in turn, and it does
  // not stall when another job shares the cores (docs/design.md §7.10).
  static bool overlaps(const std::string& choice, int ranks) {
    if (choice == "on" && ranks > 1)
      throw ConfigError("--overlap-processes on: a data-parallel run (" + std::to_string(ranks) +
                        " ranks) steps its processes in sequence (one communicator, one thread); use auto or off");
    return choice == "on" || (choice == "auto" && ranks == 1);
  }

  // Before the networks allocate: the processes' parameter-sized vectors (process_copies) and the
  // networks over this rank's `examples`. The machines of a data-parallel run may differ, so the
  // ranks agree: when one lacks the memory, all stop (exit 2).
  void check_memory_on_every_rank(const RunExamples& passed) {
    std::string error;
    try {
      const double bytes = run_bytes(c_, spec_, passed, comm_.size()), limit = memory_limit_bytes();
      const std::string hint = bytes <= limit ? "" : fit_hint(c_, spec_, passed, limit);
      check_memory(bytes, "the model and its processes", "--width, --n (or set --chunk), --eig-max-k or --runs", hint);
    } catch (const ConfigError& e) {
      error = e.what();
    }
    if (comm_.all_reduce_max(!error.empty()) != 0)
      throw ConfigError(error.empty() ? "another rank of this run lacks the memory for it (its message says how much)"
                                      : error);
  }

  Network<T> network_of(const Dataset& examples) const {
    NetworkOptions options;
    options.chunk = c_.chunk;
    return Network<T>(*dev_, spec_, converted<T>(examples.inputs), converted<T>(make_targets(examples, spec_.loss)),
                      converted<T>(counted_positions(examples)), options);
  }

  // config.json: a new run's, or the resumed run's with this resume appended.
  void write_config() {
    if (plan_.resume) {
      const nlohmann::json& meta = plan_.checkpoint->meta;
      if (writes_ && (meta.value("backend", std::string()) != (dev_->is_cuda() ? "cuda" : "cpu") ||
                      meta.value("cpu_threads", 0) != dev_->cpu_threads())) {
        std::cerr << "warning: the checkpoint was written on " << meta.value("device", std::string("?"))
                  << "; continuing on " << dev_->description()
                  << ": the rest of the run will not be bitwise identical to an uninterrupted one\n";
      }
      experiment_->restore(plan_.checkpoint->checkpoint);
      config_json_ = plan_.config_json;
      config_json_["resumes"].push_back({{"from_step", plan_.checkpoint->checkpoint.step},
                                         {"checkpoint", plan_.checkpoint->file.filename().string()},
                                         {"at", local_time("%Y-%m-%dT%H:%M:%S%z")},
                                         {"command", plan_.command},
                                         {"device", dev_->description()}});
      previous_wall_time_ = previous_wall_time();
      last_checkpoint_ = experiment_->steps_done();
    } else {
      config_json_ = new_config_json(c_, *dev_, model_text_, spec_.classes, data_, train_->dim(), plan_.command);
      config_json_["ranks"] = comm_.size();
      if (plan_.origin) start_from_origin(*plan_.origin);
    }
    first_row_step_ = first_row_step(config_json_);
    c_.eig_tol = c_.eig_tolerance();
    config_json_["settings"] = to_json(c_);
    if (writes_) write_text_atomically(dir_ / "config.json", config_json_.dump(2) + "\n");
    checkpoint_meta_ = {{"cflow_version", CFLOW_VERSION},
                        {"precision", c_.is_float32() ? "float32" : "float64"},
                        {"backend", dev_->is_cuda() ? "cuda" : "cpu"},
                        {"cpu_threads", dev_->cpu_threads()},
                        {"device", dev_->description()},
                        {"ranks", comm_.size()}};
    checkpoint_meta_.update(checkpoint_identity(c_));
    layout_ = series_layout(settings_, experiment_->max_tracked(),
                            c_.log_outputs > 0 ? outputs_shape(spec_, c_.log_outputs) : std::vector<std::int64_t>{});
    if (plan_.resume && writes_) {
      log_.emplace(RunLog::open_existing(dir_ / kRunLogFileName));
      if (log_->steps() < c_.steps - first_row_step_) log_->grow(c_.steps - first_row_step_);
      declare(*log_, layout_);
      log_->set_attribute("config", config_json_.dump());
    }
  }

  // A branched run: every process from the origin's checkpoint, the origin in config.json.
  void start_from_origin(const Origin& origin) {
    experiment_->restore(origin.checkpoint.checkpoint, origin.process);
    config_json_["origin"] = {{"dir", origin.dir.string()},
                              {"step", origin.checkpoint.checkpoint.step},
                              {"checkpoint", origin.checkpoint.file.filename().string()},
                              {"process", origin.process ? to_string(*origin.process) : std::string(kOwnProcess)},
                              {"settings_digest", origin.checkpoint.meta.value("settings_digest", json(nullptr))}};
  }

  double previous_wall_time() const {
    std::error_code ec;
    if (!std::filesystem::exists(dir_ / "summary.json", ec)) return 0;
    try {
      return read_json(dir_ / "summary.json").value("total_wall_time_s", 0.0);
    } catch (const Error&) {
      return 0;
    }
  }

  void print_start() const {
    print_header(c_, data_, model_text_, train_->dim(), *dev_, dir_);
    if (plan_.resume)
      std::cout << "  resuming   after " << experiment_->steps_done() << " steps ("
                << plan_.checkpoint->file.filename().string() << ")\n";
    if (plan_.origin)
      std::cout << "  branching  from " << plan_.origin->dir.string() << " at step " << experiment_->steps_done()
                << " (" << plan_.origin->checkpoint.file.filename().string() << "), "
                << (plan_.origin->process ? "every process from " + to_string(*plan_.origin->process) + "'s state"
                                          : std::string("each process from its own state"))
                << "\n";
    if (plan_.resume && experiment_->steps_done() >= c_.steps)
      std::cout << "the run already has all its " << c_.steps << " steps; raise --steps to continue it\n";
    std::cout << std::flush;
  }

  // data.h5: a new run creates it after its first step, whose record gives the first step number
  // (after any warm start) and the names of the optimizer's summaries; a resumed run reopened it.
  void start_log(const StepRecord& record) {
    const std::int64_t row = experiment_->steps_done() - 1 - first_row_step_;
    const std::filesystem::path file = dir_ / kRunLogFileName;
    if (!log_) {
      log_.emplace(RunLog::create(file, c_.steps - first_row_step_, record.step - row));
      declare(*log_, layout_);
      log_->set_attribute("config", config_json_.dump());
    } else if (record.step - log_->first_step() != row) {
      throw Error(file.string() + ": starts at step " + std::to_string(log_->first_step()) +
                  ", which does not fit the checkpoint (step " + std::to_string(record.step) + " is its row " +
                  std::to_string(row) + ")");
    }
    declare(*log_, state_layout(record));
    log_->start_swmr();
  }

  void save_checkpoint(const Checkpoint& checkpoint) {
    if (log_) log_->flush();
    if (writes_) write_checkpoint(dir_ / kCheckpointFolder, checkpoint, checkpoint_meta_, 2, c_.checkpoint_steps);
    last_checkpoint_ = checkpoint.step;
  }

  bool chosen(std::int64_t step) const {
    return std::binary_search(c_.checkpoint_steps.begin(), c_.checkpoint_steps.end(), step);
  }

  // The newest checkpoint, relative to the run directory (null when none was written).
  json checkpoint_name() const {
    if (last_checkpoint_ < 0) return nullptr;
    return std::string(kCheckpointFolder) + "/" +
           checkpoint_path(dir_ / kCheckpointFolder, last_checkpoint_).filename().string();
  }

  // Warnings for processes that stopped in this step; true when every process has stopped.
  bool note_stops(const StepRecord& record, Progress& progress) {
    for (const auto& [kind, p] : record.processes)
      if (!p.stopped && !p.effective_eigs.empty() && std::isfinite(p.effective_eigs.front()))
        last_sharpness_.insert_or_assign(kind, std::pair(record.step, p.effective_eigs.front()));
    bool all_stopped = true;
    for (const ProcessStatus& s : experiment_->status()) {
      all_stopped = all_stopped && s.stopped;
      if (!s.stopped || reasons_.count(s.kind)) continue;
      const auto last = last_sharpness_.find(s.kind);
      reasons_[s.kind] = explained(s.reason, c_.lr,
                                   last == last_sharpness_.end() ? std::nullopt : std::optional(last->second));
      if (writes_) progress.message("warning: " + to_string(s.kind) + " stopped: " + reasons_[s.kind]);
    }
    return all_stopped;
  }

  void log_step(const StepRecord& record, Progress& progress, std::optional<StepWriter>& writer) {
    if (!writer) {
      start_log(record);
      writer.emplace(*log_);
    }
    writer->write(record);
    for (const std::string& path : writer->take_undeclared())
      progress.message("warning: " + path + " is not in data.h5 (it appeared after the first step); not logged");
  }

  // The ranks stop together: at the first step boundary where any of them has a signal.
  bool stop_requested() { return comm_.all_reduce_max(interrupt_requested()) != 0; }

  // --profile-steps A:B: the capture range opens before step A and closes after step B, or when the
  // loop ends first.
  void profile(std::int64_t step, bool before) {
    if (before && step == c_.profile_first && !profiling_) {
      profiling_ = profiler_capture(*dev_, true);
      if (!profiling_ && writes_)
        std::cerr << "note: --profile-steps is ignored on the CPU backend (there is no CUDA profiler to start); "
                     "the per-phase times are in data.h5 (<process>/times/*)\n";
    }
    if (!before && profiling_ && (step < 0 || step == c_.profile_last)) profiling_ = !profiler_capture(*dev_, false);
  }

  void one_step(Progress& progress, std::optional<StepWriter>& writer, Clock::time_point& last_flush) {
    const std::int64_t step = experiment_->steps_done();
    profile(step, true);
    const StepRecord record = experiment_->step();
    profile(step, false);
    traffic_.add(record);
    if (writes_) log_step(record, progress, writer);
    if (note_stops(record, progress)) status_ = "diverged";
    const std::int64_t done = experiment_->steps_done();
    progress.update(done, record);
    if (log_ && Clock::now() - last_flush > std::chrono::seconds(1)) {
      log_->flush();
      last_flush = Clock::now();
    }
    if (starting_point_) save_checkpoint(*std::exchange(starting_point_, std::nullopt));
    if (((c_.checkpoint_every > 0 && done % c_.checkpoint_every == 0) || chosen(done)) && done < c_.steps)
      save_checkpoint(experiment_->checkpoint());
  }

  void loop() {
    session_first_ = experiment_->steps_done();
    // A chosen step where the session starts (--checkpoint-steps 0: the initial point w0, to branch
    // from) is taken now and written after the first step, once data.h5 exists: a checkpoint without
    // data.h5 could not be resumed (docs/design.md §7.6).
    if (chosen(session_first_) && last_checkpoint_ != session_first_) starting_point_ = experiment_->checkpoint();
    Progress progress(!c_.quiet, 0, c_.steps, session_first_);
    std::optional<StepWriter> writer;
    auto last_flush = Clock::now();
    std::int64_t session_steps = 0;
    try {
      while (experiment_->steps_done() < c_.steps && !stop_requested() && status_ != "diverged") {
        one_step(progress, writer, last_flush);
        if (plan_.crash_after > 0 && ++session_steps >= plan_.crash_after) std::_Exit(kTestCrashExit);
      }
      profile(-1, false);
      progress.end_line();
      if (experiment_->steps_done() < c_.steps && status_ != "diverged") status_ = "interrupted";
      // No checkpoint when this session did no step: a new run stopped before its first step would
      // otherwise leave a checkpoint without data.h5 (made after the first step), which a resume (or
      // `cflow sweep`, which resumes every point with a checkpoint) cannot continue.
      const std::int64_t done = experiment_->steps_done();
      if (last_checkpoint_ != done && done > session_first_) save_checkpoint(experiment_->checkpoint());
      if (log_) log_->close();
      stop_signal_ = comm_.all_reduce_max(interrupt_requested());
    } catch (const Interrupted&) {
      // Inside a step (an eigen-solve): its state is half-way, so no checkpoint; a resume repeats
      // the steps after the last one.
      progress.end_line();
      status_ = "interrupted";
      stop_signal_ = interrupt_requested();
      if (log_) log_->close();
    } catch (const std::exception& e) {
      progress.end_line();
      record_failure(e);
      throw;
    }
  }

  // Keep what was logged: close the log (flushing it) and say in summary.json what happened.
  void record_failure(const std::exception& e) {
    if (!writes_) return;
    try {
      if (log_) log_->close();
    } catch (const std::exception&) {
    }
    const json failed{{"status", "failed"},
                      {"error", e.what()},
                      {"steps_done", experiment_->steps_done()},
                      {"steps", c_.steps},
                      {"checkpoint", checkpoint_name()}};
    try {
      write_text_atomically(dir_ / "summary.json", failed.dump(2) + "\n");
    } catch (const std::exception&) {
    }
    std::cerr << "cflow run: kept in " << dir_.string() << ": data.h5 up to the last flush"
              << (last_checkpoint_ >= 0 ? ", checkpoint " + std::string(checkpoint_name().template get<std::string>()) +
                                              "; once the cause is fixed (e.g. free disk space) continue with: "
                                              "cflow run --resume " + dir_.string()
                                        : "; no checkpoint yet: start the run again")
              << "\n";
  }

  json summary(double wall) {
    const std::int64_t done = experiment_->steps_done(), rows = done - first_row_step_;
    const std::filesystem::path file = dir_ / kRunLogFileName;
    json s = log_ ? summarize(file, settings_.processes, rows) : json::object();
    if (log_ && rows > 0) write_smoothed_series(file, rows, experiment_->max_tracked());
    s["status"] = status_;
    s["steps_done"] = done;
    s["steps"] = c_.steps;
    s["first_step"] = or_null(bool(log_), log_ ? json(log_->first_step()) : json());
    json processes = json::object();
    for (const ProcessStatus& st : experiment_->status())
      processes[to_string(st.kind)] = {{"stopped", st.stopped},
                                       {"reason", reasons_.count(st.kind) ? reasons_[st.kind] : st.reason}};
    s["processes"] = processes;
    s["wall_time_s"] = wall;
    s["total_wall_time_s"] = previous_wall_time_ + wall;
    const std::int64_t session_done = done - session_first_;
    s["steps_per_s"] = or_null(wall > 0 && session_done > 0, double(session_done) / wall);
    s["resumed_from_step"] = or_null(plan_.resume, session_first_);
    s["interrupted_by"] = or_null(stop_signal_ != 0, stop_signal_ == SIGINT ? "SIGINT" : "SIGTERM");
    s["checkpoint"] = checkpoint_name();
    s["device_traffic"] = traffic_.json();
    const auto threads = experiment_->threads();
    s["threads"] = {{"per_process", threads.per_process}, {"host", threads.host}};
    return s;
  }

  int finish() {
    const double wall = std::chrono::duration<double>(Clock::now() - start_).count();
    const json s = summary(wall);
    if (writes_) write_text_atomically(dir_ / "summary.json", s.dump(2) + "\n");
    if (!c_.quiet) {
      std::cout << "\n";
      print_summary(std::cout, s);
      if (c_.verbose) traffic_.print(std::cout);
      std::cout << "run directory: " << dir_.string() << "\n";
    }
    if (stop_signal_ != 0) {
      if (writes_)
        std::cerr << "cflow run: stopped after " << experiment_->steps_done() << " of " << c_.steps << " steps"
                << (last_checkpoint_ >= 0 ? "; continue from step " + std::to_string(last_checkpoint_) +
                                                " with: cflow run --resume " + dir_.string()
                                          : "; it has no checkpoint yet: start it again in another --out")
                << "\n";
      return 128 + stop_signal_;
    }
    if (status_ == "diverged" && writes_) {
      std::cerr << "cflow run: every process stopped at step " << experiment_->steps_done()
                << " (status diverged; the reasons are above and in summary.json)\n";
    }
    if (!c_.no_plots) make_plots(dir_, c_.quiet);
    return status_ == "diverged" ? kExitDiverged : kExitDone;
  }

  Communicator& comm_ = Communicator::world();
  const bool writes_ = comm_.rank() == 0;
  Plan& plan_;
  RunConfig& c_;
  std::filesystem::path dir_;
  const std::function<std::string(const ModelSpec&)>& describe_;
  std::string model_text_;
  const Clock::time_point start_ = Clock::now();
  DataSplits data_;
  std::optional<Device> dev_;
  bool profiling_ = false;  // between cudaProfilerStart and cudaProfilerStop (--profile-steps)
  ModelSpec spec_;
  std::optional<Network<T>> train_, test_;  // this rank's shards
  index_t train_n_ = 0, test_n_ = 0;         // their examples
  std::optional<ShardedObjective<T>> objective_;
  std::shared_ptr<Network<T>> probe_;  // the first --log-outputs training examples (writing rank only)
  ExperimentSettings settings_;
  std::optional<Experiment<T>> experiment_;
  json config_json_;
  nlohmann::json checkpoint_meta_;
  std::vector<SeriesSpec> layout_;
  std::optional<RunLog> log_;
  double previous_wall_time_ = 0;
  std::int64_t last_checkpoint_ = -1, session_first_ = 0;
  std::optional<Checkpoint> starting_point_;  // a --checkpoint-steps step at session_first_, until data.h5 exists
  std::int64_t first_row_step_ = 0;  // the step count at data.h5's first row (a branched run's origin step)
  std::string status_ = "completed";
  int stop_signal_ = 0;  // the signal the ranks agreed to stop on, or 0
  std::map<ProcessKind, std::pair<std::int64_t, double>> last_sharpness_;  // the newest finite one, for explained()
  std::map<ProcessKind, std::string> reasons_;
  TrafficMeter traffic_;  // steady-state device traffic per process (summary.json, --verbose)
};

}  // namespace

std::filesystem::path Session::directory(const SessionRequest& request) {
  if (!request.config) return request.resume_dir;
  return request.config->out.empty() ? std::filesystem::path(default_run_dir())
                                      : std::filesystem::path(request.config->out);
}

Session::Session(SessionRequest request)
    : dir_(directory(request)), lock_(lock_if_writing(dir_, request.config.has_value())) {
  if (request.config) {
    request.config->out = dir_.string();
    plan_ = plan_new(std::move(*request.config));
  } else {
    plan_ = plan_resume(dir_, request.given);
  }
  plan_.command = std::move(request.command);
  plan_.crash_after = request.crash_after;
  describe_model_ = std::move(request.describe_model);
}

int Session::run() {
  if (plan_.config.is_float32()) return Runner<float>(plan_, dir_, describe_model_).run();
  return Runner<double>(plan_, dir_, describe_model_).run();
}

}  // namespace cflow::run
