#pragma once

// Private to model/: a minimal compact JSON writer for the normalized configurations. Boost.JSON
// would print 2.5 as "2.5E0"; users read these documents, so numbers are written the short way.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fleetwatch::model::config {

// Writes one JSON document front to back; keys come out in the order they are written. Not
// thread-safe. Strings are written as given (escaping quotes, backslashes and control
// characters), so callers pass valid UTF-8.
class JsonWriter {
 public:
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  void Key(std::string_view key);
  void String(std::string_view text);
  void Integer(int64_t value);
  void Number(double value);  // non-finite values are written as null
  void Bool(bool value);

  // The document written so far.
  const std::string& text() const { return out_; }

 private:
  void BeforeValue();
  void WriteQuoted(std::string_view text);

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written into it yet
  bool after_key_ = false;
};

// The bytes JsonWriter writes for `text` as a string, quotes included. Thread-safe.
std::size_t QuotedJsonSize(std::string_view text);

}  // namespace fleetwatch::model::config
