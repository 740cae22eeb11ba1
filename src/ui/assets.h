#pragma once

#include <span>
#include <string_view>

namespace fleetwatch::ui {

// One file of the web UI, embedded into the binary at build time (embed_assets.cmake).
struct EmbeddedAsset {
  std::string_view path;          // the URL path it is served at: "/" or "/assets/..."
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view etag;          // a strong ETag, quotes included, from the content's SHA-256
  std::string_view body;
};

// Every embedded asset, sorted by nothing in particular. Static storage; thread-safe.
std::span<const EmbeddedAsset> EmbeddedAssets();

// The asset served at exactly `path` (no normalisation: "/assets/../x" is simply not found),
// or nullptr. Thread-safe.
const EmbeddedAsset* FindAsset(std::string_view path);

}  // namespace fleetwatch::ui
