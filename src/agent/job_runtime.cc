#include "agent/job_runtime.h"

namespace fleetwatch::agent {

std::string_view JobPhaseName(JobPhase phase) {
  switch (phase) {
    case JobPhase::kRunning:
      return "running";
    case JobPhase::kExited:
      return "exited";
    case JobPhase::kFailedToStart:
      return "failed_to_start";
  }
  return "exited";
}

bool IsValidJobId(std::string_view job_id) {
  if (job_id.empty() || job_id.size() > 64) return false;
  for (char c : job_id) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace fleetwatch::agent
