#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "util/clock.h"

namespace fleetwatch::agent {

// What the agent's own GET /metrics reports (docs/agent-api.md).
struct AgentMetricsInput {
  std::string version;
  std::string agent_id;
  std::string hostname;
  std::string cgroup;  // "v2", "v1" or "none"
  TimeMicros started_at = 0;
  int gpus = 0;
  int64_t jobs_running = 0;
  int64_t jobs_exited = 0;
  int64_t jobs_failed_to_start = 0;
  int64_t jobs_lost = 0;
  bool dcgm_enabled = false;
  bool dcgm_fresh = false;  // the newest scrape is recent
  int64_t dcgm_restarts = 0;
  int64_t dcgm_scrape_errors = 0;
  std::optional<TimeMicros> dcgm_collected_at;
  std::shared_ptr<const std::string> dcgm_text;  // the host's DCGM text when fresh
};

// The agent's exposition (text 0.0.4): its own health families (fleetwatch_agent_*), then the
// host's DCGM text unfiltered, appended only when it parses and names none of the agent's own
// families (a malformed or clashing text would make Prometheus reject the whole scrape; it
// shows as fleetwatch_agent_dcgm_text_valid 0 instead). Pure; thread-safe.
std::string RenderAgentMetrics(const AgentMetricsInput& input);

}  // namespace fleetwatch::agent
