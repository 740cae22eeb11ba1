#include "expose/dcgm.h"

#include <charconv>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

namespace fleetwatch::expose {

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// A cursor over one line; every read is bounds-checked.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : s_(line) {}
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  void Advance() { ++pos_; }
  // Returns whether there was any blank.
  bool SkipBlanks() {
    const size_t start = pos_;
    while (!AtEnd() && IsBlank(s_[pos_])) ++pos_;
    return pos_ != start;
  }
  // A token up to the next blank or the end of the line.
  std::string_view Token() {
    const size_t start = pos_;
    while (!AtEnd() && !IsBlank(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  // [a-zA-Z_:][a-zA-Z0-9_:]*, possibly empty when the line does not start with a name char.
  std::string_view Name() {
    const size_t start = pos_;
    if (!AtEnd() && IsNameStart(s_[pos_])) {
      ++pos_;
      while (!AtEnd() && IsNameChar(s_[pos_])) ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }
  std::string_view Rest() {
    std::string_view rest = s_.substr(std::min(pos_, s_.size()));
    pos_ = s_.size();
    return rest;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

std::optional<MetricType> ParseType(std::string_view word) {
  if (EqualsIgnoreCase(word, "counter")) return MetricType::kCounter;
  if (EqualsIgnoreCase(word, "gauge")) return MetricType::kGauge;
  if (EqualsIgnoreCase(word, "histogram")) return MetricType::kHistogram;
  if (EqualsIgnoreCase(word, "summary")) return MetricType::kSummary;
  if (EqualsIgnoreCase(word, "untyped") || EqualsIgnoreCase(word, "unknown")) {
    return MetricType::kUnknown;
  }
  return std::nullopt;
}

// A sample value as Prometheus' parser reads it (Go's ParseFloat): decimal floats with an
// optional sign, NaN, Inf, Infinity in any case.
std::optional<double> ParseValue(std::string_view token) {
  std::string_view digits = token;
  bool negative = false;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  // from_chars takes no '+' and would read a second sign; "nan(...)" is not Go's.
  if (digits.empty() || digits.front() == '+' || digits.front() == '-' ||
      digits.find('(') != std::string_view::npos) {
    return std::nullopt;
  }
  double value = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return std::nullopt;  // Go would give ±Inf or 0 with an error; refuse too
  }
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return negative ? -value : value;
}

std::optional<int64_t> ParseTimestamp(std::string_view token) {
  int64_t ts = 0;
  if (token.empty() || token.front() == '+') return std::nullopt;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), ts);
  if (ec != std::errc() || ptr != token.data() + token.size()) return std::nullopt;
  return ts;
}

// Unescapes HELP text (\\ and \n); false on any other escape.
bool UnescapeHelp(std::string_view s, std::string& out) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return false;
    if (s[i] == '\\') {
      out += '\\';
    } else if (s[i] == 'n') {
      out += '\n';
    } else {
      return false;
    }
  }
  return true;
}

class Parser {
 public:
  Parser(std::string_view text, const DcgmParseLimits& limits) : text_(text), limits_(limits) {}

  Result<DcgmText> Run() {
    if (text_.size() > limits_.max_bytes) {
      return InvalidArgument("DCGM text is " + std::to_string(text_.size()) +
                             " bytes, more than the limit of " + std::to_string(limits_.max_bytes));
    }
    size_t start = 0;
    while (start < text_.size()) {
      ++line_no_;
      size_t end = text_.find('\n', start);
      if (end == std::string_view::npos) end = text_.size();
      const std::string_view line = text_.substr(start, end - start);
      start = end + 1;
      if (line.size() > limits_.max_line_bytes) {
        return Error("longer than " + std::to_string(limits_.max_line_bytes) + " bytes");
      }
      FW_RETURN_IF_ERROR(ParseLine(line));
    }
    DcgmText result;
    result.families.reserve(families_.size());
    for (DcgmFamily& family : families_) {
      if (!family.samples.empty()) result.families.push_back(std::move(family));
    }
    return result;
  }

 private:
  Status Error(const std::string& why) const {
    return InvalidArgument("DCGM text line " + std::to_string(line_no_) + ": " + why);
  }

  Status ParseLine(std::string_view line) {
    LineReader r(line);
    r.SkipBlanks();
    if (r.AtEnd()) return Status::Ok();
    if (r.Peek() == '#') return ParseComment(r);
    return ParseSample(r);
  }

  // The family named `name`, created (untyped, without HELP) when new; nullptr over the cap.
  DcgmFamily* FamilyNamed(std::string_view name) {
    const auto it = index_.find(std::string(name));
    if (it != index_.end()) return &families_[it->second];
    if (families_.size() >= limits_.max_families) return nullptr;
    index_.emplace(std::string(name), families_.size());
    families_.emplace_back();
    families_.back().name = std::string(name);
    return &families_.back();
  }

  Status ParseComment(LineReader& r) {
    r.Advance();  // '#'
    r.SkipBlanks();
    const std::string_view keyword = r.Token();
    const bool help = keyword == "HELP";
    if (!help && keyword != "TYPE") return Status::Ok();  // a plain comment
    r.SkipBlanks();
    const std::string_view name = r.Name();
    if (name.empty() || !(r.AtEnd() || IsBlank(r.Peek()))) {
      return Error("invalid metric name in " + std::string(keyword));
    }
    if (owner_.contains(std::string(name))) {
      return Error(std::string(keyword) + " for " + std::string(name) + " after its samples");
    }
    DcgmFamily* family = FamilyNamed(name);
    if (family == nullptr) {
      return Error("more than " + std::to_string(limits_.max_families) + " families");
    }
    if (!family->samples.empty()) {
      return Error(std::string(keyword) + " for " + std::string(name) + " after its samples");
    }
    if (help) {
      r.SkipBlanks();  // Prometheus' parser drops the blanks before the text too
      const std::string_view text = r.Rest();
      if (!IsValidUtf8(text)) return Error("HELP text is not valid UTF-8");
      if (seen_help_.contains(family->name)) return Error("second HELP for " + family->name);
      seen_help_.insert(family->name);
      if (!UnescapeHelp(text, family->help)) return Error("invalid escape in HELP text");
      return Status::Ok();
    }
    r.SkipBlanks();
    const std::optional<MetricType> type = ParseType(r.Token());
    r.SkipBlanks();
    if (!type || !r.AtEnd()) return Error("invalid TYPE line");
    if (seen_type_.contains(family->name)) return Error("second TYPE for " + family->name);
    seen_type_.insert(family->name);
    family->type = *type;
    return Status::Ok();
  }

  // The family a sample named `name` belongs to: its own, or the histogram/summary it is a
  // _bucket/_sum/_count of, or a new untyped one.
  DcgmFamily* FamilyOfSample(std::string_view name) {
    const auto owner = owner_.find(std::string(name));
    if (owner != owner_.end()) return &families_[owner->second];
    size_t index;
    const auto own = index_.find(std::string(name));
    if (own != index_.end()) {
      index = own->second;
    } else {
      index = families_.size();
      for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (!name.ends_with(suffix)) continue;
        const auto base = index_.find(std::string(name.substr(0, name.size() - suffix.size())));
        if (base == index_.end()) continue;
        const MetricType t = families_[base->second].type;
        if (t == MetricType::kHistogram || (t == MetricType::kSummary && suffix != "_bucket")) {
          index = base->second;
        }
      }
      if (index == families_.size() && FamilyNamed(name) == nullptr) return nullptr;
    }
    owner_.emplace(std::string(name), index);
    return &families_[index];
  }

  Status ParseSample(LineReader& r) {
    const std::string_view name = r.Name();
    if (name.empty()) return Error("expected a metric name or a comment");
    DcgmSample sample;
    sample.name = std::string(name);
    bool blank = r.SkipBlanks();
    if (r.Peek() == '{') {
      r.Advance();
      FW_RETURN_IF_ERROR(ParseLabels(r, sample));
      blank = r.SkipBlanks();
    }
    if (r.AtEnd()) return Error("missing value");
    if (!blank) return Error("invalid metric name or label list");
    const std::string_view value_token = r.Token();
    const std::optional<double> value = ParseValue(value_token);
    if (!value) return Error("invalid value \"" + std::string(value_token.substr(0, 40)) + "\"");
    sample.value = *value;
    r.SkipBlanks();
    if (!r.AtEnd()) {
      const std::optional<int64_t> ts = ParseTimestamp(r.Token());
      if (!ts) return Error("invalid timestamp");
      sample.timestamp_ms = ts;
      r.SkipBlanks();
      if (!r.AtEnd()) return Error("unexpected text after the timestamp");
    }
    DcgmFamily* family = FamilyOfSample(sample.name);
    if (family == nullptr) {
      return Error("more than " + std::to_string(limits_.max_families) + " families");
    }
    family->samples.push_back(std::move(sample));
    return Status::Ok();
  }

  // After '{': labels up to and including '}'.
  Status ParseLabels(LineReader& r, DcgmSample& sample) {
    while (true) {
      r.SkipBlanks();
      if (r.AtEnd()) return Error("unclosed label list");
      if (r.Peek() == '}') {
        r.Advance();
        return Status::Ok();
      }
      const std::string_view label = r.Name();
      if (label.empty() || label.find(':') != std::string_view::npos || !IsValidLabelName(label)) {
        return Error("invalid label name");
      }
      if (sample.labels.size() >= limits_.max_labels) {
        return Error("more than " + std::to_string(limits_.max_labels) + " labels");
      }
      for (const auto& [seen, unused] : sample.labels) {
        if (seen == label) return Error("duplicate label " + std::string(label));
      }
      r.SkipBlanks();
      if (r.Peek() != '=') return Error("expected '=' after label " + std::string(label));
      r.Advance();
      r.SkipBlanks();
      if (r.Peek() != '"') return Error("expected '\"' to open the value of " + std::string(label));
      r.Advance();
      std::string value;
      while (true) {
        if (r.AtEnd()) return Error("unterminated value of label " + std::string(label));
        const char c = r.Peek();
        r.Advance();
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (r.AtEnd()) return Error("unterminated value of label " + std::string(label));
        const char e = r.Peek();
        r.Advance();
        if (e == '\\' || e == '"') {
          value += e;
        } else if (e == 'n') {
          value += '\n';
        } else {
          return Error("invalid escape in the value of label " + std::string(label));
        }
      }
      if (!IsValidUtf8(value))
        return Error("value of label " + std::string(label) + " is not valid UTF-8");
      sample.labels.emplace_back(std::string(label), std::move(value));
      r.SkipBlanks();
      if (r.AtEnd()) return Error("unclosed label list");
      if (r.Peek() == ',') {
        r.Advance();
      } else if (r.Peek() != '}') {
        return Error("expected ',' or '}' after the value of label " + std::string(label));
      }
    }
  }

  std::string_view text_;
  const DcgmParseLimits& limits_;
  size_t line_no_ = 0;
  std::vector<DcgmFamily> families_;
  std::unordered_map<std::string, size_t> index_;  // family name -> families_ index
  std::unordered_map<std::string, size_t> owner_;  // sample name -> families_ index
  std::unordered_set<std::string> seen_help_;
  std::unordered_set<std::string> seen_type_;
};

// Appends an OpenMetrics timestamp: seconds with millisecond precision ("1700000000.123").
void AppendSeconds(std::string& out, int64_t ms) {
  uint64_t abs = ms < 0 ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
  if (ms < 0) out += '-';
  out += std::to_string(abs / 1000);
  const auto frac = static_cast<unsigned>(abs % 1000);
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
}

}  // namespace

Result<DcgmText> ParseDcgmText(std::string_view text, const DcgmParseLimits& limits) {
  return Parser(text, limits).Run();
}

std::string_view OpenMetricsBaseName(std::string_view name) {
  for (std::string_view suffix :
       {"_total", "_created", "_info", "_bucket", "_count", "_sum", "_gcount", "_gsum"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      return name.substr(0, name.size() - suffix.size());
    }
  }
  return name;
}

size_t DropForeignDcgmFamilies(DcgmText& text, std::span<const std::string_view> server_families) {
  const size_t before = text.families.size();
  std::erase_if(text.families, [&](const DcgmFamily& family) {
    if (!family.name.starts_with("DCGM_") && !family.name.starts_with("dcgm_")) return true;
    const std::string_view base = OpenMetricsBaseName(family.name);
    for (std::string_view server : server_families) {
      if (base == OpenMetricsBaseName(server) || family.name == server) return true;
    }
    return false;
  });
  return before - text.families.size();
}

std::vector<RenderedFamily> RelabelDcgm(const DcgmText& text,
                                        std::span<const std::string> gpu_uuids,
                                        std::span<const Label> job_labels) {
  std::vector<RenderedFamily> out;
  std::vector<bool> used(job_labels.size());
  std::string line;
  for (const DcgmFamily& family : text.families) {
    if (family.name.starts_with("dstack_")) continue;
    bool timestamps = false;
    for (const DcgmSample& s : family.samples) timestamps = timestamps || s.timestamp_ms;
    Fragment fragment;
    for (const DcgmSample& sample : family.samples) {
      const std::string* uuid = nullptr;
      for (const auto& [name, value] : sample.labels) {
        if (name == "UUID") uuid = &value;
      }
      if (uuid == nullptr) continue;
      bool ours = false;
      for (const std::string& u : gpu_uuids) ours = ours || u == *uuid;
      if (!ours) continue;

      line.clear();
      line += sample.name;
      line += '{';
      std::string pairs;
      used.assign(job_labels.size(), false);
      for (const auto& [name, value] : sample.labels) {
        std::string_view v = value;
        if (name.starts_with("dstack_")) {
          for (size_t j = 0; j < job_labels.size(); ++j) {
            if (job_labels[j].name == name) {
              v = job_labels[j].value;
              used[j] = true;
            }
          }
        }
        AppendLabelPair(pairs, name, v);
      }
      for (size_t j = 0; j < job_labels.size(); ++j) {
        if (!used[j]) AppendLabelPair(pairs, job_labels[j].name, job_labels[j].value);
      }
      line += pairs;
      line += "} ";
      AppendValue(line, sample.value);
      fragment.text += line;
      if (timestamps) fragment.openmetrics += line;
      if (sample.timestamp_ms) {
        fragment.text += ' ';
        fragment.text += std::to_string(*sample.timestamp_ms);
        fragment.openmetrics += ' ';
        AppendSeconds(fragment.openmetrics, *sample.timestamp_ms);
      }
      fragment.text += '\n';
      if (timestamps) fragment.openmetrics += '\n';
    }
    if (fragment.empty()) continue;
    out.push_back({FamilyHeader(family.name, family.type, family.help), std::move(fragment)});
  }
  return out;
}

}  // namespace fleetwatch::expose
