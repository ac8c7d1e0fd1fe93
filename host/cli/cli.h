#pragma once
// Subcommands of the `cflow` CLI. Each registers its options and a handler; handlers return the
// process exit code (0 ok, 1 a failed check, 2 bad usage, 130 interrupted).
#include <CLI/CLI.hpp>

#include <functional>

namespace cflow::cli {

using Handler = std::function<int()>;

void register_commands(CLI::App& app);
// Runs the handler of the parsed subcommand, turning exceptions into a one-line error.
int run_selected(CLI::App& app);

// Per-subcommand registration (host/cli_<name>.cpp).
Handler add_devices_command(CLI::App& app);
Handler add_gradcheck_command(CLI::App& app);
Handler add_hessian_command(CLI::App& app);
Handler add_run_command(CLI::App& app);
Handler add_plot_command(CLI::App& app);
Handler add_sweep_command(CLI::App& app);

}  // namespace cflow::cli
