// `cflow repair RUNDIR`: after a run was killed (SIGKILL, power loss), clears data.h5's
// "open for writing" marks, as `h5clear -s` does, so any HDF5 reader (plain h5py.File(p, "r"))
// opens it again; `cflow run --resume` does the same. Refused while a run holds the directory.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cflow/run/log.h"
#include "host/cli/cli.h"
#include "host/run/run_lock.h"
#include "host/run/session.h"

namespace cflow::cli {

Handler add_repair_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("repair", "Make a killed run's data.h5 readable by any HDF5 reader again");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("RUNDIR", *dir, "run directory (holds data.h5)")->required()->check(CLI::ExistingDirectory);
  return [dir] {
    try {
      const run::RunLock lock = run::RunLock::acquire(*dir, false);
      const std::filesystem::path file = std::filesystem::path(*dir) / kRunLogFileName;
      RunLog::open_existing(file).close();
      std::cout << file.string() << ": closed cleanly; readable by any HDF5 reader\n";
      return 0;
    } catch (const run::ConfigError& e) {
      std::cerr << "cflow repair: error: " << e.what() << "\n";
      return run::kExitUsage;
    }
  };
}

}  // namespace cflow::cli
