#include "agent/amd_sysfs_backend.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <utility>

#include "agent/device_text.h"
#include "agent/sys_files.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

// Sysfs values end with a newline; names may be anything else (they are data, not markup).
std::string Trimmed(std::string raw) {
  std::string text = DeviceText(raw);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// "card12" → 12; connector entries ("card0-DP-1") and other names → nullopt.
std::optional<int> CardNumber(const std::string& name) {
  if (name.size() < 5 || name.compare(0, 4, "card") != 0 || name.size() > 12) return std::nullopt;
  int number = 0;
  for (size_t i = 4; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    number = number * 10 + (name[i] - '0');
  }
  return number;
}

int64_t NonNegative(std::optional<int64_t> v) { return v && *v > 0 ? *v : 0; }

// A non-negative integer file; absent when missing, unreadable, malformed or negative.
std::optional<int64_t> Counter(const fs::path& path) {
  std::optional<std::string> text = ReadSmallFile(path);
  if (!text) return std::nullopt;
  std::optional<int64_t> value = ParseInteger(*text);
  if (!value || *value < 0) return std::nullopt;
  return value;
}

// The device's first hwmon directory (device/hwmon/hwmonN, lowest N), if any.
std::optional<fs::path> Hwmon(const fs::path& device) {
  std::optional<fs::path> first;
  std::error_code ec;
  for (fs::directory_iterator it(device / "hwmon", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.starts_with("hwmon")) continue;
    if (!first || name < first->filename().string()) first = it->path();
  }
  return first;
}

// A RAS block name: 1..64 of [A-Za-z0-9_].
bool IsBlockName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The blocks of `ras_dir`/<block>_err_count ("ue: N\nce: N\n"), sorted by name; absent when the
// directory is missing (RAS not supported), empty when it has no counters.
std::optional<std::vector<model::RasErrors>> Ras(const fs::path& ras_dir) {
  std::error_code ec;
  fs::directory_iterator it(ras_dir, ec);
  if (ec) return std::nullopt;
  constexpr std::string_view kSuffix = "_err_count";
  std::vector<model::RasErrors> blocks;
  for (fs::directory_iterator end; !ec && it != end && blocks.size() < 64; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(kSuffix)) continue;
    std::string block = name.substr(0, name.size() - kSuffix.size());
    if (!IsBlockName(block)) continue;
    std::optional<std::string> text = ReadSmallFile(it->path());
    if (!text) continue;
    model::RasErrors errors{block, FindKeyedValue(*text, "ce:"), FindKeyedValue(*text, "ue:")};
    if (errors.correctable && *errors.correctable < 0) errors.correctable.reset();
    if (errors.uncorrectable && *errors.uncorrectable < 0) errors.uncorrectable.reset();
    blocks.push_back(std::move(errors));
  }
  std::sort(blocks.begin(), blocks.end(),
            [](const auto& a, const auto& b) { return a.block < b.block; });
  return blocks;
}

class AmdSysfsBackend final : public GpuBackend {
 public:
  explicit AmdSysfsBackend(const fs::path& root) { Scan(root / "class" / "drm"); }

  std::vector<model::Gpu> ListGpus() const override { return gpus_; }

  Result<GpuSample> Sample(int index) const override {
    if (index < 0 || static_cast<size_t>(index) >= devices_.size()) {
      return NotFound("no GPU " + std::to_string(index));
    }
    const fs::path& device = devices_[static_cast<size_t>(index)];
    std::optional<std::string> busy = ReadSmallFile(device / "gpu_busy_percent");
    std::optional<std::string> used = ReadSmallFile(device / "mem_info_vram_used");
    if (!busy || !used) return Unavailable("cannot read AMD GPU " + std::to_string(index));
    int64_t util = std::clamp<int64_t>(NonNegative(ParseInteger(*busy)), 0, 100);
    return GpuSample{static_cast<int>(util), NonNegative(ParseInteger(*used))};
  }

  Result<model::GpuReading> Read(int index) const override {
    if (index < 0 || static_cast<size_t>(index) >= devices_.size()) {
      return NotFound("no GPU " + std::to_string(index));
    }
    const fs::path& device = devices_[static_cast<size_t>(index)];
    model::GpuReading r;
    r.index = index;
    r.uuid = gpus_[static_cast<size_t>(index)].uuid;
    if (std::optional<int64_t> busy = Counter(device / "gpu_busy_percent")) {
      r.util_percent = std::min<int64_t>(*busy, 100);
    }
    r.memory_used_bytes = Counter(device / "mem_info_vram_used");
    if (std::optional<fs::path> hwmon = Hwmon(device)) {
      // hwmon units: microwatts, microjoules, millidegrees Celsius.
      std::optional<int64_t> power = Counter(*hwmon / "power1_average");
      if (!power) power = Counter(*hwmon / "power1_input");
      if (power) r.power_mw = *power / 1000;
      if (std::optional<int64_t> energy = Counter(*hwmon / "energy1_input")) {
        r.energy_mj = *energy / 1000;
      }
      if (std::optional<int64_t> temp =
              ParseInteger(ReadSmallFile(*hwmon / "temp1_input").value_or(std::string()))) {
        r.temperature_c = *temp / 1000;
      }
    }
    r.ras = Ras(device / "ras");
    return r;
  }

 private:
  void Scan(const fs::path& drm) {
    std::vector<std::pair<int, std::string>> cards;
    std::error_code ec;
    for (fs::directory_iterator it(drm, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (std::optional<int> number = CardNumber(name)) cards.emplace_back(*number, name);
    }
    std::sort(cards.begin(), cards.end());
    for (const auto& [number, card] : cards) {
      fs::path device = drm / card / "device";
      std::optional<std::string> vendor = ReadSmallFile(device / "vendor");
      if (!vendor || Trimmed(*vendor) != "0x1002") continue;
      model::Gpu gpu;
      gpu.index = static_cast<int>(gpus_.size());
      gpu.vendor = "amd";
      if (std::optional<std::string> product = ReadSmallFile(device / "product_name")) {
        gpu.name = Trimmed(*product);
      }
      if (gpu.name.empty()) {
        std::optional<std::string> id = ReadSmallFile(device / "device");
        gpu.name = "AMD GPU " + (id ? Trimmed(*id) : std::string("unknown"));
      }
      if (std::optional<std::string> unique = ReadSmallFile(device / "unique_id")) {
        gpu.uuid = Trimmed(*unique);
      }
      if (gpu.uuid.empty()) gpu.uuid = "amd-" + card;
      if (std::optional<std::string> total = ReadSmallFile(device / "mem_info_vram_total")) {
        gpu.memory_bytes = NonNegative(ParseInteger(*total));
      }
      gpus_.push_back(std::move(gpu));
      devices_.push_back(device);
    }
  }

  std::vector<model::Gpu> gpus_;
  std::vector<fs::path> devices_;  // parallel to gpus_
};

}  // namespace

std::string DefaultSysfsRoot() {
  const char* env = std::getenv("FLEETWATCH_SYSFS_ROOT");
  return env != nullptr && *env != '\0' ? env : "/sys";
}

std::unique_ptr<GpuBackend> OpenAmdSysfsBackend(const fs::path& sysfs_root) {
  return std::make_unique<AmdSysfsBackend>(sysfs_root);
}

}  // namespace fleetwatch::agent
