#include "expose/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace fleetwatch::expose {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i] (s[i] >= 0x80), or 0 when invalid.
// Rejects overlong forms, surrogates and code points above U+10FFFF, like Go's utf8.Valid.
size_t ValidUtf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  const uint8_t c = b(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Appends `s` with \\, \n (and \" when `quote`) escaped and invalid UTF-8 replaced.
void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  size_t run = 0;  // start of the pending run of bytes copied as they are
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      if (c == '\\' || c == '\n' || (quote && c == '"')) {
        out.append(s.data() + run, i - run);
        out += '\\';
        out += c == '\n' ? 'n' : static_cast<char>(c);
        run = ++i;
      } else {
        ++i;
      }
      continue;
    }
    const size_t n = ValidUtf8Length(s, i);
    if (n == 0) {
      out.append(s.data() + run, i - run);
      out += kReplacement;
      run = ++i;
    } else {
      i += n;
    }
  }
  out.append(s.data() + run, s.size() - run);
}

}  // namespace

void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "nan";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "inf" : "-inf";
    return;
  }
  // Shortest round-trip digits in scientific form, e.g. "-1.2345e+17"; std::to_chars never
  // consults the locale.
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  if (ec != std::errc()) {  // cannot happen with 64 bytes; keep the output well-formed anyway
    out += "nan";
    return;
  }
  std::string_view sci(buf, static_cast<size_t>(end - buf));
  const size_t e_pos = sci.find('e');
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + (sci[e_pos + 1] == '+' ? 2 : 1), sci.data() + sci.size(),
                  exponent);
  // Python's float_repr_style 'short': exponent form when exponent < -4 or >= 16; its exponent
  // form ("1e+16", "1.5e-07") is exactly what to_chars printed.
  if (exponent < -4 || exponent >= 16) {
    out += sci;
    return;
  }
  std::string_view mantissa = sci.substr(0, e_pos);
  if (mantissa.front() == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  char digits[32];  // the significant digits without the decimal point
  size_t n = 0;
  for (char c : mantissa) {
    if (c != '.') digits[n++] = c;
  }
  if (exponent < 0) {
    out += "0.";
    out.append(static_cast<size_t>(-exponent - 1), '0');
    out.append(digits, n);
    return;
  }
  const auto int_digits = static_cast<size_t>(exponent) + 1;
  if (n <= int_digits) {
    out.append(digits, n);
    out.append(int_digits - n, '0');
    out += ".0";
  } else {
    out.append(digits, int_digits);
    out += '.';
    out.append(digits + int_digits, n - int_digits);
  }
}

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  AppendEscaped(out, value, /*quote=*/true);
}

void AppendEscapedHelp(std::string& out, std::string_view help, Format format) {
  AppendEscaped(out, help, /*quote=*/format == Format::kOpenMetrics100);
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = ValidUtf8Length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void AppendLabelPair(std::string& pairs, std::string_view name, std::string_view value) {
  if (!pairs.empty()) pairs += ',';
  pairs += name;
  pairs += "=\"";
  AppendEscapedLabelValue(pairs, value);
  pairs += '"';
}

std::string RenderLabelPairs(std::span<const Label> labels) {
  std::string pairs;
  for (const Label& label : labels) AppendLabelPair(pairs, label.name, label.value);
  return pairs;
}

void AppendSample(std::string& out, std::string_view name, std::string_view pairs, double value) {
  out += name;
  if (!pairs.empty()) {
    out += '{';
    out += pairs;
    out += '}';
  }
  out += ' ';
  AppendValue(out, value);
  out += '\n';
}

std::array<Label, 11> JobLabels(const JobLabelValues& v) {
  const std::string_view values[11] = {v.project_name, v.user_name, v.run_name, v.run_id,
                                       v.job_name,     v.job_id,    v.job_num,  v.replica_num,
                                       v.run_type,     v.backend,   v.gpu};
  std::array<Label, 11> labels;
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = {kJobLabelNames[i], values[i]};
  return labels;
}

}  // namespace fleetwatch::expose
