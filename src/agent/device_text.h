#pragma once

#include <string>
#include <string_view>

namespace fleetwatch::agent {

// Text from hardware (GPU names, uuids) as valid UTF-8: each byte that is not part of valid
// UTF-8 becomes U+FFFD and NULs are dropped; everything else, quotes and markup included, is
// kept as data. Thread-safe.
std::string DeviceText(std::string_view raw);

}  // namespace fleetwatch::agent
