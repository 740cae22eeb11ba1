#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::cli {

// Lenient readers for server replies: a missing, null or mistyped field reads as absent, so a
// reply from a newer or older server still prints. All pure.

// The field, or nullptr when `object` is not an object or has no such key.
const boost::json::value* Field(const boost::json::value& object, std::string_view key);

// The string field, or `fallback` when absent or not a string.
std::string StringField(const boost::json::value& object, std::string_view key,
                        std::string_view fallback = "");

// The integral field (an integral double counts), or nullopt.
std::optional<int64_t> IntField(const boost::json::value& object, std::string_view key);

// The numeric field, or nullopt.
std::optional<double> NumberField(const boost::json::value& object, std::string_view key);

// The array field, or an empty array.
const boost::json::array& ArrayField(const boost::json::value& object, std::string_view key);

// The "items" of a list reply; Internal when the reply has none.
Result<const boost::json::array*> Items(const boost::json::value& reply);

}  // namespace fleetwatch::cli
