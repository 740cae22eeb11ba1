#pragma once

#include <string>
#include <vector>

#include "expose/family.h"
#include "expose/snapshot.h"
#include "server/server_families.h"
#include "store/store.h"

namespace fleetwatch::server {

// The energy families (spec/METRICS.md "Energy and carbon"): their names, types and help, and
// their samples. Pure functions; thread-safe.

// In registration (= render) order: fleetwatch_run_gpu_energy_joules (run section), then
// fleetwatch_project_gpu_energy_joules_total, fleetwatch_project_gpu_busy_seconds_total and
// fleetwatch_project_carbon_grams_total (server section).
const std::vector<ServerFamily>& EnergyFamilies();

// The GPU energy of one active run so far.
struct RunEnergy {
  std::string project_name;
  std::string user_name;
  std::string run_name;
  std::string run_id;
  std::string run_type;
  double joules = 0;
};

// Sample lines of fleetwatch_run_gpu_energy_joules, in `runs`' order (the caller orders them by
// project name, run name).
std::string RenderRunEnergy(const std::vector<RunEnergy>& runs);
// Sample lines of the three project families, in EnergyFamilies() order, from the persisted
// totals (ordered by project name, user name).
std::vector<std::string> RenderProjectEnergy(const std::vector<store::EnergyTotal>& totals);

}  // namespace fleetwatch::server
