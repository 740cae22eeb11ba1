#include "expose/family.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace fleetwatch::expose {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The q parameter of one media range's parameters ("version=1.0.0;q=0.5"): 1 when absent,
// 0 when unreadable (a range we cannot read does not win).
double QValue(std::string_view params) {
  while (!params.empty()) {
    const size_t semi = params.find(';');
    const std::string_view param = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || !EqualsIgnoreCase(Trim(param.substr(0, eq)), "q")) {
      continue;
    }
    const std::string_view v = Trim(param.substr(eq + 1));
    double q = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), q);
    if (ec != std::errc() || ptr != v.data() + v.size() || !(q >= 0 && q <= 1)) return 0;
    return q;
  }
  return 1;
}

}  // namespace

std::string_view MetricTypeKeyword(MetricType type, Format format) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kSummary:
      return "summary";
    case MetricType::kUnknown:
      break;
  }
  return format == Format::kOpenMetrics100 ? "unknown" : "untyped";
}

std::string_view ContentType(Format format) {
  return format == Format::kOpenMetrics100 ? kOpenMetricsContentType : kText004ContentType;
}

Format NegotiateFormat(std::string_view accept) {
  double openmetrics_q = 0;
  double text_q = -1;  // no explicit text/plain range
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    const std::string_view range = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    const size_t semi = range.find(';');
    const std::string_view type = Trim(range.substr(0, semi));
    const std::string_view params =
        semi == std::string_view::npos ? std::string_view() : range.substr(semi + 1);
    if (EqualsIgnoreCase(type, "application/openmetrics-text")) {
      openmetrics_q = std::max(openmetrics_q, QValue(params));
    } else if (EqualsIgnoreCase(type, "text/plain")) {
      text_q = std::max(text_q, QValue(params));
    }
  }
  return openmetrics_q > 0 && openmetrics_q >= text_q ? Format::kOpenMetrics100 : Format::kText004;
}

FamilyHeader::FamilyHeader(std::string name, MetricType type, std::string help)
    : name_(std::move(name)), type_(type), help_(std::move(help)) {
  for (const Format format : {Format::kText004, Format::kOpenMetrics100}) {
    std::string_view headed = name_;
    MetricType headed_type = type_;
    if (format == Format::kOpenMetrics100 && type_ == MetricType::kCounter) {
      if (headed.ends_with("_total")) {
        headed.remove_suffix(6);
      } else {
        headed_type = MetricType::kUnknown;
      }
    }
    std::string& lines = format == Format::kOpenMetrics100 ? openmetrics_lines_ : text_lines_;
    lines += "# HELP ";
    lines += headed;
    lines += ' ';
    AppendEscapedHelp(lines, help_, format);
    lines += "\n# TYPE ";
    lines += headed;
    lines += ' ';
    lines += MetricTypeKeyword(headed_type, format);
    lines += '\n';
  }
}

void AppendFamily(std::string& out, const FamilyHeader& header, std::string_view samples,
                  Format format) {
  if (samples.empty()) return;
  out += header.Lines(format);
  out += samples;
}

void AppendTimedSamples(std::string& out, const std::vector<TimedSample>& samples, TimeMicros at) {
  for (const TimedSample& sample : samples) {
    out += sample.prefix;
    AppendValue(out, static_cast<double>(std::max<TimeMicros>(0, at - sample.anchor)) / 1e6);
    out += '\n';
  }
}

void AppendEnd(std::string& out, Format format) {
  if (format == Format::kOpenMetrics100) out += "# EOF\n";
}

}  // namespace fleetwatch::expose
