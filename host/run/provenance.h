#pragma once
// Where and from what a run came: the time, the host, the git commit of the source tree, and the
// config.json of a new run (every resolved setting plus those facts).
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "cflow/data/dataset.h"
#include "cflow/engine/model.h"
#include "cflow/runtime/device.h"
#include "host/run/config.h"

namespace cflow::run {

// The local time in strftime's `format`.
std::string local_time(const char* format);
std::string host_name();
// runs/<timestamp>-<random id>
std::string default_run_dir();
// The output of a read-only git command in the source tree, or nullopt.
std::optional<std::string> git(const std::string& arguments);

// config.json of a new run.
nlohmann::ordered_json new_config_json(const RunConfig& c, const Device& dev, const std::string& model,
                                       index_t outputs, const DataSplits& data, index_t parameters,
                                       const std::string& command);

}  // namespace cflow::run
