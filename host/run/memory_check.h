#pragma once
// Sizes checked before anything is allocated: each command estimates the memory its flags ask for
// (parameters, per-example activations and jets, the data) and refuses above what the machine has
// (MemAvailable, and the address-space limit of `ulimit -v`), with exit status 2, the estimate, the
// limit and the flags to lower. The estimates are deliberately generous upper bounds of the same
// order as the real use, not exact: their job is to stop absurd sizes before the OOM killer does.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cflow/engine/model.h"

namespace cflow::run {

struct RunConfig;

// Bytes a network of `spec` over `examples` examples needs with `scalar_bytes`-wide numbers, for
// `copies` parameter-sized vectors beside it (optimizer states, processes, eigenvectors) and
// `scratches` sets of per-example activations and jets (one per lane that binds the network).
double network_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double copies, double scratches = 1);

// Parameter-sized vectors the central (or stationary) flow's substep holds for k critical
// directions beside the ~10 every process keeps (docs/design.md §7): for a group of G pairs of the
// k(k+1)/2 (pair_group ≤ 0: all), the third derivatives D and P⁻¹D and the products u_a⊙u_b with
// their scaled copy (4·G), the polarization directions d3 makes min(G, max_directions) at a time,
// and, when G splits the pairs, the k diagonal jets each d3 pass combines with.
double pair_column_copies(std::int64_t k, std::int64_t max_directions, std::int64_t pair_group);

// Bytes the networks of `lanes` lanes hold for `examples` examples beyond one pass (the test set's,
// the --log-outputs probe's, the training examples past a --chunk): per lane each example's primal
// values (its activations) and its per-position loss and correctness, and their data once.
double held_examples_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double lanes);

// Parameter-sized vectors of the processes `runs` ("discrete", "central", …): 12 + 16·k_max each
// on one shared arena, 16 + 26·k_max each on its own lane's arena (own_arenas) and 8·k_max more for
// a central or stationary flow there (state, temporaries, eigen-solver blocks), the pair columns of
// a central or stationary flow at k = k_max, and the stationary flow's fixed point:
// 2·stationary_memory + 24 (Anderson's history and the fixed point's vectors).
double process_copies(const std::vector<std::string>& runs, std::int64_t k_max, std::int64_t max_directions,
                      std::int64_t pair_group, int stationary_memory = 0, bool own_arenas = false);

// The examples a rank's networks hold: a pass of the training network goes over `per_pass` (--chunk
// of the rank's `train` examples, else all of them); every lane's networks also hold the primal
// values of `beyond` more: the training examples past one pass, the `test` examples (unless
// --n-test 0) and the --log-outputs ones, each evaluated in one pass (host/run/lane_oracles.h).
struct RunExamples {
  double per_pass = 0, beyond = 0;
};
RunExamples run_examples(const RunConfig& c, double train, double test);
// The network scratches of a run: with one rank each process binds the network to its own lane
// (docs/design.md §7.10) beside the experiment's own (warm start), so runs + 1; with several ranks the
// processes share one.
double network_scratches(const RunConfig& c, int ranks);
// The estimate `cflow run` checks for config c on a model `spec` (of c's data) holding `examples`:
// network_bytes with process_copies of c's runs, k and pair group (with one rank each process on its
// own arena, and the experiment's own vectors), network_scratches for `ranks` ranks, and
// held_examples_bytes for the examples beyond a pass.
double run_bytes(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, int ranks = 1);
// The largest --width (≤ 2^20) whose run_bytes ≤ limit, the rest of c as it is (0 if none).
std::int64_t largest_run_width(const RunConfig& c, ModelSpec spec, const RunExamples& examples, double limit);
// The largest --central-pair-group ≥ 1 whose run_bytes ≤ limit (0 if none, or c has no central or
// stationary flow to group).
std::int64_t largest_pair_group(RunConfig c, const ModelSpec& spec, const RunExamples& examples, double limit);
// The refusal's hint when run_bytes > limit: the largest width that fits and, when a smaller
// --central-pair-group would make the run fit as configured, that group.
std::string fit_hint(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, double limit);
// `cflow run --plan-memory GIB`: the estimate for c, and the largest --width that fits GIB at c's k,
// precision and pair group (docs/design.md §7).
void print_memory_plan(const RunConfig& c, const ModelSpec& spec, const RunExamples& examples, double gib,
                       std::ostream& out);

// The memory a process may use: min(MemAvailable, RLIMIT_AS, RLIMIT_DATA) in bytes.
double memory_limit_bytes();

// Throws ConfigError "<what> needs about X GiB, more than the Y GiB available; lower
// <flags>" when bytes > memory_limit_bytes(); `hint` (e.g. the largest width that fits) follows.
void check_memory(double bytes, const std::string& what, const std::string& flags, const std::string& hint = "");

}  // namespace cflow::run
