// Right-sizing notes: five canned job traces, fed point by point into a job's aggregates, give
// exactly the expected notes (golden), texts and figures included.
#include "server/summary_notes.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "server/job_summary.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kStart = 1'700'000'000 * kSecond;
constexpr int64_t kGb = int64_t{1} << 30;
constexpr int kPoints = 30;  // every 10 s: five minutes

struct Trace {
  const char* name;
  int gpus = 1;
  int64_t memory_limit_bytes = 64 * kGb;
  std::optional<std::string> termination_reason = std::nullopt;
  double cpu_cores = 4;                                // busy all along
  std::function<int64_t(int point, int gpu)> util;     // percent
  std::function<int64_t(int point, int gpu)> gpu_mem;  // bytes
  int64_t memory_bytes = 10 * kGb;                     // the job's memory, all along
  std::vector<SummaryNote> expected;
};

JobSummary Replay(const Trace& t) {
  JobAggregates job;
  job.job_id = "j";
  job.started_at = kStart;
  job.cpus = 16;
  job.memory_limit_bytes = t.memory_limit_bytes;
  for (int g = 0; g < t.gpus; ++g) {
    GpuAggregate gpu;
    gpu.index = g;
    gpu.memory_total_bytes = 80 * kGb;
    job.gpus.push_back(gpu);
  }
  for (int i = 0; i < kPoints; ++i) {
    model::JobMetricsPoint p;
    p.job_id = "j";
    p.timestamp_micro = kStart + i * 10 * kSecond;
    p.cpu_usage_micro = static_cast<int64_t>(t.cpu_cores * static_cast<double>(i * 10 * kSecond));
    p.memory_usage_bytes = t.memory_bytes;
    for (int g = 0; g < t.gpus; ++g) {
      p.gpus_util_percent.push_back(t.util(i, g));
      p.gpus_memory_usage_bytes.push_back(t.gpu_mem(i, g));
    }
    AddPoint(job, p);
  }
  JobEnd end{"terminated", t.termination_reason, kStart + kPoints * 10 * kSecond};
  return SummaryOf(job, end, end.finished_at.value());
}

std::vector<Trace> Traces() {
  return {
      {.name = "six of eight GPUs never used",
       .gpus = 8,
       .util = [](int i, int g) -> int64_t { return g < 2 ? 95 : i % 4; },
       .gpu_mem = [](int, int) { return 60 * kGb; },
       .expected = {{"unused_gpus", "asked for 8 GPUs, 6 stayed below 5 %"}}},
      {.name = "a small model on a large GPU",
       .util = [](int, int) -> int64_t { return 70; },
       .gpu_mem = [](int i, int) { return i == 7 ? 9 * kGb : 5 * kGb; },
       .expected = {{"gpu_memory_oversized",
                     "peak 9 GB of 80 GB: a 24 GB GPU or a MIG slice would fit"}}},
      {.name = "a data loader on one CPU",
       .cpu_cores = 1.0,
       .util = [](int i, int) -> int64_t { return i % 2 == 0 ? 20 : 4; },
       .gpu_mem = [](int, int) { return 40 * kGb; },
       .expected = {{"cpu_bound", "one CPU at 100 % while GPU utilization averaged 12 %"}}},
      {.name = "memory close to the limit",
       .util = [](int, int) -> int64_t { return 80; },
       .gpu_mem = [](int, int) { return 70 * kGb; },
       .memory_bytes = 61 * kGb,
       .expected = {{"memory_near_limit",
                     "memory peaked at 61.0 GB of its 64.0 GB limit (95 %): out-of-memory "
                     "risk"}}},
      {.name = "stopped by its utilization policy",
       .gpus = 2,
       .termination_reason = "terminated_due_to_utilization_policy",
       .util = [](int, int) -> int64_t { return 3; },
       .gpu_mem = [](int, int) { return 50 * kGb; },
       .expected = {{"unused_gpus", "asked for 2 GPUs, 2 stayed below 5 %"},
                    {"utilization_policy",
                     "terminated by its utilization policy; GPU utilization averaged 3 %"}}},
  };
}

TEST(SummaryNotes, EachCannedTraceGivesExactlyItsNotes) {
  for (const Trace& t : Traces()) {
    SCOPED_TRACE(t.name);
    const JobSummary summary = Replay(t);
    EXPECT_EQ(summary.notes, t.expected);
    for (const SummaryNote& n : summary.notes) std::printf("%s: %s\n", t.name, n.text.c_str());
    // The notes survive the summary's JSON.
    EXPECT_EQ(JobSummaryFromJson(ToJson(summary)).value().notes, t.expected);
  }
}

TEST(SummaryNotes, EveryRuleIsInTheTableOnceAndTooFewSamplesSayNothing) {
  std::set<std::string> rules;
  for (const NoteRule& r : NoteRules()) EXPECT_TRUE(rules.insert(r.rule).second) << r.rule;
  EXPECT_EQ(rules.size(), 5u);
  JobSummary early;
  early.gpus.push_back(GpuSummary{.index = 0, .memory_total_bytes = 80 * kGb, .samples = 2});
  EXPECT_TRUE(SummaryNotes(early).empty());
}

}  // namespace
}  // namespace fleetwatch::server
