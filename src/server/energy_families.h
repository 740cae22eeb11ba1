#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "expose/family.h"
#include "expose/snapshot.h"
#include "server/fleet_controller.h"
#include "server/server_families.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

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

// A number that changes whenever the set of `runs`' ids does (order aside): what a family of the
// unfinished runs is rendered again on. Pure.
uint64_t RunSetSignature(const std::vector<model::Run>& runs);

// The energy families rendered from the store alone, so that every server replica shows the same
// samples whoever accounted the energy (docs/scale-out.md): the project totals
// (Store::ListEnergyTotals) and each unfinished run's energy (Store::ListRunEnergy: its jobs'
// energy as last stored with their aggregates, which every metrics interval brings up to date).
// Refresh reads the store only when something may have moved: when told so (a key of another
// writer, or of this process's own write), on the first call, after a failed read, when the
// unfinished runs changed, and every `interval` anyway (a server without change notifications).
// Not thread-safe: the control loop's thread.
class StoredEnergyFamilies {
 public:
  // Registers EnergyFamilies() in `snapshot` (a clash is a programming error and aborts).
  // `store` and `snapshot` must outlive it.
  StoredEnergyFamilies(store::Store& store, expose::ExpositionSnapshot& snapshot,
                       TimeMicros interval);

  // Errors: the store's (the snapshot keeps what it had; the next call reads again).
  Status Refresh(const TickReport& report, bool moved);

 private:
  store::Store& store_;
  expose::ExpositionSnapshot& snapshot_;
  const TimeMicros interval_;
  std::vector<expose::FamilyId> families_;  // EnergyFamilies() order
  bool dirty_ = true;
  uint64_t runs_signature_ = 0;
  TimeMicros rendered_at_ = 0;  // the report time of the last render
};

}  // namespace fleetwatch::server
