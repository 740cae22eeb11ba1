#pragma once

#include <string>
#include <vector>

#include "expose/family.h"
#include "expose/snapshot.h"
#include "model/entities.h"
#include "server/server_families.h"
#include "store/store.h"

namespace fleetwatch::server {

// The GPU state ledger's metric families (docs/metrics.md "GPU states and idle GPU time"):
//   fleetwatch_gpu_state_seconds_total{dstack_project_name, dstack_fleet_name,
//     dstack_instance_name, dstack_gpu, gpu, state} (instance section): every GPU of every
//     instance that is not terminated, all five states;
//   fleetwatch_run_gpu_idle_ratio{dstack_project_name, dstack_user_name, dstack_run_name,
//     dstack_run_id, dstack_run_type} (run section): unfinished runs whose jobs held GPUs;
//   fleetwatch_project_gpu_idle_seconds_total and fleetwatch_project_idle_cost_dollars_total
//     {dstack_project_name, dstack_user_name} (server section).
const std::vector<ServerFamily>& GpuLedgerFamilies();

// The persisted totals the families are rendered from.
struct GpuLedgerTotals {
  std::vector<store::GpuLedgerEntry> ledger;
  std::vector<store::GpuIdleTotal> idle;
  std::vector<store::RunGpuTime> runs;  // of unfinished runs
};

// Sample lines of each family, in GpuLedgerFamilies() order. GPU samples only for GPUs of
// `instances` whose status is not terminated, ordered by project name, instance name, GPU index
// and state; run samples for `unfinished_runs` with held GPU time, ordered by project name, user
// name, run name. Pure function; thread-safe.
std::vector<std::string> RenderGpuLedgerFamilies(const GpuLedgerTotals& totals,
                                                 const std::vector<model::Instance>& instances,
                                                 const std::vector<model::Run>& unfinished_runs);

}  // namespace fleetwatch::server
