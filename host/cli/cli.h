#pragma once
// Subcommands of the `cflow` CLI. Each registers its options and a handler; handlers return the
// process exit code (kExitCodesHelp).
#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cflow::cli {

using Handler = std::function<int()>;

// The exit codes of every command, for --help (the README's "Exit codes and recovery" has more).
inline constexpr const char* kExitCodesHelp =
    "Exit status: 0 done; 1 an error (missing data, a failed device call, out of memory, a full disk: what was "
    "kept is said); 2 bad usage (a bad flag or value, a size above the machine's memory, a run directory in use "
    "or edited); 3 the run diverged (every process stopped; summary.json says why); 130/143 interrupted by "
    "SIGINT/SIGTERM (continue with --resume RUNDIR).";

void register_commands(CLI::App& app);
// Runs the handler of the parsed subcommand, turning exceptions into a one-line error.
int run_selected(CLI::App& app);

// Range checks with readable messages ("expected a number > 0, got '0'"), in place of CLI11's
// PositiveNumber and NonNegativeNumber, which print DBL_MAX as the upper end; NaN is refused.
extern const CLI::Validator kPositive;
extern const CLI::Validator kNonNegative;

// "unknown command 'runn' (did you mean 'run'?)" when `word` (argv[1]) is not a command; nullopt
// when it is one or an option.
std::optional<std::string> unknown_command_message(const CLI::App& app, const std::string& word);

// "--lr needs a value (--lr X), but --n follows it" when an option that takes a value is followed by
// another option or ends the command line (args: argv[1..]); CLI11 would report the value that
// follows as an unexpected argument instead.
std::optional<std::string> missing_value_message(const CLI::App& app, const std::vector<std::string>& args);

// Per-subcommand registration (host/cli_<name>.cpp).
Handler add_devices_command(CLI::App& app);
Handler add_gradcheck_command(CLI::App& app);
Handler add_hessian_command(CLI::App& app);
Handler add_run_command(CLI::App& app);
Handler add_plot_command(CLI::App& app);
Handler add_repair_command(CLI::App& app);
Handler add_sweep_command(CLI::App& app);

}  // namespace cflow::cli
