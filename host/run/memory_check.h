#pragma once
// Sizes checked before anything is allocated: each command estimates the memory its flags ask for
// (parameters, per-example activations and jets, the data) and refuses above what the machine has
// (MemAvailable, and the address-space limit of `ulimit -v`), with exit status 2, the estimate, the
// limit and the flags to lower. The estimates are deliberately generous upper bounds of the same
// order as the real use, not exact: their job is to stop absurd sizes before the OOM killer does.
#include <cstdint>
#include <string>

#include "cflow/engine/model.h"

namespace cflow::run {

// Bytes a network of `spec` over `examples` examples needs with `scalar_bytes`-wide numbers, for
// `copies` parameter-sized vectors beside it (optimizer states, processes, eigenvectors).
double network_bytes(const ModelSpec& spec, double examples, double scalar_bytes, double copies);

// The memory a process may use: min(MemAvailable, RLIMIT_AS, RLIMIT_DATA) in bytes.
double memory_limit_bytes();

// Throws ConfigError "<what> needs about X GiB, more than the Y GiB available; lower
// <flags>" when bytes > memory_limit_bytes().
void check_memory(double bytes, const std::string& what, const std::string& flags);

}  // namespace cflow::run
