#include "expose/dcgm.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_map>

namespace fleetwatch::expose {

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// [a-zA-Z_] plus ':' (metric names) and/or digits, as tables: the scanner's inner loops test
// one byte at a time.
constexpr std::array<bool, 256> CharTable(bool colon, bool digits) {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<size_t>(c)] = true;
  t['_'] = true;
  t[':'] = colon;
  if (digits) {
    for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = true;
  }
  return t;
}
constexpr std::array<bool, 256> kNameStart = CharTable(true, false);
constexpr std::array<bool, 256> kNameChar = CharTable(true, true);
constexpr std::array<bool, 256> kLabelStart = CharTable(false, false);
constexpr std::array<bool, 256> kLabelChar = CharTable(false, true);

bool IsNameStart(char c) { return kNameStart[static_cast<uint8_t>(c)]; }
bool IsNameChar(char c) { return kNameChar[static_cast<uint8_t>(c)]; }
bool IsLabelStart(char c) { return kLabelStart[static_cast<uint8_t>(c)]; }
bool IsLabelChar(char c) { return kLabelChar[static_cast<uint8_t>(c)]; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The index of the first '"', '\\' or byte >= 0x80 in `s` from `i`, or s.size(): a label value's
// scan, eight bytes at a time where the machine is little-endian.
size_t FindQuoteBackslashOrHigh(std::string_view s, size_t i) {
  if constexpr (std::endian::native == std::endian::little) {
    constexpr uint64_t kOnes = 0x0101010101010101;
    constexpr uint64_t kHigh = 0x8080808080808080;
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      const uint64_t quote = w ^ (kOnes * '"');
      const uint64_t backslash = w ^ (kOnes * '\\');
      // A byte's high bit is set where it is zero in `quote` or `backslash`, or is >= 0x80 in
      // `w`; a borrow may flag bytes after a hit too, never one before: the lowest is exact.
      const uint64_t hits =
          (((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) | w) & kHigh;
      if (hits != 0) return i + static_cast<size_t>(std::countr_zero(hits) / 8);
      i += 8;
    }
  }
  while (i < s.size() && s[i] != '"' && s[i] != '\\' && (static_cast<uint8_t>(s[i]) & 0x80) == 0) {
    ++i;
  }
  return i;
}

// A cursor over one line; every read is bounds-checked.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : s_(line) {}
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  void Advance() { ++pos_; }
  size_t pos() const { return pos_; }
  void Seek(size_t pos) { pos_ = pos; }
  std::string_view line() const { return s_; }
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

// A plain decimal token, [+-]?[0-9]+(.[0-9]+)?, with at most 15 significant digits written
// (leading zeros of the integer part and trailing zeros of the fraction aside), and not below
// 1e-4 unless zero: the number it denotes is the double nearest to it, whose shortest round-trip
// digits are exactly those written, so AppendValue's output can be read off the token.
struct PlainDecimal {
  bool negative = false;
  std::string_view integer;   // without leading zeros; empty when below 1
  std::string_view fraction;  // without trailing zeros; empty when integral
};

std::optional<PlainDecimal> ReadPlainDecimal(std::string_view t) {
  PlainDecimal d;
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) d.negative = t[i++] == '-';
  const size_t int_begin = i;
  while (i < t.size() && IsDigit(t[i])) ++i;
  if (i == int_begin) return std::nullopt;
  d.integer = t.substr(int_begin, i - int_begin);
  if (i < t.size()) {
    if (t[i] != '.') return std::nullopt;
    const size_t frac_begin = ++i;
    while (i < t.size() && IsDigit(t[i])) ++i;
    if (i == frac_begin || i != t.size()) return std::nullopt;
    d.fraction = t.substr(frac_begin);
  }
  while (!d.integer.empty() && d.integer.front() == '0') d.integer.remove_prefix(1);
  while (!d.fraction.empty() && d.fraction.back() == '0') d.fraction.remove_suffix(1);
  if (d.integer.size() + d.fraction.size() > 15) return std::nullopt;
  // Below 1: AppendValue switches to the exponent form below 1e-4 (four zeros after the point).
  if (d.integer.empty() && d.fraction.size() >= 4 && d.fraction.starts_with("0000")) {
    return std::nullopt;
  }
  return d;
}

// What AppendValue prints for the number `d` denotes: "1410.0", "61.123", "0.05", "-0.0".
void AppendPlainDecimal(std::string& out, const PlainDecimal& d) {
  if (d.negative) out += '-';
  if (d.integer.empty()) {
    out += '0';
  } else {
    out += d.integer;
  }
  out += '.';
  if (d.fraction.empty()) {
    out += '0';
  } else {
    out += d.fraction;
  }
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

// Whether HELP text holds only the escapes \\ and \n.
bool ValidHelpEscapes(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') continue;
    if (++i == s.size() || (s[i] != '\\' && s[i] != 'n')) return false;
  }
  return true;
}

// HELP text with its (valid) escapes undone.
std::string UnescapeHelp(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      out += s[i] == 'n' ? '\n' : '\\';
    } else {
      out += s[i];
    }
  }
  return out;
}

// A label value with its (valid) escapes \\ \" \n undone.
void UnescapeLabelValue(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      out += s[i] == 'n' ? '\n' : s[i];
    } else {
      out += s[i];
    }
  }
}

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

// --- the scanner that both ParseDcgmText and RelabelDcgmText read a text with ---

// A family as the text declares it. Views point into the text.
struct ScannedFamily {
  std::string_view name;
  std::string_view help;  // as written: escapes (valid ones) not undone
  MetricType type = MetricType::kUnknown;
  bool has_help = false;
  bool has_type = false;
  size_t samples = 0;
};

struct ScannedLabel {
  std::string_view name;
  // As written between the quotes: valid escapes (\\ \" \n) not undone, valid UTF-8. Escaping
  // the unescaped value for output gives these very bytes back.
  std::string_view value;
  bool escaped = false;  // whether `value` holds an escape
};

struct ScannedSample {
  size_t family = 0;  // index in Scanner::families()
  std::string_view name;
  std::span<const ScannedLabel> labels;
  // `name{l="v",...` exactly as an output line starts (no blanks, no trailing comma), when the
  // line wrote it so; empty otherwise.
  std::string_view head;
  std::string_view value;             // the value token, valid
  std::optional<PlainDecimal> plain;  // `value` read as a plain decimal, when it is one
  std::optional<int64_t> timestamp_ms;
};

// Reads a text line by line, validating it and resolving each sample's family, and hands each
// sample to a callback as views into the text (nothing is copied).
class Scanner {
 public:
  Scanner(std::string_view text, const DcgmParseLimits& limits) : text_(text), limits_(limits) {}

  // Calls on_sample(const ScannedSample&) for each sample, in text order; the views are valid
  // for the call only (labels) or as long as the text (the rest). Stops at the first error.
  template <typename OnSample>
  Status Read(OnSample&& on_sample) {
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
      LineReader r(line);
      r.SkipBlanks();
      if (r.AtEnd()) continue;
      if (r.Peek() == '#') {
        FW_RETURN_IF_ERROR(ScanComment(r));
        continue;
      }
      FW_RETURN_IF_ERROR(ScanSample(r));
      on_sample(static_cast<const ScannedSample&>(sample_));
    }
    return Status::Ok();
  }

  // In order of first appearance (a HELP or TYPE line, or a sample), with or without samples.
  const std::vector<ScannedFamily>& families() const { return families_; }

 private:
  Status Error(const std::string& why) const {
    return InvalidArgument("DCGM text line " + std::to_string(line_no_) + ": " + why);
  }

  // The family named `name`, created (untyped, without HELP) when new; SIZE_MAX over the cap.
  size_t FamilyNamed(std::string_view name) {
    const auto it = index_.find(name);
    if (it != index_.end()) return it->second;
    if (families_.size() >= limits_.max_families) return SIZE_MAX;
    index_.emplace(name, families_.size());
    families_.emplace_back().name = name;
    return families_.size() - 1;
  }

  Status ScanComment(LineReader& r) {
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
    if (owner_.contains(name)) {
      return Error(std::string(keyword) + " for " + std::string(name) + " after its samples");
    }
    const size_t index = FamilyNamed(name);
    if (index == SIZE_MAX) {
      return Error("more than " + std::to_string(limits_.max_families) + " families");
    }
    ScannedFamily& family = families_[index];
    if (family.samples != 0) {
      return Error(std::string(keyword) + " for " + std::string(name) + " after its samples");
    }
    if (help) {
      r.SkipBlanks();  // Prometheus' parser drops the blanks before the text too
      const std::string_view text = r.Rest();
      if (!IsValidUtf8(text)) return Error("HELP text is not valid UTF-8");
      if (family.has_help) return Error("second HELP for " + std::string(family.name));
      if (!ValidHelpEscapes(text)) return Error("invalid escape in HELP text");
      family.has_help = true;
      family.help = text;
      return Status::Ok();
    }
    r.SkipBlanks();
    const std::optional<MetricType> type = ParseType(r.Token());
    r.SkipBlanks();
    if (!type || !r.AtEnd()) return Error("invalid TYPE line");
    if (family.has_type) return Error("second TYPE for " + std::string(family.name));
    family.has_type = true;
    family.type = *type;
    return Status::Ok();
  }

  // The family a sample named `name` belongs to: its own, or the histogram/summary it is a
  // _bucket/_sum/_count of, or a new untyped one; SIZE_MAX over the cap.
  size_t FamilyOfSample(std::string_view name, bool same_name) {
    // Consecutive samples of one name: the rule. `same_name`: ScanSample has compared them.
    if (same_name || name == last_name_) return last_family_;
    const auto owner = owner_.find(name);
    if (owner != owner_.end()) {
      last_name_ = name;
      last_family_ = owner->second;
      return owner->second;
    }
    size_t index;
    const auto own = index_.find(name);
    if (own != index_.end()) {
      index = own->second;
    } else {
      index = SIZE_MAX;
      for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (!name.ends_with(suffix)) continue;
        const auto base = index_.find(name.substr(0, name.size() - suffix.size()));
        if (base == index_.end()) continue;
        const MetricType t = families_[base->second].type;
        if (t == MetricType::kHistogram || (t == MetricType::kSummary && suffix != "_bucket")) {
          index = base->second;
        }
      }
      if (index == SIZE_MAX) index = FamilyNamed(name);
      if (index == SIZE_MAX) return SIZE_MAX;
    }
    owner_.emplace(name, index);
    last_name_ = name;
    last_family_ = index;
    return index;
  }

  Status ScanSample(LineReader& r) {
    const size_t name_begin = r.pos();
    std::string_view name;
    const std::string_view line = r.line();
    const size_t rest = line.size() - name_begin;
    const size_t last = last_name_.size();
    const bool same_name = last != 0 && rest >= last &&
                           std::memcmp(line.data() + name_begin, last_name_.data(), last) == 0 &&
                           (rest == last || !IsNameChar(line[name_begin + last]));
    if (same_name) {
      name = std::string_view(line.data() + name_begin, last);  // the previous sample's again
      r.Seek(name_begin + last);
    } else {
      name = r.Name();
    }
    if (name.empty()) return Error("expected a metric name or a comment");
    sample_.name = name;
    sample_.head = {};
    sample_.timestamp_ms.reset();
    labels_.clear();
    bool blank = r.SkipBlanks();
    if (r.Peek() == '{') {
      bool canonical = !blank;
      r.Advance();
      FW_RETURN_IF_ERROR(ScanLabels(r, canonical));
      // r is past the '}'.
      if (canonical) sample_.head = r.line().substr(name_begin, r.pos() - 1 - name_begin);
      blank = r.SkipBlanks();
    }
    if (r.AtEnd()) return Error("missing value");
    if (!blank) return Error("invalid metric name or label list");
    const std::string_view value_token = r.Token();
    sample_.plain = ReadPlainDecimal(value_token);
    if (!sample_.plain && !ParseValue(value_token)) {
      return Error("invalid value \"" + std::string(value_token.substr(0, 40)) + "\"");
    }
    sample_.value = value_token;
    r.SkipBlanks();
    if (!r.AtEnd()) {
      const std::optional<int64_t> ts = ParseTimestamp(r.Token());
      if (!ts) return Error("invalid timestamp");
      sample_.timestamp_ms = ts;
      r.SkipBlanks();
      if (!r.AtEnd()) return Error("unexpected text after the timestamp");
    }
    const size_t family = FamilyOfSample(name, same_name);
    if (family == SIZE_MAX) {
      return Error("more than " + std::to_string(limits_.max_families) + " families");
    }
    ++families_[family].samples;
    sample_.family = family;
    sample_.labels = labels_;
    return Status::Ok();
  }

  // After '{': labels up to and including '}'. `canonical` becomes false when the list has
  // blanks or a trailing comma.
  Status ScanLabels(LineReader& r, bool& canonical) {
    const std::string_view line = r.line();
    bool after_comma = false;
    // A bit per (length, first character) of the names seen: a name whose bit is clear is no
    // duplicate, without comparing it with every earlier one.
    uint64_t seen_names = 0;
    while (true) {
      if (r.SkipBlanks()) canonical = false;
      if (r.AtEnd()) return Error("unclosed label list");
      if (r.Peek() == '}') {
        if (after_comma) canonical = false;
        r.Advance();
        return Status::Ok();
      }
      // [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"; a ':' in it makes it invalid.
      size_t i = r.pos();
      const size_t label_begin = i;
      if (IsLabelStart(line[i])) {
        ++i;
        while (i < line.size() && IsLabelChar(line[i])) ++i;
      }
      const std::string_view label = line.substr(label_begin, i - label_begin);
      // (label[0] == '_' && label[1] == '_': starts_with("__") without a call per label.)
      if (label.empty() || (i < line.size() && line[i] == ':') ||
          (label.size() >= 2 && label[0] == '_' && label[1] == '_')) {
        return Error("invalid label name");
      }
      r.Seek(i);
      if (labels_.size() >= limits_.max_labels) {
        return Error("more than " + std::to_string(limits_.max_labels) + " labels");
      }
      const uint64_t bit = uint64_t{1}
                           << ((label.size() * 7 + static_cast<unsigned char>(label[0])) & 63);
      if ((seen_names & bit) != 0) {
        for (const ScannedLabel& seen : labels_) {
          if (seen.name == label) return Error("duplicate label " + std::string(label));
        }
      }
      seen_names |= bit;
      if (r.SkipBlanks()) canonical = false;
      if (r.Peek() != '=') return Error("expected '=' after label " + std::string(label));
      r.Advance();
      if (r.SkipBlanks()) canonical = false;
      if (r.Peek() != '"') return Error("expected '\"' to open the value of " + std::string(label));
      r.Advance();
      const size_t begin = r.pos();
      i = begin;
      bool escaped = false;
      bool high = false;
      while (true) {
        i = FindQuoteBackslashOrHigh(line, i);
        if (i >= line.size()) return Error("unterminated value of label " + std::string(label));
        const char c = line[i];
        if (c == '"') break;
        if (c == '\\') {
          if (i + 1 >= line.size()) {
            return Error("unterminated value of label " + std::string(label));
          }
          const char e = line[i + 1];
          if (e != '\\' && e != '"' && e != 'n') {
            return Error("invalid escape in the value of label " + std::string(label));
          }
          escaped = true;
          i += 2;
          continue;
        }
        high = true;  // a byte >= 0x80
        ++i;
      }
      const std::string_view value = line.substr(begin, i - begin);
      // Escapes are ASCII on both sides: the raw bytes are valid UTF-8 exactly when the
      // unescaped value is.
      if (high && !IsValidUtf8(value)) {
        return Error("value of label " + std::string(label) + " is not valid UTF-8");
      }
      r.Seek(i + 1);  // past the closing quote
      labels_.push_back({label, value, escaped});
      if (r.SkipBlanks()) canonical = false;
      if (r.AtEnd()) return Error("unclosed label list");
      after_comma = false;
      if (r.Peek() == ',') {
        r.Advance();
        after_comma = true;
      } else if (r.Peek() != '}') {
        return Error("expected ',' or '}' after the value of label " + std::string(label));
      }
    }
  }

  std::string_view text_;
  const DcgmParseLimits& limits_;
  size_t line_no_ = 0;
  std::vector<ScannedFamily> families_;
  std::unordered_map<std::string_view, size_t> index_;  // family name -> families_ index
  std::unordered_map<std::string_view, size_t> owner_;  // sample name -> families_ index
  std::string_view last_name_;                          // of the previous sample
  size_t last_family_ = 0;
  std::vector<ScannedLabel> labels_;  // of the current sample
  ScannedSample sample_;
};

// --- relabeling, one pass for every job on the host ---

}  // namespace

// What relabeling works in; a DcgmRelabeler keeps it between calls, so that their lines are
// written into buffers that already have the room.
struct DcgmRelabeler::Buffers {
  // A job's lines of one family, from `begin` up to the next run's begin (or the end).
  struct Run {
    size_t family;
    size_t begin;
  };
  // A line's timestamp: `at` is the offset of the ' ' before it in the job's text.
  struct Stamp {
    size_t at;
    int64_t ms;
  };
  struct Job {
    std::string text;  // the job's lines in text order, text 0.0.4
    std::vector<Run> runs;
    std::vector<Stamp> stamps;  // in text order
    std::string pairs;          // the job's labels, rendered once
    std::vector<size_t> uuid_hashes;
  };
  // A family of one job's result: where its lines go in the result's buffer.
  struct Placed {
    size_t family;
    size_t text_begin, text_size;
    size_t om_begin, om_size;  // in `openmetrics`; om_size 0: same as the text
  };

  // Working buffers larger than this are let go after a call rather than kept for the next.
  static constexpr size_t kKeepBytes = size_t{1} << 20;

  std::vector<Job> jobs;                                    // the first jobs.size() of a call
  std::vector<int8_t> foreign;                              // by family: -1 unknown, 0, 1
  std::vector<std::shared_ptr<const FamilyHeader>> shared;  // by family, of this call
  std::vector<size_t> order;                                // a job's run indices, by family
  std::vector<Placed> placed;
  std::string openmetrics;
  std::vector<bool> used;
  std::string head, value, scratch;
};

namespace {

class Relabeler {
 public:
  using Buffers = DcgmRelabeler::Buffers;

  Relabeler(std::span<const DcgmJob> jobs, std::span<const std::string_view> server_families,
            Buffers& buffers)
      : jobs_(jobs), server_families_(server_families), b_(buffers) {
    if (b_.jobs.size() < jobs.size()) b_.jobs.resize(jobs.size());
    for (size_t j = 0; j < jobs.size(); ++j) {
      Buffers::Job& job = b_.jobs[j];
      job.text.clear();
      job.runs.clear();
      job.stamps.clear();
      if (jobs[j].pairs != nullptr) {
        job.pairs = *jobs[j].pairs;
      } else {
        job.pairs = RenderLabelPairs(jobs[j].labels);
      }
      job.uuid_hashes.clear();
      for (const std::string& uuid : jobs[j].gpu_uuids) job.uuid_hashes.push_back(Hash(uuid));
    }
    b_.foreign.clear();
    b_.shared.clear();
  }

  void OnSample(const ScannedSample& sample, const std::vector<ScannedFamily>& families) {
    if (sample.family >= b_.foreign.size()) b_.foreign.resize(families.size(), -1);
    int8_t& foreign = b_.foreign[sample.family];
    if (foreign < 0) foreign = IsForeignDcgmFamily(families[sample.family].name, server_families_);
    if (foreign != 0) return;
    const ScannedLabel* uuid = nullptr;
    bool ours = false;  // a label in our namespace: it may take a job's value
    for (const ScannedLabel& label : sample.labels) {
      if (label.name == "UUID") uuid = &label;
      ours = ours || (label.name.front() == 'd' && label.name.starts_with("dstack_"));
    }
    if (uuid == nullptr) return;
    std::string_view uuid_value = uuid->value;
    if (uuid->escaped) {
      UnescapeLabelValue(uuid->value, b_.scratch);
      uuid_value = b_.scratch;
    }
    bool rendered = false;                      // head_ and value are this sample's
    const size_t uuid_hash = Hash(uuid_value);  // UUIDs share their start: compare hashes first
    for (size_t j = 0; j < jobs_.size(); ++j) {
      bool held = false;
      const std::span<const std::string> uuids = jobs_[j].gpu_uuids;
      const std::vector<size_t>& hashes = b_.jobs[j].uuid_hashes;
      for (size_t u = 0; u < uuids.size() && !held; ++u) {
        held = hashes[u] == uuid_hash && uuids[u] == uuid_value;
      }
      if (!held) continue;
      if (!rendered) {
        b_.value.clear();
        if (sample.plain) {
          AppendPlainDecimal(b_.value, *sample.plain);
        } else {
          AppendValue(b_.value, ParseValue(sample.value).value_or(0));
        }
        if (!ours) Head(sample);
        rendered = true;
      }
      Append(j, sample, ours);
    }
  }

  // Families with samples that IsForeignDcgmFamily dropped.
  size_t foreign_families() const {
    return static_cast<size_t>(std::count(b_.foreign.begin(), b_.foreign.end(), int8_t{1}));
  }

  // The samples of each job, headers from `headers`.
  std::vector<DcgmSamples> Finish(const std::vector<ScannedFamily>& families,
                                  DcgmHeaderCache& headers) {
    // The headers of every family some job has, held once for all the jobs of the text.
    b_.shared.resize(families.size());
    auto held = std::make_shared<std::vector<std::shared_ptr<const FamilyHeader>>>();
    for (size_t j = 0; j < jobs_.size(); ++j) {
      for (const Buffers::Run& run : b_.jobs[j].runs) {
        std::shared_ptr<const FamilyHeader>& header = b_.shared[run.family];
        if (header) continue;
        const ScannedFamily& family = families[run.family];
        const bool escaped = family.help.find('\\') != std::string_view::npos;
        header = headers.Get(family.name, family.type,
                             escaped ? UnescapeHelp(family.help) : family.help);
        held->push_back(header);
      }
    }
    const std::shared_ptr<const void> keep = std::move(held);
    std::vector<DcgmSamples> out;
    out.reserve(jobs_.size());
    for (size_t j = 0; j < jobs_.size(); ++j) out.push_back(Assemble(b_.jobs[j], keep));
    b_.shared.clear();  // the results hold the headers, the cache can tell which are unused
    for (size_t j = 0; j < jobs_.size(); ++j) {
      Buffers::Job& job = b_.jobs[j];
      if (job.text.capacity() > Buffers::kKeepBytes) job.text = std::string();
    }
    if (b_.openmetrics.capacity() > Buffers::kKeepBytes) b_.openmetrics = std::string();
    return out;
  }

 private:
  // One job's lines into a buffer of their own: each family's lines together (a family whose
  // samples the text does not give in one block gathers them, in text order), in order of first
  // appearance, then the OpenMetrics lines of the families with timestamps.
  DcgmSamples Assemble(Buffers::Job& job, const std::shared_ptr<const void>& keep) {
    if (job.runs.empty()) return DcgmSamples();
    const auto run_end = [&job](size_t r) {
      return r + 1 < job.runs.size() ? job.runs[r + 1].begin : job.text.size();
    };
    // Runs by family, families in the text's order (a family's first HELP, TYPE or sample line:
    // family indices are given in that order), as ParseDcgmText lists them.
    bool in_order = true;
    for (size_t r = 1; r < job.runs.size(); ++r) {
      in_order = in_order && job.runs[r - 1].family < job.runs[r].family;
    }
    b_.order.resize(job.runs.size());
    for (size_t r = 0; r < job.runs.size(); ++r) b_.order[r] = r;
    if (!in_order) {
      std::stable_sort(b_.order.begin(), b_.order.end(),
                       [&](size_t x, size_t y) { return job.runs[x].family < job.runs[y].family; });
    }
    b_.placed.clear();
    b_.openmetrics.clear();
    size_t text_at = 0;
    for (size_t k = 0; k < b_.order.size();) {
      const size_t family = job.runs[b_.order[k]].family;
      Buffers::Placed& p = b_.placed.emplace_back(Buffers::Placed{family, text_at, 0, 0, 0});
      bool stamped = false;
      size_t end = k;
      for (; end < b_.order.size() && job.runs[b_.order[end]].family == family; ++end) {
        const size_t r = b_.order[end];
        p.text_size += run_end(r) - job.runs[r].begin;
        stamped = stamped || HasStamp(job, job.runs[r].begin, run_end(r));
      }
      text_at += p.text_size;
      if (stamped) {
        p.om_begin = b_.openmetrics.size();
        for (size_t i = k; i < end; ++i) {
          const size_t r = b_.order[i];
          AppendOpenMetrics(job, job.runs[r].begin, run_end(r));
        }
        p.om_size = b_.openmetrics.size() - p.om_begin;
      }
      k = end;
    }

    const size_t size = job.text.size() + b_.openmetrics.size();
    auto bytes = std::make_unique_for_overwrite<char[]>(size);
    char* data = bytes.get();
    if (in_order) {
      std::memcpy(data, job.text.data(), job.text.size());
    } else {
      char* at = data;
      for (const size_t r : b_.order) {
        const size_t begin = job.runs[r].begin;
        std::memcpy(at, job.text.data() + begin, run_end(r) - begin);
        at += run_end(r) - begin;
      }
    }
    if (!b_.openmetrics.empty()) {
      std::memcpy(data + job.text.size(), b_.openmetrics.data(), b_.openmetrics.size());
    }
    std::vector<RenderedFamily> families;
    families.reserve(b_.placed.size());
    for (const Buffers::Placed& p : b_.placed) {
      FragmentView view{std::string_view(data + p.text_begin, p.text_size), {}};
      if (p.om_size != 0) {
        view.openmetrics = std::string_view(data + job.text.size() + p.om_begin, p.om_size);
      }
      families.push_back(RenderedFamily{b_.shared[p.family].get(), view});
    }
    return DcgmSamples(std::move(bytes), size, std::move(families), keep);
  }

  // The first stamp at or after `begin`, by index.
  static size_t FirstStamp(const Buffers::Job& job, size_t begin) {
    return static_cast<size_t>(
        std::lower_bound(job.stamps.begin(), job.stamps.end(), begin,
                         [](const Buffers::Stamp& s, size_t at) { return s.at < at; }) -
        job.stamps.begin());
  }
  static bool HasStamp(const Buffers::Job& job, size_t begin, size_t end) {
    const size_t s = FirstStamp(job, begin);
    return s < job.stamps.size() && job.stamps[s].at < end;
  }

  // Appends to b_.openmetrics the job's lines in [begin, end) with their timestamps in seconds.
  // Lines end at their only '\n' (label values are written escaped).
  void AppendOpenMetrics(const Buffers::Job& job, size_t begin, size_t end) {
    size_t s = FirstStamp(job, begin);
    const std::string_view text = job.text;
    while (begin < end) {
      const size_t line_end = text.find('\n', begin) + 1;
      if (s < job.stamps.size() && job.stamps[s].at < line_end) {
        b_.openmetrics.append(text.substr(begin, job.stamps[s].at - begin));
        b_.openmetrics += ' ';
        AppendSeconds(b_.openmetrics, job.stamps[s].ms);
        b_.openmetrics += '\n';
        ++s;
      } else {
        b_.openmetrics.append(text.substr(begin, line_end - begin));
      }
      begin = line_end;
    }
  }

  // head = `name{l="v",...` for a sample without labels in our namespace: a view into the text
  // when the line wrote it so, else written in b_.head.
  void Head(const ScannedSample& sample) {
    if (!sample.head.empty()) {
      head_ = sample.head;
      return;
    }
    std::string& head = b_.head;
    head.clear();
    head += sample.name;
    head += '{';
    for (size_t i = 0; i < sample.labels.size(); ++i) {
      if (i > 0) head += ',';
      head += sample.labels[i].name;
      head += "=\"";
      head += sample.labels[i].value;  // as written: already escaped for output
      head += '"';
    }
    head_ = head;
  }

  // Appends the sample's line for job `j` up to its value (no timestamp, no end of line).
  void AppendLine(std::string& out, size_t j, const ScannedSample& sample, bool ours) {
    const std::string& job_pairs = b_.jobs[j].pairs;
    if (!ours) {
      out += head_;
      if (!sample.labels.empty() && !job_pairs.empty()) out += ',';
      out += job_pairs;
    } else {
      // A label named like one of the job's takes the job's value in its own place.
      const std::span<const Label> labels = jobs_[j].labels;
      std::vector<bool>& used = b_.used;
      used.assign(labels.size(), false);
      out += sample.name;
      out += '{';
      bool first = true;
      for (const ScannedLabel& label : sample.labels) {
        if (!first) out += ',';
        first = false;
        const Label* job_label = nullptr;
        if (label.name.starts_with("dstack_")) {
          for (size_t k = 0; k < labels.size(); ++k) {
            if (labels[k].name == label.name) {
              job_label = &labels[k];
              used[k] = true;
            }
          }
        }
        out += label.name;
        out += "=\"";
        if (job_label != nullptr) {
          AppendEscapedLabelValue(out, job_label->value);
        } else {
          out += label.value;
        }
        out += '"';
      }
      for (size_t k = 0; k < labels.size(); ++k) {
        if (used[k]) continue;
        if (!first) out += ',';
        first = false;
        out += labels[k].name;
        out += "=\"";
        AppendEscapedLabelValue(out, labels[k].value);
        out += '"';
      }
    }
    out += "} ";
    out += b_.value;
  }

  void Append(size_t j, const ScannedSample& sample, bool ours) {
    Buffers::Job& job = b_.jobs[j];
    if (job.runs.empty() || job.runs.back().family != sample.family) {
      job.runs.push_back({sample.family, job.text.size()});
    }
    AppendLine(job.text, j, sample, ours);
    if (sample.timestamp_ms) {
      job.stamps.push_back({job.text.size(), *sample.timestamp_ms});
      job.text += ' ';
      job.text += std::to_string(*sample.timestamp_ms);
    }
    job.text += '\n';
  }

  static size_t Hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

  std::span<const DcgmJob> jobs_;
  std::span<const std::string_view> server_families_;
  Buffers& b_;
  std::string_view head_;  // of the sample being relabeled
};

}  // namespace

Result<DcgmText> ParseDcgmText(std::string_view text, const DcgmParseLimits& limits) {
  Scanner scanner(text, limits);
  std::vector<DcgmFamily> families;  // by scanner family index
  FW_RETURN_IF_ERROR(scanner.Read([&](const ScannedSample& s) {
    if (s.family >= families.size()) families.resize(s.family + 1);
    DcgmSample& sample = families[s.family].samples.emplace_back();
    sample.name = s.name;
    sample.labels.reserve(s.labels.size());
    for (const ScannedLabel& label : s.labels) {
      auto& [name, value] = sample.labels.emplace_back(label.name, std::string());
      if (label.escaped) {
        UnescapeLabelValue(label.value, value);
      } else {
        value = label.value;
      }
    }
    sample.value = ParseValue(s.value).value_or(0);  // valid: the scanner read it
    sample.timestamp_ms = s.timestamp_ms;
  }));
  DcgmText result;
  const std::vector<ScannedFamily>& scanned = scanner.families();
  for (size_t f = 0; f < families.size(); ++f) {
    if (families[f].samples.empty()) continue;
    DcgmFamily& family = result.families.emplace_back(std::move(families[f]));
    family.name = scanned[f].name;
    family.type = scanned[f].type;
    family.help = UnescapeHelp(scanned[f].help);
  }
  return result;
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

bool IsForeignDcgmFamily(std::string_view name, std::span<const std::string_view> server_families) {
  if (!name.starts_with("DCGM_") && !name.starts_with("dcgm_")) return true;
  const std::string_view base = OpenMetricsBaseName(name);
  for (std::string_view server : server_families) {
    if (base == OpenMetricsBaseName(server) || name == server) return true;
  }
  return false;
}

std::shared_ptr<const FamilyHeader> DcgmHeaderCache::Get(std::string_view name, MetricType type,
                                                         std::string_view help) {
  key_.assign(name);
  key_ += '\0';
  key_ += static_cast<char>('0' + static_cast<int>(type));
  key_ += help;
  const auto it = headers_.find(std::string_view(key_));
  if (it != headers_.end()) return it->second;
  auto header = std::make_shared<const FamilyHeader>(std::string(name), type, std::string(help));
  headers_.emplace(key_, header);
  return header;
}

void DcgmHeaderCache::Prune() {
  std::erase_if(headers_, [](const auto& entry) { return entry.second.use_count() == 1; });
}

namespace {

Result<RelabeledDcgm> Relabel(std::string_view text, std::span<const DcgmJob> jobs,
                              std::span<const std::string_view> server_families,
                              DcgmHeaderCache& headers, DcgmRelabeler::Buffers& buffers,
                              const DcgmParseLimits& limits) {
  // Only a server family in dcgm-exporter's namespace can clash with a family that is in it (its
  // OpenMetrics base name starts with the "DCGM"/"dcgm" that the host's name starts with): the
  // others need not be compared with each family of each text.
  std::vector<std::string_view> clashing;
  for (std::string_view name : server_families) {
    if (name.starts_with("DCGM") || name.starts_with("dcgm")) clashing.push_back(name);
  }
  Scanner scanner(text, limits);
  Relabeler relabeler(jobs, clashing, buffers);
  FW_RETURN_IF_ERROR(
      scanner.Read([&](const ScannedSample& s) { relabeler.OnSample(s, scanner.families()); }));
  RelabeledDcgm out;
  out.jobs = relabeler.Finish(scanner.families(), headers);
  out.foreign_families = relabeler.foreign_families();
  return out;
}

}  // namespace

Result<RelabeledDcgm> RelabelDcgmText(std::string_view text, std::span<const DcgmJob> jobs,
                                      std::span<const std::string_view> server_families,
                                      DcgmHeaderCache* headers, const DcgmParseLimits& limits) {
  DcgmHeaderCache local;
  DcgmRelabeler::Buffers buffers;
  return Relabel(text, jobs, server_families, headers != nullptr ? *headers : local, buffers,
                 limits);
}

DcgmRelabeler::DcgmRelabeler() : buffers_(std::make_unique<Buffers>()) {}
DcgmRelabeler::~DcgmRelabeler() = default;

Result<RelabeledDcgm> DcgmRelabeler::Relabel(std::string_view text, std::span<const DcgmJob> jobs,
                                             std::span<const std::string_view> server_families,
                                             const DcgmParseLimits& limits) {
  return expose::Relabel(text, jobs, server_families, headers_, *buffers_, limits);
}

}  // namespace fleetwatch::expose
