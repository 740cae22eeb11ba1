#include "model/status.h"

#include <array>
#include <utility>

namespace fleetwatch::model {
namespace {

// Text forms in enum order; the enum values index these arrays.
constexpr std::array kInstanceStatus = {"pending", "provisioning", "idle",
                                        "busy",    "terminating",  "terminated"};
constexpr std::array kFleetStatus = {"submitted", "active", "terminating", "terminated", "failed"};
constexpr std::array kRunStatus = {"pending",     "submitted",  "provisioning", "running",
                                   "terminating", "terminated", "failed",       "done"};
constexpr std::array kJobStatus = {"submitted", "provisioning", "pulling",
                                   "running",   "terminating",  "terminated",
                                   "aborted",   "failed",       "done"};
constexpr std::array kRunTerminationReason = {"all_jobs_done",        "job_failed",
                                              "retry_limit_exceeded", "server_error",
                                              "stopped_by_user",      "aborted_by_user"};
constexpr std::array kJobTerminationReason = {"failed_to_start_due_to_no_capacity",
                                              "interrupted_by_no_capacity",
                                              "instance_unreachable",
                                              "waiting_instance_limit_exceeded",
                                              "container_exited_with_error",
                                              "executor_error",
                                              "terminated_by_user",
                                              "terminated_by_server",
                                              "max_duration_exceeded",
                                              "terminated_due_to_utilization_policy",
                                              "scaled_down",
                                              "done_by_runner",
                                              "aborted_by_user"};
constexpr std::array kRunType = {"task", "service", "dev-environment"};
constexpr std::array kGlobalRole = {"admin", "user"};
constexpr std::array kProjectRole = {"admin", "manager", "user"};

template <typename Enum>
constexpr size_t Index(Enum e) {
  return static_cast<size_t>(e);
}

template <typename Enum, size_t N>
std::optional<Enum> Find(const std::array<const char*, N>& names, std::string_view text) {
  for (size_t i = 0; i < N; ++i) {
    if (text == names[i]) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view ToString(InstanceStatus s) { return kInstanceStatus[Index(s)]; }
std::string_view ToString(FleetStatus s) { return kFleetStatus[Index(s)]; }
std::string_view ToString(RunStatus s) { return kRunStatus[Index(s)]; }
std::string_view ToString(JobStatus s) { return kJobStatus[Index(s)]; }
std::string_view ToString(RunTerminationReason r) { return kRunTerminationReason[Index(r)]; }
std::string_view ToString(JobTerminationReason r) { return kJobTerminationReason[Index(r)]; }
std::string_view ToString(RunType t) { return kRunType[Index(t)]; }
std::string_view ToString(GlobalRole r) { return kGlobalRole[Index(r)]; }
std::string_view ToString(ProjectRole r) { return kProjectRole[Index(r)]; }

template <>
std::optional<InstanceStatus> Parse(std::string_view t) {
  return Find<InstanceStatus>(kInstanceStatus, t);
}
template <>
std::optional<FleetStatus> Parse(std::string_view t) {
  return Find<FleetStatus>(kFleetStatus, t);
}
template <>
std::optional<RunStatus> Parse(std::string_view t) {
  return Find<RunStatus>(kRunStatus, t);
}
template <>
std::optional<JobStatus> Parse(std::string_view t) {
  return Find<JobStatus>(kJobStatus, t);
}
template <>
std::optional<RunTerminationReason> Parse(std::string_view t) {
  return Find<RunTerminationReason>(kRunTerminationReason, t);
}
template <>
std::optional<JobTerminationReason> Parse(std::string_view t) {
  return Find<JobTerminationReason>(kJobTerminationReason, t);
}
template <>
std::optional<RunType> Parse(std::string_view t) {
  return Find<RunType>(kRunType, t);
}
template <>
std::optional<GlobalRole> Parse(std::string_view t) {
  return Find<GlobalRole>(kGlobalRole, t);
}
template <>
std::optional<ProjectRole> Parse(std::string_view t) {
  return Find<ProjectRole>(kProjectRole, t);
}

bool IsFinished(RunStatus s) {
  return s == RunStatus::kTerminated || s == RunStatus::kFailed || s == RunStatus::kDone;
}

bool IsFinished(JobStatus s) {
  return s == JobStatus::kTerminated || s == JobStatus::kAborted || s == JobStatus::kFailed ||
         s == JobStatus::kDone;
}

JobStatus FinalStatusFor(JobTerminationReason r) {
  switch (r) {
    case JobTerminationReason::kFailedToStartDueToNoCapacity:
    case JobTerminationReason::kInterruptedByNoCapacity:
    case JobTerminationReason::kInstanceUnreachable:
    case JobTerminationReason::kWaitingInstanceLimitExceeded:
    case JobTerminationReason::kContainerExitedWithError:
    case JobTerminationReason::kExecutorError:
      return JobStatus::kFailed;
    case JobTerminationReason::kTerminatedByUser:
    case JobTerminationReason::kTerminatedByServer:
    case JobTerminationReason::kMaxDurationExceeded:
    case JobTerminationReason::kTerminatedDueToUtilizationPolicy:
    case JobTerminationReason::kScaledDown:
      return JobStatus::kTerminated;
    case JobTerminationReason::kDoneByRunner:
      return JobStatus::kDone;
    case JobTerminationReason::kAbortedByUser:
      return JobStatus::kAborted;
  }
  return JobStatus::kFailed;
}

RunStatus FinalStatusFor(RunTerminationReason r) {
  switch (r) {
    case RunTerminationReason::kAllJobsDone:
      return RunStatus::kDone;
    case RunTerminationReason::kJobFailed:
    case RunTerminationReason::kRetryLimitExceeded:
    case RunTerminationReason::kServerError:
      return RunStatus::kFailed;
    case RunTerminationReason::kStoppedByUser:
    case RunTerminationReason::kAbortedByUser:
      return RunStatus::kTerminated;
  }
  return RunStatus::kFailed;
}

}  // namespace fleetwatch::model
