#include "cli/metrics_view.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cli/terminal_text.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

namespace json = boost::json;

constexpr int64_t kMiB = 1024LL * 1024;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr TimeMicros kSecond = 1'000'000;

// 2026-01-02T03:04:30Z.
TimeMicros Now() { return *ParseTimestamp("2026-01-02T03:04:30Z"); }

// One series as the server sends it: `oldest_first` values, the newest taken at `newest`, one
// every 10 s (the reply lists them newest first).
json::object Series(const std::string& name, const std::vector<int64_t>& oldest_first,
                    TimeMicros newest = Now()) {
  json::array timestamps, values;
  for (size_t i = oldest_first.size(); i-- > 0;) {
    const auto age = static_cast<TimeMicros>(oldest_first.size() - 1 - i);
    timestamps.emplace_back(FormatTimestampSeconds(newest - age * 10 * kSecond));
    values.emplace_back(oldest_first[i]);
  }
  return json::object{{"name", name}, {"timestamps", timestamps}, {"values", values}};
}

std::vector<int64_t> Constant(size_t n, int64_t value) { return std::vector<int64_t>(n, value); }

JobMetrics Job(json::array series, std::string status = "running") {
  return JobMetrics{"train", 0, 0, std::move(status), json::object{{"metrics", std::move(series)}}};
}

// A recorded-looking reply: 30 samples of a 4-CPU job with 2 GPUs. CPU climbs from idle to all
// four cores busy; memory holds 16 of 64 GiB; GPU 0 alternates idle and busy with half its memory
// used; GPU 1 is half busy with 1.2 GiB used.
JobMetrics TwoGpuJob() {
  constexpr size_t kSamples = 30;
  std::vector<int64_t> cpu, gpu0_util;
  for (size_t k = 0; k < kSamples; ++k) {
    cpu.push_back(static_cast<int64_t>(k * 400 / (kSamples - 1)));
    gpu0_util.push_back(k % 2 == 0 ? 0 : 100);
  }
  return Job({Series("cpu_usage_percent", cpu),
              Series("memory_usage_bytes", Constant(kSamples, 20 * kGiB)),
              Series("memory_working_set_bytes", Constant(kSamples, 16 * kGiB)),
              Series("cpus_detected_num", Constant(kSamples, 4)),
              Series("memory_total_bytes", Constant(kSamples, 64 * kGiB)),
              Series("gpus_detected_num", Constant(kSamples, 2)),
              Series("gpu_memory_total_bytes", Constant(kSamples, 80 * kGiB)),
              Series("gpu_memory_usage_bytes_gpu0", Constant(kSamples, 40 * kGiB)),
              Series("gpu_memory_usage_bytes_gpu1", Constant(kSamples, 1288490188)),
              Series("gpu_util_percent_gpu0", gpu0_util),
              Series("gpu_util_percent_gpu1", Constant(kSamples, 50))});
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST(MetricsFormat, PercentIsRoundedToAWholeNumber) {
  EXPECT_EQ(FormatPercent(0), "0%");
  EXPECT_EQ(FormatPercent(7.4), "7%");
  EXPECT_EQ(FormatPercent(49.5), "50%");
  EXPECT_EQ(FormatPercent(100), "100%");
  EXPECT_EQ(FormatPercent(250), "250%");
}

TEST(MetricsFormat, BytesUsePowersOf1024AndAtMostOneDecimalUnderTen) {
  EXPECT_EQ(FormatBytesShort(0), "0B");
  EXPECT_EQ(FormatBytesShort(512), "512B");
  EXPECT_EQ(FormatBytesShort(12 * 1024), "12KB");
  EXPECT_EQ(FormatBytesShort(512 * kMiB), "512MB");
  EXPECT_EQ(FormatBytesShort(2 * kGiB), "2GB");
  EXPECT_EQ(FormatBytesShort(1288490188), "1.2GB");  // 1.2 GiB
  EXPECT_EQ(FormatBytesShort(16 * kGiB), "16GB");
  EXPECT_EQ(FormatBytesShort(579 * kGiB + 300 * kMiB), "579GB");
  EXPECT_EQ(FormatBytesShort(1536 * kGiB), "1.5TB");
  EXPECT_EQ(FormatBytesShort(1000 * 1000 * 1000), "954MB");  // 10^9 bytes is not a GB here
}

TEST(MetricsFormat, RoundingUpToTheNextUnitNamesThatUnit) {
  EXPECT_EQ(FormatBytesShort(1024 * kMiB - 1), "1GB");
  EXPECT_EQ(FormatBytesShort(10 * kGiB - 1), "10GB");
}

TEST(MetricsFormat, MemoryIsUsedSlashTotal) {
  EXPECT_EQ(FormatMemoryUsage(579 * kGiB, 960 * kGiB), "579GB/960GB");
  EXPECT_EQ(FormatMemoryUsage(1288490188, 16 * kGiB), "1.2GB/16GB");
  EXPECT_EQ(FormatMemoryUsage(512 * kMiB, 2 * kGiB), "512MB/2GB");
}

// The golden table: 30 samples do not fit the 27 blocks that 80 columns leave, so three pairs of
// neighbours are averaged (the 9th, 18th and 27th blocks cover two samples each); the
// alternating GPU 0 shows those as a middle block. The newest values come last: CPU 400% of 4
// cores is 100%, GPU 0 ends busy.
TEST(MetricsRendering, GoldenTableOfAJobWithTwoGpus) {
  const std::string expected =
      "train job=0 replica=0 (running)\n"
      "       UTILIZATION                       MEMORY\n"
      "cpu    ▁▁▁▂▂▂▂▂▃▃▃▃▄▄▄▄▅▅▅▅▆▆▆▆▆▇▇ 100%  ▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃▃ 16GB/64GB\n"
      "gpu=0  ▁▇▁▇▁▇▁▇▄▁▇▁▇▁▇▁▇▄▁▇▁▇▁▇▁▇▄ 100%  ▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄ 40GB/80GB\n"
      "gpu=1  ▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄▄ 50%   ▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁ 1.2GB/80GB\n";
  EXPECT_EQ(RenderJobMetrics(TwoGpuJob(), Now(), 80), expected);
}

TEST(MetricsRendering, WideTerminalShowsOneBlockPerSample) {
  const std::string out = RenderJobMetrics(TwoGpuJob(), Now(), 200);
  EXPECT_NE(out.find("▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇▁▇ 100%"), std::string::npos) << out;
}

TEST(MetricsRendering, EveryLineFitsTheWidthInDisplayColumns) {
  // A full hour: 360 samples, far more than any line holds.
  constexpr size_t kSamples = 360;
  std::vector<int64_t> ramp;
  for (size_t k = 0; k < kSamples; ++k) ramp.push_back(static_cast<int64_t>(k * 100 / kSamples));
  JobMetrics job = Job({Series("cpu_usage_percent", ramp),
                        Series("memory_working_set_bytes", Constant(kSamples, 999 * kGiB)),
                        Series("cpus_detected_num", Constant(kSamples, 1)),
                        Series("memory_total_bytes", Constant(kSamples, 1023 * kGiB)),
                        Series("gpus_detected_num", Constant(kSamples, 11)),
                        Series("gpu_memory_total_bytes", Constant(kSamples, 141 * kGiB)),
                        Series("gpu_util_percent_gpu10", Constant(kSamples, 100)),
                        Series("gpu_memory_usage_bytes_gpu10", Constant(kSamples, 140 * kGiB))});
  job.run_name = std::string(100, 'r');  // the title is cut, not wrapped
  for (size_t width : {40, 60, 79, 80, 100, 132}) {
    const std::string out = RenderJobMetrics(job, Now(), width);
    const std::vector<std::string> lines = Lines(out);
    bool any_full = false;
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_LE(DisplayWidth(lines[i]), width) << "width " << width << ":\n" << out;
      if (i > 0) any_full = any_full || DisplayWidth(lines[i]) >= width - 1;
    }
    // Space is used, not wasted: some row reaches the edge (the two sparklines share what is
    // left, so one column may stay free).
    EXPECT_TRUE(any_full) << "width " << width << ":\n" << out;
  }
  const std::string at80 = RenderJobMetrics(job, Now(), 80);
  EXPECT_EQ(Lines(at80).size(), 1u + 1u + 1u + 11u) << at80;  // title, header, cpu, gpu=0..10
  // Bytes are not columns: the block characters take three bytes each.
  EXPECT_GT(Lines(at80)[2].size(), 80u);
  EXPECT_NE(Lines(at80)[2].find("▇ 99%  "), std::string::npos) << at80;  // the newest: 359/360
}

TEST(MetricsRendering, AJobWithoutPointsHasNoDataInBothCells) {
  const std::string expected =
      "train job=0 replica=0 (provisioning)\n"
      "     UTILIZATION  MEMORY\n"
      "cpu  no data      no data\n";
  EXPECT_EQ(RenderJobMetrics(Job({}, "provisioning"), Now(), 80), expected);
  JobMetrics empty_reply = Job({});
  empty_reply.metrics = json::object{};
  EXPECT_NE(RenderJobMetrics(empty_reply, Now(), 80).find("cpu  no data      no data"),
            std::string::npos);
}

TEST(MetricsRendering, AMissingSeriesReadsNoDataInItsCellOnly) {
  // No cpus_detected_num: CPU utilisation cannot be computed. GPU 1 is counted but has no series
  // (e.g. the GPU count changed inside the window and the server left them out).
  JobMetrics job = Job(
      {Series("cpu_usage_percent", {100, 200}), Series("memory_working_set_bytes", {kGiB, kGiB}),
       Series("memory_total_bytes", {4 * kGiB, 4 * kGiB}), Series("gpus_detected_num", {2, 2}),
       Series("gpu_memory_total_bytes", {16 * kGiB, 16 * kGiB}),
       Series("gpu_util_percent_gpu0", {10, 90})});
  const std::vector<std::string> lines = Lines(RenderJobMetrics(job, Now(), 80));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[2], "cpu    no data      ▃▃ 1GB/4GB");
  EXPECT_EQ(lines[3], "gpu=0  ▂▆ 90%       no data");
  EXPECT_EQ(lines[4], "gpu=1  no data      no data");
}

TEST(MetricsRendering, SamplesOlderThanAnHourAreLeftOut) {
  // Eleven samples one every 6 minutes: the oldest is an hour and six minutes old.
  JobMetrics job = Job({Series("cpu_usage_percent", {}), Series("cpus_detected_num", {})});
  json::array& series = job.metrics.as_object()["metrics"].as_array();
  json::array times, cpu, cpus;
  for (int i = 0; i <= 10; ++i) {
    times.emplace_back(FormatTimestampSeconds(Now() - i * 360 * kSecond - 6 * 60 * kSecond));
    cpu.emplace_back(i == 10 ? 100 : 0);
    cpus.emplace_back(1);
  }
  series = json::array{
      json::object{{"name", "cpu_usage_percent"}, {"timestamps", times}, {"values", cpu}},
      json::object{{"name", "cpus_detected_num"}, {"timestamps", times}, {"values", cpus}}};
  const std::vector<std::string> lines = Lines(RenderJobMetrics(job, Now(), 80));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[2], "cpu  ▁▁▁▁▁▁▁▁▁▁ 0%  no data");
}

TEST(MetricsRendering, MalformedSeriesReadAsMissing) {
  JobMetrics job =
      Job({Series("cpu_usage_percent", {50, 60}), Series("cpus_detected_num", {1, 1})});
  json::array& series = job.metrics.as_object()["metrics"].as_array();
  series[0].as_object()["values"] = json::array{"fifty", 60};
  series.push_back(json::object{{"name", "memory_total_bytes"}, {"timestamps", "x"}});
  series.push_back(json::object{{"name", "memory_working_set_bytes"},
                                {"timestamps", json::array{"yesterday"}},
                                {"values", json::array{5}}});
  series.push_back(42);
  series.push_back(json::object{{"name", "gpu_util_percent_gpu99999999999"},
                                {"timestamps", json::array{}},
                                {"values", json::array{}}});
  const std::vector<std::string> lines = Lines(RenderJobMetrics(job, Now(), 80));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "cpu  no data      no data");
}

TEST(MetricsRendering, ServerTextIsMadeTerminalSafe) {
  JobMetrics job = Job({});
  job.run_name = "evil\x1b[2Jname\n";
  job.status = "running\r";
  const std::string out = RenderJobMetrics(job, Now(), 80);
  EXPECT_EQ(Lines(out)[0], "evil?[2Jname? job=0 replica=0 (running?)");
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
}

TEST(MetricsRendering, SeveralJobsAreSeparatedByABlankLine) {
  JobMetrics first = Job({});
  JobMetrics second = Job({});
  second.replica_num = 1;
  const std::string out = RenderMetrics({first, second}, Now(), 80);
  EXPECT_EQ(out,
            "train job=0 replica=0 (running)\n"
            "     UTILIZATION  MEMORY\n"
            "cpu  no data      no data\n"
            "\n"
            "train job=0 replica=1 (running)\n"
            "     UTILIZATION  MEMORY\n"
            "cpu  no data      no data\n");
}

TEST(MetricsJson, JobsCarryTheRepliesMetricsAsReceived) {
  JobMetrics job = TwoGpuJob();
  job.job_num = 1;
  job.replica_num = 2;
  JobMetrics none = Job({});
  none.metrics = json::object{};
  const json::value doc = MetricsJson({job, none});
  const json::array& jobs = doc.at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].at("job_num"), 1);
  EXPECT_EQ(jobs[0].at("replica_num"), 2);
  EXPECT_EQ(jobs[0].at("metrics"), job.metrics.at("metrics"));
  EXPECT_EQ(jobs[1].at("metrics"), json::array{});
  EXPECT_EQ(jobs[0].as_object().size(), 3u);
}

TEST(MetricsWatchHeader, NamesTheRunAndTheSpanShown) {
  const TimeMicros now = *ParseTimestamp("2026-11-30T12:00:05Z");
  EXPECT_EQ(WatchHeader("spin", now, "", 200),
            "spin: the last hour, 11:00:05–12:00:05 UTC (redrawn every 10s; Ctrl-C stops)");
  EXPECT_EQ(WatchHeader("spin", now, "failed (exit 3)", 200),
            "spin: the last hour, 11:00:05–12:00:05 UTC (the run ended: failed (exit 3))");
  EXPECT_EQ(WatchHeader("spin", now, "", 30), "spin: the last hour, 11:00:05…");
  EXPECT_EQ(WatchHeader("a\x1b[2Jb", now, "done", 200),
            "a?[2Jb: the last hour, 11:00:05–12:00:05 UTC (the run ended: done)");
}

}  // namespace
}  // namespace fleetwatch::cli
