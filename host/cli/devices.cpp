// `cflow devices`: which device a run would use, and why.
#include <iostream>

#include "cflow/runtime/device.h"
#include "host/cli/cli.h"

namespace cflow::cli {

Handler add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "Show the compute device a run would use and why");
  auto device = std::make_shared<std::string>("auto");
  cmd->add_option("--device", *device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  return [device] {
    const Device dev = Device::open(*device);
    std::cout << dev.description() << "\n";
    if (!dev.selection_note().empty()) std::cout << dev.selection_note() << "\n";
    return 0;
  };
}

}  // namespace cflow::cli
