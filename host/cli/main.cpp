// The `cflow` command: subcommands are registered by host/cli_*.cpp.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>

#include "cflow/run/log.h"
#include "host/cli/cli.h"

int main(int argc, char** argv) {
  cflow::skip_hdf5_cleanup_at_exit();
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG like on a full disk, and the
  // run says what it kept, instead of being killed by SIGXFSZ mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"cflow: run an optimizer and its central flow side by side"};
  app.set_version_flag("--version", std::string("cflow ") + CFLOW_VERSION);
  app.require_subcommand(1);
  cflow::cli::register_commands(app);
  app.footer(cflow::cli::kExitCodesHelp);
  if (argc > 1) {
    if (const auto message = cflow::cli::unknown_command_message(app, argv[1])) {
      std::cerr << "cflow: error: " << *message << "\n";
      return 2;
    }
  }
  if (const auto message = cflow::cli::missing_value_message(app, {argv + 1, argv + argc})) {
    std::cerr << "cflow: error: " << *message << "\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return cflow::cli::run_selected(app);
}
