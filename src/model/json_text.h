#pragma once

#include <string>

namespace boost::json {
class value;
}

namespace fleetwatch::model {

// Compact JSON text of `value`, like boost::json::serialize but with numbers written the way
// people and other JSON tools expect: doubles in their shortest round-trip form with a ".0" on
// whole numbers (`1.5`, `0.0`, `1e+16`) instead of Boost 1.81's `1.5E0`. Non-finite doubles
// become null. Thread-safe.
std::string SerializeJson(const boost::json::value& value);

}  // namespace fleetwatch::model
