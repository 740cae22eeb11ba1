#include "model/json_text.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "model/config_fields.h"

namespace fleetwatch::model {
namespace {

void AppendDouble(double d, std::string& out) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  std::string_view text(buf, static_cast<size_t>(end - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void Append(const boost::json::value& v, std::string& out) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      out += std::to_string(v.get_int64());
      return;
    case boost::json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return;
    case boost::json::kind::double_:
      AppendDouble(v.get_double(), out);
      return;
    case boost::json::kind::string:
      out += boost::json::serialize(v.get_string());
      return;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        Append(item, out);
      }
      out += ']';
      return;
    }
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += boost::json::serialize(boost::json::string_view(key));
        out += ':';
        Append(item, out);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string SerializeJson(const boost::json::value& value) {
  std::string out;
  Append(value, out);
  return out;
}

namespace {

// Builds a boost::json::value from basic_parser events. Unlike boost::json::parse, it refuses
// duplicate keys (the DOM parser keeps the last one silently) and bounds the number of values.
class TreeBuilder {
 public:
  explicit TreeBuilder(const JsonLimits& limits) : limits_(limits) {}

  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;

  bool on_document_begin(boost::json::error_code&) { return true; }
  bool on_document_end(boost::json::error_code&) { return true; }
  bool on_array_begin(boost::json::error_code& ec) {
    return Open(boost::json::value(boost::json::array_kind), ec);
  }
  bool on_array_end(std::size_t, boost::json::error_code& ec) { return Close(ec); }
  bool on_object_begin(boost::json::error_code& ec) {
    return Open(boost::json::value(boost::json::object_kind), ec);
  }
  bool on_object_end(std::size_t, boost::json::error_code& ec) { return Close(ec); }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::json::error_code& ec) {
    text_.append(s.data(), s.size());
    boost::json::value v(boost::json::string_view(text_.data(), text_.size()));
    text_.clear();
    return Add(std::move(v), ec);
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::json::error_code& ec) {
    text_.append(s.data(), s.size());
    key_ = std::move(text_);
    text_.clear();
    if (stack_.back().value.get_object().contains(key_)) {
      return Fail("malformed JSON: duplicate key" +
                      (config::IsSafeKey(key_) ? " '" + key_ + "'" : std::string()),
                  ec);
    }
    return true;
  }
  bool on_number_part(boost::json::string_view s, boost::json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(int64_t i, boost::json::string_view, boost::json::error_code& ec) {
    number_.clear();
    return Add(boost::json::value(i), ec);
  }
  bool on_uint64(uint64_t u, boost::json::string_view, boost::json::error_code& ec) {
    number_.clear();
    return Add(boost::json::value(u), ec);
  }
  // The parser's own conversion may be an ulp off; the number's text is converted again, rounded
  // correctly, so that a value written in its shortest form reads back as the same double (as the
  // YAML path reads it).
  bool on_double(double d, boost::json::string_view s, boost::json::error_code& ec) {
    number_.append(s.data(), s.size());
    double exact = 0;
    const auto [end, error] =
        std::from_chars(number_.data(), number_.data() + number_.size(), exact);
    if (error == std::errc() && end == number_.data() + number_.size()) d = exact;
    number_.clear();
    return Add(boost::json::value(d), ec);
  }
  bool on_bool(bool b, boost::json::error_code& ec) { return Add(boost::json::value(b), ec); }
  bool on_null(boost::json::error_code& ec) { return Add(boost::json::value(nullptr), ec); }
  bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }

  boost::json::value& root() { return root_; }
  // The whole message when a handler refused the input; basic_parser then reports
  // error::exception.
  const std::string& failure() const { return failure_; }

 private:
  struct Frame {
    boost::json::value value;
    std::string key_in_parent;
  };

  bool Fail(std::string message, boost::json::error_code& ec) {
    failure_ = std::move(message);
    ec = boost::json::error::exception;
    return false;
  }

  bool Count(boost::json::error_code& ec) {
    if (++nodes_ > limits_.max_nodes) {
      return Fail(std::string(limits_.subject) + " has too many values (at most " +
                      std::to_string(limits_.max_nodes) + ")",
                  ec);
    }
    return true;
  }

  bool Open(boost::json::value container, boost::json::error_code& ec) {
    if (!Count(ec)) return false;
    stack_.push_back({std::move(container), std::move(key_)});
    key_.clear();
    return true;
  }

  bool Close(boost::json::error_code& ec) {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    key_ = std::move(frame.key_in_parent);
    --nodes_;  // Add counts it again
    return Add(std::move(frame.value), ec);
  }

  bool Add(boost::json::value v, boost::json::error_code& ec) {
    if (!Count(ec)) return false;
    if (stack_.empty()) {
      root_ = std::move(v);
    } else if (stack_.back().value.is_array()) {
      stack_.back().value.get_array().push_back(std::move(v));
    } else {
      stack_.back().value.get_object().emplace(key_, std::move(v));
      key_.clear();
    }
    return true;
  }

  const JsonLimits limits_;
  boost::json::value root_;
  std::vector<Frame> stack_;
  std::string key_;
  std::string text_;
  std::string number_;  // a number's text while the parser hands it over in parts
  std::string failure_;
  std::size_t nodes_ = 0;
};

}  // namespace

Result<boost::json::value> ParseStrictJson(std::string_view text, const JsonLimits& limits) {
  boost::json::parse_options options;
  options.max_depth = limits.max_depth;
  boost::json::basic_parser<TreeBuilder> parser(options, limits);
  boost::json::error_code ec;
  std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) ec = boost::json::error::extra_data;
  if (!ec) return std::move(parser.handler().root());

  if (!parser.handler().failure().empty()) return InvalidArgument(parser.handler().failure());
  if (ec == boost::json::error::too_deep) {
    return InvalidArgument(std::string(limits.subject) + " is nested too deeply (at most " +
                           std::to_string(limits.max_depth) + " levels)");
  }
  consumed = std::min(consumed, text.size());
  std::string_view before = text.substr(0, consumed);
  std::size_t line = 1 + std::count(before.begin(), before.end(), '\n');
  std::size_t last_newline = before.rfind('\n');
  std::size_t column =
      1 + (last_newline == std::string_view::npos ? consumed : consumed - last_newline - 1);
  return InvalidArgument("malformed JSON: " + config::SanitizeLibraryMessage(ec.message()) +
                         " at line " + std::to_string(line) + ", column " + std::to_string(column));
}

}  // namespace fleetwatch::model
