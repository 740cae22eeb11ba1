#include "model/config_fields.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace fleetwatch::model::config {
namespace {

// 2^63: the first magnitude an int64_t cannot hold.
constexpr double kTwoPow63 = 9223372036854775808.0;

std::string Between(int64_t min, int64_t max) {
  return "must be between " + std::to_string(min) + " and " + std::to_string(max);
}

}  // namespace

bool IsSafeKey(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string SanitizeLibraryMessage(std::string_view message) {
  std::string out;
  for (char c : message.substr(0, 200)) out += (c >= 0x20 && c <= 0x7e) ? c : '?';
  return out;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t min;
    uint32_t cp;
    if ((b0 & 0xe0) == 0xc0) {
      len = 2, min = 0x80, cp = b0 & 0x1f;
    } else if ((b0 & 0xf0) == 0xe0) {
      len = 3, min = 0x800, cp = b0 & 0x0f;
    } else if ((b0 & 0xf8) == 0xf0) {
      len = 4, min = 0x10000, cp = b0 & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

std::string GotSuffix(std::string_view text) {
  if (text.size() > 64) return "";
  for (char c : text) {
    // Printable ASCII, minus quotes and characters that mean something in HTML or shells.
    if (c < 0x20 || c > 0x7e || c == '\'' || c == '"' || c == '\\' || c == '<' || c == '>' ||
        c == '&' || c == '`') {
      return "";
    }
  }
  return " (got '" + std::string(text) + "')";
}

std::string KeyPath(std::string_view parent, std::string_view key) {
  std::string shown = IsSafeKey(key) ? std::string(key) : "(key)";
  if (parent.empty()) return shown;
  return std::string(parent) + "." + shown;
}

std::string IndexPath(std::string_view parent, std::size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

Status Error(std::string_view path, std::string_view message) {
  if (path.empty()) return InvalidArgument(std::string(message));
  return InvalidArgument(std::string(path) + ": " + std::string(message));
}

std::string_view KindName(const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "an integer";
    case boost::json::kind::double_:
      return "a number with a fraction";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "a list";
    case boost::json::kind::object:
      return "a mapping";
  }
  return "an unknown value";
}

const boost::json::value* Find(const boost::json::object& object, std::string_view key) {
  const boost::json::value* found = object.if_contains(key);
  if (found == nullptr || found->is_null()) return nullptr;
  return found;
}

Status CheckKeys(const boost::json::object& object, std::string_view path,
                 std::initializer_list<std::string_view> known,
                 std::span<const UnsupportedKey> unsupported) {
  for (const auto& entry : object) {
    std::string_view key = entry.key();
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || k == key;
    if (is_known) continue;
    for (const UnsupportedKey& u : unsupported) {
      if (u.key == key) return Error(KeyPath(path, key), u.reason);
    }
    if (IsSafeKey(key)) return Error(path, "unknown key '" + std::string(key) + "'");
    return Error(path, "unknown key");
  }
  return Status::Ok();
}

Result<int64_t> ReadInteger(const boost::json::value& value, std::string_view path, int64_t min,
                            int64_t max) {
  int64_t n = 0;
  switch (value.kind()) {
    case boost::json::kind::int64:
      n = value.get_int64();
      break;
    case boost::json::kind::uint64:
      return Error(path, "is out of range (" + Between(min, max) + ")");
    case boost::json::kind::double_: {
      double d = value.get_double();
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) >= kTwoPow63) {
        return Error(path, "is out of range (" + Between(min, max) + ")");
      }
      return Error(path, "must be an integer (got a number with a fraction or exponent)");
    }
    default:
      return Error(path, "must be an integer (got " + std::string(KindName(value)) + ")");
  }
  if (n < min || n > max) {
    return Error(path, Between(min, max) + " (got " + std::to_string(n) + ")");
  }
  return n;
}

Result<double> ReadNumber(const boost::json::value& value, std::string_view path, double min,
                          double max) {
  double d = 0;
  switch (value.kind()) {
    case boost::json::kind::int64:
      d = static_cast<double>(value.get_int64());
      break;
    case boost::json::kind::uint64:
      d = static_cast<double>(value.get_uint64());
      break;
    case boost::json::kind::double_:
      d = value.get_double();
      break;
    default:
      return Error(path, "must be a number (got " + std::string(KindName(value)) + ")");
  }
  if (!(d >= min && d <= max)) {  // also refuses NaN
    return Error(path, "must be between " + FormatDouble(min) + " and " + FormatDouble(max));
  }
  return d;
}

Result<std::string> ReadString(const boost::json::value& value, std::string_view path) {
  if (!value.is_string()) {
    return Error(path, "must be a string (got " + std::string(KindName(value)) + ")");
  }
  const boost::json::string& s = value.get_string();
  return std::string(s.data(), s.size());
}

Result<const boost::json::object*> ReadObject(const boost::json::value& value,
                                              std::string_view path) {
  if (!value.is_object()) {
    return Error(path, "must be a mapping (got " + std::string(KindName(value)) + ")");
  }
  return &value.get_object();
}

Result<const boost::json::array*> ReadArray(const boost::json::value& value,
                                            std::string_view path) {
  if (!value.is_array()) {
    return Error(path, "must be a list (got " + std::string(KindName(value)) + ")");
  }
  return &value.get_array();
}

std::string FormatDouble(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec != std::errc()) return "0";
  return std::string(buffer, end);
}

}  // namespace fleetwatch::model::config
