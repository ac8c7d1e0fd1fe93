#pragma once
// One `cflow run` (docs/design.md §8): a Session owns the run directory (and its lock), config.json,
// the log (data.h5), the checkpoints, the step loop, SIGINT/SIGTERM and the summary. The CLI builds
// a SessionRequest from its flags, opens a Session and returns what run() returns.
//
// Exit status of run(): kExitDone; kExitDiverged when every process stopped (status "diverged");
// 128 + signal when interrupted (130 SIGINT, 143 SIGTERM). Bad usage throws ConfigError (exit 2);
// other failures throw and leave summary.json with status "failed".
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "host/run/plan.h"
#include "host/run/run_lock.h"

namespace cflow::run {

inline constexpr int kExitDone = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDiverged = 3;
// --test-crash-after's abrupt exit: none of the documented codes, so a test cannot mistake it.
inline constexpr int kTestCrashExit = 70;

struct SessionRequest {
  std::optional<RunConfig> config;   // a new run (resolved settings), or
  std::filesystem::path resume_dir;  // the run directory to resume, with
  GivenSettings given;               // the flags given on top of its config.json
  std::string command;               // the command line, for config.json
  std::int64_t crash_after = 0;      // for tests: _Exit(kTestCrashExit) after this many steps
  // The model in words for config.json and the header; also warns about a model the flows need
  // smoother (the CLI's, host/cli/model_flags.h).
  std::function<std::string(const ModelSpec&)> describe_model;
};

class Session {
 public:
  // Locks the run directory, then plans the run; throws ConfigError on bad usage or a locked directory.
  // In a data-parallel run (docs/design.md §7) every rank plans and runs, and only rank 0 writes:
  // it alone takes the lock, writes the run directory and prints.
  explicit Session(SessionRequest request);
  int run();

 private:
  static std::filesystem::path directory(const SessionRequest& request);
  std::filesystem::path dir_;
  std::optional<RunLock> lock_;  // rank 0's
  Plan plan_;
  std::function<std::string(const ModelSpec&)> describe_model_;
};

}  // namespace cflow::run
