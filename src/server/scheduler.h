#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/run_spec.h"

namespace fleetwatch::server {

// Placing jobs on instances: free capacity, GPU matching and the choice of instances for one
// replica. Pure functions over the caller's data; no I/O, no locks; thread-safe.

// Free capacity of one instance while placing jobs this tick.
struct Capacity {
  int cpus = 0;
  int64_t memory_bytes = 0;
  std::set<int> free_gpus;
};

// True when a host's GPU name satisfies a requested one: case-insensitive match of the request
// against any word of the name or any run of adjacent words ("A100" and "NVIDIA A100-SXM4-80GB";
// "rtx4090" and "NVIDIA GeForce RTX 4090").
bool GpuNameMatches(std::string_view requested, std::string_view gpu_name);

// Whether new jobs may go to the instance: reachable, resources known, idle or busy.
bool UsableForScheduling(const model::Instance& instance);

// Free capacity by instance id.
using CapacityMap = std::unordered_map<std::string, Capacity>;

// GPUs that take no new jobs (gpu_health.h): instance id → GPU index → why, e.g.
// "GPU 1 of gpus-0 is unhealthy: XID 79 (GPU has fallen off the bus; action reboot)".
using ExcludedGpus = std::map<std::string, std::map<int, std::string>>;

// Takes the `excluded` GPUs out of `capacity`'s free GPUs, so that no job is placed on them.
// They still count for whether a job could ever fit: a job that needs them waits for them.
void ExcludeGpus(CapacityMap& capacity, const ExcludedGpus& excluded);

// The free capacity of each of `instances` (by id): its resources less what the unfinished jobs
// of `runs` placed on it hold. Each run comes with its configuration, nullptr when it cannot be
// read (such a job still holds its GPUs).
CapacityMap FreeCapacity(
    const std::map<std::string, model::Instance>& instances,
    const std::vector<std::pair<const model::Run*, const model::RunConfiguration*>>& runs);

// Where the jobs of one replica (`jobs` of them, one per node) go: distinct instances of one
// fleet, or nowhere.
struct GroupPlacement {
  enum class Outcome {
    kPlaced,      // `chosen` holds one (instance, GPU indices) per job, `capacity` is updated
    kNeverFits,   // no fleet of the project has enough instances that could ever fit a job
    kNoCapacity,  // they could fit, but not now: the jobs wait
  };
  Outcome outcome = Outcome::kNoCapacity;
  std::vector<std::pair<model::Instance*, std::vector<int>>> chosen;
};

// Places `jobs` jobs requesting `req` on the instances of `project_instances` (of one project,
// any fleet, in a stable order), least-loaded instance first so that jobs spread over a fleet.
// Only instances for which `placeable` is true receive jobs. `capacity` (by instance id, every
// instance present) is taken from only when the outcome is kPlaced.
GroupPlacement PlaceGroup(const model::ResourcesRequest& req, size_t jobs,
                          const std::vector<model::Instance*>& project_instances,
                          CapacityMap& capacity,
                          const std::function<bool(const model::Instance&)>& placeable);

}  // namespace fleetwatch::server
