#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/metrics.h"
#include "util/status.h"

namespace fleetwatch::store {

// Which runs ListRuns returns.
struct RunFilter {
  std::string project_id;                  // required
  std::vector<model::RunStatus> statuses;  // empty: any status
  bool include_deleted = false;
  int limit = 1000;  // newest first, at most this many
};

// The server's persistent state. Every method is one transaction: it applies completely or not
// at all. Implementations are thread-safe. Errors: NotFound for a missing row, AlreadyExists for
// a taken name, FailedPrecondition for a wrong state, Unavailable/Internal when the database
// fails. Returned entities are copies.
// Runs of one (project, user) in one status, for the exported run counters.
struct RunCount {
  std::string project_name;
  std::string user_name;
  model::RunStatus status = model::RunStatus::kSubmitted;
  int64_t all = 0;        // every run row, deleted ones included: never goes down
  int64_t undeleted = 0;  // runs not deleted
};

// A job that has run (started_at set) and whose running time is not yet all in the usage totals.
struct UnaccountedJob {
  std::string job_id;
  std::string project_name;
  std::string user_name;
  int gpu_count = 0;
  std::optional<double> price;  // USD/hour of its instance now; none when it has none or is gone
  TimeMicros started_at = 0;
  std::optional<TimeMicros> finished_at;
  std::optional<TimeMicros> accounted_until;  // none: nothing accounted yet
};

// Running time of one job added to its (project, user) totals.
struct UsageCharge {
  std::string job_id;
  std::optional<TimeMicros> accounted_until;  // as read; the charge applies only if unchanged
  TimeMicros new_accounted_until = 0;
  std::string project_name;
  std::string user_name;
  double cost_dollars = 0;
  double gpu_seconds = 0;
};

// Money and GPU time spent by the jobs of one (project, user), ever: persisted, never decreasing.
struct UsageTotal {
  std::string project_name;
  std::string user_name;
  double cost_dollars = 0;
  double gpu_seconds = 0;
};

// --- the GPU state ledger (server/gpu_ledger.h) ---

// The states a GPU spends a metrics interval in, in the order of GpuLedgerEntry::state_seconds.
inline constexpr int kGpuStateCount = 5;  // busy, idle_held, reserved_idle, free, unhealthy

// One GPU's persisted ledger: seconds per state ever, and up to when they are accounted.
struct GpuLedgerEntry {
  std::string instance_id;
  int gpu = 0;  // the GPU's index on its instance
  TimeMicros accounted_until = 0;
  std::array<double, kGpuStateCount> state_seconds{};
};

// The job that held a GPU during a charged interval, and what of it was idle.
struct GpuHolder {
  std::string project_name;
  std::string user_name;
  std::string run_id;
  std::string run_name;
  bool idle = false;        // the GPU was idle_held or reserved_idle
  double cost_dollars = 0;  // the job's cost of this GPU over the interval (its share of price)
};

// One interval of one GPU added to its ledger (and, when a job held it, to the job's run and
// (project, user) idle totals and to the run's hourly bucket of the interval's end).
struct GpuLedgerCharge {
  std::string instance_id;
  int gpu = 0;
  std::optional<TimeMicros> accounted_until;  // as read; the charge applies only if unchanged
  TimeMicros new_accounted_until = 0;
  int state = 0;  // index into GpuLedgerEntry::state_seconds
  double seconds = 0;
  std::optional<GpuHolder> holder;
};

// Idle GPU time and its cost of one (project, user), ever: persisted, never decreasing.
struct GpuIdleTotal {
  std::string project_name;
  std::string user_name;
  double idle_seconds = 0;
  double idle_cost_dollars = 0;
};

// GPU time one run's jobs held, and how much of it was idle, over some hours.
struct RunGpuTime {
  std::string run_id;
  std::string project_name;
  std::string user_name;
  std::string run_name;
  double held_seconds = 0;
  double idle_seconds = 0;
  double idle_cost_dollars = 0;
};

// A server process sharing the database with others (a replica).
struct ReplicaInfo {
  std::string id;  // unique per process start, e.g. hostname-pid-random
  TimeMicros started_at = 0;
  std::string version;  // the fleetwatch build
};

// An instance leased to one replica: only the holder polls and commands that host, and its
// results apply only while the token is still the instance's (a taken-over lease has a new one).
struct InstanceLease {
  std::string instance_id;
  std::string token;
  TimeMicros expires_at = 0;
};

// One replica's pass over the leases (TakeLeases).
struct LeaseRequest {
  std::string owner;  // the replica's id (RegisterReplica)
  TimeMicros now = 0;
  TimeMicros lease_micros = 10'000'000;  // how long a lease and a heartbeat count
  // A replica holds at most ceil(instances / live replicas) + slack instances.
  int slack = 1;
};

// What a replica holds after TakeLeases.
struct LeaseState {
  std::vector<InstanceLease> held;  // by instance id
  int live_replicas = 1;            // with a heartbeat younger than the lease time, itself included
  int instances = 0;                // every instance of every project
  int taken = 0;                    // leases new to the owner in this call (not renewals)
  int released = 0;                 // leases it gave up in this call, above its share
};

// A job's running aggregates (server/job_summary.h) as stored: JSON the server owns, guarded by
// a revision so that two writers never both apply an update made from the same state.
struct JobAggregate {
  std::string job_id;
  int64_t revision = 0;                     // raised by one by every update applied
  std::string state_json;                   // the aggregates
  std::optional<std::string> summary_json;  // the job's final summary, once it has ended
};

// One update of a job's aggregates, with what it adds to its (project, user) energy totals.
struct JobAggregateUpdate {
  std::string job_id;
  int64_t revision = 0;  // as read; 0: the job has none stored yet. Applies only if unchanged.
  std::string state_json;
  std::optional<std::string> summary_json;  // set: the job's final summary (stored once)
  std::string project_name;
  std::string user_name;
  double energy_joules = 0;
  double busy_gpu_seconds = 0;
  double carbon_grams = 0;
  // The job's GPU energy so far, all of it (the aggregates' in `state_json`): stored with the
  // state, for ListRunEnergy.
  double job_energy_joules = 0;
};

// The GPU energy of one run's jobs as stored with their aggregates (ListRunEnergy).
struct RunEnergyTotal {
  std::string run_id;
  double energy_joules = 0;
};

// An ended job's stored summary, with the run, project and user it belongs to (their names now).
struct StoredJobSummary {
  std::string job_id;
  std::string run_id;
  std::string run_name;
  std::string project_name;
  std::string user_name;
  TimeMicros finished_at = 0;
  std::string summary_json;  // as stored (server/job_summary.h)
};

// GPU energy, utilization-weighted GPU time and carbon of the jobs of one (project, user), ever:
// persisted, never decreasing.
struct EnergyTotal {
  std::string project_name;
  std::string user_name;
  double energy_joules = 0;
  double busy_gpu_seconds = 0;
  double carbon_grams = 0;
};

// A run transition that a server metric family counts (spec/METRICS.md "Server families"): a run
// that waits for capacity (dstack_pending_runs_total) or that got its first job placed
// (dstack_submit_to_provision_duration_seconds). Each (run, kind) counts once, whichever server
// records it and however often.
struct RunEvent {
  std::string run_id;
  std::string kind;          // kRunEventPending or kRunEventProvisioned
  std::string project_name;  // labels of the counted series, as of the event
  std::string run_type;      // model::ToString(run type)
  int bucket = 0;            // kRunEventProvisioned: the histogram bucket's index (the caller's)
  double seconds = 0;        // kRunEventProvisioned: from submission to the first job placed
};
inline constexpr char kRunEventPending[] = "pending";
inline constexpr char kRunEventProvisioned[] = "provisioned";

// The events of one (project, run type, kind, bucket), ever: persisted, never decreasing.
struct RunEventTotal {
  std::string project_name;
  std::string run_type;
  std::string kind;
  int bucket = 0;
  int64_t count = 0;
  double seconds = 0;  // their `seconds`, summed
};

// --- logs of ended jobs ---

// A stored log is split into rows of this many bytes (the last row may be shorter).
inline constexpr int64_t kJobLogChunkBytes = 256 << 10;

// Where PutJobLog takes a log's bytes from, one chunk at a time: the store asks for
// [offset, offset + length) pieces in order, each at most kJobLogChunkBytes, and may ask again
// from the start (a PostgreSQL write retried after a conflict). Used by one thread at a time.
class JobLogReader {
 public:
  virtual ~JobLogReader() = default;
  // The log's size in bytes; the same on every call.
  virtual int64_t size() const = 0;
  // Exactly `length` bytes from `offset`, or the reader's error.
  virtual Result<std::string> Read(int64_t offset, int64_t length) = 0;
};

// A piece of a stored log and the log's whole size.
struct JobLogPart {
  std::string data;
  int64_t size = 0;
};

// --- shared render state (docs/scale-out.md): what every replica's /metrics shows of hosts that
// other replicas poll ---

// A host's DCGM text as the replica that polls it stored it: one row per instance, replaced by
// each write. On PostgreSQL the table is UNLOGGED (a text is refreshed every metrics interval; a
// database crash empties it, which readers see as versions that moved).
struct HostDcgm {
  std::string instance_id;
  int64_t version = 0;  // set by the store: raised by one by every write of the row
  std::optional<TimeMicros> collected_at;
  std::string text;            // dcgm-exporter's text, as the agent sent it (untrusted)
  std::string error;           // why the host has no recent text; `text` is empty then
  TimeMicros received_at = 0;  // when the writing replica received it
};

// The PostgreSQL channels the store notifies in the transaction of a write, with the written rows'
// keys (change_keys.h: joined by ',', several notifications when they are many; never data):
// WriteHostDcgm sends "<instance id>@<new version>" of each text, AddJobMetricsPoints
// "<job id>@<newest timestamp_micro of the batch>" of each job, so that a reader skips what it
// has (its own writes included) without reading it. The SQLite store, one server's alone,
// notifies nothing.
inline constexpr char kHostDcgmChannel[] = "fleetwatch_host_dcgm";
inline constexpr char kJobPointsChannel[] = "fleetwatch_job_points";
// Instances: "<instance id>" of each instance that CreateFleet made, DeleteFleet removed, or
// UpdateInstance / UpdateInstanceIfLeased wrote. SetInstancesLastSeen and the lease operations
// notify nothing (only last_seen_at or the lease columns move; a replica that takes a lease reads
// that instance itself).
inline constexpr char kInstancesChannel[] = "fleetwatch_instances";
// Runs: "<run id>@<row version after the write>" of each run that CreateRun made (and each older
// run of the name it deleted), UpdateRun / UpdateRunIfCurrent wrote, DeleteRun /
// DeleteRunIfCurrent deleted, or DeleteFleet changed; a reader that holds the run at that row
// version or newer (its own write) skips it.
inline constexpr char kRunsChannel[] = "fleetwatch_runs";
// Totals that /metrics renders from the store, by what changed them (one key per kind, no
// version): ChargeGpuLedger sends kGpuLedgerKey, UpdateJobAggregates kEnergyKey, each in the
// transaction of a write that applied something.
inline constexpr char kTotalsChannel[] = "fleetwatch_totals";
inline constexpr char kGpuLedgerKey[] = "gpu_ledger";
inline constexpr char kEnergyKey[] = "energy";

class Store {
 public:
  virtual ~Store() = default;

  // --- bootstrap ---
  // When no user exists yet: creates `admin` (with `token_hash`), `main_project`, and makes the
  // admin an admin member of it; returns true. Otherwise changes nothing and returns false.
  virtual Result<bool> Bootstrap(const model::User& admin, std::string_view token_hash,
                                 const model::Project& main_project) = 0;

  // --- users ---
  virtual Status CreateUser(const model::User& user, std::string_view token_hash) = 0;
  virtual Result<model::User> GetUserByName(std::string_view name) = 0;
  virtual Result<model::User> GetUserByTokenHash(std::string_view token_hash) = 0;
  virtual Result<std::vector<model::User>> ListUsers() = 0;  // by name
  // Replaces the user's token hash: the old token stops working at once. NotFound when no user
  // has that id.
  virtual Status SetUserTokenHash(std::string_view user_id, std::string_view token_hash) = 0;
  // NotFound for an unknown user; FailedPrecondition when it would leave no global admin.
  virtual Status SetUserGlobalRole(std::string_view user_id, model::GlobalRole role) = 0;
  // Deletes the named users, all or none. A deleted user loses their token and memberships and is
  // gone from every method above; their runs, usage and the projects they own stay (counters are
  // labeled by user name, so the name stays taken). NotFound naming the first unknown user;
  // FailedPrecondition when no global admin would remain.
  virtual Status DeleteUsers(const std::vector<std::string>& names) = 0;

  // --- projects and members ---
  // Creates the project and makes its owner an admin member.
  virtual Status CreateProject(const model::Project& project) = 0;
  virtual Result<model::Project> GetProject(std::string_view name) = 0;
  virtual Result<std::vector<model::Project>> ListProjects() = 0;  // by name
  virtual Result<std::vector<model::Project>> ListProjectsOfUser(std::string_view user_id) = 0;
  // Adds the member or changes their role.
  virtual Status SetMember(std::string_view project_id, std::string_view user_id,
                           model::ProjectRole role) = 0;
  virtual Status RemoveMember(std::string_view project_id, std::string_view user_id) = 0;
  // nullopt when the user is not a member.
  virtual Result<std::optional<model::ProjectRole>> GetMemberRole(std::string_view project_id,
                                                                  std::string_view user_id) = 0;
  virtual Result<std::vector<model::Member>> ListMembers(std::string_view project_id) = 0;

  // --- fleets and instances ---
  // Creates the fleet and its instances. AlreadyExists when the project has a fleet of that name.
  virtual Status CreateFleet(const model::Fleet& fleet,
                             const std::vector<model::Instance>& instances) = 0;
  virtual Result<model::Fleet> GetFleet(std::string_view project_id, std::string_view name) = 0;
  virtual Result<std::vector<model::Fleet>> ListFleets(std::string_view project_id) = 0;  // by name
  // Removes the fleet and its instances. FailedPrecondition while an unfinished job is placed on
  // one of its instances.
  virtual Status DeleteFleet(std::string_view project_id, std::string_view name) = 0;
  // Instances of one project (or of all projects when project_id is empty), ordered by project
  // name, then fleet name, then instance_num.
  virtual Result<std::vector<model::Instance>> ListInstances(std::string_view project_id) = 0;
  // Writes the mutable fields of an instance: status, resources, price, the agent's address and
  // token, reachability, last_seen_at and agent_id.
  virtual Status UpdateInstance(const model::Instance& instance) = 0;
  // Writes only last_seen_at of each (instance id, time), all in one transaction; ids that name
  // no instance (a fleet deleted meanwhile) are skipped. For the many instances of a tick whose
  // only change is that their agent answered.
  virtual Status SetInstancesLastSeen(
      const std::vector<std::pair<std::string, TimeMicros>>& last_seen) = 0;
  // The instances with these ids (ListInstances' rows), in ListInstances' order; ids that name
  // no instance are left out. One query however many ids: a replica reads the instances that
  // kInstancesChannel named.
  virtual Result<std::vector<model::Instance>> ListInstancesByIds(
      const std::vector<std::string>& instance_ids) = 0;
  // As RunsVersion, for instances: raised by one inside each call of CreateFleet, DeleteFleet,
  // UpdateInstance and SetInstancesLastSeen (with ids), whether or not it then commits. Cheap;
  // never fails.
  virtual int64_t InstancesVersion() = 0;

  // --- runs and jobs ---
  // Creates the run with its jobs, and deletes (as DeleteRun does, logs included) the project's
  // finished runs of the same name in the same transaction. AlreadyExists when an unfinished,
  // undeleted run of the project has the same name (then nothing changes).
  virtual Status CreateRun(const model::Run& run) = 0;
  // The newest undeleted run of that name in the project, with its jobs.
  virtual Result<model::Run> GetRun(std::string_view project_id, std::string_view run_name) = 0;
  virtual Result<model::Run> GetRunById(std::string_view run_id) = 0;
  virtual Result<std::vector<model::Run>> ListRuns(const RunFilter& filter) = 0;
  // Runs of any project whose status is one of `statuses`, oldest first, with jobs.
  virtual Result<std::vector<model::Run>> ListRunsWithStatus(
      const std::vector<model::RunStatus>& statuses) = 0;
  // The runs with these ids, with their jobs, whatever their status (deleted ones included),
  // oldest first (submitted_at, then id); ids that name no run are left out. Two queries however
  // many ids: a replica reads the runs that kRunsChannel named.
  virtual Result<std::vector<model::Run>> ListRunsByIds(
      const std::vector<std::string>& run_ids) = 0;
  // Writes the mutable fields of the run (status, termination_reason, finished_at, cost) and of
  // each of its jobs (status, termination_reason, exit_code, instance, gpu_indices, started_at,
  // finished_at, status_detail).
  virtual Status UpdateRun(const model::Run& run) = 0;
  // Marks a run deleted; it disappears from GetRun and ListRuns, and its jobs' stored logs are
  // deleted. FailedPrecondition unless the run is finished.
  virtual Status DeleteRun(std::string_view run_id) = 0;
  // DeleteRun, applied only while the stored run's row_version is still `run.row_version` (the
  // API's delete of the run it read): FailedPrecondition (nothing written) when it changed or the
  // run is unfinished, NotFound when the run is gone.
  virtual Status DeleteRunIfCurrent(const model::Run& run) = 0;
  // Run counts per (project, user, status), ordered by project name, user name, status text.
  // Deleted runs count in `all`: runs are soft-deleted, so these counts are persisted and
  // monotonic per status except for status changes of unfinished runs.
  virtual Result<std::vector<RunCount>> CountRuns() = 0;
  // The jobs with these ids, of any run (finished and deleted ones included), in no particular
  // order; ids that name no job are left out. One query however many ids: the controller asks
  // once per tick about every job id its agents reported that no unfinished run has.
  virtual Result<std::vector<model::Job>> ListJobsByIds(
      const std::vector<std::string>& job_ids) = 0;
  // A number that every write of runs or jobs through this store object raises, inside its
  // transaction (CreateRun, UpdateRun, DeleteRun, and DeleteFleet, which takes jobs off the
  // fleet's instances): by one per call, whether or not it then commits. So when the number read
  // before ListRunsWithStatus is read again unchanged, the list would be the same; and an
  // UpdateRun that succeeds raises it by exactly one, which lets a caller that serializes its
  // writes tell its own from anyone else's. Usage accounting (ChargeUsage) does not count: it
  // changes nothing that model::Run or model::Job carries. It counts this store object's writes:
  // the SQLite database is this process's alone (its data directory is locked); on a PostgreSQL
  // database shared by replicas, other replicas' writes do not move it, so a caller reads again
  // while other replicas are live (LeaseState::live_replicas). Cheap; never fails.
  virtual int64_t RunsVersion() = 0;

  // --- run events (the server's counters of run transitions) ---
  // Records `events` in one transaction: each (run_id, kind) not recorded before adds one to its
  // (project, run type, kind, bucket) total and its seconds to that total's sum; one recorded
  // before (by this or another server) changes nothing. Returns how many counted.
  // InvalidArgument for an event with an empty run id, project or run type, an unknown kind, a
  // negative bucket or negative or non-finite seconds; NotFound when a run does not exist
  // (nothing is recorded then).
  virtual Result<int> RecordRunEvents(const std::vector<RunEvent>& events) = 0;
  // Every total, ordered by project name, run type, kind and bucket.
  virtual Result<std::vector<RunEventTotal>> ListRunEventTotals() = 0;

  // --- job metrics ---
  // Stores a batch of points in one transaction (on PostgreSQL notifying kJobPointsChannel with
  // their job ids in it). NotFound when a job does not exist (nothing is stored then).
  virtual Status AddJobMetricsPoints(const std::vector<model::JobMetricsPoint>& points) = 0;
  // The newest `limit` points of a job with after <= timestamp < before, newest first.
  virtual Result<std::vector<model::JobMetricsPoint>> ListJobMetricsPoints(
      std::string_view job_id, std::optional<TimeMicros> after, std::optional<TimeMicros> before,
      int limit) = 0;
  // The newest point of every unfinished job that has points, in no particular order. One query
  // however many jobs: the exposition reads them all once per tick.
  virtual Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfUnfinishedJobs() = 0;
  // The newest point's time of every unfinished job that has points.
  virtual Result<std::vector<std::pair<std::string, TimeMicros>>>
  LatestMetricsOfUnfinishedJobs() = 0;
  // The newest point of each of these jobs that has points, in no particular order; ids that name
  // no job, or a job without points, are left out. One query however many ids.
  virtual Result<std::vector<model::JobMetricsPoint>> ListNewestMetricsOfJobs(
      const std::vector<std::string>& job_ids) = 0;
  // Deletes points older than `running_cutoff` of unfinished jobs and older than
  // `finished_cutoff` of finished ones. Returns how many were deleted.
  virtual Result<int64_t> DeleteJobMetricsPoints(TimeMicros running_cutoff,
                                                 TimeMicros finished_cutoff) = 0;

  // --- usage (cost and GPU time) ---
  // Jobs that have started and are unfinished, or finished after their accounted time; deleted
  // runs' jobs included (what they spent was spent).
  virtual Result<std::vector<UnaccountedJob>> ListUnaccountedJobs() = 0;
  // Applies the charges in one transaction; a charge whose job's accounted time is no longer
  // `accounted_until` (another replica charged it) is skipped. Returns how many applied.
  virtual Result<int> ChargeUsage(const std::vector<UsageCharge>& charges) = 0;
  // Every (project, user) ever charged, ordered by project name and user name.
  virtual Result<std::vector<UsageTotal>> ListUsageTotals() = 0;

  // --- GPU state ledger ---
  // Every GPU ever charged, ordered by instance id and GPU index.
  virtual Result<std::vector<GpuLedgerEntry>> ListGpuLedger() = 0;
  // Applies the charges in one transaction; a charge whose GPU's accounted time is no longer
  // `accounted_until` (another replica charged it; none: the GPU already has a ledger) is
  // skipped. Returns how many applied. InvalidArgument (nothing applied) for a state outside
  // 0..kGpuStateCount-1 or negative seconds or cost. On PostgreSQL, notifies kTotalsChannel with
  // kGpuLedgerKey when one applied.
  virtual Result<int> ChargeGpuLedger(const std::vector<GpuLedgerCharge>& charges) = 0;
  // Every (project, user) whose jobs ever held a GPU, ordered by project name and user name.
  virtual Result<std::vector<GpuIdleTotal>> ListGpuIdleTotals() = 0;
  // The GPU time of these runs, ever; runs without any are left out. Ordered by run id.
  virtual Result<std::vector<RunGpuTime>> ListRunGpuTime(
      const std::vector<std::string>& run_ids) = 0;
  // The GPU time of every run in the hourly buckets that end after `since` (the hour that holds
  // `since` counts whole), ordered by project name, user name, run name, run id.
  virtual Result<std::vector<RunGpuTime>> ListGpuTimeSince(TimeMicros since) = 0;

  // --- replicas and instance leases ---
  // Several servers (replicas) may share one database and split the instances without a leader:
  // each registers a heartbeat row and, each tick, TakeLeases. Times are the callers' clocks, so
  // replicas' clocks must agree to well within the lease time (NTP).
  //
  // Inserts the replica's row (or replaces one of the same id) with heartbeat_at = started_at.
  virtual Status RegisterReplica(const ReplicaInfo& replica) = 0;
  // One short transaction: writes the owner's heartbeat (re-inserting its row when it is gone);
  // renews the owner's unexpired leases that are past half their time (a renewal keeps the
  // token); gives up, when it holds more than its share (ceil(instances / live replicas) +
  // slack), its surplus (highest instance ids first); then takes, up to its share, instances whose
  // lease is absent or expired, each with a new random token (PostgreSQL: FOR NO KEY UPDATE SKIP
  // LOCKED, so replicas taking at once never wait for, or take, the same rows). Returns what the
  // owner holds afterwards. InvalidArgument for an empty owner or a lease time <= 0.
  virtual Result<LeaseState> TakeLeases(const LeaseRequest& request) = 0;
  // Releases every lease the replica holds and deletes its row (a graceful stop). Unknown ids
  // change nothing.
  virtual Status RemoveReplica(std::string_view replica_id) = 0;
  // Replicas whose heartbeat is at most `lease_micros` old at `now` (0 when none).
  virtual Result<int> CountLiveReplicas(TimeMicros now, TimeMicros lease_micros) = 0;
  // Every lease of every instance (expired ones included), by instance id: who holds what.
  // For tests and diagnostics.
  virtual Result<std::vector<std::pair<std::string, InstanceLease>>> ListLeases() = 0;
  // A mark of every committed write of runs and jobs by any replica: (number of runs, sum of
  // their row versions). Every such write adds a run or raises a row version, so the mark read
  // again is unchanged only when no run or job changed in between. One query over the runs, for
  // a replica that keeps runs between ticks while other replicas write.
  virtual Result<std::pair<int64_t, int64_t>> RunsChangeMark() = 0;
  // UpdateInstance, applied only while `token` is the instance's lease token: FailedPrecondition
  // (nothing written) when the lease was lost, NotFound when the instance is gone.
  virtual Status UpdateInstanceIfLeased(const model::Instance& instance,
                                        std::string_view token) = 0;
  // UpdateRun, applied only while the stored run's row_version is still `run.row_version` and each
  // (instance id, token) of `leases` is still that instance's lease token: FailedPrecondition
  // (nothing written) otherwise, NotFound when the run is gone. UpdateRun and this raise the
  // row version by one; so two replicas that decided on the same version never both apply.
  virtual Status UpdateRunIfCurrent(
      const model::Run& run, const std::vector<std::pair<std::string, std::string>>& leases) = 0;

  // --- shared render state ---
  // Stores each host's DCGM text (replacing the instance's row, raising its version) in one
  // transaction, and notifies kHostDcgmChannel with their instance ids in it. Texts of instances
  // that do not exist (a fleet deleted meanwhile) are skipped; an instance's row goes with it.
  // Returns (instance id, new version) of each text stored, in the order given. InvalidArgument
  // (nothing stored) for an empty instance id or an id given twice.
  virtual Result<std::vector<std::pair<std::string, int64_t>>> WriteHostDcgm(
      const std::vector<HostDcgm>& texts) = 0;
  // (instance id, version) of every stored DCGM text, by instance id: what a reader compares with
  // the versions it has, to read only the texts that moved.
  virtual Result<std::vector<std::pair<std::string, int64_t>>> ListHostDcgmVersions() = 0;
  // The stored DCGM texts of these instances, by instance id; ids without one are left out.
  virtual Result<std::vector<HostDcgm>> ListHostDcgm(
      const std::vector<std::string>& instance_ids) = 0;

  // --- energy and job summaries ---
  // Applies the updates in one transaction: each one whose job's stored revision is still
  // `revision` (none stored for 0) stores its state (and summary, when set: a summary, once
  // stored, is never replaced) and adds its figures to the (project, user) totals; the others
  // (another writer got there first) change nothing. Aggregates and summaries are never deleted
  // with metrics points. Returns, per update, whether it applied. NotFound when an applied
  // update names no job (nothing changes then). On PostgreSQL, notifies kTotalsChannel with
  // kEnergyKey when one applied.
  virtual Result<std::vector<bool>> UpdateJobAggregates(
      const std::vector<JobAggregateUpdate>& updates) = 0;
  // The aggregates of these jobs (those that have some), in no particular order.
  virtual Result<std::vector<JobAggregate>> ListJobAggregates(
      const std::vector<std::string>& job_ids) = 0;
  // The aggregates of every job without a summary yet, in no particular order.
  virtual Result<std::vector<JobAggregate>> ListOpenJobAggregates() = 0;
  // Every (project, user) ever charged energy, ordered by project name and user name.
  virtual Result<std::vector<EnergyTotal>> ListEnergyTotals() = 0;
  // The GPU energy of these runs' jobs (JobAggregateUpdate::job_energy_joules as last stored),
  // summed per run, ordered by run id; runs without stored aggregates are left out. One query
  // however many ids.
  virtual Result<std::vector<RunEnergyTotal>> ListRunEnergy(
      const std::vector<std::string>& run_ids) = 0;
  // The stored summaries of the jobs that finished at or after `since`, of the project named
  // `project_name` (nullopt: of every project), deleted runs' jobs included; newest finish first
  // (then by job id).
  virtual Result<std::vector<StoredJobSummary>> ListJobSummariesSince(
      TimeMicros since, const std::optional<std::string>& project_name) = 0;

  // --- logs of ended jobs ---
  // A finished job's log, kept in the database so that every replica serves it: rows of
  // kJobLogChunkBytes keyed by (job id, sequence number). The caller bounds its size (the server
  // keeps at most FLEETWATCH_MAX_LOG_BYTES of each log, see server/log_copies.h).
  //
  // Stores the log `reader` gives as the job's, a transaction per chunk (so that a long log never
  // holds the store for long), reading and writing one chunk at a time (never the whole log in
  // memory). Readers see the log only once its last chunk is in; one left unfinished (an error,
  // a process that died) stays unseen and is written again by the next PutJobLog. `replace`: an
  // earlier stored log of the job is replaced; otherwise it is kept and nothing is written.
  // NotFound when no job has that id or its run is deleted; FailedPrecondition when the run was
  // deleted or another PutJobLog replaced the log while this one wrote; InvalidArgument for a
  // negative size; the reader's errors.
  virtual Status PutJobLog(std::string_view job_id, JobLogReader& reader, bool replace) = 0;
  // At most `limit` bytes of the job's stored log from `offset` (none past its end), with the
  // log's size; nullopt when the job has no stored log. One snapshot: a log replaced meanwhile is
  // read whole from one version. InvalidArgument for a negative offset or limit.
  virtual Result<std::optional<JobLogPart>> ReadJobLog(std::string_view job_id, int64_t offset,
                                                       int64_t limit) = 0;
};

}  // namespace fleetwatch::store
