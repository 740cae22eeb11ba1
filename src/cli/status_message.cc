#include "cli/status_message.h"

#include <boost/json.hpp>
#include <optional>

#include "cli/json_fields.h"

namespace fleetwatch::cli {
namespace {

std::string OwnMessage(const boost::json::value& entity) {
  return StringField(entity, "status_message");
}

// The words in parentheses for a job that ended with `reason`, or "" when the status says it all.
std::string JobReasonWords(const boost::json::value& job, const std::string& reason) {
  const std::optional<int64_t> exit_code = IntField(job, "exit_code");
  if (exit_code && *exit_code != 0) return "exit " + std::to_string(*exit_code);
  if (reason.empty() || reason == "done_by_runner") return "";
  return TerminationReasonText(reason);
}

}  // namespace

std::string TerminationReasonText(std::string_view reason) {
  if (reason == "failed_to_start_due_to_no_capacity") return "no capacity";
  if (reason == "interrupted_by_no_capacity") return "interrupted: no capacity";
  if (reason == "container_exited_with_error") return "exited with an error";
  if (reason == "terminated_by_user" || reason == "stopped_by_user") return "stopped by user";
  if (reason == "max_duration_exceeded") return "max duration";
  std::string text(reason);
  for (char& c : text) {
    if (c == '_') c = ' ';
  }
  return text;
}

std::string JobStatusMessage(const boost::json::value& job) {
  std::string message = OwnMessage(job);
  if (!message.empty()) return message;
  const std::string status = StringField(job, "status", "?");
  const std::string words = JobReasonWords(job, StringField(job, "termination_reason"));
  return words.empty() ? status : status + " (" + words + ")";
}

std::string RunStatusMessage(const boost::json::value& run) {
  std::string message = OwnMessage(run);
  if (!message.empty()) return message;
  const std::string status = StringField(run, "status", "?");
  const std::string reason = StringField(run, "termination_reason");
  const boost::json::array& jobs = ArrayField(run, "jobs");
  if (status == "failed") {
    // The job that failed says why; the last listed one is the newest submission.
    for (auto job = jobs.rbegin(); job != jobs.rend(); ++job) {
      if (StringField(*job, "status") != "failed") continue;
      const std::string words = JobReasonWords(*job, StringField(*job, "termination_reason"));
      if (!words.empty()) return status + " (" + words + ")";
    }
    if (!reason.empty() && reason != "job_failed") {
      return status + " (" + TerminationReasonText(reason) + ")";
    }
    return status;
  }
  if (status == "terminated" || status == "terminating") {
    // A limit that ended a job says more than the run's own reason.
    for (const boost::json::value& job : jobs) {
      if (StringField(job, "termination_reason") == "max_duration_exceeded") {
        return status + " (" + TerminationReasonText("max_duration_exceeded") + ")";
      }
    }
    if (!reason.empty()) return status + " (" + TerminationReasonText(reason) + ")";
  }
  return status;
}

}  // namespace fleetwatch::cli
