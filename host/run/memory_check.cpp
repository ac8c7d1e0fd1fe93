#include "host/run/memory_check.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <ostream>

#include "cflow/engine/network.h"
#include "host/engine/layer.h"
#include "host/run/config.h"

namespace cflow::run {

namespace {
// Values, three tangents and their adjoints per activation, with room for the loss's buffers.
constexpr double kActivationCopies = 12;
// Per process: its state and the step's temporaries, and per tracked direction the eigen-solver's
// blocks (LOBPCG's [X, R, P] and their images, Rayleigh-Ritz and warm-start scratch), each kept by
// the caching arena in its own size class. Measured on the arena (tests/test_memory_estimate.cpp:
// about 8 + 13·k vectors per process), rounded up.
constexpr double kProcessCopies = 12, kEigenCopiesPerDirection = 16;
// The stationary flow's fixed point besides: Anderson's 2·memory differences, and its last image and
// residual, the iterate, its image, P, P⁻¹, P⁻¹g, the relative change, the next P and the
// iteration's temporaries (central_flow.cpp, stationary_flow_substep; host/solvers/anderson.h):
// 20 measured on the arena (tests/test_memory_estimate.cpp), rounded up.
constexpr double kStationaryCopies = 24;
double stationary_copies(int memory) { return 2.0 * memory + kStationaryCopies; }

// The flows whose substep holds the pair columns (D, P⁻¹D, u_a⊙u_b).
bool holds_pair_columns(const std::string& run) { return run == "central" || run == "stationary"; }

// The largest x in [0, upper] with fits(x), for a fits that holds up to some x and fails above
// (0 if it fails at 1): bisection, as every estimate here grows with its argument.
template <class Fits>
std::int64_t largest_fitting(std::int64_t upper, Fits fits) {
  std::int64_t yes = 0, no = upper + 1;
  while (no - yes > 1) {
    const std::int64_t x = yes + (no - yes) / 2;
    (fits(x) ? yes : no) = x;
  }
  return yes;
}
}  // namespace

double network_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double copies, double scratches) {
  const LayerStack<double> layers = build_layers<double>(spec);  // shapes only: no buffers
  double parameters = 0, activations = double(spec.input.size()), kept = 0;
  for (const auto& layer : layers) {
    parameters += double(layer->parameter_count());
    activations += double(layer->output_shape().size() + layer->internal_size());
    kept += double(layer->kept_size());
  }
  return scalar_bytes *
             (parameters * copies + scratches * examples * (activations * kActivationCopies + kept)) +
         8.0 * examples * double(spec.input.size() + spec.classes * spec.positions);  // the data, read as doubles
}

double pair_column_copies(std::int64_t k, std::int64_t max_directions, std::int64_t pair_group) {
  const double pairs = double(k) * double(k + 1) / 2;
  const double group = pair_group <= 0 ? pairs : std::min(pairs, double(pair_group));
  return 4 * group + std::min(group, double(max_directions)) + (group < pairs ? double(k) : 0.0);
}

double process_copies(const std::vector<std::string>& runs, std::int64_t k_max, std::int64_t max_directions,
                      std::int64_t pair_group, int stationary_memory) {
  double copies = 0;
  for (const std::string& run : runs) {
    copies += kProcessCopies + kEigenCopiesPerDirection * double(k_max);
    if (holds_pair_columns(run)) copies += pair_column_copies(k_max, max_directions, pair_group);
    if (run == "stationary") copies += stationary_copies(stationary_memory);
  }
  return copies;
}

double examples_per_pass(const RunConfig& c, double examples) {
  return c.chunk > 0 ? std::min(double(c.chunk), examples) : examples;
}

double network_scratches(const RunConfig& c, int ranks) { return ranks == 1 ? double(c.runs.size()) + 1 : 1; }

double run_bytes(const RunConfig& c, const ModelSpec& spec, double examples, int ranks) {
  const double copies = process_copies(c.runs, c.eig_max_k, NetworkOptions{}.max_directions, c.central_pair_group,
                                       c.stationary_memory);
  return network_bytes(spec, examples, c.is_float32() ? 4 : 8, copies, network_scratches(c, ranks));
}

std::int64_t largest_run_width(const RunConfig& c, ModelSpec spec, double examples, double limit) {
  return largest_fitting(std::int64_t{1} << 20, [&](std::int64_t width) {
    spec.width = width;
    return run_bytes(c, spec, examples) <= limit;
  });
}

std::int64_t largest_pair_group(RunConfig c, const ModelSpec& spec, double examples, double limit) {
  if (std::none_of(c.runs.begin(), c.runs.end(), holds_pair_columns)) return 0;
  return largest_fitting(c.eig_max_k * (c.eig_max_k + 1) / 2, [&](std::int64_t group) {
    c.central_pair_group = group;
    return run_bytes(c, spec, examples) <= limit;
  });
}

std::string fit_hint(const RunConfig& c, const ModelSpec& spec, double examples, double limit) {
  std::string hint = " (the largest --width that fits: " +
                     std::to_string(std::min(spec.width, largest_run_width(c, spec, examples, limit))) + ")";
  const std::int64_t group = largest_pair_group(c, spec, examples, limit);
  if (group > 0)
    hint += "; or stream the pairs of critical directions in smaller groups: --central-pair-group " +
            std::to_string(group) + " fits as configured";
  return hint;
}

void print_memory_plan(const RunConfig& c, const ModelSpec& spec, double examples, double gib, std::ostream& out) {
  const double limit = gib * 1073741824.0;
  const std::int64_t group = c.central_pair_group;
  out << "memory plan for " << gib << " GiB (docs/design.md §7): " << (c.is_float32() ? "float32" : "float64")
      << ", k = " << c.eig_max_k << ", --central-pair-group " << group << (group <= 0 ? " (all pairs)" : "")
      << "\n"
      << "  this run (--width " << spec.width << "): about " << run_bytes(c, spec, examples) / 1073741824.0
      << " GiB\n"
      << "  the largest --width that fits: " << largest_run_width(c, spec, examples, limit) << "\n";
}

double memory_limit_bytes() {
  double limit = std::numeric_limits<double>::infinity();
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") limit = kib * 1024;
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  for (const int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    rlimit r{};
    if (::getrlimit(resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY) limit = std::min(limit, double(r.rlim_cur));
  }
  return limit;
}

void check_memory(double bytes, const std::string& what, const std::string& flags, const std::string& hint) {
  const double limit = memory_limit_bytes();
  if (bytes <= limit) return;
  char text[160];
  std::snprintf(text, sizeof text, "needs about %.3g GiB, more than the %.3g GiB this process may use", bytes / 1073741824.0,
                limit / 1073741824.0);
  throw ConfigError(what + " " + text + "; lower " + flags + hint);
}

}  // namespace cflow::run
