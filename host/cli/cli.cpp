#include "host/cli/cli.h"

#include <iostream>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cflow/runtime/error.h"
#include "host/run/config.h"

namespace cflow::cli {

namespace {
CLI::Validator lower_bound(const std::string& name, bool strict) {
  return CLI::Validator(
      [strict](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        const bool number = !text.empty() && end == text.c_str() + text.size() && std::isfinite(value);
        if (number && (strict ? value > 0 : value >= 0)) return "";
        return std::string("expected a number ") + (strict ? "> 0" : ">= 0") + ", got '" + text + "'";
      },
      name);
}
}  // namespace

const CLI::Validator kPositive = lower_bound("> 0", true);
const CLI::Validator kNonNegative = lower_bound(">= 0", false);

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
  add(app, add_repair_command);
  add(app, add_sweep_command);
}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t next = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = row[j];
      row[j] = next;
    }
  }
  return row[b.size()];
}
}  // namespace

std::optional<std::string> unknown_command_message(const CLI::App& app, const std::string& word) {
  if (word.empty() || word[0] == '-') return std::nullopt;
  std::string closest;
  std::size_t best = 3;  // suggest only within two edits
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == word) return std::nullopt;
    const std::size_t distance = edit_distance(word, sub->get_name());
    if (distance < best) best = distance, closest = sub->get_name();
  }
  return "unknown command '" + word + "'" + (closest.empty() ? "" : " (did you mean '" + closest + "'?)") +
         "; the commands are listed by cflow --help";
}

std::optional<std::string> missing_value_message(const CLI::App& app, const std::vector<std::string>& args) {
  if (args.empty()) return std::nullopt;
  const CLI::App* command = nullptr;
  for (const CLI::App* sub : app.get_subcommands({}))
    if (sub->get_name() == args[0]) command = sub;
  if (!command) return std::nullopt;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word.rfind("--", 0) != 0 || word.find('=') != std::string::npos) continue;
    const CLI::Option* option = command->get_option_no_throw(word);
    if (!option || option->get_expected_min() == 0) continue;
    const bool next_is_flag = i + 1 < args.size() && args[i + 1].rfind("--", 0) == 0;
    if (i + 1 == args.size() || next_is_flag)
      return word + " needs a value (" + word + " " + option->get_type_name() + ")" +
             (next_is_flag ? ", but " + args[i + 1] + " follows it" : ", but it is the last argument");
  }
  return std::nullopt;
}

int run_selected(CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands()) {
    try {
      return handlers().at(sub)();
    } catch (const run::ConfigError& e) {
      std::cerr << "cflow " << sub->get_name() << ": error: " << e.what() << "\n";
      return 2;
    } catch (const std::bad_alloc&) {
      std::cerr << "cflow " << sub->get_name()
                << ": error: out of memory (std::bad_alloc); lower the sizes (--n, --width, --chunk, ...)\n";
      return 1;
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
