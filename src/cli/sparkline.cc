#include "cli/sparkline.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>

namespace fleetwatch::cli {
namespace {

constexpr std::array<std::string_view, 7> kBlocks = {"▁", "▂", "▃", "▄", "▅", "▆", "▇"};

}  // namespace

std::string SparkBlock(double value) {
  if (!(value > 0)) return std::string(kBlocks.front());  // also NaN
  if (value >= 100) return std::string(kBlocks.back());
  const double step = value * static_cast<double>(kBlocks.size() - 1) / 100.0;
  const auto index = static_cast<size_t>(std::floor(step + 0.5));
  return std::string(kBlocks[std::min(index, kBlocks.size() - 1)]);
}

std::string Sparkline(const std::vector<double>& values) {
  std::string out;
  out.reserve(values.size() * 3);
  for (double v : values) out += SparkBlock(v);
  return out;
}

std::vector<double> Downsample(const std::vector<double>& values, size_t buckets) {
  if (buckets == 0) return {};
  const size_t n = values.size();
  if (n <= buckets) return values;
  std::vector<double> out;
  out.reserve(buckets);
  for (size_t b = 0; b < buckets; ++b) {
    const size_t begin = b * n / buckets;
    const size_t end = (b + 1) * n / buckets;  // > begin because n > buckets
    double sum = 0;
    for (size_t i = begin; i < end; ++i) sum += values[i];
    out.push_back(sum / static_cast<double>(end - begin));
  }
  return out;
}

}  // namespace fleetwatch::cli
