#pragma once
// Sizes checked before anything is allocated: each command estimates the memory its flags ask for
// (parameters, per-example activations and jets, the data) and refuses above what the machine has
// (MemAvailable, and the address-space limit of `ulimit -v`), with exit status 2, the estimate, the
// limit and the flags to lower. The estimates are deliberately generous upper bounds of the same
// order as the real use, not exact: their job is to stop absurd sizes before the OOM killer does.
#include <cstdint>
#include <string>
#include <vector>

#include "cflow/engine/model.h"

namespace cflow::run {

// Bytes a network of `spec` over `examples` examples needs with `scalar_bytes`-wide numbers, for
// `copies` parameter-sized vectors beside it (optimizer states, processes, eigenvectors).
double network_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double copies);

// Parameter-sized vectors the central (or stationary) flow's substep holds for k critical
// directions beside the ~10 every process keeps (docs/design.md §7): the pairs' third derivatives D
// and P⁻¹D and the products u_a⊙u_b (3 · k(k+1)/2), and the polarization directions d3 makes one
// group of `max_directions` pairs at a time.
double pair_column_copies(std::int64_t k, std::int64_t max_directions);

// Parameter-sized vectors of the processes `runs` ("discrete", "central", …): 12 + 16·k_max each
// (state, temporaries, eigen-solver blocks), and the pair columns of a central or stationary flow
// at k = k_max.
double process_copies(const std::vector<std::string>& runs, std::int64_t k_max, std::int64_t max_directions);

// The largest width w ≤ spec.width whose network_bytes(spec with width w, …) ≤ limit (0 if none).
std::int64_t largest_width(ModelSpec spec, double examples, double scalar_bytes, double copies, double limit);

// The memory a process may use: min(MemAvailable, RLIMIT_AS, RLIMIT_DATA) in bytes.
double memory_limit_bytes();

// Throws ConfigError "<what> needs about X GiB, more than the Y GiB available; lower
// <flags>" when bytes > memory_limit_bytes(); `hint` (e.g. the largest width that fits) follows.
void check_memory(double bytes, const std::string& what, const std::string& flags, const std::string& hint = "");

}  // namespace cflow::run
