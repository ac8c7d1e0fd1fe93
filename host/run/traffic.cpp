#include "host/run/traffic.h"

#include <algorithm>
#include <iomanip>
#include <string_view>

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
                            {"device_to_host_transfers", per_step(total.device_to_host)},
                            {"pageable_transfers", per_step(total.pageable_transfers)},
                            {"synchronizations", per_step(total.synchronizations)}};
  }
  return out;
}

void TrafficMeter::print(std::ostream& out) const {
  if (counted_ == 0) {
    out << "device traffic: fewer than " << kTrafficWarmupSteps + 1 << " steps, no steady state to report\n";
    return;
  }
  // summary.json's keys and their column headings.
  static constexpr std::pair<const char*, const char*> kColumns[] = {
      {"allocations", "allocations"},       {"host_to_device_bytes", "host->device B"},
      {"device_to_host_bytes", "device->host B"}, {"device_to_host_transfers", "transfers"},
      {"pageable_transfers", "pageable"},   {"synchronizations", "syncs"}};
  const auto width = [](const char* heading) { return int(std::string_view(heading).size()) + 2; };
  out << "device traffic per step (mean over " << counted_ << " steps after the first " << kTrafficWarmupSteps
      << "):\n  " << std::left << std::setw(10) << "process" << std::right;
  for (const auto& [key, heading] : kColumns) out << std::setw(width(heading)) << heading;
  out << "\n";
  const nlohmann::ordered_json table = json();
  for (const auto& [kind, figures] : table.items()) {
    out << "  " << std::left << std::setw(10) << kind << std::right << std::fixed << std::setprecision(1);
    for (const auto& [key, heading] : kColumns) out << std::setw(width(heading)) << figures[key].get<double>();
    out << "\n";
  }
}

}  // namespace cflow::run
