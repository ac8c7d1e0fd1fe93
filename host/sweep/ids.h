#pragma once
// Stable point ids: `<slug>-<hash>` (see spec.h). The same settings give the same id on every
// machine and cflow version whose key table writes them the same way.
#include <string>
#include <vector>

#include "host/run/config.h"
#include "host/sweep/spec.h"

namespace cflow::sweep {

// Readable part: one piece per swept setting, e.g. w512, lr0.05, s1, rmsprop.
std::string point_slug(const std::vector<Setting>& swept, const run::RunConfig& config);
// 8 hex digits of the FNV-1a hash of the canonical JSON of the point's settings: every swept one, and
// those of [base] that a resumed run cannot change.
std::string point_hash(const std::vector<Setting>& base, const std::vector<Setting>& swept,
                       const run::RunConfig& config);

}  // namespace cflow::sweep
