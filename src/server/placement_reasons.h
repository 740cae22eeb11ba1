#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/run_spec.h"

namespace fleetwatch::server {

// Why the scheduler cannot place a run's jobs, in the server's own words. The sentences are kept
// with the jobs (Job::status_detail) and shown in the API's `status_message`, e.g.
// "failed (no capacity: no instance of project ml has a GPU named banana)" or
// "submitted (waiting: 0 of 8 CPUs free on local)". Pure functions; thread-safe.

// Why no fleet of project `project_name` could ever hold `nodes` jobs asking for `req`, even
// with every instance idle. `instances`: the project's instances. The first unmet need wins:
//   "project ml has no instances"
//   "no instance of project ml has a GPU named banana"
//   "no instance of project ml has a GPU named A100 with 80GB of memory"
//   "no instance of project ml has 4 GPUs named A100"
//   "no instance of project ml has 64 CPUs"
//   "no instance of project ml has 512GB of memory"
//   "no instance of project ml has 8 CPUs, 64GB of memory and 2 GPUs at once"
//   "no fleet of project ml has 2 instances that fit"
std::string NoCapacityReason(std::string_view project_name,
                             const std::vector<model::Instance>& instances,
                             const model::ResourcesRequest& req, int nodes);

// What one instance has free this tick, as the scheduler counts it.
struct InstanceFree {
  const model::Instance* instance = nullptr;
  int fleet_size = 1;   // instances in its fleet: a fleet of one is named by the fleet's name
  bool usable = false;  // reachable, resources known, may take jobs now
  int cpus = 0;
  int64_t memory_bytes = 0;
  std::set<int> free_gpus;  // excluded GPUs are not free
  // Its GPUs that take no new jobs (ExcludedGpus' entry for it), by index → why; may be null.
  const std::map<int, std::string>* excluded_gpus = nullptr;
};

// Why `nodes` jobs asking for `req` wait although some fleet could hold them once idle: what is
// short on the instance closest to fitting, e.g.
//   "0 of 8 CPUs free on local", "12GB of 64GB memory free on gpus-1",
//   "0 of 2 GPUs named A100 free on gpus", "1 of 2 instances free in fleet pair",
//   "instance gpus-0 is unreachable", "waiting for the agent of gpus-0 to answer",
//   "0 of 1 GPUs free on gpus (GPU 0 of gpus-0 is unhealthy: XID 79 (...))" when GPUs it would
//   need are excluded.
std::string WaitReason(const std::vector<InstanceFree>& instances,
                       const model::ResourcesRequest& req, int nodes);

// "64GB", "1.5GB", "512MB": bytes in the units run configurations use.
std::string FormatMemory(int64_t bytes);

}  // namespace fleetwatch::server
