#include "store/change_keys.h"

#include <charconv>

namespace fleetwatch::store {

std::vector<std::string> ChangePayloads(const std::vector<std::string>& keys, size_t max_bytes) {
  std::vector<std::string> payloads;
  std::string current;
  for (const std::string& key : keys) {
    if (!current.empty() && current.size() + 1 + key.size() > max_bytes) {
      payloads.push_back(std::move(current));
      current.clear();
    }
    if (!current.empty()) current += ',';
    current += key;
  }
  if (!current.empty()) payloads.push_back(std::move(current));
  return payloads;
}

std::vector<std::string> ChangeKeys(std::string_view payload) {
  std::vector<std::string> keys;
  while (!payload.empty()) {
    const size_t comma = payload.find(',');
    std::string_view key = payload.substr(0, comma);
    if (!key.empty()) keys.emplace_back(key);
    if (comma == std::string_view::npos) break;
    payload.remove_prefix(comma + 1);
  }
  return keys;
}

std::string VersionedKey(std::string_view id, int64_t number) {
  return std::string(id) + "@" + std::to_string(number);
}

std::optional<std::pair<std::string, int64_t>> ParseVersionedKey(std::string_view key) {
  const size_t at = key.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == key.size()) return std::nullopt;
  int64_t number = 0;
  const char* end = key.data() + key.size();
  auto [ptr, ec] = std::from_chars(key.data() + at + 1, end, number);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return std::make_pair(std::string(key.substr(0, at)), number);
}

}  // namespace fleetwatch::store
