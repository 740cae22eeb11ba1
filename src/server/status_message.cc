#include "server/status_message.h"

#include <algorithm>

namespace fleetwatch::server {
namespace {

using model::JobStatus;
using model::JobTerminationReason;
using model::RunStatus;

// "terminated_by_server" → "terminated by server".
std::string Words(std::string_view code) {
  std::string text(code);
  std::replace(text.begin(), text.end(), '_', ' ');
  return text;
}

std::optional<std::string> JobWords(const model::Job& job) {
  const std::optional<std::string>& detail = job.status_detail;
  switch (job.status) {
    case JobStatus::kSubmitted:
      if (detail) return "waiting: " + *detail;
      return std::nullopt;
    case JobStatus::kTerminating:
      return detail;
    case JobStatus::kFailed:
    case JobStatus::kTerminated:
    case JobStatus::kAborted:
      break;
    default:
      return std::nullopt;
  }
  if (!job.termination_reason) return detail;
  switch (*job.termination_reason) {
    case JobTerminationReason::kFailedToStartDueToNoCapacity:
      return detail ? "no capacity: " + *detail : std::string("no capacity");
    case JobTerminationReason::kContainerExitedWithError:
      if (job.exit_code) return "exit " + std::to_string(*job.exit_code);
      break;
    case JobTerminationReason::kDoneByRunner:
      return std::nullopt;
    case JobTerminationReason::kTerminatedByUser:
      return detail ? *detail : std::string("stopped by user");  // the CLI and the UI say so too
    default:
      break;
  }
  if (detail) return detail;
  return Words(model::ToString(*job.termination_reason));
}

std::string WithWords(std::string_view status, const std::optional<std::string>& words) {
  std::string text(status);
  if (words) text += " (" + *words + ")";
  return text;
}

}  // namespace

std::string DurationWords(int64_t seconds) {
  if (seconds <= 0) return "0s";
  const std::pair<int64_t, const char*> units[] = {{86'400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  std::string text;
  for (const auto& [size, name] : units) {
    if (seconds < size) continue;
    text += (text.empty() ? "" : " ") + std::to_string(seconds / size) + name;
    seconds %= size;
  }
  return text;
}

std::string JobStatusMessage(const model::Job& job) {
  return WithWords(model::ToString(job.status), JobWords(job));
}

std::string RunStatusMessage(const model::Run& run) {
  std::optional<std::string> words;
  auto first = [&](auto&& pick) {
    for (const model::Job& job : run.jobs) {
      if (!pick(job)) continue;
      if (std::optional<std::string> w = JobWords(job)) return w;
    }
    return std::optional<std::string>();
  };
  switch (run.status) {
    case RunStatus::kPending:
    case RunStatus::kSubmitted:
      words = first([](const model::Job& j) { return j.status == JobStatus::kSubmitted; });
      break;
    case RunStatus::kFailed:
      words = first([](const model::Job& j) { return j.status == JobStatus::kFailed; });
      if (!words) words = first([](const model::Job&) { return true; });
      if (!words && run.termination_reason) words = Words(model::ToString(*run.termination_reason));
      break;
    case RunStatus::kTerminating:
    case RunStatus::kTerminated:
      words = first([](const model::Job&) { return true; });
      break;
    default:
      break;
  }
  return WithWords(model::ToString(run.status), words);
}

}  // namespace fleetwatch::server
