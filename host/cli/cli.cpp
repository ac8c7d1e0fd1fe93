#include "host/cli/cli.h"

#include <iostream>
#include <map>

#include "cflow/runtime/error.h"

namespace cflow::cli {

namespace {
std::map<const CLI::App*, Handler>& handlers() {
  static std::map<const CLI::App*, Handler> table;
  return table;
}
void add(CLI::App& app, const std::function<Handler(CLI::App&)>& make) {
  const std::size_t before = app.get_subcommands({}).size();
  Handler handler = make(app);
  handlers()[app.get_subcommands({}).at(before)] = std::move(handler);
}
}  // namespace

void register_commands(CLI::App& app) {
  add(app, add_devices_command);
  add(app, add_gradcheck_command);
  add(app, add_hessian_command);
  add(app, add_run_command);
  add(app, add_plot_command);
  add(app, add_sweep_command);
}

int run_selected(CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) {
    try {
      return handlers().at(sub)();
    } catch (const Error& e) {
      std::cerr << "cflow " << sub->get_name() << ": error: " << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "cflow " << sub->get_name() << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  return 2;
}

}  // namespace cflow::cli
