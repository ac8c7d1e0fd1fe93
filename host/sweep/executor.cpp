#include "host/sweep/executor.h"

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <memory>
#include <thread>

#include "host/run/checkpoint.h"
#include "host/sweep/process.h"

namespace cflow::sweep {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- signals: counted here, passed on to the children by the loop ---------------------------------

volatile std::sig_atomic_t g_signals = 0;
volatile std::sig_atomic_t g_last_signal = 0;

extern "C" void on_sweep_signal(int signo) {
  g_last_signal = signo;
  g_signals = g_signals + 1;
}

class SweepSignals {
 public:
  SweepSignals() {
    g_signals = 0;
    g_last_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_sweep_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~SweepSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SweepSignals(const SweepSignals&) = delete;
  SweepSignals& operator=(const SweepSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// ---- one point's command ---------------------------------------------------------------------------

bool has_setting(const Point& point, const std::string& key) {
  for (const Setting& s : point.settings)
    if (s.key == key) return true;
  return false;
}

std::string flag(const Setting& s) { return "--" + s.key + "=" + s.text; }

// A new run, or `--resume` when the run directory holds a checkpoint. `gpu`: empty on the CPU.
Command plan_launch(const Point& point, const SweepDir& dir, const ExecutorOptions& options, const std::string& gpu) {
  Command launch;
  launch.output = dir.log_file(point);
  launch.own_group = !options.inherit_device;  // a terminal's Ctrl-C reaches only the sweep, which passes it on
  const fs::path run = dir.run_dir(point);
  std::error_code ec;
  const bool resumable = fs::exists(run / "config.json", ec) && run::latest_checkpoint(run / run::kCheckpointFolder);
  launch.argv = {options.cflow.string(), "run"};
  if (resumable) {
    launch.argv.insert(launch.argv.end(), {"--resume", run.string()});
    for (const Setting& s : point.settings)
      if (run::find_key(s.key)->on_resume) launch.argv.push_back(flag(s));
  } else {
    fs::remove_all(run);  // started but never checkpointed: nothing to continue
    launch.argv.insert(launch.argv.end(), {"--out", run.string()});
    for (const Setting& s : point.settings) launch.argv.push_back(flag(s));
  }
  if (!has_setting(point, "no-plots")) launch.argv.push_back("--no-plots");  // the sweep plots across points
  const int threads = options.gpus.empty() ? std::max(1, options.cores / std::max(1, options.jobs))
                                           : std::max(1, options.cores / int(options.gpus.size()));
  if (options.inherit_device) {
    if (const char* cpus = std::getenv("SLURM_CPUS_PER_TASK"); cpus && *cpus && !resumable &&
                                                                !has_setting(point, "threads"))
      launch.argv.push_back("--threads=" + std::string(cpus));
    return launch;
  }
  launch.env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  if (!gpu.empty()) launch.env.push_back("CUDA_VISIBLE_DEVICES=" + gpu);
  if (!resumable && !has_setting(point, "threads")) launch.argv.push_back("--threads=" + std::to_string(threads));
  if (!resumable && !has_setting(point, "device")) launch.argv.push_back(gpu.empty() ? "--device=cpu" : "--device=cuda");
  return launch;
}

std::string now_text() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  localtime_r(&now, &parts);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S%z", &parts);
  return text;
}

// ---- the queue -------------------------------------------------------------------------------------

struct Running {
  const Point* point = nullptr;
  pid_t pid = 0;
  std::string gpu;
  std::string command;
  std::string started;
  Clock::time_point start;
  std::unique_ptr<PointLock> lock;
  int signals_passed = 0;
};

struct Counts {
  std::size_t total = 0, done = 0, failed = 0, busy = 0;  // busy: held by another process
  double finished_seconds = 0;
  std::size_t finished_here = 0;
};

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return text;
}

// "sweep: 3/8 done, 2 running, 1 failed, ETA 0:04:10" on stderr: redrawn in place on a terminal,
// a new line when the counts change otherwise (logs).
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1) {}
  // eta: seconds, NaN while unknown.
  void show(const Counts& c, std::size_t running, double eta) {
    if (!enabled_) return;
    const std::string busy = c.busy ? ", " + std::to_string(c.busy) + " held by another process" : "";
    char counts[200];
    std::snprintf(counts, sizeof counts, "sweep: %zu/%zu done, %zu running, %zu failed%s", c.done, c.total, running,
                  c.failed, busy.c_str());
    const std::string text = std::string(counts) + ", ETA " + duration_text(eta);
    if (tty_ ? text == last_ : counts == last_counts_) return;
    last_ = text;
    last_counts_ = counts;
    std::cerr << (tty_ ? "\r" : "") << text << (tty_ ? "\x1b[K" : "\n") << std::flush;
  }
  void end() {
    if (enabled_ && tty_ && !last_.empty()) std::cerr << "\n";
  }

 private:
  bool enabled_, tty_;
  std::string last_, last_counts_;
};

class Executor {
 public:
  Executor(const Spec& spec, const SweepDir& dir, const std::vector<std::size_t>& indices,
           const ExecutorOptions& options)
      : dir_(dir), options_(options), free_gpus_(options.gpus), progress_(options.progress) {
    slots_ = options.gpus.empty() ? std::size_t(std::max(1, options.jobs)) : options.gpus.size();
    counts_.total = indices.size();
    for (const std::size_t i : indices) {
      const Point& point = spec.points.at(i);
      if (dir.status(point).state == PointState::completed) {
        ++counts_.done;
      } else {
        queue_.push_back(&point);
      }
    }
  }

  int run() {
    SweepSignals signals;
    while ((g_signals == 0 && !queue_.empty()) || !running_.empty()) {
      while (g_signals == 0 && !queue_.empty() && running_.size() < slots_) {
        start(queue_.front());
        queue_.pop_front();
      }
      progress_.show(counts_, running_.size(), eta());
      for (Running& r : running_) {
        if (options_.inherit_device) continue;  // the child got the signal too
        for (; r.signals_passed < g_signals; ++r.signals_passed) ::kill(r.pid, g_last_signal);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      reap();
    }
    progress_.show(counts_, 0, 0);
    progress_.end();
    report_failures();
    if (g_signals > 0) {
      std::cerr << "cflow sweep: interrupted; the running points wrote checkpoints; the same command continues\n";
      return 128 + g_last_signal;
    }
    return counts_.done == counts_.total ? 0 : 1;
  }

 private:
  // The points still to run take the mean time of those finished here; running ones, what is left of it.
  double eta() const {
    if (queue_.empty() && running_.empty()) return 0;
    if (counts_.finished_here == 0) return NAN;
    const double mean = counts_.finished_seconds / double(counts_.finished_here);
    double work = mean * double(queue_.size());
    for (const Running& r : running_)
      work += std::max(0.0, mean - std::chrono::duration<double>(Clock::now() - r.start).count());
    return work / double(slots_);
  }

  void start(const Point* point) {
    auto lock = std::make_unique<PointLock>(dir_.lock_file(*point));
    if (!lock->held()) {  // another sweep process (or Slurm task) runs it
      ++counts_.busy;
      return;
    }
    Running r;
    r.point = point;
    if (!options_.gpus.empty()) {
      r.gpu = free_gpus_.back();
      free_gpus_.pop_back();
    }
    Command command = plan_launch(*point, dir_, options_, r.gpu);
    command.inherit_fds.push_back(lock->fd());
    r.command = command_text(command.argv);
    r.started = now_text();
    r.start = Clock::now();
    append_header(dir_.log_file(*point), r.started + "  " + r.command);
    r.pid = spawn(command);
    r.lock = std::move(lock);
    running_.push_back(std::move(r));
  }

  void reap() {
    for (auto it = running_.begin(); it != running_.end();) {
      const std::optional<int> code = try_wait(it->pid);
      if (!code) {
        ++it;
        continue;
      }
      record_exit(*it, *code);
      const double seconds = std::chrono::duration<double>(Clock::now() - it->start).count();
      if (*code == 0) {
        ++counts_.done;
        ++counts_.finished_here;
        counts_.finished_seconds += seconds;
      } else if (!((*code == 130 || *code == 143) && g_signals > 0)) {
        ++counts_.failed;
        failed_.push_back(it->point);
      }
      if (!it->gpu.empty()) free_gpus_.push_back(it->gpu);
      it = running_.erase(it);
    }
  }

  static void append_header(const fs::path& log, const std::string& text) {
    std::FILE* out = std::fopen(log.c_str(), "a");
    if (!out) throw Error(log.string() + ": cannot be written");
    std::fprintf(out, "\n==== %s\n", text.c_str());
    std::fclose(out);
  }

  void record_exit(const Running& r, int code) const {
    nlohmann::ordered_json exit;
    exit["exit_code"] = code;
    exit["signal"] = code > 128 ? nlohmann::ordered_json(strsignal(code - 128)) : nlohmann::ordered_json(nullptr);
    exit["command"] = r.command;
    exit["started"] = r.started;
    exit["ended"] = now_text();
    exit["seconds"] = std::chrono::duration<double>(Clock::now() - r.start).count();
    exit["last_lines"] = last_lines(dir_.log_file(*r.point), 20);
    run::write_text_atomically(dir_.exit_file(*r.point), exit.dump(2) + "\n");
  }

  void report_failures() const {
    for (const Point* p : failed_) {
      const PointStatus status = dir_.status(*p);
      std::cerr << "point " << p->index << " (" << p->id << ") failed with exit code "
                << (status.exit_code ? std::to_string(*status.exit_code) : "?") << "; the end of "
                << dir_.log_file(*p).string() << ":\n"
                << status.detail;
    }
  }

  const SweepDir& dir_;
  const ExecutorOptions& options_;
  std::vector<std::string> free_gpus_;
  std::size_t slots_ = 1;
  std::deque<const Point*> queue_;
  std::vector<Running> running_;
  std::vector<const Point*> failed_;
  Counts counts_;
  ProgressLine progress_;
};

}  // namespace

int execute(const Spec& spec, const SweepDir& dir, const std::vector<std::size_t>& indices,
            const ExecutorOptions& options) {
  return Executor(spec, dir, indices, options).run();
}

}  // namespace cflow::sweep
