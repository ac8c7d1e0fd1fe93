#include "host/sweep/ids.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <map>

namespace cflow::sweep {

namespace {

// Short prefixes of common axes (the example: w512-lr0.05-s1); keys whose values name
// themselves (opt = "rmsprop") need none; any other key is spelled out.
const std::map<std::string, std::string>& prefixes() {
  static const std::map<std::string, std::string> table{
      {"width", "w"}, {"lr", "lr"}, {"seed", "s"}, {"depth", "d"}, {"n", "n"}, {"steps", "t"}, {"beta2", "b2"},
      {"eps", "eps"}, {"opt", ""},  {"arch", ""},  {"data", ""},  {"act", ""}, {"loss", ""},  {"dtype", ""}};
  return table;
}

std::string value_text(const nlohmann::ordered_json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array()) return value.dump();
  std::string joined;
  for (const auto& item : value) joined += (joined.empty() ? "" : "+") + value_text(item);
  return joined;
}

// Characters safe in a folder name on every file system cflow meets.
std::string safe(std::string text) {
  for (char& c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '+' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return text;
}

}  // namespace

std::string point_slug(const std::vector<Setting>& swept, const run::RunConfig& config) {
  std::string slug;
  for (const Setting& setting : swept) {
    const run::Key& key = *run::find_key(setting.key);
    const nlohmann::ordered_json value = key.get(config);
    std::string piece;
    if (key.is_switch()) {
      piece = (value.get<bool>() ? "" : "not-") + key.name;
    } else {
      const auto prefix = prefixes().find(key.name);
      piece = (prefix != prefixes().end() ? prefix->second : key.name) + value_text(value);
    }
    slug += (slug.empty() ? "" : "-") + safe(piece);
  }
  return slug.empty() ? "base" : slug;
}

std::string point_hash(const std::vector<Setting>& base, const std::vector<Setting>& swept,
                       const run::RunConfig& config) {
  nlohmann::json canonical = nlohmann::json::object();  // sorted keys: the order of the spec does not matter
  for (const Setting& setting : base) {
    const run::Key& key = *run::find_key(setting.key);
    if (!key.on_resume) canonical[key.name] = key.get(config);
  }
  for (const Setting& setting : swept) canonical[setting.key] = run::find_key(setting.key)->get(config);
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (const unsigned char c : canonical.dump()) hash = (hash ^ c) * 1099511628211ull;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(hash >> 32));
  return text;
}

}  // namespace cflow::sweep
