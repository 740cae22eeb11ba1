#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::agent {

// One row of a dcgm-exporter counters file (its -f/--collectors CSV).
struct DcgmCounterField {
  std::string_view name;  // DCGM field, e.g. "DCGM_FI_DEV_GPU_UTIL"
  std::string_view type;  // Prometheus metric type: "gauge" or "counter"
  std::string_view help;  // HELP text; never holds a comma (the file is CSV)
};

// The 49 fields the agent's managed dcgm-exporter collects (docs/spec METRICS.md, "DCGM
// families"), gauges first. Static data; thread-safe.
std::span<const DcgmCounterField> DcgmCounterFields();

// The counters file: comment lines, then "field, type, help" per field, then the label row
// "DCGM_FI_DRIVER_VERSION, label, ..." (samples carry the driver version as a label). Pure;
// thread-safe.
std::string DcgmCountersCsv();

// Writes DcgmCountersCsv() to `file` through a temporary file in the same directory and a rename,
// so that a reader (a starting dcgm-exporter) never sees half of it. Unavailable on an I/O
// error, naming the file. Thread-safe as long as no two calls write the same file.
Status WriteDcgmCountersFile(const std::filesystem::path& file);

}  // namespace fleetwatch::agent
