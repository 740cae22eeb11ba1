#pragma once

#include <optional>
#include <string>

#include "agent/dcgm_exporter.h"
#include "agent/gpu_backend.h"
#include "agent/inventory.h"
#include "agent/job_runtime.h"
#include "http/message.h"
#include "http/router.h"
#include "util/clock.h"

namespace fleetwatch::agent {

struct AgentIdentity {
  std::string agent_id;  // new at every agent start
  TimeMicros started_at = 0;
  std::string token;  // the bearer token every request must carry
  // GET /metrics: open when unset (like dcgm-exporter's own), else this bearer token.
  std::optional<std::string> metrics_token;
};

// The agent API of docs/agent-api.md over a JobRuntime. Every request is checked for the bearer
// token first (constant-time compare; 401 JSON "unauthenticated" otherwise), then routed; GET
// /metrics (the agent's health and the host's DCGM text for Prometheus) has its own optional
// token instead. Bad
// bodies and parameters give 400 JSON errors and change nothing. `runtime`, `gpus` (sampled for
// the metrics points of GET /api/poll?metrics=1, and read for its "gpus" readings), `clock` and
// `dcgm` (the host's DCGM text for GET /api/poll?dcgm=1; null when DCGM is off) must outlive it.
// Thread-safe: Handle() may run on many threads at once.
class AgentApi {
 public:
  AgentApi(AgentIdentity identity, HostInventory inventory, JobRuntime& runtime,
           const GpuBackend& gpus, const Clock& clock, const DcgmExporter* dcgm = nullptr);
  AgentApi(const AgentApi&) = delete;
  AgentApi& operator=(const AgentApi&) = delete;

  http::Response Handle(http::Request& request) const;

 private:
  http::Response Healthcheck() const;
  http::Response Metrics(const http::Request& request) const;
  http::Response Inventory() const;
  http::Response Poll(const http::Request& request) const;
  http::Response StartJob(const http::Request& request);
  http::Response StopJob(const http::Request& request);
  http::Response JobLogs(const http::Request& request) const;
  http::Response AcknowledgeJob(const http::Request& request);

  const AgentIdentity identity_;
  const HostInventory inventory_;
  JobRuntime& runtime_;
  const GpuBackend& gpus_;
  const Clock& clock_;
  const DcgmExporter* const dcgm_;
  http::Router router_;
};

}  // namespace fleetwatch::agent
