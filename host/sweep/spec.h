#pragma once
// A sweep spec: one TOML file that names a grid of `cflow run` experiments.
//
//     name = "width-lr"            # optional; default: the file's stem
//     [base]                       # any `cflow run` keys, shared by every point
//     data = "moons"
//     steps = 60
//     [grid]                       # lists whose Cartesian product is swept (first axis slowest)
//     width = [32, 64, 128]
//     lr = [0.02, 0.05]
//     [zip]                        # optional: lists of one length that vary together, one axis
//     seed = [0, 1]
//     n = [200, 400]
//
// Keys are the flags of `cflow run` (host/run/config.h); every point goes through the same parser
// and checks as `cflow run`, so a bad point is reported before anything starts. `out`, `config` and
// `resume` belong to the sweep and may not appear.
//
// Point ids: a readable slug of the swept values plus a hash of the point's settings (ids.h), e.g.
// `w512-lr0.05-s1-3f9a1c02`. The hash leaves out the [base] keys a resumed run may change (steps,
// checkpoint-every, threads, device, quiet, no-plots), so raising `steps` in [base] continues the
// finished points instead of starting new ones.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "host/run/config.h"

namespace cflow::sweep {

// One `cflow run` setting: a key of the table (canonical name) and the text its flag would carry.
struct Setting {
  std::string key;
  std::string text;
};

struct Point {
  std::size_t index = 0;
  std::vector<Setting> swept;     // one per axis, in axis order
  std::vector<Setting> settings;  // [base] then the swept values: the point's `cflow run` flags
  std::string id;                 // slug-hash, also the name of its folder
  run::RunConfig config;          // resolved and validated
};

struct Spec {
  std::string name;
  bool named = false;  // the text has a `name` (else the name is the file's stem)
  std::string source;  // where the text came from, for messages
  std::string text;    // the TOML text as read
  std::vector<Setting> base;
  std::vector<std::string> axes;  // swept keys: [grid] in file order, then [zip]
  std::vector<Point> points;
};

// Parses and validates a spec; throws run::ConfigError naming the file, the point and the key.
Spec parse_spec(std::string_view text, const std::string& source_name);
Spec read_spec(const std::filesystem::path& file);

}  // namespace cflow::sweep
