#include "host/run/traffic.h"

#include <algorithm>
#include <iomanip>

namespace cflow::run {

void TrafficMeter::add(const StepRecord& record) {
  if (seen_++ < kTrafficWarmupSteps) return;
  ++counted_;
  for (const auto& [kind, process] : record.processes) {
    auto it = std::find_if(totals_.begin(), totals_.end(), [&](const auto& t) { return t.first == kind; });
    if (it == totals_.end()) it = totals_.insert(totals_.end(), {kind, DeviceTraffic{}});
    it->second += process.traffic;
  }
}

nlohmann::ordered_json TrafficMeter::json() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [kind, total] : totals_) {
    auto per_step = [&](std::int64_t value) { return double(value) / double(counted_); };
    out[to_string(kind)] = {{"allocations", per_step(total.allocations)},
                            {"host_to_device_bytes", per_step(total.host_to_device_bytes)},
                            {"device_to_host_bytes", per_step(total.device_to_host_bytes)},
                            {"synchronizations", per_step(total.synchronizations)}};
  }
  return out;
}

void TrafficMeter::print(std::ostream& out) const {
  if (counted_ == 0) {
    out << "device traffic: fewer than " << kTrafficWarmupSteps + 1 << " steps, no steady state to report\n";
    return;
  }
  out << "device traffic per step (mean over " << counted_ << " steps after the first " << kTrafficWarmupSteps
      << "):\n  " << std::left << std::setw(10) << "process" << std::right << std::setw(13) << "allocations"
      << std::setw(15) << "host->device B" << std::setw(15) << "device->host B" << std::setw(8) << "syncs\n";
  const nlohmann::ordered_json table = json();
  for (const auto& [kind, figures] : table.items())
    out << "  " << std::left << std::setw(10) << kind << std::right << std::fixed << std::setprecision(1)
        << std::setw(13) << figures["allocations"].get<double>() << std::setw(15)
        << figures["host_to_device_bytes"].get<double>() << std::setw(15)
        << figures["device_to_host_bytes"].get<double>() << std::setw(8) << figures["synchronizations"].get<double>()
        << "\n";
}

}  // namespace cflow::run
