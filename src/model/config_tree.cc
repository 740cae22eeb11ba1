#include "model/config_tree.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <boost/json/value.hpp>

#include "model/config_fields.h"
#include "model/json_text.h"
#include "model/json_writer.h"

namespace fleetwatch::model::config {
namespace {

static_assert(kMaxDepth == 64 && kMaxNodes == 100'000 && kMaxConfigurationBytes == 1u << 20 &&
                  kMaxInputBytes == 16u << 20,
              "update the messages below");
constexpr std::string_view kTooDeep = "configuration is nested too deeply (at most 64 levels)";
constexpr std::string_view kTooManyNodes = "configuration has too many values (at most 100000)";
constexpr std::string_view kTooLargeExpanded =
    "configuration is too large (over 1 MiB as JSON, aliases expanded)";

bool IsBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// ---- JSON -------------------------------------------------------------------------------------

Result<boost::json::value> ParseJson(std::string_view text) {
  return ParseStrictJson(text, {kMaxDepth, kMaxNodes, "configuration"});
}

// ---- YAML -------------------------------------------------------------------------------------

bool IsDigits(std::string_view s, bool hex = false) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
    if (!ok) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsCoreFloat(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

// A plain scalar typed by the YAML 1.2 core schema; nullopt when it is a string (or an integer
// too large for any type, which the caller reports).
std::optional<boost::json::value> ResolvePlain(std::string_view s, bool& out_of_range) {
  out_of_range = false;
  if (s == "true" || s == "True" || s == "TRUE") return boost::json::value(true);
  if (s == "false" || s == "False" || s == "FALSE") return boost::json::value(false);
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) {
    return boost::json::value(nullptr);
  }
  // Integers: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
  bool negative = !s.empty() && s[0] == '-';
  std::string_view digits = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    digits = s.substr(2);
    negative = false;
  }
  if (IsDigits(digits, base == 16) &&
      (base != 8 || digits.find_first_of("89") == std::string_view::npos)) {
    uint64_t magnitude = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
    if (ec == std::errc() && end == digits.data() + digits.size()) {
      constexpr uint64_t kMaxPositive = std::numeric_limits<int64_t>::max();
      if (!negative && magnitude <= kMaxPositive) {
        return boost::json::value(static_cast<int64_t>(magnitude));
      }
      if (!negative) return boost::json::value(magnitude);
      if (magnitude <= kMaxPositive + 1) {
        return boost::json::value(static_cast<int64_t>(0 - magnitude));  // two's complement
      }
    }
    if (base == 10) {  // too large for 64 bits: keep the magnitude as a double, like JSON does
      double d = 0;
      std::from_chars(digits.data(), digits.data() + digits.size(), d);
      return boost::json::value(negative ? -d : d);
    }
    out_of_range = true;
    return std::nullopt;
  }
  if (IsCoreFloat(s)) {
    std::string_view unsigned_part = s[0] == '+' ? s.substr(1) : s;
    double d = 0;
    std::from_chars(unsigned_part.data(), unsigned_part.data() + unsigned_part.size(), d);
    return boost::json::value(d);
  }
  std::string_view inf = (s[0] == '-' || s[0] == '+') ? s.substr(1) : s;
  if (inf == ".inf" || inf == ".Inf" || inf == ".INF") {
    return boost::json::value(s[0] == '-' ? -HUGE_VAL : HUGE_VAL);
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return boost::json::value(std::numeric_limits<double>::quiet_NaN());
  }
  return std::nullopt;
}

class YamlConverter {
 public:
  Result<boost::json::value> Convert(const YAML::Node& node, const std::string& path,
                                     std::size_t depth) {
    if (depth > kMaxDepth) return InvalidArgument(std::string(kTooDeep));
    if (++nodes_ > kMaxNodes) return InvalidArgument(std::string(kTooManyNodes));
    // About one separator or bracket per node: an alias to an empty list costs bytes too.
    FW_RETURN_IF_ERROR(AddJsonBytes(1));
    const std::string& tag = node.Tag();
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return boost::json::value(nullptr);
      case YAML::NodeType::Scalar:
        return ConvertScalar(node, path);
      case YAML::NodeType::Sequence: {
        if (tag != "?" && tag != "tag:yaml.org,2002:seq") return UnsupportedTag(path);
        boost::json::array array;
        std::size_t index = 0;
        for (const YAML::Node& item : node) {
          FW_ASSIGN_OR_RETURN(boost::json::value v,
                              Convert(item, IndexPath(path, index), depth + 1));
          array.push_back(std::move(v));
          ++index;
        }
        return boost::json::value(std::move(array));
      }
      case YAML::NodeType::Map: {
        if (tag != "?" && tag != "tag:yaml.org,2002:map") return UnsupportedTag(path);
        boost::json::object object;
        for (const auto& pair : node) {  // yaml-cpp yields key/value pairs by value
          const YAML::Node& key = pair.first;
          if (!key.IsScalar()) return Error(path, "mapping keys must be plain strings");
          const std::string& k = key.Scalar();
          if (!IsValidUtf8(k)) return Error(path, "a mapping key is not valid UTF-8");
          if (object.contains(k)) {
            return Error(path, "duplicate key" + (IsSafeKey(k) ? " '" + k + "'" : std::string()));
          }
          FW_RETURN_IF_ERROR(AddJsonBytes(QuotedJsonSize(k) + 1));
          std::string child_path = KeyPath(path, k);
          FW_ASSIGN_OR_RETURN(boost::json::value v, Convert(pair.second, child_path, depth + 1));
          object.emplace(k, std::move(v));
        }
        return boost::json::value(std::move(object));
      }
    }
    return Error(path, "unsupported YAML node");
  }

 private:
  static Status UnsupportedTag(const std::string& path) {
    return Error(path, "YAML tags are not supported");
  }

  Result<boost::json::value> ConvertScalar(const YAML::Node& node, const std::string& path) {
    const std::string& s = node.Scalar();
    const std::string& tag = node.Tag();
    if (!IsValidUtf8(s)) return Error(path, "is not valid UTF-8");
    FW_RETURN_IF_ERROR(AddJsonBytes(QuotedJsonSize(s)));
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return boost::json::value(s);
    if (tag != "?") return UnsupportedTag(path);
    bool out_of_range = false;
    std::optional<boost::json::value> typed = ResolvePlain(s, out_of_range);
    if (out_of_range) return Error(path, "integer is out of range");
    if (typed) return std::move(*typed);
    return boost::json::value(s);
  }

  // The tree's size as compact JSON, counted while it is built (every scalar and key as a quoted,
  // escaped string: a slight overestimate for numbers), so an alias bomb stops at the cap rather
  // than once expanded.
  Status AddJsonBytes(std::size_t bytes) {
    json_bytes_ += bytes;
    if (json_bytes_ > kMaxConfigurationBytes)
      return InvalidArgument(std::string(kTooLargeExpanded));
    return Status::Ok();
  }

  std::size_t nodes_ = 0;
  std::size_t json_bytes_ = 0;
};

// Counts the documents of a YAML stream without building them. yaml-cpp's LoadAll loops forever,
// allocating, on a stream it cannot advance in (a lone "," is such a stream: every round yields
// another empty document at the same place); here a document starting where the previous one
// started marks that, and reading stops after two documents anyway.
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }
  // Where the parser stopped advancing, when it did.
  const std::optional<YAML::Mark>& stuck_at() const { return stuck_at_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_ > 0 && mark.pos == start_.pos) stuck_at_ = mark;
    start_ = mark;
    ++documents_;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  int documents_ = 0;
  YAML::Mark start_;
  std::optional<YAML::Mark> stuck_at_;
};

Result<boost::json::value> ParseYaml(std::string_view text) {
  int documents = 0;
  YAML::Node document;
  try {
    const std::string owned(text);
    std::istringstream stream(owned);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    while (counter.documents() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (const std::optional<YAML::Mark>& at = counter.stuck_at()) {
      return InvalidArgument("malformed YAML at line " + std::to_string(at->line + 1) +
                             ", column " + std::to_string(at->column + 1) + ": unexpected token");
    }
    documents = counter.documents();
    if (documents == 1) document = YAML::Load(owned);
  } catch (const YAML::DeepRecursion&) {
    return InvalidArgument(std::string(kTooDeep));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null())
      return InvalidArgument("malformed YAML: " + SanitizeLibraryMessage(e.msg));
    return InvalidArgument("malformed YAML at line " + std::to_string(e.mark.line + 1) +
                           ", column " + std::to_string(e.mark.column + 1) + ": " +
                           SanitizeLibraryMessage(e.msg));
  }
  if (documents > 1) {
    return InvalidArgument("configuration must be a single YAML document (found several)");
  }
  if (documents == 0) return boost::json::value(nullptr);
  try {
    YamlConverter converter;
    return converter.Convert(document, "", 0);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("malformed YAML: " + SanitizeLibraryMessage(e.msg));
  }
}

}  // namespace

Status CheckNormalizedSize(std::size_t normalized_bytes) {
  if (normalized_bytes <= kMaxConfigurationBytes) return Status::Ok();
  return InvalidArgument("configuration is too large (over 1 MiB as normalized JSON)");
}

Result<boost::json::object> ParseConfigTree(std::string_view text, ConfigFormat format) {
  if (text.size() > kMaxInputBytes) {
    return InvalidArgument("configuration is too large (" + std::to_string(text.size()) +
                           " bytes; at most 16 MiB)");
  }
  if (format == ConfigFormat::kJson && IsBlank(text)) {
    return InvalidArgument("empty configuration");
  }
  FW_ASSIGN_OR_RETURN(boost::json::value root,
                      format == ConfigFormat::kJson ? ParseJson(text) : ParseYaml(text));
  if (root.is_null()) return InvalidArgument("empty configuration");
  if (!root.is_object()) {
    return InvalidArgument("configuration must be a mapping (got " + std::string(KindName(root)) +
                           ")");
  }
  return std::move(root.get_object());
}

}  // namespace fleetwatch::model::config
