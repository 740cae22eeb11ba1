#pragma once

#include <optional>
#include <string_view>

namespace fleetwatch::model {

// Status values and termination reasons. Their text forms are dstack's, exactly
// (spec/METRICS.md): they become label values and API fields that dashboards depend on.

enum class InstanceStatus { kPending, kProvisioning, kIdle, kBusy, kTerminating, kTerminated };
enum class FleetStatus { kSubmitted, kActive, kTerminating, kTerminated, kFailed };
enum class RunStatus {
  kPending,
  kSubmitted,
  kProvisioning,
  kRunning,
  kTerminating,
  kTerminated,
  kFailed,
  kDone
};
enum class JobStatus {
  kSubmitted,
  kProvisioning,
  kPulling,
  kRunning,
  kTerminating,
  kTerminated,
  kAborted,
  kFailed,
  kDone
};
enum class RunTerminationReason {
  kAllJobsDone,
  kJobFailed,
  kRetryLimitExceeded,
  kServerError,
  kStoppedByUser,
  kAbortedByUser
};
enum class JobTerminationReason {
  kFailedToStartDueToNoCapacity,
  kInterruptedByNoCapacity,
  kInstanceUnreachable,
  kWaitingInstanceLimitExceeded,
  kContainerExitedWithError,
  kExecutorError,
  kTerminatedByUser,
  kTerminatedByServer,
  kMaxDurationExceeded,
  kTerminatedDueToUtilizationPolicy,
  kScaledDown,
  kDoneByRunner,
  kAbortedByUser
};
enum class RunType { kTask, kService, kDevEnvironment };
enum class GlobalRole { kAdmin, kUser };
enum class ProjectRole { kAdmin, kManager, kUser };

std::string_view ToString(InstanceStatus s);
std::string_view ToString(FleetStatus s);
std::string_view ToString(RunStatus s);
std::string_view ToString(JobStatus s);
std::string_view ToString(RunTerminationReason r);
std::string_view ToString(JobTerminationReason r);
std::string_view ToString(RunType t);
std::string_view ToString(GlobalRole r);
std::string_view ToString(ProjectRole r);

// Parse the text forms above; nullopt for anything else (case-sensitive).
template <typename Enum>
std::optional<Enum> Parse(std::string_view text);

// A run or job in a final status never changes again.
bool IsFinished(RunStatus s);
bool IsFinished(JobStatus s);

// The job status a termination reason ends in (failed, terminated, done or aborted).
JobStatus FinalStatusFor(JobTerminationReason r);
// The run status a run termination reason ends in (done, failed or terminated).
RunStatus FinalStatusFor(RunTerminationReason r);

}  // namespace fleetwatch::model
