#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "expose/text_format.h"
#include "util/clock.h"

namespace fleetwatch::expose {

// The metric types fleetwatch exposes or passes through from DCGM text.
enum class MetricType { kCounter, kGauge, kHistogram, kSummary, kUnknown };

// The TYPE keyword: "counter", "gauge", "histogram", "summary"; kUnknown is "untyped" in text
// 0.0.4 (Prometheus' text parser rejects "unknown") and "unknown" in OpenMetrics.
std::string_view MetricTypeKeyword(MetricType type, Format format);

// The Content-Type header of each format.
inline constexpr std::string_view kText004ContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
std::string_view ContentType(Format format);

// The format to answer a request with, given its Accept header (may be empty). OpenMetrics only
// when a media range `application/openmetrics-text` has q > 0 and no explicit `text/plain` range
// has a higher q; everything else (no header, */*, garbage) gets text 0.0.4. Prometheus' own
// header ("application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...")
// gets OpenMetrics.
Format NegotiateFormat(std::string_view accept_header);

// A sample whose value is the time from `anchor` to the moment a scrape evaluates it, in seconds
// (never below 0.0): an age or a duration that moves with the clock (dstack_*_duration_seconds_
// total). Its line is `prefix` (`name{pairs} `, rendered once), the value, '\n'. Same in both
// formats (no timestamp).
struct TimedSample {
  std::string prefix;
  TimeMicros anchor = 0;

  bool operator==(const TimedSample&) const = default;
};

// Appends the lines of `samples` as of `at`.
void AppendTimedSamples(std::string& out, const std::vector<TimedSample>& samples, TimeMicros at);

// A group of sample lines, pre-rendered once and concatenated by every scrape. `text` holds
// complete lines (each ending in '\n') in text 0.0.4. `openmetrics` holds the same samples for
// OpenMetrics when they differ (only when they carry timestamps: milliseconds there, seconds
// here); empty means "same as text". `timed` samples follow `text`, their values computed when a
// scrape renders them (ExpositionSnapshot).
struct Fragment {
  Fragment() = default;
  // NOLINTNEXTLINE(google-explicit-constructor): reads as the aggregate it extends
  Fragment(std::string text_lines, std::string openmetrics_lines = {},
           std::vector<TimedSample> timed_samples = {})
      : text(std::move(text_lines)),
        openmetrics(std::move(openmetrics_lines)),
        timed(std::move(timed_samples)) {}

  std::string text;
  std::string openmetrics;
  std::vector<TimedSample> timed;

  const std::string& For(Format format) const {
    return format == Format::kOpenMetrics100 && !openmetrics.empty() ? openmetrics : text;
  }
  bool empty() const { return text.empty() && timed.empty(); }
  // Lets go of the room appending left (a fragment is kept as long as its samples hold).
  void ShrinkToFit() {
    text.shrink_to_fit();
    openmetrics.shrink_to_fit();
    for (TimedSample& sample : timed) sample.prefix.shrink_to_fit();
    timed.shrink_to_fit();
  }
  // The same samples (both formats' texts and the timed samples).
  bool operator==(const Fragment&) const = default;
};

// Name, type and HELP of a metric family, with its header lines rendered once per format.
// Immutable after construction; thread-safe.
class FamilyHeader {
 public:
  // `name` must satisfy IsValidMetricName (checked by callers that take untrusted names).
  // OpenMetrics: a counter named `x_total` is headed `x` (its samples keep `x_total`); a counter
  // whose name lacks `_total` (DCGM's do) is headed `unknown` there, so that the series keep
  // their names in both formats.
  FamilyHeader(std::string name, MetricType type, std::string help);

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::string& help() const { return help_; }
  // `# HELP name text\n# TYPE name type\n` for `format`.
  const std::string& Lines(Format format) const {
    return format == Format::kOpenMetrics100 ? openmetrics_lines_ : text_lines_;
  }

 private:
  std::string name_;
  MetricType type_;
  std::string help_;
  std::string text_lines_;
  std::string openmetrics_lines_;
};

// Appends one family: its header lines and then `samples` (complete lines). Nothing when
// `samples` is empty: a family without samples is omitted.
void AppendFamily(std::string& out, const FamilyHeader& header, std::string_view samples,
                  Format format);

// Appends what ends an exposition: "# EOF\n" in OpenMetrics, nothing in text 0.0.4.
void AppendEnd(std::string& out, Format format);

}  // namespace fleetwatch::expose
