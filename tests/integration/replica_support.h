#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// What the replica tests read beside the API: the test PostgreSQL database directly (a fresh
// connection per call, so a call never holds one open), and numbers in JSON replies. Thread-safe.
namespace fleetwatch::testing {

// The first column of each row of `sql` on `url`; empty on any failure.
std::vector<std::string> QueryColumn(const std::string& url, const std::string& sql);

// The one value `sql` gives as a number; -1 when it gives no single non-empty value.
double QueryNumber(const std::string& url, const std::string& sql);

// The integer at `key` of the object `v`; -1 when there is none.
int64_t JsonInt(const boost::json::value& v, std::string_view key);

}  // namespace fleetwatch::testing
