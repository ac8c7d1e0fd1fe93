// `cflow run`: an optimizer and its central flow (and the stable flow, and midpoints) side by side,
// logged into a run directory:
//   config.json    every resolved setting, cflow version, git commit, device, precision, resumes
//   data.h5        the time series (host/run/output.h), SWMR: readable by h5py while the run goes
//   checkpoints/   step-<step>.ckpt (host/run/checkpoint.h), the newest two
//   summary.json   the run's numbers (host/run/summary.h), status, per-process status, wall time
//   plots/, report.html   from python/cflow_plot.py (unless --no-plots)
// Exit status: 0 done; 1 an error (a missing data set, a failed device call); 2 bad usage;
// 130 (143) interrupted by SIGINT (SIGTERM) after flushing the log and writing a checkpoint.
#include <fcntl.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "cflow/data/dataset.h"
#include "cflow/data/shard.h"
#include "cflow/flow/experiment.h"
#include "cflow/engine/network.h"
#include "cflow/engine/sharded_objective.h"
#include "cflow/run/log.h"
#include "cflow/runtime/comm.h"
#include "host/run/checkpoint.h"
#include "host/cli/cli.h"
#include "host/cli/model_flags.h"
#include "host/run/config.h"
#include "host/run/output.h"
#include "host/run/summary.h"

extern char** environ;

namespace cflow::cli {

namespace {

using namespace cflow::run;
using Clock = std::chrono::steady_clock;

// ---- signals ------------------------------------------------------------------------------------

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int signo) {
  g_signal = signo;
  static const char message[] =
      "\ncflow run: interrupted: finishing this step, then flushing and writing a checkpoint "
      "(interrupt again to abort at once)\n";
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
}

// SIGINT and SIGTERM set g_signal while it lives; the handler resets itself, so a second signal
// kills the process the default way.
class StopSignals {
 public:
  StopSignals() {
    g_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// ---- small helpers --------------------------------------------------------------------------------

std::string local_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  localtime_r(&now, &parts);
  char text[64];
  std::strftime(text, sizeof text, format, &parts);
  return text;
}

std::string default_run_dir() {
  std::random_device random;
  char id[16];
  std::snprintf(id, sizeof id, "%06x", random() & 0xffffffu);
  return "runs/" + local_time("%Y%m%d-%H%M%S") + "-" + id;
}

// The output of a read-only git command in the source tree, or nullopt.
std::optional<std::string> git(const std::string& arguments) {
  const std::filesystem::path source = CFLOW_SOURCE_DIR;
  std::error_code ec;
  if (!std::filesystem::exists(source / ".git", ec)) return std::nullopt;
  const std::string command =
      "GIT_OPTIONAL_LOCKS=0 git --no-optional-locks -C '" + source.string() + "' " + arguments + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return std::nullopt;
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  if (::pclose(pipe) != 0) return std::nullopt;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

nlohmann::ordered_json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot be read");
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::ordered_json::exception& e) {
    throw ConfigError(file.string() + ": not valid JSON: " + e.what());
  }
}

std::string command_line(const RunFlags& flags) {
  std::string text = "cflow run";
  if (!flags.resume_dir.empty()) text += " --resume " + flags.resume_dir;
  if (!flags.config_file.empty()) text += " --config " + flags.config_file;
  for (const auto& [key, value] : given_flags(flags))
    text += " --" + key->name + (key->is_switch() ? (value == "true" ? "" : "=false") : " " + value);
  return text;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  }
  return text;
}

// ---- progress ------------------------------------------------------------------------------------

// One line on stderr: redrawn in place on a terminal (at most 10 times a second), printed every
// tenth of the run or every minute otherwise.
class Progress {
 public:
  Progress(bool enabled, std::int64_t first, std::int64_t end, std::int64_t done)
      : enabled_(enabled),
        tty_(::isatty(STDERR_FILENO) == 1),
        first_(first),
        end_(end),
        session_start_(done),
        start_(Clock::now()),
        last_draw_(start_ - std::chrono::hours(1)) {}

  void update(std::int64_t done, const StepRecord& record) {
    if (!enabled_) return;
    const auto now = Clock::now();
    const bool last = done >= end_;
    if (tty_) {
      if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
    } else {
      const std::int64_t every = std::max<std::int64_t>(1, (end_ - first_ + 9) / 10);
      if (!last && (done - first_) % every != 0 && now - last_draw_ < std::chrono::minutes(1)) return;
    }
    last_draw_ = now;
    std::string text = line(done, record, now);
    if (tty_) {
      const std::size_t width = terminal_width();
      if (text.size() >= width) text.resize(width - 1);
      std::cerr << "\r" << text << "\x1b[K" << std::flush;
      drawn_ = true;
    } else {
      std::cerr << text << "\n";
    }
  }

  // A line above the bar (warnings).
  void message(const std::string& text) {
    end_line();
    std::cerr << text << "\n";
  }

  void end_line() {
    if (drawn_) std::cerr << "\n";
    drawn_ = false;
  }

 private:
  static std::size_t terminal_width() {
    winsize size{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 20) return size.ws_col;
    return 120;
  }

  std::string line(std::int64_t done, const StepRecord& record, Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(done - session_start_) / elapsed : 0;
    const double fraction = end_ > first_ ? double(done - first_) / double(end_ - first_) : 1;
    constexpr int kBar = 20;
    const int filled = std::clamp(int(fraction * kBar), 0, kBar);
    char head[160];
    std::snprintf(head, sizeof head, "[%s%s] %lld/%lld  %.3g steps/s  ETA %s", std::string(filled, '#').c_str(),
                  std::string(kBar - filled, '.').c_str(), static_cast<long long>(done - first_),
                  static_cast<long long>(end_ - first_), rate,
                  rate > 0 ? format_duration(double(end_ - done) / rate).c_str() : "?");
    std::string text = head;
    for (const auto& [kind, p] : record.processes) {
      char part[128];
      const double sharpness = p.effective_eigs.empty() ? std::nan("") : p.effective_eigs.front();
      std::snprintf(part, sizeof part, "  %s L %.4g S %.3g%s", to_string(kind).c_str(), p.train_loss, sharpness,
                    p.stopped ? " (stopped)" : "");
      text += part;
    }
    return text;
  }

  bool enabled_, tty_;
  std::int64_t first_, end_, session_start_;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

// ---- plots -----------------------------------------------------------------------------------------

std::string last_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

// Runs python/cflow_plot.py on the run directory; a missing Python or package is a warning.
bool make_plots(const std::filesystem::path& dir, bool quiet) {
  const char* python_env = std::getenv("CFLOW_PYTHON");
  const std::string python = python_env && *python_env ? python_env : "/usr/bin/python3";
  const char* script_env = std::getenv("CFLOW_PLOT_SCRIPT");
  const std::filesystem::path script = script_env && *script_env
                                           ? std::filesystem::path(script_env)
                                           : std::filesystem::path(CFLOW_SOURCE_DIR) / "python" / "cflow_plot.py";
  const std::string later = "; make them later with: " + python + " " + script.string() + " " + dir.string();
  std::error_code ec;
  if (!std::filesystem::exists(script, ec)) {
    std::cerr << "warning: no plots: " << script.string() << " not found (set CFLOW_PLOT_SCRIPT)\n";
    return false;
  }
  const std::filesystem::path log = dir / "plot.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const std::string dir_text = dir.string(), script_text = script.string();
  std::vector<char*> argv{const_cast<char*>(python.c_str()), const_cast<char*>(script_text.c_str()),
                          const_cast<char*>(dir_text.c_str()), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::cerr << "warning: no plots: cannot start " << python << ": " << std::strerror(spawned) << later << "\n";
    return false;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::filesystem::remove(log, ec);
    if (!quiet)
      std::cout << "plots: " << (dir / "plots").string() << ", report: " << (dir / "report.html").string() << "\n";
    return true;
  }
  const std::string why = last_line(log);
  std::cerr << "warning: no plots: " << python << " " << script.string() << " failed"
            << (why.empty() ? std::string() : ": " + why) << " (see " << log.string() << ")" << later << "\n";
  return false;
}

// ---- planning: a new run or a resumed one --------------------------------------------------------------

struct Plan {
  RunConfig config;
  std::filesystem::path dir;
  bool resume = false;
  std::optional<CheckpointFile> checkpoint;
  nlohmann::ordered_json config_json;  // a resumed run's config.json
  std::string command;
  std::int64_t crash_after = 0;
};

Plan plan_new(const RunFlags& flags) {
  Plan plan;
  plan.config = resolve(flags);
  if (plan.config.out.empty()) plan.config.out = default_run_dir();
  plan.dir = plan.config.out;
  std::error_code ec;
  if (std::filesystem::exists(plan.dir / kRunLogFileName, ec) ||
      std::filesystem::exists(plan.dir / "config.json", ec)) {
    throw ConfigError("--out " + plan.dir.string() + ": already holds a run; continue it with --resume " +
                      plan.dir.string() + " or choose another --out");
  }
  return plan;
}

Plan plan_resume(const RunFlags& flags) {
  Plan plan;
  plan.resume = true;
  plan.dir = flags.resume_dir;
  if (!flags.config_file.empty())
    throw ConfigError("--config cannot be combined with --resume: a resumed run keeps the settings of its config.json");
  const std::filesystem::path config_file = plan.dir / "config.json";
  std::error_code ec;
  if (!std::filesystem::exists(config_file, ec))
    throw ConfigError("--resume " + plan.dir.string() + ": no config.json there; expected a cflow run directory");
  plan.config_json = read_json(config_file);
  if (!plan.config_json.contains("settings")) throw ConfigError(config_file.string() + ": has no 'settings'");
  plan.config = from_json(plan.config_json["settings"], config_file.string());
  const RunConfig stored = plan.config;
  for (const auto& [key, text] : given_flags(flags)) {
    if (key->name == "out") throw ConfigError("--out cannot be combined with --resume: the run stays in its directory");
    RunConfig changed = plan.config;
    set_key(changed, *key, text, "--" + key->name);
    if (!key->on_resume && key->get(changed) != key->get(stored)) {
      throw ConfigError("--" + key->name + " cannot change when resuming (the run has " + key->get(stored).dump() +
                        "); only --steps, --checkpoint-every, --no-plots, --quiet, --device and --threads can");
    }
    plan.config = changed;
  }
  plan.config.out = plan.dir.string();
  validate(plan.config);
  std::vector<std::string> skipped;
  plan.checkpoint = latest_checkpoint(plan.dir / kCheckpointFolder, &skipped);
  for (const std::string& why : skipped) std::cerr << "warning: skipping a damaged checkpoint: " << why << "\n";
  if (!plan.checkpoint) {
    throw ConfigError("--resume " + plan.dir.string() + ": no usable checkpoint in " +
                      (plan.dir / kCheckpointFolder).string() +
                      " (the run stopped before its first checkpoint: start it again, in a new --out)");
  }
  // Another rank count would shard the examples differently (docs/design.md §7).
  const int ranks = plan.checkpoint->meta.value("ranks", 1), now = Communicator::world().size();
  if (ranks != now) {
    throw ConfigError("--resume " + plan.dir.string() + ": the run was started with " + std::to_string(ranks) +
                      " rank(s) and resumes only with as many (mpirun -np " + std::to_string(ranks) + "), not " +
                      std::to_string(now));
  }
  // Fewer steps than first planned are fine (the run ends there; data.h5 keeps its rows), but not
  // fewer than are done.
  if (plan.config.steps < plan.checkpoint->checkpoint.step) {
    throw ConfigError("--steps " + std::to_string(plan.config.steps) + ": expected at least the " +
                      std::to_string(plan.checkpoint->checkpoint.step) + " steps the run has done");
  }
  return plan;
}

// ---- the run ----------------------------------------------------------------------------------------------

nlohmann::ordered_json new_config_json(const RunConfig& c, const Device& dev, const ModelSpec& spec,
                                       const DataSplits& data, index_t parameters, const std::string& command) {
  nlohmann::ordered_json j;
  j["cflow_version"] = CFLOW_VERSION;
  const auto commit = git("rev-parse HEAD");
  j["git_commit"] = commit ? nlohmann::ordered_json(*commit) : nlohmann::ordered_json(nullptr);
  const auto changes = commit ? git("status --porcelain --untracked-files=no") : std::nullopt;
  j["git_dirty"] = changes ? nlohmann::ordered_json(!changes->empty()) : nlohmann::ordered_json(nullptr);
  j["command"] = command;
  j["created"] = local_time("%Y-%m-%dT%H:%M:%S%z");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  j["host"] = host;
  j["device"] = dev.description();
  j["backend"] = dev.is_cuda() ? "cuda" : "cpu";
  j["cpu_threads"] = dev.cpu_threads();
  j["precision"] = c.is_float32() ? "float32" : "float64";
  j["model"] = describe(spec);
  j["parameters"] = parameters;
  j["data"] = {{"name", c.data},
               {"train_examples", data.train.n},
               {"test_examples", c.n_test == 0 ? 0 : data.test.n},
               {"input_shape", {data.train.channels, data.train.height, data.train.width}},
               {"outputs", spec.classes}};
  j["settings"] = to_json(c);
  j["resumes"] = nlohmann::ordered_json::array();
  return j;
}

template <class T>
std::vector<T> converted(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

template <class T>
int execute(Plan& plan) {
  RunConfig& c = plan.config;
  const auto session_start = Clock::now();
  const DataSplits data = load_dataset(c.data_spec());  // first: a missing data set fails fast
  // Data-parallel runs (docs/design.md §7): each rank holds a shard of both splits; only rank 0
  // writes the run directory and the terminal.
  Communicator& comm = Communicator::world();
  const bool writes = comm.rank() == 0;
  if (!writes) c.quiet = c.no_plots = true;
  const Dataset train_shard = shard(data.train, comm.rank(), comm.size());
  const Dataset test_shard = c.n_test == 0 ? Dataset{} : shard(data.test, comm.rank(), comm.size());
  const Device dev = Device::open(c.device, c.threads);
  c.threads = dev.cpu_threads();  // recorded, so a resumed run uses the same count (bitwise results)
  const ModelSpec spec = c.model_spec(data.train.shape());
  warn_if_not_smooth(spec);
  NetworkOptions network_options;
  network_options.chunk = c.chunk;
  Network<T> train(dev, spec, converted<T>(train_shard.inputs), converted<T>(make_targets(train_shard, spec.loss)),
                   network_options);
  std::optional<Network<T>> test;
  if (c.n_test != 0)
    test.emplace(dev, spec, converted<T>(test_shard.inputs), converted<T>(make_targets(test_shard, spec.loss)),
                 network_options);
  ShardedObjective<T> objective(train, index_t(train_shard.n), index_t(data.train.n), comm);
  const std::vector<T> w0 = train.initial_parameters(c.seed);
  typename Experiment<T>::Evaluate evaluate_train = [&](const T* w) {
    return combine_shards(comm, train.evaluate(w), index_t(train_shard.n), index_t(data.train.n));
  };
  typename Experiment<T>::Evaluate evaluate_test;
  if (test)
    evaluate_test = [&](const T* w) {
      return combine_shards(comm, test->evaluate(w), index_t(test_shard.n), index_t(data.test.n));
    };
  const ExperimentSettings settings = c.experiment_settings();
  Experiment<T> experiment(objective, evaluate_train, evaluate_test, w0, settings);

  // The run directory and config.json.
  const std::filesystem::path& dir = plan.dir;
  if (writes) std::filesystem::create_directories(dir);
  nlohmann::ordered_json config_json;
  double previous_wall_time = 0;
  if (plan.resume) {
    const nlohmann::json& meta = plan.checkpoint->meta;
    if (writes && (meta.value("backend", std::string()) != (dev.is_cuda() ? "cuda" : "cpu") ||
                   meta.value("cpu_threads", 0) != dev.cpu_threads())) {
      std::cerr << "warning: the checkpoint was written on " << meta.value("device", std::string("?"))
                << "; continuing on " << dev.description()
                << ": the rest of the run will not be bitwise identical to an uninterrupted one\n";
    }
    experiment.restore(plan.checkpoint->checkpoint);
    config_json = plan.config_json;
    config_json["settings"] = to_json(c);
    config_json["resumes"].push_back({{"from_step", plan.checkpoint->checkpoint.step},
                                      {"checkpoint", plan.checkpoint->file.filename().string()},
                                      {"at", local_time("%Y-%m-%dT%H:%M:%S%z")},
                                      {"command", plan.command},
                                      {"device", dev.description()}});
    std::error_code ec;
    if (std::filesystem::exists(dir / "summary.json", ec)) {
      try {
        previous_wall_time = read_json(dir / "summary.json").value("total_wall_time_s", 0.0);
      } catch (const Error&) {
      }
    }
  } else {
    config_json = new_config_json(c, dev, spec, data, train.dim(), plan.command);
    config_json["ranks"] = comm.size();
  }
  c.eig_tol = c.eig_tolerance();
  config_json["settings"] = to_json(c);
  if (writes) write_text_atomically(dir / "config.json", config_json.dump(2) + "\n");

  // data.h5. A new run creates it after its first step, whose record gives the first step number
  // (after any warm start) and the names of the optimizer's summaries; a resumed run reopens it.
  const std::filesystem::path data_file = dir / kRunLogFileName;
  std::optional<RunLog> log;
  const std::vector<SeriesSpec> layout = series_layout(settings, experiment.max_tracked());
  if (plan.resume && writes) {
    log.emplace(RunLog::open_existing(data_file));
    if (log->steps() < c.steps) log->grow(c.steps);
    declare(*log, layout);
    log->set_attribute("config", config_json.dump());
  }
  auto start_log = [&](const StepRecord& record) {
    const std::int64_t row = experiment.steps_done() - 1;
    if (!log) {
      log.emplace(RunLog::create(data_file, c.steps, record.step - row));
      declare(*log, layout);
      log->set_attribute("config", config_json.dump());
    } else if (record.step - log->first_step() != row) {
      throw Error(data_file.string() + ": starts at step " + std::to_string(log->first_step()) +
                  ", which does not fit the checkpoint (step " + std::to_string(record.step) + " is its row " +
                  std::to_string(row) + ")");
    }
    declare(*log, state_layout(record));
    log->start_swmr();
  };

  if (!c.quiet) {
    std::cout << "cflow run: " << dir.string() << "\n"
              << "  data       " << c.data << ": " << data.train.n << " training, "
              << (c.n_test == 0 ? std::string("no") : std::to_string(data.test.n)) << " test examples, classes "
              << c.classes << "\n"
              << "  model      " << describe(spec) << ", " << train.dim() << " parameters\n"
              << "  optimizer  " << c.opt << ", lr " << c.lr << "\n"
              << "  processes  ";
    for (std::size_t i = 0; i < c.runs.size(); ++i) std::cout << (i ? ", " : "") << c.runs[i];
    std::cout << "; " << c.steps << " steps"
              << (c.warm_start ? " after " + std::to_string(c.warm_start) + " warm-start steps" : "") << "\n"
              << "  device     " << dev.description() << ", " << (c.is_float32() ? "float32" : "float64")
              << (c.device == "auto" && !dev.selection_note().empty() ? " (" + dev.selection_note() + ")" : "")
              << "\n";
    if (plan.resume)
      std::cout << "  resuming   after " << experiment.steps_done() << " steps ("
                << plan.checkpoint->file.filename().string() << ")\n";
    std::cout << std::flush;
  }
  if (plan.resume && experiment.steps_done() >= c.steps && !c.quiet)
    std::cout << "the run already has all its " << c.steps << " steps; raise --steps to continue it\n";

  const nlohmann::json checkpoint_meta{{"cflow_version", CFLOW_VERSION},
                                       {"precision", c.is_float32() ? "float32" : "float64"},
                                       {"backend", dev.is_cuda() ? "cuda" : "cpu"},
                                       {"cpu_threads", dev.cpu_threads()},
                                       {"device", dev.description()},
                                       {"ranks", comm.size()}};
  std::int64_t last_checkpoint = plan.resume ? experiment.steps_done() : -1;
  auto save_checkpoint = [&] {
    if (log) log->flush();
    const Checkpoint checkpoint = experiment.checkpoint();
    if (writes) write_checkpoint(dir / kCheckpointFolder, checkpoint, checkpoint_meta);
    last_checkpoint = experiment.steps_done();
  };

  // The newest checkpoint, relative to the run directory (null when none was written).
  auto checkpoint_name = [&]() -> nlohmann::ordered_json {
    if (last_checkpoint < 0) return nullptr;
    return std::string(kCheckpointFolder) + "/" +
           checkpoint_path(dir / kCheckpointFolder, last_checkpoint).filename().string();
  };
  const std::int64_t end = c.steps;  // in steps_done(): steps taken after the warm start
  const std::int64_t session_first = experiment.steps_done();
  std::string status = "completed";
  std::set<int> reported_stops;
  {
    StopSignals signals;
    Progress progress(!c.quiet, 0, end, session_first);
    std::optional<StepWriter> writer;
    auto last_flush = Clock::now();
    std::int64_t session_steps = 0;
    try {
      // The ranks stop together: at the first step boundary where any of them has a signal.
      while (experiment.steps_done() < end && comm.all_reduce_max(g_signal) == 0) {
        const StepRecord record = experiment.step();
        if (writes) {
          if (!writer) {
            start_log(record);
            writer.emplace(*log);
          }
          writer->write(record);
          for (const std::string& path : writer->take_undeclared())
            progress.message("warning: " + path + " is not in data.h5 (it appeared after the first step); not logged");
          const std::vector<ProcessStatus> statuses = experiment.status();
          for (std::size_t i = 0; i < statuses.size(); ++i) {
            if (statuses[i].stopped && reported_stops.insert(int(i)).second)
              progress.message("warning: " + to_string(statuses[i].kind) + " stopped: " + statuses[i].reason);
          }
        }
        const std::int64_t done = experiment.steps_done();
        progress.update(done, record);
        if (log && Clock::now() - last_flush > std::chrono::seconds(1)) {
          log->flush();
          last_flush = Clock::now();
        }
        if (c.checkpoint_every > 0 && done % c.checkpoint_every == 0 && done < end) save_checkpoint();
        if (plan.crash_after > 0 && ++session_steps >= plan.crash_after) std::_Exit(3);
      }
      progress.end_line();
      if (experiment.steps_done() < end) status = "interrupted";
      if (last_checkpoint != experiment.steps_done()) save_checkpoint();
      if (log) log->close();
    } catch (const std::exception& e) {
      // Keep what was logged: close the log (flushing it) and say in summary.json what happened.
      progress.end_line();
      try {
        if (log) log->close();
      } catch (const std::exception&) {
      }
      nlohmann::ordered_json failed{{"status", "failed"},
                                    {"error", e.what()},
                                    {"steps_done", experiment.steps_done()},
                                    {"steps", c.steps},
                                    {"checkpoint", checkpoint_name()}};
      try {
        if (writes) write_text_atomically(dir / "summary.json", failed.dump(2) + "\n");
      } catch (const std::exception&) {
      }
      throw;
    }
  }
  const int stop_signal = comm.all_reduce_max(g_signal);

  // summary.json and the table.
  const double wall = std::chrono::duration<double>(Clock::now() - session_start).count();
  const std::int64_t rows = experiment.steps_done();
  nlohmann::ordered_json summary =
      log ? summarize(data_file, settings.processes, rows) : nlohmann::ordered_json::object();
  summary["status"] = status;
  summary["steps_done"] = rows;
  summary["steps"] = c.steps;
  summary["first_step"] = log ? nlohmann::ordered_json(log->first_step()) : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json processes = nlohmann::ordered_json::object();
  for (const ProcessStatus& s : experiment.status())
    processes[to_string(s.kind)] = {{"stopped", s.stopped}, {"reason", s.reason}};
  summary["processes"] = processes;
  summary["wall_time_s"] = wall;
  summary["total_wall_time_s"] = previous_wall_time + wall;
  const std::int64_t session_done = experiment.steps_done() - session_first;
  summary["steps_per_s"] = wall > 0 && session_done > 0 ? nlohmann::ordered_json(double(session_done) / wall)
                                                        : nlohmann::ordered_json(nullptr);
  summary["resumed_from_step"] = plan.resume ? nlohmann::ordered_json(session_first) : nlohmann::ordered_json(nullptr);
  summary["interrupted_by"] = stop_signal ? nlohmann::ordered_json(stop_signal == SIGINT ? "SIGINT" : "SIGTERM")
                                          : nlohmann::ordered_json(nullptr);
  summary["checkpoint"] = checkpoint_name();
  if (writes) write_text_atomically(dir / "summary.json", summary.dump(2) + "\n");

  if (!c.quiet) {
    std::cout << "\n";
    print_summary(std::cout, summary);
    std::cout << "run directory: " << dir.string() << "\n";
  }
  if (stop_signal) {
    if (writes)
      std::cerr << "cflow run: stopped after " << experiment.steps_done() << " of " << c.steps
              << " steps; continue with: cflow run --resume " << dir.string() << "\n";
    return 128 + stop_signal;
  }
  if (!c.no_plots) make_plots(dir, c.quiet);
  return 0;
}

int run_command(const RunFlags& flags) {
  Plan plan;
  std::string error;
  try {
    plan = flags.resume_dir.empty() ? plan_new(flags) : plan_resume(flags);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  // The ranks of a data-parallel run agree on the plan before rank 0 writes (docs/design.md §7).
  if (Communicator::world().all_reduce_max(!error.empty()) != 0) {
    if (!error.empty()) std::cerr << "cflow run: error: " << error << "\n";
    return 2;
  }
  plan.command = command_line(flags);
  plan.crash_after = flags.crash_after;
  return plan.config.is_float32() ? execute<float>(plan) : execute<double>(plan);
}

}  // namespace

Handler add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "run",
      "Run an optimizer and its central flow side by side and log them to a run directory.\n"
      "Settings: defaults < --config FILE (TOML) < flags. Output: config.json, data.h5 (readable while running), "
      "checkpoints/, summary.json, plots/ and report.html.\nExit status: 0 done, 1 error, 2 bad usage, 130 "
      "interrupted (resume with --resume RUNDIR).");
  auto flags = std::make_shared<RunFlags>();
  register_flags(*cmd, *flags);
  return [flags] { return run_command(*flags); };
}

// `cflow plot RUNDIR`: regenerate a run's plots and report.html (also while it runs).
Handler add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plot", "Regenerate the plots and report.html of a run directory");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("RUNDIR", *dir, "run directory (holds data.h5)")->required()->check(CLI::ExistingDirectory);
  return [dir] { return make_plots(*dir, false) ? 0 : 1; };
}

}  // namespace cflow::cli
