#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The payload of a change notification (store.h kHostDcgmChannel, kJobPointsChannel): the keys
// (ids) of the rows a transaction wrote, joined by ','. PostgreSQL limits a payload to under 8000
// bytes, so many keys go out as several payloads. Stateless; thread-safe.
namespace fleetwatch::store {

// PostgreSQL refuses payloads of 8000 bytes and more; this leaves room.
inline constexpr size_t kMaxChangePayloadBytes = 7000;

// `keys` joined by ',' into payloads of at most `max_bytes` each (a key longer than that gets a
// payload of its own), in order; none for no keys. Keys must hold no ','.
std::vector<std::string> ChangePayloads(const std::vector<std::string>& keys,
                                        size_t max_bytes = kMaxChangePayloadBytes);

// The keys of a payload, in order; empty keys (",," or an empty payload) are left out.
std::vector<std::string> ChangeKeys(std::string_view payload);

// A key that names a row and how new it is ("<id>@<number>", store.h): "id@number".
std::string VersionedKey(std::string_view id, int64_t number);
// The (id, number) of a VersionedKey; nullopt for a key of another form.
std::optional<std::pair<std::string, int64_t>> ParseVersionedKey(std::string_view key);

}  // namespace fleetwatch::store
