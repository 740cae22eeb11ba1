#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace fleetwatch::expose {

// Low-level writers of the Prometheus exposition formats. Everything here is a pure function of
// its arguments: no locale, no allocation beyond appending to `out`, thread-safe.

// The two formats GET /metrics serves (spec/METRICS.md).
enum class Format {
  kText004,         // text/plain; version=0.0.4
  kOpenMetrics100,  // application/openmetrics-text; version=1.0.0
};

// Appends `value` the way Python's str(float) prints it: shortest round-trip digits, a ".0" on
// integral values, exponent form below 1e-4 and from 1e16 on ("3600.0", "0.8", "1e+16",
// "1.5e-07", "-0.0", "nan", "inf", "-inf"). Independent of the global locale.
void AppendValue(std::string& out, double value);

// Appends a label value escaped for both formats: backslash, double quote and line feed become
// \\, \" and \n; every other valid UTF-8 byte passes through. Invalid UTF-8 (which would make
// Prometheus reject the whole scrape) becomes U+FFFD, one per invalid byte.
void AppendEscapedLabelValue(std::string& out, std::string_view value);

// Appends HELP text escaped for `format`: \\ and \n in text 0.0.4, also \" in OpenMetrics.
// Invalid UTF-8 becomes U+FFFD as in AppendEscapedLabelValue.
void AppendEscapedHelp(std::string& out, std::string_view help, Format format);

// Whether `s` is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are reserved by Prometheus and refused.
bool IsValidLabelName(std::string_view name);

// One label of a sample. Views: the caller keeps the bytes alive for the call.
struct Label {
  std::string_view name;
  std::string_view value;
};

// Appends `name="escaped value"` to a comma-separated label list, with a leading comma when
// `pairs` is not empty. The name is written as given: callers pass names they validated or
// constants.
void AppendLabelPair(std::string& pairs, std::string_view name, std::string_view value);

// `a="x",b="y"` for `labels` in order (no braces): a label set rendered once and reused for
// every sample of a series owner.
std::string RenderLabelPairs(std::span<const Label> labels);

// Appends one sample line: `name{pairs} value\n`, or `name value\n` when `pairs` is empty.
// `pairs` comes from RenderLabelPairs/AppendLabelPair.
void AppendSample(std::string& out, std::string_view name, std::string_view pairs, double value);

// The 11 base job labels of spec/METRICS.md, in spec order. DCGM samples get them appended; the
// job families use them as their label set.
inline constexpr std::array<std::string_view, 11> kJobLabelNames = {
    "dstack_project_name", "dstack_user_name", "dstack_run_name", "dstack_run_id",
    "dstack_job_name",     "dstack_job_id",    "dstack_job_num",  "dstack_replica_num",
    "dstack_run_type",     "dstack_backend",   "dstack_gpu",
};

// Values of the 11 job labels, as text (numbers already printed, e.g. job_num "0").
struct JobLabelValues {
  std::string project_name;
  std::string user_name;
  std::string run_name;
  std::string run_id;
  std::string job_name;  // "{run}-{job_num}-{replica_num}"
  std::string job_id;
  std::string job_num;
  std::string replica_num;
  std::string run_type;  // task, service, dev-environment
  std::string backend;
  std::string gpu;  // the first GPU's name; empty when none
};

// The labels in kJobLabelNames order; the views point into `values`, which must outlive them.
std::array<Label, 11> JobLabels(const JobLabelValues& values);

}  // namespace fleetwatch::expose
