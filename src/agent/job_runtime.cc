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
    case JobPhase::kLost:
      return "lost";
  }
  return "exited";
}

}  // namespace fleetwatch::agent
