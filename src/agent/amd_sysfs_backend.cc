#include "agent/amd_sysfs_backend.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
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
