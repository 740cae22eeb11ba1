#pragma once

#include <string>
#include <string_view>

namespace fleetwatch {

// A random RFC 4122 version 4 UUID in lowercase text form. Thread-safe.
std::string NewId();

// A new secret bearer token: 32 random bytes from the kernel, as 64 lowercase hex digits.
std::string NewToken();

// SHA-256 of `data` as 64 lowercase hex digits. Tokens are stored only as this hash.
std::string Sha256Hex(std::string_view data);

// Compares two strings in time independent of where they first differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace fleetwatch
