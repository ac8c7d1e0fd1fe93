#pragma once
// A named choice: one table per enum (its values and their names) that parse, to_string, the CLI's
// allowed values and the config key table all read, so a name is written down once.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/runtime/error.h"

namespace cflow {

template <class E>
struct Choice {
  std::string_view name;
  E value;
};

template <class E, std::size_t N>
using ChoiceTable = std::array<Choice<E>, N>;

// The names, in table order.
template <class E, std::size_t N>
std::vector<std::string> choice_names(const ChoiceTable<E, N>& table) {
  std::vector<std::string> names;
  for (const auto& choice : table) names.emplace_back(choice.name);
  return names;
}

// The names joined by `separator`, e.g. "mse|ce".
template <class E, std::size_t N>
std::string joined_choice_names(const ChoiceTable<E, N>& table, std::string_view separator) {
  std::string text;
  for (const auto& choice : table) text += (text.empty() ? "" : std::string(separator)) + std::string(choice.name);
  return text;
}

// The value named `name`; throws cflow::Error naming `what` and the valid names.
template <class E, std::size_t N>
E parse_choice(std::string_view what, std::string_view name, const ChoiceTable<E, N>& table) {
  for (const auto& choice : table)
    if (choice.name == name) return choice.value;
  throw Error("unknown " + std::string(what) + " '" + std::string(name) + "' (valid: " + joined_choice_names(table, ", ") +
              ")");
}

template <class E, std::size_t N>
std::string choice_name(E value, const ChoiceTable<E, N>& table) {
  for (const auto& choice : table)
    if (choice.value == value) return std::string(choice.name);
  throw Error("a value without a name in its choice table");
}

}  // namespace cflow
