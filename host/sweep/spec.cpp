#include "host/sweep/spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "host/run/config_toml.h"
#include "host/sweep/ids.h"

namespace cflow::sweep {

namespace {

using run::ConfigError;

std::string at_line(const toml::node& node) {
  const auto& where = node.source();
  return where.begin ? " (line " + std::to_string(where.begin.line) + ")" : "";
}

// The entries of a TOML table in the order they appear in the file (toml::table sorts by key).
std::vector<std::pair<std::string, const toml::node*>> in_file_order(const toml::table& table) {
  std::vector<std::pair<std::string, const toml::node*>> entries;
  for (const auto& [name, value] : table) entries.emplace_back(std::string(name.str()), &value);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.second->source().begin.line < b.second->source().begin.line;
  });
  return entries;
}

// An axis: a key and its values, checked one by one through the key table.
struct Axis {
  std::string key;
  std::vector<std::string> values;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  // The key of the table called `name` in `section`; unknown and sweep-owned keys are errors.
  const run::Key& key(const std::string& section, const std::string& name, const toml::node& value) {
    const std::string where = source_ + ": [" + section + "] " + name + at_line(value);
    const run::Key* found = run::find_key(name);
    if (!found) {
      throw ConfigError(where + ": unknown key; the keys are the flags of `cflow run --help` without the dashes");
    }
    if (found->name == "out") {
      throw ConfigError(where + ": the sweep sets each point's run directory (DIR/points/<id>/run); remove it");
    }
    const auto [previous, fresh] = seen_.emplace(found->name, where);
    if (!fresh) throw ConfigError(where + ": '" + found->name + "' is already set at " + previous->second);
    return *found;
  }

  // One value as flag text, parsed once through the key table so a bad value is named here.
  std::string value(const run::Key& key, const toml::node& node, const std::string& where) {
    const auto text = run::toml_text(node);
    if (!text) throw ConfigError(where + ": expected a string, number, boolean or list of them");
    run::RunConfig scratch;
    run::set_key(scratch, key, *text, where);
    return *text;
  }

  std::vector<Setting> base(const toml::table& table) {
    std::vector<Setting> settings;
    for (const auto& [name, node] : in_file_order(table)) {
      const run::Key& k = key("base", name, *node);
      settings.push_back({k.name, value(k, *node, source_ + ": [base] " + name + at_line(*node))});
    }
    return settings;
  }

  std::vector<Axis> axes(const std::string& section, const toml::table& table) {
    std::vector<Axis> axes;
    for (const auto& [name, node] : in_file_order(table)) {
      const run::Key& k = key(section, name, *node);
      const std::string where = source_ + ": [" + section + "] " + name + at_line(*node);
      const toml::array* list = node->as_array();
      if (!list) throw ConfigError(where + ": expected a list of values to sweep, e.g. " + name + " = [1, 2]");
      if (list->empty()) throw ConfigError(where + ": the list is empty; give at least one value");
      Axis axis{k.name, {}};
      for (const toml::node& item : *list) axis.values.push_back(value(k, item, where));
      axes.push_back(std::move(axis));
    }
    return axes;
  }

 private:
  std::string source_;
  std::map<std::string, std::string> seen_;  // key -> where it was set
};

const toml::table* section(const toml::table& root, const char* name, const std::string& source) {
  const toml::node* node = root.get(name);
  if (!node) return nullptr;
  if (!node->is_table()) throw ConfigError(source + ": '" + name + "'" + at_line(*node) + " must be a table [" + name + "]");
  return node->as_table();
}

void check_top_level(const toml::table& root, const std::string& source) {
  for (const auto& [name, value] : root) {
    const std::string_view n = name.str();
    if (n != "name" && n != "base" && n != "grid" && n != "zip") {
      throw ConfigError(source + ": unknown entry '" + std::string(n) + "'" + at_line(value) +
                        "; a sweep spec holds name, [base], [grid] and [zip] (cflow run keys go in [base])");
    }
  }
  if (const toml::node* name = root.get("name"); name && !name->is_string())
    throw ConfigError(source + ": name" + at_line(*name) + ": expected a string");
}

// [zip] lists vary together: one axis whose values are tuples.
void check_zip(const std::vector<Axis>& zip, const std::string& source) {
  for (const Axis& axis : zip) {
    if (axis.values.size() != zip.front().values.size()) {
      throw ConfigError(source + ": [zip] " + axis.key + " has " + std::to_string(axis.values.size()) +
                        " values but " + zip.front().key + " has " + std::to_string(zip.front().values.size()) +
                        "; lists in [zip] vary together and need one length");
    }
  }
}

// The swept settings of point `index`: the grid's Cartesian product (last axis fastest), then the zip.
std::vector<Setting> swept_settings(const std::vector<Axis>& grid, const std::vector<Axis>& zip, std::size_t index) {
  const std::size_t zip_length = zip.empty() ? 1 : zip.front().values.size();
  std::size_t rest = index / zip_length;
  std::vector<Setting> swept(grid.size());
  for (std::size_t a = grid.size(); a-- > 0;) {
    swept[a] = {grid[a].key, grid[a].values[rest % grid[a].values.size()]};
    rest /= grid[a].values.size();
  }
  for (const Axis& axis : zip) swept.push_back({axis.key, axis.values[index % zip_length]});
  return swept;
}

Point make_point(const Spec& spec, std::vector<Setting> swept, std::size_t index) {
  Point point;
  point.index = index;
  point.swept = std::move(swept);
  point.settings = spec.base;
  point.settings.insert(point.settings.end(), point.swept.begin(), point.swept.end());
  for (const Setting& s : point.settings) run::set_key(point.config, *run::find_key(s.key), s.text, spec.source);
  point.config.classes = point.config.resolved_classes();
  point.id = point_slug(point.swept, point.config) + "-" + point_hash(spec.base, point.swept, point.config);
  try {
    run::validate(point.config);
  } catch (const ConfigError& e) {
    throw ConfigError(spec.source + ": point " + std::to_string(index) + " (" + point.id + "): " + e.what());
  }
  return point;
}

}  // namespace

Spec parse_spec(std::string_view text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(source_name + ":" + std::to_string(e.source().begin.line) +
                      ": not valid TOML: " + std::string(e.description()));
  }
  check_top_level(root, source_name);
  Spec spec;
  spec.source = source_name;
  spec.text = std::string(text);
  spec.named = root.contains("name");
  spec.name = root["name"].value_or(std::filesystem::path(source_name).stem().string());
  Reader reader(source_name);
  if (const toml::table* base = section(root, "base", source_name)) spec.base = reader.base(*base);
  std::vector<Axis> grid, zip;
  if (const toml::table* table = section(root, "grid", source_name)) {
    if (table->empty()) throw ConfigError(source_name + ": [grid] is empty; give at least one key with a list of values");
    grid = reader.axes("grid", *table);
  }
  if (const toml::table* table = section(root, "zip", source_name)) {
    if (table->empty()) throw ConfigError(source_name + ": [zip] is empty; give lists of one length or remove it");
    zip = reader.axes("zip", *table);
    check_zip(zip, source_name);
  }
  std::size_t count = zip.empty() ? 1 : zip.front().values.size();
  for (const Axis& axis : grid) count *= axis.values.size();
  for (const auto* axes : {&grid, &zip})
    for (const Axis& axis : *axes) spec.axes.push_back(axis.key);

  std::map<std::string, std::size_t> first_with_id;
  for (std::size_t i = 0; i < count; ++i) {
    Point point = make_point(spec, swept_settings(grid, zip, i), i);
    const auto [previous, fresh] = first_with_id.emplace(point.id, i);
    if (!fresh) {
      throw ConfigError(source_name + ": points " + std::to_string(previous->second) + " and " + std::to_string(i) +
                        " are the same experiment (" + point.id +
                        "); remove the repeated value (e.g. 0.05 and 5e-2 are one learning rate)");
    }
    spec.points.push_back(std::move(point));
  }
  return spec;
}

Spec read_spec(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot be read (check the path)");
  std::stringstream text;
  text << in.rdbuf();
  return parse_spec(text.str(), file.string());
}

}  // namespace cflow::sweep
