#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "expose/snapshot.h"
#include "model/entities.h"
#include "model/metrics.h"
#include "server/fleet_controller.h"
#include "server/server_families.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

// Keeps the server's families in an ExpositionSnapshot current: Update takes a tick's report
// (instances, unfinished runs, DCGM texts, run events), reads from the store what the report
// does not hold (the newest point of every unfinished job, run counts, usage totals: three
// queries however many jobs) and replaces the families whose samples changed, all at once; it
// relabels each host's new DCGM text for the jobs on that host's GPUs (once per text) and drops
// the DCGM samples of jobs that ended. Scrapes never touch the store.
// Thread-safe (Update calls are serialized); meant to run after each FleetController tick.
class ExpositionUpdater {
 public:
  // Registers ServerFamilies() in `snapshot`, which must not hold families of those names yet
  // (a clash is a programming error and aborts). `store`, `clock` and `snapshot` must outlive it.
  ExpositionUpdater(store::Store& store, const Clock& clock, expose::ExpositionSnapshot& snapshot,
                    ExpositionOptions options);

  // Errors: the store's; the snapshot then keeps its previous samples and the DCGM texts of
  // `report` are dropped (hosts send new ones every metrics interval); events still count.
  Status Update(const TickReport& report) FW_EXCLUDES(mu_);

 private:
  Status Load(const TickReport& report, ExpositionState& state) FW_REQUIRES(mu_);
  void IngestDcgm(const std::vector<DcgmReport>& reports, const ExpositionState& state)
      FW_REQUIRES(mu_);

  store::Store& store_;
  const Clock& clock_;
  expose::ExpositionSnapshot& snapshot_;
  ExpositionOptions options_;
  Mutex mu_;
  std::map<std::string, expose::FamilyId> ids_ FW_GUARDED_BY(mu_);  // family name → id
  std::map<std::pair<std::string, std::string>, DurationHistogram> submit_to_provision_
      FW_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> pending_runs_ FW_GUARDED_BY(mu_);
  uint64_t dcgm_text_errors_ FW_GUARDED_BY(mu_) = 0;
  // Instance id → unusable poll replies since the server started.
  std::map<std::string, uint64_t> poll_errors_ FW_GUARDED_BY(mu_);
  uint64_t dcgm_families_dropped_ FW_GUARDED_BY(mu_) = 0;
  std::vector<std::string_view> server_family_names_;                // constant after construction
  std::map<std::string, std::string> dcgm_keys_ FW_GUARDED_BY(mu_);  // snapshot DCGM key → job id
  // The DCGM family headers every job's samples share (IngestDcgm).
  expose::DcgmHeaderCache dcgm_headers_ FW_GUARDED_BY(mu_);
  // Of the unfinished runs.
  std::map<std::string, model::ResourcesRequest> run_resources_ FW_GUARDED_BY(mu_);
};

}  // namespace fleetwatch::server
