#include "model/json_writer.h"

#include <algorithm>
#include <cmath>

#include "model/config_fields.h"

namespace fleetwatch::model::config {

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
}

void JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  first_.push_back(true);
}

void JsonWriter::EndObject() {
  out_ += '}';
  first_.pop_back();
}

void JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  first_.push_back(true);
}

void JsonWriter::EndArray() {
  out_ += ']';
  first_.pop_back();
}

void JsonWriter::Key(std::string_view key) {
  BeforeValue();
  WriteQuoted(key);
  out_ += ':';
  after_key_ = true;
}

void JsonWriter::String(std::string_view text) {
  BeforeValue();
  WriteQuoted(text);
}

void JsonWriter::Integer(int64_t value) {
  BeforeValue();
  out_ += std::to_string(value);
}

void JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
}

void JsonWriter::Number(double value) {
  BeforeValue();
  out_ += std::isfinite(value) ? FormatDouble(value) : "null";
}

namespace {

// The escape sequence of `c` (written into `buffer`), or an empty view when `c` is written as is.
std::string_view Escape(char c, char (&buffer)[6]) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto byte = static_cast<unsigned char>(c);
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default:
      if (byte >= 0x20 && byte != 0x7f) return {};
      buffer[0] = '\\';
      buffer[1] = 'u';
      buffer[2] = '0';
      buffer[3] = '0';
      buffer[4] = kHex[byte >> 4];
      buffer[5] = kHex[byte & 0xf];
      return {buffer, 6};
  }
}

}  // namespace

void JsonWriter::WriteQuoted(std::string_view text) {
  char buffer[6];
  out_ += '"';
  for (char c : text) {
    std::string_view escaped = Escape(c, buffer);
    if (escaped.empty()) {
      out_ += c;
    } else {
      out_ += escaped;
    }
  }
  out_ += '"';
}

std::size_t QuotedJsonSize(std::string_view text) {
  char buffer[6];
  std::size_t size = 2;
  for (char c : text) size += std::max<std::size_t>(1, Escape(c, buffer).size());
  return size;
}

}  // namespace fleetwatch::model::config
