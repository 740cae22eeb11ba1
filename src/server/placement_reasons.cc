#include "server/placement_reasons.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "server/scheduler.h"

namespace fleetwatch::server {
namespace {

using model::Instance;
using model::InstanceStatus;

bool GpuMatches(const model::Gpu& gpu, const model::GpuRequest& want, bool check_memory) {
  if (want.name && !GpuNameMatches(*want.name, gpu.name)) return false;
  return !check_memory || !want.memory_bytes || gpu.memory_bytes >= *want.memory_bytes;
}

int MatchingGpus(const Instance& instance, const model::GpuRequest& want, bool check_memory,
                 const std::set<int>* among = nullptr) {
  int n = 0;
  for (const model::Gpu& g : instance.resources.gpus) {
    if (among != nullptr && !among->count(g.index)) continue;
    if (GpuMatches(g, want, check_memory)) ++n;
  }
  return n;
}

// "2 GPUs named A100", "a GPU", "a GPU named A100 with 80GB of memory".
std::string GpuWords(const model::GpuRequest& want, int count, bool with_memory) {
  std::string text = count == 1 ? "a GPU" : std::to_string(count) + " GPUs";
  if (want.name) text += " named " + *want.name;
  if (with_memory && want.memory_bytes)
    text += " with " + FormatMemory(*want.memory_bytes) + " of memory";
  return text;
}

bool Fits(const Instance& i, const model::ResourcesRequest& req) {
  return i.resources.cpus >= req.cpus &&
         (!req.memory_bytes || i.resources.memory_bytes >= *req.memory_bytes) &&
         MatchingGpus(i, req.gpu, true) >= req.gpu.count;
}

std::string Where(const InstanceFree& f) {
  return f.fleet_size == 1 ? f.instance->fleet_name : f.instance->name;
}

}  // namespace

std::string FormatMemory(int64_t bytes) {
  constexpr double kGb = 1024.0 * 1024 * 1024;
  char text[32];
  if (bytes >= 1024LL * 1024 * 1024) {
    std::snprintf(text, sizeof(text), "%.1fGB", static_cast<double>(bytes) / kGb);
  } else {
    std::snprintf(text, sizeof(text), "%.1fMB", static_cast<double>(bytes) / (1024.0 * 1024));
  }
  std::string out(text);
  if (size_t dot = out.find(".0"); dot != std::string::npos) out.erase(dot, 2);
  return out;
}

std::string NoCapacityReason(std::string_view project_name, const std::vector<Instance>& instances,
                             const model::ResourcesRequest& req, int nodes) {
  std::vector<const Instance*> live;
  for (const Instance& i : instances) {
    if (i.status != InstanceStatus::kTerminated && i.status != InstanceStatus::kTerminating) {
      live.push_back(&i);
    }
  }
  const std::string project(project_name);
  if (live.empty()) return "project " + project + " has no instances";
  const std::string none = "no instance of project " + project + " has ";
  auto any = [&](auto&& holds) { return std::any_of(live.begin(), live.end(), holds); };
  const model::GpuRequest& gpu = req.gpu;
  if (gpu.count > 0) {
    if (gpu.name && !any([&](const Instance* i) { return MatchingGpus(*i, gpu, false) > 0; })) {
      return none + GpuWords(gpu, 1, false);
    }
    if (gpu.memory_bytes &&
        !any([&](const Instance* i) { return MatchingGpus(*i, gpu, true) > 0; })) {
      return none + GpuWords(gpu, 1, true);
    }
    if (!any([&](const Instance* i) { return MatchingGpus(*i, gpu, true) >= gpu.count; })) {
      return none + GpuWords(gpu, gpu.count, false);
    }
  }
  if (!any([&](const Instance* i) { return i->resources.cpus >= req.cpus; })) {
    return none + std::to_string(req.cpus) + " CPUs";
  }
  if (req.memory_bytes &&
      !any([&](const Instance* i) { return i->resources.memory_bytes >= *req.memory_bytes; })) {
    return none + FormatMemory(*req.memory_bytes) + " of memory";
  }
  if (!any([&](const Instance* i) { return Fits(*i, req); })) {
    std::string all = std::to_string(req.cpus) + " CPUs";
    std::vector<std::string> parts = {all};
    if (req.memory_bytes) parts.push_back(FormatMemory(*req.memory_bytes) + " of memory");
    if (gpu.count > 0) parts.push_back(GpuWords(gpu, gpu.count, true));
    std::string text;
    for (size_t k = 0; k < parts.size(); ++k) {
      text += (k == 0 ? "" : k + 1 == parts.size() ? " and " : ", ") + parts[k];
    }
    return none + text + " at once";
  }
  return "no fleet of project " + project + " has " + std::to_string(nodes) + " instances that fit";
}

std::string WaitReason(const std::vector<InstanceFree>& instances,
                       const model::ResourcesRequest& req, int nodes) {
  auto fits_now = [&](const InstanceFree& f) {
    return f.usable && f.cpus >= req.cpus &&
           (!req.memory_bytes || f.memory_bytes >= *req.memory_bytes) &&
           MatchingGpus(*f.instance, req.gpu, true, &f.free_gpus) >= req.gpu.count;
  };
  // Several nodes: a fleet with room on some instances but not enough of them.
  if (nodes > 1) {
    std::map<std::string, int> free_in_fleet;
    for (const InstanceFree& f : instances) {
      if (Fits(*f.instance, req)) free_in_fleet[f.instance->fleet_name] += fits_now(f) ? 1 : 0;
    }
    for (const auto& [fleet, count] : free_in_fleet) {
      if (count > 0) {
        return std::to_string(count) + " of " + std::to_string(nodes) +
               " instances free in fleet " + fleet;
      }
    }
  }
  // The usable instance that could hold the job when idle and has the most CPUs free.
  const InstanceFree* closest = nullptr;
  for (const InstanceFree& f : instances) {
    if (!f.usable || !Fits(*f.instance, req)) continue;
    if (closest == nullptr || f.cpus > closest->cpus) closest = &f;
  }
  if (closest != nullptr) {
    const InstanceFree& f = *closest;
    const Instance& i = *f.instance;
    if (f.cpus < req.cpus) {
      return std::to_string(std::max(0, f.cpus)) + " of " + std::to_string(i.resources.cpus) +
             " CPUs free on " + Where(f);
    }
    if (req.memory_bytes && f.memory_bytes < *req.memory_bytes) {
      return FormatMemory(std::max<int64_t>(0, f.memory_bytes)) + " of " +
             FormatMemory(i.resources.memory_bytes) + " memory free on " + Where(f);
    }
    std::string gpus = req.gpu.name ? " GPUs named " + *req.gpu.name : std::string(" GPUs");
    std::string text = std::to_string(MatchingGpus(i, req.gpu, true, &f.free_gpus)) + " of " +
                       std::to_string(MatchingGpus(i, req.gpu, true)) + gpus + " free on " +
                       Where(f);
    // Name the matching GPUs that take no new jobs, and why.
    std::string excluded;
    if (f.excluded_gpus != nullptr) {
      for (const model::Gpu& g : i.resources.gpus) {
        auto why = f.excluded_gpus->find(g.index);
        if (why == f.excluded_gpus->end() || !GpuMatches(g, req.gpu, true)) continue;
        excluded += (excluded.empty() ? "" : "; ") + why->second;
      }
    }
    return excluded.empty() ? text : text + " (" + excluded + ")";
  }
  for (const InstanceFree& f : instances) {
    const Instance& i = *f.instance;
    if (i.status == InstanceStatus::kTerminated || i.status == InstanceStatus::kTerminating) {
      continue;
    }
    if (i.unreachable) return "instance " + i.name + " is unreachable";
    if (i.resources.cpus == 0 || !f.usable)
      return "waiting for the agent of " + i.name + " to answer";
  }
  return "no instance is free";
}

}  // namespace fleetwatch::server
