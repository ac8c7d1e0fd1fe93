#include "host/run/provenance.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

namespace cflow::run {

std::string local_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  localtime_r(&now, &parts);
  char text[64];
  std::strftime(text, sizeof text, format, &parts);
  return text;
}

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string default_run_dir() {
  std::random_device random;
  char id[16];
  std::snprintf(id, sizeof id, "%06x", random() & 0xffffffu);
  return "runs/" + local_time("%Y%m%d-%H%M%S") + "-" + id;
}

std::optional<std::string> git(const std::string& arguments) {
  const std::filesystem::path source = CFLOW_SOURCE_DIR;
  std::error_code ec;
  if (!std::filesystem::exists(source / ".git", ec)) return std::nullopt;
  const std::string command =
      "GIT_OPTIONAL_LOCKS=0 git --no-optional-locks -C '" + source.string() + "' " + arguments + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return std::nullopt;
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  if (::pclose(pipe) != 0) return std::nullopt;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

nlohmann::ordered_json new_config_json(const RunConfig& c, const Device& dev, const std::string& model,
                                       index_t outputs, const DataSplits& data, index_t parameters,
                                       const std::string& command) {
  nlohmann::ordered_json j;
  j["cflow_version"] = CFLOW_VERSION;
  const auto commit = git("rev-parse HEAD");
  j["git_commit"] = commit ? nlohmann::ordered_json(*commit) : nlohmann::ordered_json(nullptr);
  const auto changes = commit ? git("status --porcelain --untracked-files=no") : std::nullopt;
  j["git_dirty"] = changes ? nlohmann::ordered_json(!changes->empty()) : nlohmann::ordered_json(nullptr);
  j["command"] = command;
  j["created"] = local_time("%Y-%m-%dT%H:%M:%S%z");
  j["host"] = host_name();
  j["device"] = dev.description();
  j["backend"] = dev.is_cuda() ? "cuda" : "cpu";
  j["cpu_threads"] = dev.cpu_threads();
  j["precision"] = c.is_float32() ? "float32" : "float64";
  j["model"] = model;
  j["parameters"] = parameters;
  j["data"] = {{"name", c.data},
               {"train_examples", data.train.n},
               {"test_examples", c.n_test == 0 ? 0 : data.test.n},
               {"input_shape", {data.train.channels, data.train.height, data.train.width}},
               {"outputs", outputs}};
  j["settings"] = to_json(c);
  j["resumes"] = nlohmann::ordered_json::array();
  return j;
}

}  // namespace cflow::run
