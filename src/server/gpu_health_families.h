#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "expose/family.h"
#include "expose/snapshot.h"
#include "server/gpu_health.h"
#include "server/server_families.h"
#include "util/mutex.h"

namespace fleetwatch::server {

// The GPU health families (spec/METRICS.md "Beyond dstack"), one series set per GPU of every
// instance that has readings, labelled dstack_project_name, dstack_fleet_name,
// dstack_instance_name, gpu (the index) and the family's own label:
//   fleetwatch_instance_health{...,status}          1 for the current status, 0 for the others
//     (no gpu label: the worst of its GPUs', or degraded when the agent reports no readings)
//   fleetwatch_gpu_health{...,gpu,status}           the same per GPU
//   fleetwatch_gpu_xid_errors_total{...,gpu,xid,action}  counter; action from the catalogue
//   fleetwatch_gpu_ecc_errors_total{...,gpu,type}   counter, type corrected|uncorrected (the
//     GPU's aggregate counts)
//   fleetwatch_gpu_remapped_rows{...,gpu,kind}      gauge, kind correctable|uncorrectable
//   fleetwatch_gpu_power_watts, fleetwatch_gpu_temperature_celsius  gauges
//   fleetwatch_gpu_throttle{...,gpu,reason}         1 for each active reason (the others have
//     no sample)
// Counters never go backwards across agent restarts (GpuCounters: offsets in memory).

inline constexpr size_t kGpuHealthFamilies = 8;

// All in the instance section.
const std::array<ServerFamily, kGpuHealthFamilies>& GpuHealthFamilies();

// The samples of one instance, family k's into *out[k] (complete lines). Pure.
void AppendGpuHealthSamples(const InstanceExport& instance,
                            const std::array<std::string*, kGpuHealthFamilies>& out);

// The fragment key of an instance: project name, '\0', instance name, '\0', id (the spec's
// order: by project, then instance name).
std::string GpuHealthKey(const model::Instance& instance);

// Keeps the GPU health families in an ExpositionSnapshot current with a GpuHealthMonitor: one
// fragment per family and instance, rendered again only when the monitor's version moved and
// the instance's text changed. Thread-safe (Update calls are serialized).
class GpuHealthExposition {
 public:
  // Registers the families at the end of the snapshot's instance section (a name clash is a
  // programming error and aborts). `monitor` and `snapshot` must outlive it.
  GpuHealthExposition(const GpuHealthMonitor& monitor, expose::ExpositionSnapshot& snapshot);

  void Update() FW_EXCLUDES(mu_);

 private:
  const GpuHealthMonitor& monitor_;
  expose::ExpositionSnapshot& snapshot_;
  std::array<expose::FamilyId, kGpuHealthFamilies> ids_{};
  Mutex mu_;
  uint64_t version_ FW_GUARDED_BY(mu_) = 0;
  bool updated_ FW_GUARDED_BY(mu_) = false;
  // Key → the texts rendered last, per family.
  std::map<std::string, std::array<std::string, kGpuHealthFamilies>> rendered_ FW_GUARDED_BY(mu_);
};

}  // namespace fleetwatch::server
