#include "cli/metrics_view.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "cli/json_fields.h"
#include "cli/sparkline.h"
#include "cli/table.h"
#include "cli/terminal_text.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

namespace json = boost::json;

constexpr size_t kColumnGap = 2;  // as RenderTable separates columns
constexpr std::string_view kNoData = "no data";
constexpr std::string_view kUtilizationHeader = "utilization";
constexpr std::string_view kMemoryHeader = "memory";

// Series by name, samples newest first (as the server sends them), only those in the window.
using SeriesMap = std::map<std::string, std::vector<double>, std::less<>>;

// The reply's series. A series whose timestamps or values are malformed is left out (it reads as
// missing) rather than guessed at; samples of one reply share their points, so the series stay
// aligned index by index.
SeriesMap ReadSeries(const json::value& reply, TimeMicros now) {
  SeriesMap series;
  for (const json::value& metric : ArrayField(reply, "metrics")) {
    const std::string name = StringField(metric, "name");
    const json::array& timestamps = ArrayField(metric, "timestamps");
    const json::array& values = ArrayField(metric, "values");
    if (name.empty() || timestamps.size() != values.size()) continue;
    std::vector<double> samples;
    bool valid = true;
    for (size_t i = 0; i < values.size() && valid; ++i) {
      const json::string* text = timestamps[i].if_string();
      Result<TimeMicros> time = text != nullptr ? ParseTimestamp(*text) : Internal("not a string");
      valid = time.ok() && values[i].is_number();
      if (valid && *time >= now - kMetricsWindow) samples.push_back(values[i].to_number<double>());
    }
    if (valid) series[name] = std::move(samples);
  }
  return series;
}

const std::vector<double>* Find(const SeriesMap& series, std::string_view name) {
  auto it = series.find(name);
  return it == series.end() ? nullptr : &it->second;
}

// A cell with data: the percentages oldest first and the text of the newest value.
struct Cell {
  std::vector<double> percent;
  std::string latest;
};

// numerator / denominator × `scale` index by index (samples where the denominator is not
// positive are skipped); nullopt when either is missing or nothing is left. `latest` formats the
// newest pair used.
template <typename Latest>
std::optional<Cell> RatioCell(const std::vector<double>* numerator,
                              const std::vector<double>* denominator, double scale, Latest latest) {
  if (numerator == nullptr || denominator == nullptr) return std::nullopt;
  Cell cell;
  const size_t n = std::min(numerator->size(), denominator->size());
  for (size_t i = 0; i < n; ++i) {
    if (!((*denominator)[i] > 0)) continue;
    if (cell.percent.empty()) cell.latest = latest((*numerator)[i], (*denominator)[i]);
    cell.percent.push_back((*numerator)[i] * scale / (*denominator)[i]);
  }
  if (cell.percent.empty()) return std::nullopt;
  std::reverse(cell.percent.begin(), cell.percent.end());
  return cell;
}

std::optional<Cell> PercentCell(const std::vector<double>* percent) {
  if (percent == nullptr || percent->empty()) return std::nullopt;
  Cell cell{std::vector<double>(percent->rbegin(), percent->rend()),
            FormatPercent(percent->front())};
  return cell;
}

std::string MemoryLatest(double used, double total) {
  return FormatMemoryUsage(std::llround(used), std::llround(total));
}

struct Row {
  std::string name;
  std::optional<Cell> utilization;
  std::optional<Cell> memory;
};

// Which GPUs the reply speaks of: those named by a gpu_*_gpu{i} series and 0..n-1 for the newest
// gpus_detected_num n.
std::vector<size_t> GpuIndexes(const SeriesMap& series) {
  std::vector<size_t> indexes;
  auto add = [&](size_t i) {
    if (std::find(indexes.begin(), indexes.end(), i) == indexes.end()) indexes.push_back(i);
  };
  if (const auto* count = Find(series, "gpus_detected_num"); count && !count->empty()) {
    // Bounded: a malformed count must not make millions of rows.
    const double n = std::clamp(count->front(), 0.0, 64.0);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) add(i);
  }
  for (const auto& [name, samples] : series) {
    for (std::string_view prefix : {"gpu_util_percent_gpu", "gpu_memory_usage_bytes_gpu"}) {
      if (!name.starts_with(prefix)) continue;
      std::string_view digits = std::string_view(name).substr(prefix.size());
      if (digits.empty() || digits.size() > 3 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      add(static_cast<size_t>(std::stoul(std::string(digits))));
    }
  }
  std::sort(indexes.begin(), indexes.end());
  return indexes;
}

std::vector<Row> Rows(const SeriesMap& series) {
  std::vector<Row> rows;
  // cpu_usage_percent counts one core as 100: divided by the cores, it is on the 0–100 scale.
  rows.push_back(
      {"cpu",
       RatioCell(Find(series, "cpu_usage_percent"), Find(series, "cpus_detected_num"), 1.0,
                 [](double used, double cpus) { return FormatPercent(used / cpus); }),
       RatioCell(Find(series, "memory_working_set_bytes"), Find(series, "memory_total_bytes"),
                 100.0, MemoryLatest)});
  for (size_t i : GpuIndexes(series)) {
    const std::string suffix = "_gpu" + std::to_string(i);
    rows.push_back({"gpu=" + std::to_string(i),
                    PercentCell(Find(series, "gpu_util_percent" + suffix)),
                    RatioCell(Find(series, "gpu_memory_usage_bytes" + suffix),
                              Find(series, "gpu_memory_total_bytes"), 100.0, MemoryLatest)});
  }
  return rows;
}

// The widest `latest` of a column's cells and the most samples any of them has.
struct ColumnNeeds {
  size_t latest_width = 0;
  size_t samples = 0;
};

ColumnNeeds Needs(const std::vector<Row>& rows, std::optional<Cell> Row::*column) {
  ColumnNeeds needs;
  for (const Row& row : rows) {
    const std::optional<Cell>& cell = row.*column;
    if (!cell) continue;
    needs.latest_width = std::max(needs.latest_width, DisplayWidth(cell->latest));
    needs.samples = std::max(needs.samples, cell->percent.size());
  }
  return needs;
}

// The width of a column whose sparklines are `spark` wide.
size_t ColumnWidth(const ColumnNeeds& needs, size_t spark, std::string_view header) {
  size_t width = std::max(kNoData.size(), header.size());
  if (needs.samples > 0) width = std::max(width, spark + 1 + needs.latest_width);
  return width;
}

std::string CellText(const std::optional<Cell>& cell, size_t spark) {
  if (!cell) return std::string(kNoData);
  std::vector<double> points = Downsample(cell->percent, spark);
  return std::string(spark - points.size(), ' ') + Sparkline(points) + " " + cell->latest;
}

}  // namespace

std::string FormatPercent(double percent) {
  if (!std::isfinite(percent)) return "?%";
  return std::to_string(std::llround(percent)) + "%";
}

std::string FormatBytesShort(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  if (bytes < 0) return "?";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && value >= 1024.0) {
    value /= 1024.0;
    ++unit;
  }
  if (unit > 0 && value < 9.95) {
    // to_chars, not printf: the decimal point must not depend on the locale.
    char buf[32];
    const auto [end, error] =
        std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed, 1);
    std::string text(buf, error == std::errc() ? end : buf);
    if (text.ends_with(".0")) text.resize(text.size() - 2);
    return text + kUnits[unit];
  }
  long long whole = std::llround(value);
  if (whole >= 1024 && unit + 1 < std::size(kUnits)) return std::string("1") + kUnits[unit + 1];
  return std::to_string(whole) + kUnits[unit];
}

std::string FormatMemoryUsage(int64_t used, int64_t total) {
  return FormatBytesShort(used) + "/" + FormatBytesShort(total);
}

std::string RenderJobMetrics(const JobMetrics& job, TimeMicros now, size_t width) {
  const std::vector<Row> rows = Rows(ReadSeries(job.metrics, now));
  size_t name_width = 0;
  for (const Row& row : rows) name_width = std::max(name_width, DisplayWidth(row.name));
  const ColumnNeeds utilization = Needs(rows, &Row::utilization);
  const ColumnNeeds memory = Needs(rows, &Row::memory);

  // The widest sparklines (the same for both columns) that keep the table within `width`; never
  // wider than the longest series, and at least one block.
  auto table_width = [&](size_t spark) {
    return name_width + 2 * kColumnGap + ColumnWidth(utilization, spark, kUtilizationHeader) +
           ColumnWidth(memory, spark, kMemoryHeader);
  };
  size_t spark = std::max<size_t>(1, std::max(utilization.samples, memory.samples));
  while (spark > 1 && table_width(spark) > width) --spark;

  Table table{{"", std::string(kUtilizationHeader), std::string(kMemoryHeader)}, {}};
  for (const Row& row : rows) {
    table.rows.push_back({row.name, CellText(row.utilization, spark), CellText(row.memory, spark)});
  }
  const std::string title =
      SanitizeForTerminal(job.run_name) + " job=" + std::to_string(job.job_num) +
      " replica=" + std::to_string(job.replica_num) + " (" + SanitizeForTerminal(job.status) + ")";
  return TruncateToWidth(title, width) + "\n" + RenderTable(table, width);
}

std::string RenderMetrics(const std::vector<JobMetrics>& jobs, TimeMicros now, size_t width) {
  std::string out;
  for (const JobMetrics& job : jobs) {
    if (!out.empty()) out += "\n";
    out += RenderJobMetrics(job, now, width);
  }
  return out;
}

json::value MetricsJson(const std::vector<JobMetrics>& jobs) {
  json::array items;
  for (const JobMetrics& job : jobs) {
    items.push_back(json::object{{"job_num", job.job_num},
                                 {"replica_num", job.replica_num},
                                 {"metrics", ArrayField(job.metrics, "metrics")}});
  }
  return json::object{{"jobs", std::move(items)}};
}

std::string WatchHeader(const std::string& run_name, TimeMicros now, const std::string& ended,
                        size_t width) {
  // "2026-11-30T12:00:00Z" → "12:00:00".
  auto clock = [](TimeMicros t) { return FormatTimestampSeconds(t).substr(11, 8); };
  std::string line =
      run_name + ": the last hour, " + clock(now - kMetricsWindow) + "–" + clock(now) + " UTC " +
      (ended.empty() ? "(redrawn every 10s; Ctrl-C stops)" : "(the run ended: " + ended + ")");
  return TruncateToWidth(SanitizeForTerminal(line), width);
}

}  // namespace fleetwatch::cli
