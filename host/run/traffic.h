#pragma once
// The steady-state device traffic of each process (DeviceTraffic per step, docs/design.md §7): the
// mean over the steps after the first two (which size the caching arena and the eigen-solver
// blocks), for summary.json's "device_traffic" and `cflow run --verbose`.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <ostream>
#include <utility>
#include <vector>

#include "cflow/flow/experiment.h"

namespace cflow::run {

inline constexpr std::int64_t kTrafficWarmupSteps = 2;

class TrafficMeter {
 public:
  // Adds one step's records; the first kTrafficWarmupSteps steps this meter sees are left out.
  void add(const StepRecord& record);
  // {process: {allocations, host_to_device_bytes, device_to_host_bytes, device_to_host_transfers,
  // pageable_transfers, synchronizations}} per step
  // (an empty object when no steady-state step was seen).
  nlohmann::ordered_json json() const;
  void print(std::ostream& out) const;

 private:
  std::int64_t seen_ = 0, counted_ = 0;
  std::vector<std::pair<ProcessKind, DeviceTraffic>> totals_;
};

}  // namespace cflow::run
