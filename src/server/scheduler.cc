#include "server/scheduler.h"

#include <algorithm>
#include <cctype>

namespace fleetwatch::server {
namespace {

using model::Instance;
using model::InstanceStatus;

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  std::string current;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      current += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

// GPUs of `instance` that satisfy `gpu` (name and memory), among `candidates`.
std::vector<int> MatchingGpus(const Instance& instance, const model::GpuRequest& gpu,
                              const std::set<int>& candidates) {
  std::vector<int> out;
  for (const model::Gpu& g : instance.resources.gpus) {
    if (!candidates.count(g.index)) continue;
    if (gpu.name && !GpuNameMatches(*gpu.name, g.name)) continue;
    if (gpu.memory_bytes && g.memory_bytes < *gpu.memory_bytes) continue;
    out.push_back(g.index);
  }
  return out;
}

// Whether the instance could run the job if it were empty. Instances whose resources are not known
// yet (the agent has not answered) might.
bool CouldEverFit(const Instance& instance, const model::ResourcesRequest& req) {
  if (instance.status == InstanceStatus::kTerminated ||
      instance.status == InstanceStatus::kTerminating) {
    return false;
  }
  if (instance.resources.cpus == 0) return true;  // unknown yet
  if (instance.resources.cpus < req.cpus) return false;
  if (req.memory_bytes && instance.resources.memory_bytes < *req.memory_bytes) return false;
  std::set<int> all;
  for (const model::Gpu& g : instance.resources.gpus) all.insert(g.index);
  return static_cast<int>(MatchingGpus(instance, req.gpu, all).size()) >= req.gpu.count;
}

// Takes what the job needs from `cap` when it fits; returns the GPU indices taken.
std::optional<std::vector<int>> TryTake(const Instance& instance,
                                        const model::ResourcesRequest& req, Capacity& cap) {
  if (cap.cpus < req.cpus) return std::nullopt;
  if (req.memory_bytes && cap.memory_bytes < *req.memory_bytes) return std::nullopt;
  std::vector<int> gpus = MatchingGpus(instance, req.gpu, cap.free_gpus);
  if (static_cast<int>(gpus.size()) < req.gpu.count) return std::nullopt;
  gpus.resize(static_cast<size_t>(req.gpu.count));
  cap.cpus -= req.cpus;
  if (req.memory_bytes) cap.memory_bytes -= *req.memory_bytes;
  for (int g : gpus) cap.free_gpus.erase(g);
  return gpus;
}

}  // namespace

bool GpuNameMatches(std::string_view requested, std::string_view gpu_name) {
  std::string want;
  for (char c : requested) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      want += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (want.empty()) return false;
  std::vector<std::string> words = Words(gpu_name);
  for (size_t i = 0; i < words.size(); ++i) {
    std::string joined;
    for (size_t j = i; j < words.size() && joined.size() < want.size(); ++j) {
      joined += words[j];
      if (joined == want) return true;
    }
  }
  return false;
}

bool UsableForScheduling(const Instance& instance) {
  return !instance.unreachable && instance.resources.cpus > 0 &&
         (instance.status == InstanceStatus::kIdle || instance.status == InstanceStatus::kBusy);
}

CapacityMap FreeCapacity(
    const std::map<std::string, model::Instance>& instances,
    const std::vector<std::pair<const model::Run*, const model::RunConfiguration*>>& runs) {
  CapacityMap capacity;
  capacity.reserve(instances.size());
  for (const auto& [id, instance] : instances) {
    Capacity cap{instance.resources.cpus, instance.resources.memory_bytes, {}};
    for (const model::Gpu& g : instance.resources.gpus) cap.free_gpus.insert(g.index);
    capacity[id] = std::move(cap);
  }
  for (const auto& [run, config] : runs) {
    for (const model::Job& job : run->jobs) {
      if (model::IsFinished(job.status) || !job.instance_id) continue;
      auto cap = capacity.find(*job.instance_id);
      if (cap == capacity.end()) continue;
      // A job whose configuration cannot be read (its run is ending) still holds its GPUs.
      for (int g : job.gpu_indices) cap->second.free_gpus.erase(g);
      if (config == nullptr) continue;
      cap->second.cpus -= config->resources.cpus;
      if (config->resources.memory_bytes) {
        cap->second.memory_bytes -= *config->resources.memory_bytes;
      }
    }
  }
  return capacity;
}

void ExcludeGpus(CapacityMap& capacity, const ExcludedGpus& excluded) {
  for (const auto& [instance_id, gpus] : excluded) {
    auto cap = capacity.find(instance_id);
    if (cap == capacity.end()) continue;
    for (const auto& [index, why] : gpus) cap->second.free_gpus.erase(index);
  }
}

GroupPlacement PlaceGroup(const model::ResourcesRequest& req, size_t jobs,
                          const std::vector<model::Instance*>& project_instances,
                          CapacityMap& capacity,
                          const std::function<bool(const model::Instance&)>& placeable) {
  GroupPlacement result;
  // Fleets of the run's project, with their instances in order.
  std::map<std::string, std::vector<Instance*>> fleets;
  for (Instance* instance : project_instances) fleets[instance->fleet_id].push_back(instance);
  bool ever = false;
  for (auto& [fleet_id, members] : fleets) {
    size_t fits = std::count_if(members.begin(), members.end(),
                                [&](const Instance* i) { return CouldEverFit(*i, req); });
    if (fits >= jobs) ever = true;
  }
  if (!ever) {
    result.outcome = GroupPlacement::Outcome::kNeverFits;
    return result;
  }
  for (auto& [fleet_id, members] : fleets) {
    // A trial on the fleet's own instances: only they can receive these jobs.
    CapacityMap trial;
    for (const Instance* instance : members) trial.emplace(instance->id, capacity.at(instance->id));
    std::vector<std::pair<Instance*, std::vector<int>>> chosen;
    std::set<std::string> used;
    for (size_t k = 0; k < jobs; ++k) {
      // Least-loaded instance first, so jobs spread over a fleet.
      Instance* best = nullptr;
      std::optional<std::vector<int>> best_gpus;
      for (Instance* instance : members) {
        if (!UsableForScheduling(*instance) || !placeable(*instance) || used.count(instance->id)) {
          continue;
        }
        Capacity copy = trial.at(instance->id);
        std::optional<std::vector<int>> gpus = TryTake(*instance, req, copy);
        if (!gpus) continue;
        if (best == nullptr || trial.at(instance->id).cpus > trial.at(best->id).cpus) {
          best = instance;
          best_gpus = gpus;
        }
      }
      if (best == nullptr) break;
      TryTake(*best, req, trial.at(best->id));
      used.insert(best->id);
      chosen.emplace_back(best, *best_gpus);
    }
    if (chosen.size() != jobs) continue;
    for (auto& [id, cap] : trial) capacity.at(id) = std::move(cap);
    result.outcome = GroupPlacement::Outcome::kPlaced;
    result.chosen = std::move(chosen);
    return result;
  }
  // Capacity is busy: the jobs wait.
  return result;
}

}  // namespace fleetwatch::server
