#pragma once

#include <string>
#include <string_view>

namespace fleetwatch::expose {

// A gzip member (RFC 1952) holding `data`, compressed with libdeflate at `level` (clamped to
// 0..12; 1 is what a scrape wants: see docs/expose.md for the measurements). Any gzip reader
// (zlib, Prometheus) decompresses it. Thread-safe; allocates a compressor per call.
std::string Gzip(std::string_view data, int level = 1);

}  // namespace fleetwatch::expose
