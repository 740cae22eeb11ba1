#pragma once

// Private to model/: typed, path-aware reading of a configuration tree (config_tree.h). Every
// error is InvalidArgument "<path>: <what is wrong>", where the path is built only from keys the
// schema knows (or keys checked by IsSafeKey), so messages never carry raw user bytes.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "util/status.h"

namespace fleetwatch::model::config {

// ^[A-Za-z0-9_.-]{1,64}$: a key short and plain enough to repeat back in a message.
bool IsSafeKey(std::string_view key);

// A library's error message made safe to pass on: printable ASCII only, at most 200 characters,
// so that a message quoting input cannot smuggle control characters out.
std::string SanitizeLibraryMessage(std::string_view message);

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view text);

// " (got 'text')" when `text` is at most 64 printable ASCII characters without quotes,
// backslashes, backticks or any of <>&; otherwise "" so that nothing unsafe is echoed.
std::string GotSuffix(std::string_view text);

// "parent.key", or "key" at the top level. A key that fails IsSafeKey is shown as "(key)".
std::string KeyPath(std::string_view parent, std::string_view key);
// "parent[index]".
std::string IndexPath(std::string_view parent, std::size_t index);

// InvalidArgument("path: message"), or InvalidArgument("message") for the top level.
Status Error(std::string_view path, std::string_view message);

// "a string", "an integer", "a list", ... for "must be X (got Y)" messages.
std::string_view KindName(const boost::json::value& value);

// The value under `key`; nullptr when absent or null (YAML `key:` means "not given").
const boost::json::value* Find(const boost::json::object& object, std::string_view key);

// A key that exists in the dstack dialect but that fleetwatch refuses, and why.
struct UnsupportedKey {
  std::string_view key;
  std::string_view reason;  // e.g. "is not supported by the process runtime"
};

// Refuses, in document order, every key of `object` that is not in `known`: keys listed in
// `unsupported` with "<path.key>: <reason>", anything else with "<path>: unknown key 'k'" (the
// key is shown only when IsSafeKey).
Status CheckKeys(const boost::json::object& object, std::string_view path,
                 std::initializer_list<std::string_view> known,
                 std::span<const UnsupportedKey> unsupported);

// Readers. Booleans are never numbers; numbers with a fraction are never integers; values out of
// int64 range are "out of range", never wrapped.
Result<int64_t> ReadInteger(const boost::json::value& value, std::string_view path, int64_t min,
                            int64_t max);
Result<double> ReadNumber(const boost::json::value& value, std::string_view path, double min,
                          double max);
Result<std::string> ReadString(const boost::json::value& value, std::string_view path);
Result<const boost::json::object*> ReadObject(const boost::json::value& value,
                                              std::string_view path);
Result<const boost::json::array*> ReadArray(const boost::json::value& value, std::string_view path);

// Shortest text that reads back as the same double, independent of the locale ("2.5", "1e+300").
std::string FormatDouble(double value);

}  // namespace fleetwatch::model::config
