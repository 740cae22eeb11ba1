#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/entities.h"
#include "server/fleet_controller.h"
#include "server/job_summary.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

struct EnergyOptions {
  // gCO2e/kWh for the fleets that do not set their own carbon_intensity: an estimate the operator
  // supplies (FLEETWATCH_CARBON_INTENSITY), 0 when not given.
  double default_carbon_intensity = 0;
  // A running job's changed aggregates are stored at most this often (its end at once). What a
  // restart loses of that window comes back from the energy counters at the next reading; only
  // its utilization samples (and power × time estimates) are lost.
  TimeMicros store_interval = 10'000'000;
};

// Keeps every running job's aggregates (job_summary.h) up to date from each tick's metrics
// points and GPU readings, charges the GPU energy, utilization-weighted GPU time and carbon to
// the persisted (project, user) totals, and writes a job's summary at the first tick that sees it
// ended. A job's first reading of a GPU also charges what the GPU drew since the job started
// (AddReading), from the GPU's previous reading whoever held it. Each update is stored with the
// revision it was made from (store::UpdateJobAggregates), so an interval is charged once even with
// several server replicas; a restarted server reads the open aggregates back and goes on from the
// last stored readings (what its GPUs drew while no server read them is charged from the counter at
// the next reading). Renders nothing: the energy families are rendered from what it stores
// (StoredEnergyFamilies, energy_families.h). Not thread-safe: the control loop's thread.
class EnergyAccountant {
 public:
  // `store` and `clock` must outlive it.
  EnergyAccountant(store::Store& store, const Clock& clock, EnergyOptions options);

  // One tick. Errors: the store's (what was not stored is kept and stored by a later tick).
  Status Update(const TickReport& report);

 private:
  struct OpenJob {
    int64_t revision = 0;  // as stored; 0: not stored yet
    JobAggregates aggregates;
    AggregateDelta pending;               // added since the last stored revision
    std::optional<TimeMicros> stored_at;  // by this accountant
    uint64_t seen = 0;                    // the last Update whose runs listed it unfinished
  };
  Status LoadOpen();
  // The stored aggregates (or fresh ones) of running jobs the accountant does not hold yet;
  // `adopted_none`: there were none.
  Status Adopt(const TickReport& report, bool& adopted_none);
  void Add(OpenJob& open, const AggregateDelta& delta);
  // The report's stored points, to their open jobs.
  void AddPoints(const TickReport& report);
  JobAggregates Fresh(const model::Run& run, const model::Job& job,
                      const model::Instance* instance);
  double CarbonIntensityOf(const model::Instance* instance);
  // Stores the due aggregates, and the summaries of the held jobs that have ended: `ended` maps
  // job id → its stored record.
  Status Store(const std::map<std::string, model::Job>& ended);

  store::Store& store_;
  const Clock& clock_;
  const EnergyOptions options_;
  bool loaded_ = false;
  uint64_t updates_ = 0;  // Update calls, for OpenJob::seen
  // Ended jobs whose summary is stored (by this accountant or found so), still listed in an
  // unfinished run → the last Update that listed them; forgotten once no run lists them.
  std::unordered_map<std::string, uint64_t> closed_;
  std::unordered_map<std::string, OpenJob> open_;                 // job id → its aggregates
  std::map<std::string, std::optional<double>> fleet_intensity_;  // fleet id → its own, if any
  // Instance id → each GPU's last reading (by index), whoever held it: a job's first reading of
  // a GPU is charged from it (AddReading). Not persisted: after a restart a job's first reading
  // is charged power × time since its start until the GPUs have been read once.
  std::unordered_map<std::string, std::vector<std::optional<GpuBaseline>>> baselines_;
  static constexpr int kMaxGpuIndex = 1024;  // readings of higher indexes set no baseline
  // The last Update read runs of TickReport::state_generation `settled_generation_` and found
  // nothing to adopt, nothing ended or gone, and let go of no held job (Update's shortcut).
  bool settled_ = false;
  uint64_t settled_generation_ = 0;
  bool open_released_ = false;  // the last Store let go of a held job
};

}  // namespace fleetwatch::server
