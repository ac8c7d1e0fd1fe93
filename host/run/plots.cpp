#include "host/run/plots.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

extern char** environ;

namespace cflow::run {

namespace {

std::string last_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

// Runs the plot script with `args` after it, its output in log_dir/plot.log (removed on success);
// a failure is a warning that says how to make the plots later.
bool run_plot_script(const std::vector<std::string>& args, const std::filesystem::path& log_dir) {
  const char* python_env = std::getenv("CFLOW_PYTHON");
  const std::string python = python_env && *python_env ? python_env : "/usr/bin/python3";
  const char* script_env = std::getenv("CFLOW_PLOT_SCRIPT");
  const std::filesystem::path script = script_env && *script_env
                                           ? std::filesystem::path(script_env)
                                           : std::filesystem::path(CFLOW_SOURCE_DIR) / "python" / "cflow_plot.py";
  std::string later = "; make them later with: " + python + " " + script.string();
  for (const std::string& arg : args) later += " " + arg;
  std::error_code ec;
  if (!std::filesystem::exists(script, ec)) {
    std::cerr << "warning: no plots: " << script.string() << " not found (set CFLOW_PLOT_SCRIPT)\n";
    return false;
  }
  const std::filesystem::path log = log_dir / "plot.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const std::string script_text = script.string();
  std::vector<char*> argv{const_cast<char*>(python.c_str()), const_cast<char*>(script_text.c_str())};
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
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
    return true;
  }
  const std::string why = last_line(log);
  std::cerr << "warning: no plots: " << python << " " << script.string() << " failed"
            << (why.empty() ? std::string() : ": " + why) << " (see " << log.string() << ")" << later << "\n";
  return false;
}

}  // namespace

bool make_plots(const std::filesystem::path& dir, bool quiet) {
  if (!run_plot_script({dir.string()}, dir)) return false;
  if (!quiet) std::cout << "plots: " << (dir / "plots").string() << ", report: " << (dir / "report.html").string() << "\n";
  return true;
}

bool make_comparison_plots(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  std::vector<std::string> args;
  for (const auto& dir : dirs) args.push_back(dir.string());
  args.push_back("--out");
  args.push_back(out.string());
  if (!run_plot_script(args, out)) return false;
  std::cout << "comparison plots: " << out.string() << "\n";
  return true;
}

}  // namespace cflow::run
