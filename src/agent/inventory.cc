#include "agent/inventory.h"

#include <sched.h>
#include <unistd.h>

#include <climits>

#include "agent/sys_files.h"

namespace fleetwatch::agent {

std::optional<int64_t> ParseMemTotal(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemTotal:";
  size_t at = meminfo.find(kKey);
  if (at == std::string_view::npos || (at != 0 && meminfo[at - 1] != '\n')) return std::nullopt;
  std::string_view rest = meminfo.substr(at + kKey.size());
  rest = rest.substr(0, rest.find('\n'));
  size_t unit = rest.find("kB");
  if (unit == std::string_view::npos) return std::nullopt;
  std::optional<int64_t> kib = ParseInteger(rest.substr(0, unit));
  if (!kib || *kib < 0 || *kib > INT64_MAX / 1024) return std::nullopt;
  return *kib * 1024;
}

HostInventory CollectInventory(const GpuBackend& gpus, CgroupMode cgroup) {
  HostInventory inventory;
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) == 0) inventory.hostname = host;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) inventory.cpus = CPU_COUNT(&set);
  if (inventory.cpus <= 0) inventory.cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  if (std::optional<std::string> meminfo = ReadSmallFile("/proc/meminfo")) {
    inventory.memory_bytes = ParseMemTotal(*meminfo).value_or(0);
  }
  inventory.cgroup = cgroup;
  inventory.gpus = gpus.ListGpus();
  return inventory;
}

}  // namespace fleetwatch::agent
