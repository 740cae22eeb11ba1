#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "expose/snapshot.h"
#include "expose/text_format.h"
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
// (instances, unfinished runs, points stored, DCGM texts, run events) and changes only what the
// report changed. Each exported job has a fragment of its own per job family (keyed by JobKey),
// rendered again only when its run, job, instance or newest point changed or its point turned
// stale; the durations (instance and job) are time-valued samples (expose::TimedSample) anchored
// at the stored created_at and submitted_at, which the scrape evaluates, so every replica renders
// the same values at the same moment whenever it last updated. The newest point of every
// unfinished job is kept in memory: read from the store on the first update (and after an error),
// then taken from TickReport::stored_points. The report's run events are recorded in the store
// (each run's once, whichever replica records it); run counts, usage totals and run-event totals
// (small) are read from the store on every update. Each host's new DCGM text is relabeled for the
// jobs on that host's GPUs (once per text), and the DCGM samples of jobs that ended are dropped.
// What this process alone saw (poll errors per instance, DCGM texts that did not parse, families
// dropped from them) goes to the replica snapshot (GET /metrics/replica), never to the fleet's.
// Scrapes never touch the store.
// Thread-safe (Update calls are serialized); meant to run after each FleetController tick, with
// every tick's report (a point stored by a tick whose report is not handed over shows once it
// is superseded, or after an error makes the next update read the store).
class ExpositionUpdater {
 public:
  // Registers ServerFamilies() in `snapshot` and ReplicaFamilies() in `replica` (null: this
  // process' own counts are not exposed), which must not hold families of those names yet (a
  // clash is a programming error and aborts). `store`, `clock` and the snapshots must outlive it.
  ExpositionUpdater(store::Store& store, const Clock& clock, expose::ExpositionSnapshot& snapshot,
                    expose::ExpositionSnapshot* replica, ExpositionOptions options);

  // Errors: the store's; the snapshot then keeps its previous samples, the DCGM texts and
  // points of `report` are dropped (hosts send new ones every metrics interval; the next
  // update reads the newest points from the store); its run events are recorded by the next
  // update (unless the store refused them as malformed or of an unknown run: then they are
  // dropped and logged), its poll errors still count.
  Status Update(const TickReport& report) FW_EXCLUDES(mu_);

 private:
  struct JobEntry;
  // An instance of the last report: what its families were rendered from.
  struct InstanceEntry {
    model::Instance fields;  // the fields the families read (ExportedFields)
    std::string pairs;       // InstancePairs
    std::string poll_pairs;  // PollErrorPairs
    // Changes whenever a field the job families read changes (unique across instances).
    uint64_t generation = 0;
    uint64_t seen = 0;                         // the last update whose report had it
    const model::Instance* current = nullptr;  // in the report being applied
    // The exported jobs placed on it, whose DCGM samples its text gives (current unless
    // `dcgm_placement_dirty_`).
    std::vector<JobEntry*> dcgm_jobs;
  };
  // An unfinished job of the last report, and what its fragments were rendered from.
  struct JobEntry {
    // Run and job fields the job's samples read (the run and job ids never change).
    std::string project_name, user_name, run_name, job_name;
    model::RunType run_type = model::RunType::kTask;
    int job_num = 0, replica_num = 0;
    bool exported = false;  // JobExported(status)
    std::optional<std::string> instance_id;
    std::vector<int> gpu_indices;
    TimeMicros submitted_at = 0;
    uint64_t instance_generation = 0;             // of its instance when rendered; 0: none
    std::optional<model::JobMetricsPoint> point;  // its newest stored point

    std::string key;    // JobKey, when rendered; also the key of its DCGM samples
    std::string pairs;  // JobPairs, when rendered
    // What its DCGM samples are relabeled with, made with `pairs`: JobLabelValuesOf, and the
    // UUIDs of its GPUs on its instance.
    expose::JobLabelValues label_values;
    std::vector<std::string> gpu_uuids;
    bool dcgm_held = false;  // the snapshot may hold DCGM samples of it under `key`
    // RunResources(run), parsed once (a run's configuration never changes).
    std::shared_ptr<const model::ResourcesRequest> resources;
    // By job family: the fragment the snapshot holds under `key` (shared with it), or null.
    std::array<std::shared_ptr<const expose::Fragment>, kJobSampleFamilies> held;
    bool rendered = false;  // its fragments are in the snapshot under `key`
    bool fresh = false;     // rendered with its point's samples (not stale)
    bool inputs_changed = true;
    bool point_changed = false;
    uint64_t seen = 0;
    uint64_t visited = 0;             // the last update whose RenderJobs saw it
    const model::Run* run = nullptr;  // in the report being applied
    const model::Job* job = nullptr;
  };

  // Records the run events not recorded yet (`unrecorded_events_`).
  Status RecordRunEvents() FW_REQUIRES(mu_);
  // Reads what the update needs from the store: the newest points when `points_loaded_` is
  // false, run counts, usage totals and run-event totals.
  Status ReadStore(std::optional<std::vector<model::JobMetricsPoint>>& points,
                   ExpositionState& counters) FW_REQUIRES(mu_);
  // The replica families (a no-op without a replica snapshot).
  void UpdateReplica(bool instances_changed) FW_REQUIRES(mu_);
  // Brings `instances_` to the report's; true when an instance family's samples may change.
  bool SyncInstances(const std::vector<model::Instance>& instances) FW_REQUIRES(mu_);
  // Brings `jobs_` to the report's unfinished jobs (their points not yet), adding to `changes`
  // the removal of the fragments of jobs that ended (and removing their DCGM samples). True when
  // the exported set changed.
  bool SyncJobs(const std::vector<model::Run>& runs,
                std::vector<expose::SharedFragmentChange>& changes) FW_REQUIRES(mu_);
  // Renders the jobs whose samples changed into `changes` (in key order as far as the last
  // order holds, so that the snapshot finds each key where the previous one was); true when the
  // exported set changed. Removes the DCGM samples of jobs no longer exported.
  bool RenderJobs(TimeMicros now, std::vector<expose::SharedFragmentChange>& changes)
      FW_REQUIRES(mu_);
  void RenderJob(JobEntry& e, TimeMicros now, std::array<std::string, kJobSampleFamilies>& texts,
                 std::vector<expose::SharedFragmentChange>& changes, bool& order_changed)
      FW_REQUIRES(mu_);
  void RemoveJobFragments(JobEntry& job, std::vector<expose::SharedFragmentChange>& changes)
      FW_REQUIRES(mu_);
  // Removes the job's DCGM samples from the snapshot, if it may hold any.
  void RemoveJobDcgm(JobEntry& job) FW_REQUIRES(mu_);
  // Adds a change of `family`'s single fragment to `text` when it differs from the snapshot's.
  void SetWhole(expose::FamilyId family, expose::Fragment fragment,
                std::vector<expose::SharedFragmentChange>& changes) FW_REQUIRES(mu_);
  const model::ResourcesRequest& ResourcesOf(JobEntry& job) FW_REQUIRES(mu_);
  // Relabels each host's new DCGM text for the jobs on the host (InstanceEntry::dcgm_jobs, made
  // again first when `dcgm_placement_dirty_`) and sets their samples, a host's at once.
  void IngestDcgm(const std::vector<DcgmReport>& reports) FW_REQUIRES(mu_);

  store::Store& store_;
  const Clock& clock_;
  expose::ExpositionSnapshot& snapshot_;
  expose::ExpositionSnapshot* const replica_;  // may be null
  ExpositionOptions options_;
  Mutex mu_;
  std::map<std::string, expose::FamilyId> ids_ FW_GUARDED_BY(mu_);  // family name → id
  // Constant after construction: ids of InstanceSampleFamilyNames() and JobSampleFamilyNames().
  std::array<expose::FamilyId, kInstanceSampleFamilies> instance_ids_{};
  std::array<expose::FamilyId, kJobSampleFamilies> job_ids_{};
  // Replica family name → id in `replica_`; constant after construction.
  std::map<std::string, expose::FamilyId> replica_ids_;
  // Run events of reports whose recording has not succeeded yet.
  std::vector<store::RunEvent> unrecorded_events_ FW_GUARDED_BY(mu_);
  // This process' own counts (the replica families).
  ReplicaState own_ FW_GUARDED_BY(mu_);
  bool poll_errors_changed_ FW_GUARDED_BY(mu_) = false;  // since they were last rendered
  // The durations' samples need rendering again (an exported instance or job, its labels or
  // anchor changed).
  bool durations_dirty_ FW_GUARDED_BY(mu_) = true;
  // Names of the families of both snapshots (DCGM texts cannot use them); constant after
  // construction.
  std::vector<std::string_view> server_family_names_;
  // InstanceEntry::dcgm_jobs must be made again: an instance or job came or went, or a job's
  // instance or exported state changed.
  bool dcgm_placement_dirty_ FW_GUARDED_BY(mu_) = true;
  // Relabels the hosts' DCGM texts (IngestDcgm); holds the family headers every job's samples
  // share and the buffers it relabels in.
  expose::DcgmRelabeler dcgm_relabeler_ FW_GUARDED_BY(mu_);

  uint64_t updates_ FW_GUARDED_BY(mu_) = 0;
  uint64_t generations_ FW_GUARDED_BY(mu_) = 0;
  bool points_loaded_ FW_GUARDED_BY(mu_) = false;
  // TickReport::state_generation of the last update that synced and applied its report whole.
  uint64_t synced_generation_ FW_GUARDED_BY(mu_) = 0;
  // By id. Node-based: the order vectors point into them.
  std::unordered_map<std::string, InstanceEntry> instances_ FW_GUARDED_BY(mu_);
  std::unordered_map<std::string, JobEntry> jobs_ FW_GUARDED_BY(mu_);
  // The entries whose samples the snapshot shows, in render order (InstanceBefore; key order).
  std::vector<const InstanceEntry*> instance_order_ FW_GUARDED_BY(mu_);
  // Never holds an entry that is gone (SyncJobs takes them out before erasing them).
  std::vector<JobEntry*> job_order_ FW_GUARDED_BY(mu_);
  // Run id → RunResources(run), while a job of the run holds it (the jobs of a multi-node run
  // share one parse).
  std::unordered_map<std::string, std::weak_ptr<const model::ResourcesRequest>> run_resources_
      FW_GUARDED_BY(mu_);
};

}  // namespace fleetwatch::server
