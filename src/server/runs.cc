#include "server/runs.h"

#include <sys/random.h>

#include <algorithm>
#include <array>

#include "model/names.h"
#include "server/run_cost.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

Status RunNotFound(std::string_view name) {
  return NotFound("run '" + std::string(model::IsValidName(name) ? name : "?") + "' not found");
}

uint32_t RandomNumber() {
  uint32_t n = 0;
  if (getrandom(&n, sizeof(n), 0) != sizeof(n)) n = static_cast<uint32_t>(SystemClock().Now());
  return n;
}

Status CheckMayChange(const ProjectAccess& access, const model::User& caller,
                      const model::Run& run) {
  if (access.CanManage() || run.user_id == caller.id) return Status::Ok();
  return PermissionDenied("run '" + run.run_name + "' belongs to '" + run.user_name +
                          "'; only its owner or a project admin or manager may change it");
}

// The API's changes of a run are written only on the row version they read (replicas decide on
// runs too): a run that another writer changed meanwhile is read again, this many times at most.
constexpr int kConditionalWriteAttempts = 5;

Status KeptChanging(const model::Run& run, const std::string& what) {
  return Unavailable("run '" + run.run_name + "' kept changing while it was being " + what + " (" +
                     std::to_string(kConditionalWriteAttempts) +
                     " attempts, each overtaken by another server's write); try again");
}

Status NameTaken(const model::Run& run) {
  return AlreadyExists("run '" + run.run_name + "' is " + std::string(model::ToString(run.status)) +
                       "; stop it (fleetwatch stop " + run.run_name + ") or choose another name");
}

}  // namespace

Result<std::string> RunService::GenerateName(const ProjectAccess& access) {
  static constexpr std::array kAdjectives = {"brave", "calm",   "eager", "fast",  "gentle",
                                             "happy", "keen",   "lucky", "quiet", "swift",
                                             "bold",  "clever", "proud", "witty", "zesty"};
  static constexpr std::array kNouns = {"otter", "falcon", "lynx",  "panda", "heron",
                                        "bison", "koala",  "raven", "tiger", "whale",
                                        "gecko", "moose",  "llama", "finch", "cobra"};
  for (int attempt = 0; attempt < 20; ++attempt) {
    uint32_t r = RandomNumber();
    std::string name = std::string(kAdjectives[r % kAdjectives.size()]) + "-" +
                       kNouns[(r / 16) % kNouns.size()] + "-" + std::to_string((r / 256) % 100);
    Result<model::Run> existing = store_.GetRun(access.project.id, name);
    if (!existing.ok() && existing.status().code() == StatusCode::kNotFound) return name;
    FW_RETURN_IF_ERROR(existing.status().code() == StatusCode::kNotFound ? Status::Ok()
                                                                         : existing.status());
  }
  return Internal("could not find a free run name; give the run a name");
}

Result<model::Run> RunService::Submit(const ProjectAccess& access, const model::User& caller,
                                      std::string_view text, model::ConfigFormat format) {
  FW_ASSIGN_OR_RETURN(model::RunConfiguration config, model::ParseRunConfiguration(text, format));
  MutexLock lock(mu_);
  if (!config.name) {
    FW_ASSIGN_OR_RETURN(std::string generated, GenerateName(access));
    config.name = std::move(generated);
  } else if (Result<model::Run> existing = store_.GetRun(access.project.id, *config.name);
             existing.ok()) {
    // A resubmission replaces the finished run of that name (deleting it as Delete does, with
    // the same rights); an active one keeps its name.
    if (!model::IsFinished(existing->status)) return NameTaken(*existing);
    FW_RETURN_IF_ERROR(CheckMayChange(access, caller, *existing));
  } else if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  TimeMicros now = clock_.Now();
  model::Run run;
  run.id = NewId();
  run.project_id = access.project.id;
  run.project_name = access.project.name;
  run.user_id = caller.id;
  run.user_name = caller.name;
  run.run_name = *config.name;
  run.type = config.type;
  run.status = model::RunStatus::kSubmitted;
  run.submitted_at = now;
  run.configuration_json = model::ToJson(config);
  for (int job_num = 0; job_num < config.nodes; ++job_num) {
    for (int replica = 0; replica < config.replicas; ++replica) {
      model::Job job;
      job.id = NewId();
      job.run_id = run.id;
      job.job_num = job_num;
      job.replica_num = replica;
      job.job_name = run.run_name + "-" + std::to_string(job_num) + "-" + std::to_string(replica);
      job.status = model::JobStatus::kSubmitted;
      job.submitted_at = now;
      run.jobs.push_back(std::move(job));
    }
  }
  Status s = store_.CreateRun(run);
  if (s.code() == StatusCode::kAlreadyExists) return NameTaken(run);
  FW_RETURN_IF_ERROR(s);
  return run;
}

Result<std::vector<model::Run>> RunService::List(const ProjectAccess& access,
                                                 const std::vector<model::RunStatus>& statuses,
                                                 int limit) {
  if (limit < 1 || limit > 1000) return InvalidArgument("limit must be between 1 and 1000");
  store::RunFilter filter;
  filter.project_id = access.project.id;
  filter.statuses = statuses;
  filter.limit = limit;
  FW_ASSIGN_OR_RETURN(std::vector<model::Run> runs, store_.ListRuns(filter));
  FW_RETURN_IF_ERROR(FillCost(access, runs));
  return runs;
}

Result<model::Run> RunService::GetLocked(const ProjectAccess& access, std::string_view run_name) {
  if (!model::IsValidName(run_name)) return RunNotFound(run_name);
  Result<model::Run> run = store_.GetRun(access.project.id, run_name);
  if (!run.ok() && run.status().code() == StatusCode::kNotFound) return RunNotFound(run_name);
  return run;
}

Status RunService::FillCost(const ProjectAccess& access, std::vector<model::Run>& runs) {
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances,
                      store_.ListInstances(access.project.id));
  InstancePrices prices;
  for (const model::Instance& i : instances) {
    if (i.price) prices[i.id] = *i.price;
  }
  TimeMicros now = clock_.Now();
  for (model::Run& run : runs) run.cost = RunCost(run, prices, now);
  return Status::Ok();
}

Result<model::Run> RunService::Get(const ProjectAccess& access, std::string_view run_name) {
  FW_ASSIGN_OR_RETURN(model::Run run, GetLocked(access, run_name));
  std::vector<model::Run> one = {std::move(run)};
  FW_RETURN_IF_ERROR(FillCost(access, one));
  return std::move(one[0]);
}

Result<model::Run> RunService::Stop(const ProjectAccess& access, const model::User& caller,
                                    std::string_view run_name, bool abort) {
  MutexLock lock(mu_);
  // Conditional on the run as read: a replica's decision stored meanwhile (a job placed, or
  // ended) is read again and the stop applied on top of it, never written over.
  for (int attempt = 1;; ++attempt) {
    FW_ASSIGN_OR_RETURN(model::Run run, GetLocked(access, run_name));
    FW_RETURN_IF_ERROR(CheckMayChange(access, caller, run));
    if (model::IsFinished(run.status)) return run;
    if (run.status == model::RunStatus::kTerminating && !abort) return run;
    TimeMicros now = clock_.Now();
    run.status = model::RunStatus::kTerminating;
    run.termination_reason = abort ? model::RunTerminationReason::kAbortedByUser
                                   : model::RunTerminationReason::kStoppedByUser;
    model::JobTerminationReason job_reason = abort ? model::JobTerminationReason::kAbortedByUser
                                                   : model::JobTerminationReason::kTerminatedByUser;
    for (model::Job& job : run.jobs) {
      if (model::IsFinished(job.status)) continue;
      job.termination_reason = job_reason;
      job.status_detail = (abort ? "aborted by " : "stopped by ") + caller.name;
      if (!job.instance_id) {
        // Nothing runs anywhere: the job ends now.
        job.status = model::FinalStatusFor(job_reason);
        job.finished_at = now;
      } else {
        job.status = model::JobStatus::kTerminating;
      }
    }
    Status written = store_.UpdateRunIfCurrent(run, {});
    if (written.ok()) {
      ++run.row_version;
      return run;
    }
    if (written.code() != StatusCode::kFailedPrecondition) return written;
    if (attempt == kConditionalWriteAttempts) return KeptChanging(run, "stopped");
  }
}

Status RunService::Delete(const ProjectAccess& access, const model::User& caller,
                          std::string_view run_name) {
  MutexLock lock(mu_);
  for (int attempt = 1;; ++attempt) {
    FW_ASSIGN_OR_RETURN(model::Run run, GetLocked(access, run_name));
    FW_RETURN_IF_ERROR(CheckMayChange(access, caller, run));
    if (!model::IsFinished(run.status)) {
      return FailedPrecondition("run '" + run.run_name + "' is " +
                                std::string(model::ToString(run.status)) +
                                "; only finished runs can be deleted (stop it first)");
    }
    Status deleted = store_.DeleteRunIfCurrent(run);
    if (deleted.code() != StatusCode::kFailedPrecondition) return deleted;
    if (attempt == kConditionalWriteAttempts) return KeptChanging(run, "deleted");
  }
}

}  // namespace fleetwatch::server
