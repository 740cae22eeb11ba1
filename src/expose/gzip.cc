#include "expose/gzip.h"

#include <libdeflate.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace fleetwatch::expose {

std::string Gzip(std::string_view data, int level) {
  struct Free {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  const std::unique_ptr<libdeflate_compressor, Free> compressor(
      libdeflate_alloc_compressor(std::clamp(level, 0, 12)));
  if (!compressor) std::abort();  // out of memory: nothing sensible to answer
  std::string out(libdeflate_gzip_compress_bound(compressor.get(), data.size()), '\0');
  const size_t n =
      libdeflate_gzip_compress(compressor.get(), data.data(), data.size(), out.data(), out.size());
  if (n == 0) std::abort();  // impossible: the buffer has the bound's size
  out.resize(n);
  return out;
}

}  // namespace fleetwatch::expose
