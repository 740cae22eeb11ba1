#pragma once

// Reading and writing the small text files of /proc, /sys and cgroupfs.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::agent {

// The whole file (at most 1 MiB), or nullopt when it cannot be read. Thread-safe.
std::optional<std::string> ReadSmallFile(const std::filesystem::path& path);

// Writes `text` with a single write(2) without truncation or creation, as cgroupfs expects.
// Unavailable with the path and errno text on failure. Thread-safe.
Status WriteControlFile(const std::filesystem::path& path, std::string_view text);

// A decimal integer with optional surrounding whitespace (e.g. "1234\n"); nullopt otherwise.
std::optional<int64_t> ParseInteger(std::string_view text);

// The integer after `key` in "key value" lines (cpu.stat, memory.stat); nullopt when absent.
std::optional<int64_t> FindKeyedValue(std::string_view text, std::string_view key);

}  // namespace fleetwatch::agent
