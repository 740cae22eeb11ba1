#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/cgroup_tree.h"
#include "agent/gpu_backend.h"
#include "model/entities.h"

namespace fleetwatch::agent {

// What this host offers, as GET /api/inventory reports it.
struct HostInventory {
  std::string hostname;
  int cpus = 0;              // CPUs this process may run on
  int64_t memory_bytes = 0;  // MemTotal
  CgroupMode cgroup = CgroupMode::kNone;
  std::vector<model::Gpu> gpus;
};

// Reads the hostname, CPU count (sched_getaffinity, else sysconf), MemTotal from /proc/meminfo
// and the GPUs from `gpus`. Fields that cannot be read stay 0 or empty. Thread-safe.
HostInventory CollectInventory(const GpuBackend& gpus, CgroupMode cgroup);

// MemTotal from /proc/meminfo text, in bytes; nullopt when absent or malformed.
std::optional<int64_t> ParseMemTotal(std::string_view meminfo);

}  // namespace fleetwatch::agent
