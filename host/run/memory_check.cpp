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
// The vectors a process keeps: `base` + `per_direction`·k (its state and the step's temporaries, and
// per tracked direction the eigen-solver's blocks: LOBPCG's [X, R, P] and their images, Rayleigh-Ritz
// and warm-start scratch), each kept by the caching arena in its own size class, and what a flow
// holding pair columns keeps per direction beside them.
struct ArenaCopies {
  double base, per_direction, flow_per_direction;
};
// Processes on one arena (several ranks: one stream) reuse each other's freed blocks: about 8 + 13·k
// per process measured (tests/test_memory_estimate.cpp), rounded up.
constexpr ArenaCopies kSharedArena{12, 16, 0};
// Each process on its own lane's arena (docs/design.md §7.10) keeps every block it took: about
// 11 + 25·k per process measured (RMSProp's discrete process; GD's 4·k less) and 14 + 33·k for
// RMSProp's central flow beside its pair columns (tests/test_memory_estimate.cpp), rounded up.
constexpr ArenaCopies kLaneArenas{16, 26, 8};
// With lanes the experiment's own vectors stay on its arena (the warm start's w, g and optimizer
// states, the flows' starting state, the distances' difference): 8.4 measured with RMSProp, rounded up.
constexpr double kExperimentCopies = 10;
// The stationary flow's fixed point besides: Anderson's 2·memory differences, and its last image and
// residual, the iterate, its image, P, P⁻¹, P⁻¹g, the relative change, the next P and the
// iteration's temporaries (central_flow.cpp, stationary_flow_substep; host/solvers/anderson.h):
// 20 measured on the arena (tests/test_memory_estimate.cpp), rounded up.
constexpr double kStationaryCopies = 24;
double stationary_copies(int memory) { return 2.0 * memory + kStationaryCopies; }

// A model's parameters and activations per example (all layers, the input included), from the
// layers' shapes only: no buffers.
struct ModelSize {
  double parameters = 0, activations = 0, kept = 0;  // kept: what forward keeps (Layer::kept_size)
};
ModelSize size_of(const ModelSpec& spec) {
  const LayerStack<double> layers = build_layers<double>(spec);
  ModelSize size{0, double(spec.input.size())};
  for (const auto& layer : layers) {
    size.parameters += double(layer->parameter_count());
    size.activations += double(layer->output_shape().size() + layer->internal_size());
    size.kept += double(layer->kept_size());
  }
  return size;
}

// The data of `examples`, read as doubles: inputs and targets.
double data_bytes(const ModelSpec& spec, double examples) {
  return 8.0 * examples * double(spec.input.size() + spec.classes * spec.positions);
}

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
  const ModelSize size = size_of(spec);
  return scalar_bytes * (size.parameters * copies +
                         scratches * examples * (size.activations * kActivationCopies + size.kept)) +
         data_bytes(spec, examples);
}

double held_examples_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double lanes) {
  const ModelSize size = size_of(spec);
  const double per_example = size.activations + size.kept + 2.0 * double(spec.positions);
  return scalar_bytes * lanes * examples * per_example + data_bytes(spec, examples);
}

double pair_column_copies(std::int64_t k, std::int64_t max_directions, std::int64_t pair_group) {
  const double pairs = double(k) * double(k + 1) / 2;
  const double group = pair_group <= 0 ? pairs : std::min(pairs, double(pair_group));
  return 4 * group + std::min(group, double(max_directions)) + (group < pairs ? double(k) : 0.0);
}

double process_copies(const std::vector<std::string>& runs, std::int64_t k_max, std::int64_t max_directions,
                      std::int64_t pair_group, int stationary_memory, bool own_arenas) {
  const ArenaCopies& per = own_arenas ? kLaneArenas : kSharedArena;
  double copies = 0;
  for (const std::string& run : runs) {
    copies += per.base + per.per_direction * double(k_max);
    if (holds_pair_columns(run))
      copies += per.flow_per_direction * double(k_max) + pair_column_copies(k_max, max_directions, pair_group);
    if (run == "stationary") copies += stationary_copies(stationary_memory);
  }
  return copies;
}

RunExamples run_examples(const RunConfig& c, double train, double test) {
  const double per_pass = c.chunk > 0 ? std::min(double(c.chunk), train) : train;
  return {per_pass, train - per_pass + (c.n_test != 0 ? test : 0) + double(c.log_outputs)};
}

double network_scratches(const RunConfig& c, int ranks) { return ranks == 1 ? double(c.runs.size()) + 1 : 1; }

double run_bytes(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, int ranks) {
  const bool lanes = ranks == 1;
  const double copies = process_copies(c.runs, c.eig_max_k, NetworkOptions{}.max_directions, c.central_pair_group,
                                       c.stationary_memory, lanes) +
                        (lanes ? kExperimentCopies : 0);
  const double scalar_bytes = c.is_float32() ? 4 : 8, scratches = network_scratches(c, ranks);
  return network_bytes(spec, examples.per_pass, scalar_bytes, copies, scratches) +
         held_examples_bytes(spec, examples.beyond, scalar_bytes, scratches);
}

std::int64_t largest_run_width(const RunConfig& c, ModelSpec spec, const RunExamples& examples, double limit) {
  return largest_fitting(std::int64_t{1} << 20, [&](std::int64_t width) {
    spec.width = width;
    return run_bytes(c, spec, examples) <= limit;
  });
}

std::int64_t largest_pair_group(RunConfig c, const ModelSpec& spec, const RunExamples& examples, double limit) {
  if (std::none_of(c.runs.begin(), c.runs.end(), holds_pair_columns)) return 0;
  return largest_fitting(c.eig_max_k * (c.eig_max_k + 1) / 2, [&](std::int64_t group) {
    c.central_pair_group = group;
    return run_bytes(c, spec, examples) <= limit;
  });
}

std::string fit_hint(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, double limit) {
  std::string hint = " (the largest --width that fits: " +
                     std::to_string(std::min(spec.width, largest_run_width(c, spec, examples, limit))) + ")";
  const std::int64_t group = largest_pair_group(c, spec, examples, limit);
  if (group > 0)
    hint += "; or stream the pairs of critical directions in smaller groups: --central-pair-group " +
            std::to_string(group) + " fits as configured";
  return hint;
}

void print_memory_plan(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, double gib,
                       std::ostream& out) {
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
