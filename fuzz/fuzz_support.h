#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "util/check.h"

namespace fleetwatch::fuzz {

// The fuzzer's bytes as text. The view borrows `data`, which libFuzzer keeps alive for the call.
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Whether `text` holds no ASCII control byte (below 0x20, or DEL): what an error message built
// from untrusted input must not contain, lest it end up in logs or terminals as raw bytes.
inline bool HasNoControlBytes(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace fleetwatch::fuzz
