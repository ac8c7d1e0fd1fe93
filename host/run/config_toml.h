#pragma once
// The TOML side of the key table (host/run/config.h), for readers of other TOML files (a sweep spec's
// [base] and [grid] values are `cflow run` keys too).
#include <toml++/toml.h>

#include <optional>
#include <string>

namespace cflow::run {

// A TOML value as the text its flag would carry: strings as they are, numbers in their shortest
// exact form, booleans as true/false, a list of those comma-separated; nullopt for anything else.
std::optional<std::string> toml_text(const toml::node& node);

}  // namespace cflow::run
