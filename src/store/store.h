#pragma once

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
  // As RunsVersion, for instances: raised by one inside each call of CreateFleet, DeleteFleet,
  // UpdateInstance and SetInstancesLastSeen (with ids), whether or not it then commits. Cheap;
  // never fails.
  virtual int64_t InstancesVersion() = 0;

  // --- runs and jobs ---
  // Creates the run with its jobs, and deletes (as DeleteRun does) the project's finished runs of
  // the same name in the same transaction. AlreadyExists when an unfinished, undeleted run of the
  // project has the same name (then nothing changes).
  virtual Status CreateRun(const model::Run& run) = 0;
  // The newest undeleted run of that name in the project, with its jobs.
  virtual Result<model::Run> GetRun(std::string_view project_id, std::string_view run_name) = 0;
  virtual Result<model::Run> GetRunById(std::string_view run_id) = 0;
  virtual Result<std::vector<model::Run>> ListRuns(const RunFilter& filter) = 0;
  // Runs of any project whose status is one of `statuses`, oldest first, with jobs.
  virtual Result<std::vector<model::Run>> ListRunsWithStatus(
      const std::vector<model::RunStatus>& statuses) = 0;
  // Writes the mutable fields of the run (status, termination_reason, finished_at, cost) and of
  // each of its jobs (status, termination_reason, exit_code, instance, gpu_indices, started_at,
  // finished_at, status_detail).
  virtual Status UpdateRun(const model::Run& run) = 0;
  // Marks a run deleted; it disappears from GetRun and ListRuns. FailedPrecondition unless the
  // run is finished.
  virtual Status DeleteRun(std::string_view run_id) = 0;
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
  // the SQLite database is this process's alone (its data directory is locked), and a PostgreSQL
  // database is used by one server until replicas share their versions through the database.
  // Cheap; never fails.
  virtual int64_t RunsVersion() = 0;

  // --- job metrics ---
  // Stores a batch of points in one transaction. NotFound when a job does not exist (nothing is
  // stored then).
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

  // --- energy and job summaries ---
  // Applies the updates in one transaction: each one whose job's stored revision is still
  // `revision` (none stored for 0) stores its state (and summary, when set: a summary, once
  // stored, is never replaced) and adds its figures to the (project, user) totals; the others
  // (another writer got there first) change nothing. Aggregates and summaries are never deleted
  // with metrics points. Returns, per update, whether it applied. NotFound when an applied
  // update names no job (nothing changes then).
  virtual Result<std::vector<bool>> UpdateJobAggregates(
      const std::vector<JobAggregateUpdate>& updates) = 0;
  // The aggregates of these jobs (those that have some), in no particular order.
  virtual Result<std::vector<JobAggregate>> ListJobAggregates(
      const std::vector<std::string>& job_ids) = 0;
  // The aggregates of every job without a summary yet, in no particular order.
  virtual Result<std::vector<JobAggregate>> ListOpenJobAggregates() = 0;
  // Every (project, user) ever charged energy, ordered by project name and user name.
  virtual Result<std::vector<EnergyTotal>> ListEnergyTotals() = 0;
};

}  // namespace fleetwatch::store
