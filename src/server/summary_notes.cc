#include "server/summary_notes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include <spdlog/fmt/fmt.h>

namespace fleetwatch::server {
namespace {

// Fewer samples than this say too little about a job to advise on it.
constexpr int64_t kMinSamples = 3;
constexpr int64_t kUnusedGpuMaxUtil = 5;        // percent: "stayed below 5 %"
constexpr double kOversizedMemoryShare = 0.25;  // peak <= a quarter of the GPU
constexpr double kMemoryHeadroom = 1.25;        // a GPU suggested has 25 % above the peak
constexpr double kCpuBoundMinCores = 0.85;
constexpr double kCpuBoundMaxCores = 1.15;
constexpr double kCpuBoundMaxGpuUtil = 30;  // percent
constexpr double kMemoryNearLimitShare = 0.90;
constexpr char kUtilizationPolicyReason[] = "terminated_due_to_utilization_policy";
// Common GPU memory sizes, GB, smallest first.
constexpr std::array<int64_t, 6> kGpuSizesGb = {24, 40, 48, 80, 94, 141};

constexpr double kGb = 1024.0 * 1024 * 1024;  // GPU sizes are powers of 1024 ("80 GB" is 80 GiB)

int64_t RoundGb(int64_t bytes) { return std::llround(static_cast<double>(bytes) / kGb); }

std::string Percent(double p) { return fmt::format("{}", std::llround(p)); }

std::optional<std::string> UnusedGpus(const JobSummary& s) {
  if (s.gpus.empty()) return std::nullopt;
  int unused = 0;
  for (const GpuSummary& g : s.gpus) {
    if (g.samples < kMinSamples) return std::nullopt;
    if (g.util_max < kUnusedGpuMaxUtil) ++unused;
  }
  if (unused == 0) return std::nullopt;
  return fmt::format("asked for {} GPU{}, {} stayed below {} %", s.gpus.size(),
                     s.gpus.size() == 1 ? "" : "s", unused, kUnusedGpuMaxUtil);
}

std::optional<std::string> GpuMemoryOversized(const JobSummary& s) {
  if (s.gpus.empty()) return std::nullopt;
  int64_t peak = 0;
  int64_t size = 0;
  for (const GpuSummary& g : s.gpus) {
    if (g.samples < kMinSamples || g.memory_total_bytes <= 0) return std::nullopt;
    peak = std::max(peak, g.memory_peak_bytes);
    size = std::max(size, g.memory_total_bytes);
  }
  if (static_cast<double>(peak) > kOversizedMemoryShare * static_cast<double>(size)) {
    return std::nullopt;
  }
  const double needed = static_cast<double>(peak) * kMemoryHeadroom;
  std::optional<int64_t> fits;
  for (int64_t gb : kGpuSizesGb) {
    if (static_cast<double>(gb) * kGb >= needed && static_cast<double>(gb) * kGb < size) {
      fits = gb;
      break;
    }
  }
  std::string text = fmt::format("peak {} GB of {} GB",
                                 std::max<int64_t>(RoundGb(peak), peak > 0 ? 1 : 0), RoundGb(size));
  text += fits ? fmt::format(": a {} GB GPU or a MIG slice would fit", *fits)
               : std::string(": a MIG slice or a smaller GPU would fit");
  return text;
}

double MeanGpuUtil(const JobSummary& s) {
  double sum = 0;
  for (const GpuSummary& g : s.gpus) sum += g.util_mean;
  return s.gpus.empty() ? 0 : sum / static_cast<double>(s.gpus.size());
}

std::optional<std::string> CpuBound(const JobSummary& s) {
  if (s.gpus.empty()) return std::nullopt;
  for (const GpuSummary& g : s.gpus) {
    if (g.samples < kMinSamples) return std::nullopt;
  }
  const double util = MeanGpuUtil(s);
  if (s.cpu_mean_cores < kCpuBoundMinCores || s.cpu_mean_cores > kCpuBoundMaxCores ||
      util >= kCpuBoundMaxGpuUtil) {
    return std::nullopt;
  }
  return fmt::format("one CPU at {} % while GPU utilization averaged {} %",
                     Percent(s.cpu_mean_cores * 100), Percent(util));
}

std::optional<std::string> MemoryNearLimit(const JobSummary& s) {
  if (s.memory_limit_bytes <= 0) return std::nullopt;
  const double share =
      static_cast<double>(s.memory_peak_bytes) / static_cast<double>(s.memory_limit_bytes);
  if (share < kMemoryNearLimitShare) return std::nullopt;
  return fmt::format("memory peaked at {:.1f} GB of its {:.1f} GB limit ({} %): out-of-memory risk",
                     static_cast<double>(s.memory_peak_bytes) / kGb,
                     static_cast<double>(s.memory_limit_bytes) / kGb, Percent(share * 100));
}

std::optional<std::string> UtilizationPolicy(const JobSummary& s) {
  if (s.termination_reason != kUtilizationPolicyReason) return std::nullopt;
  if (s.gpus.empty()) return std::string("terminated by its utilization policy");
  return fmt::format("terminated by its utilization policy; GPU utilization averaged {} %",
                     Percent(MeanGpuUtil(s)));
}

}  // namespace

const std::vector<NoteRule>& NoteRules() {
  static const std::vector<NoteRule> rules = {
      {"unused_gpus", UnusedGpus},
      {"gpu_memory_oversized", GpuMemoryOversized},
      {"cpu_bound", CpuBound},
      {"memory_near_limit", MemoryNearLimit},
      {"utilization_policy", UtilizationPolicy},
  };
  return rules;
}

std::vector<SummaryNote> SummaryNotes(const JobSummary& summary) {
  std::vector<SummaryNote> notes;
  for (const NoteRule& r : NoteRules()) {
    if (std::optional<std::string> text = r.check(summary)) notes.push_back({r.rule, *text});
  }
  return notes;
}

}  // namespace fleetwatch::server
