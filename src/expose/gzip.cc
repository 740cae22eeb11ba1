#include "expose/gzip.h"

#include <libdeflate.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "util/check.h"

namespace fleetwatch::expose {

std::string Gzip(std::string_view data, int level) {
  struct Free {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  const std::unique_ptr<libdeflate_compressor, Free> compressor(
      libdeflate_alloc_compressor(std::clamp(level, 0, 12)));
  FW_CHECK(compressor != nullptr, "out of memory for a gzip compressor");
  // Uninitialised scratch of the bound's size, then one copy of what was written: zero-filling
  // the bound of a 240 MB body cost more than the copy (bench/exposition).
  const size_t bound = libdeflate_gzip_compress_bound(compressor.get(), data.size());
  const std::unique_ptr<char[]> scratch(new char[bound]);
  const size_t n =
      libdeflate_gzip_compress(compressor.get(), data.data(), data.size(), scratch.get(), bound);
  FW_CHECK(n != 0, "libdeflate wrote nothing into a buffer of its own bound's size");
  return std::string(scratch.get(), n);
}

}  // namespace fleetwatch::expose
