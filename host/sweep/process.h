#pragma once
// Child processes of a sweep (points, sbatch, squeue, the plot script), started with posix_spawn.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cflow::sweep {

struct Command {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up on PATH
  std::vector<std::string> env;   // NAME=value set for the child on top of ours
  std::filesystem::path output;   // stdout and stderr appended here (empty: inherited)
  bool own_group = false;         // its own process group: a terminal's Ctrl-C does not reach it
  std::vector<int> inherit_fds;   // kept open in the child (e.g. a lock it must hold while it lives)
};

// Starts the command; throws cflow::Error when it cannot start.
pid_t spawn(const Command& command);
// Waits for the child; its exit status, or 128 + the signal that ended it.
int wait_for(pid_t pid);
// The child's exit status (as wait_for) when it has ended, else nullopt at once.
std::optional<int> try_wait(pid_t pid);
// Runs the command to its end; its exit status, or nullopt when it could not start.
std::optional<int> run_to_end(const Command& command);
// The program called `name` on PATH, or nullopt.
std::optional<std::filesystem::path> find_program(const std::string& name);
// The words of argv joined by spaces (for logs and messages).
std::string command_text(const std::vector<std::string>& argv);

}  // namespace cflow::sweep
