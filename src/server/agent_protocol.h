#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/gpu_reading.h"
#include "model/metrics.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// The server's side of docs/agent-api.md: request bodies it builds and replies it parses. Agent
// replies are untrusted input: every parser checks types and ranges and fails with
// InvalidArgument ("bad agent reply: ...") instead of crashing or half-reading. Thread-safe.

struct AgentAddress {
  std::string host;
  uint16_t port = 0;
  std::string token;
};

struct AgentInventory {
  std::string agent_id;
  std::string hostname;
  int cpus = 0;
  int64_t memory_bytes = 0;
  std::vector<model::Gpu> gpus;
  std::string cgroup;
};

// kLost: the agent restarted and had accepted the job before; it no longer runs and is never
// started again (docs/agent-api.md).
enum class AgentJobState { kRunning, kExited, kFailedToStart, kLost };

struct AgentJob {
  std::string job_id;
  AgentJobState state = AgentJobState::kRunning;
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool stop_requested = false;
  std::optional<TimeMicros> started_at;
  std::optional<TimeMicros> finished_at;
  std::string error;  // why it failed to start or was lost; untrusted text, at most 4096 bytes
  std::optional<model::JobMetricsPoint> metrics;  // when asked for and the job runs
};

// The host's DCGM exposition as the agent last scraped it (docs/agent-api.md).
struct AgentDcgm {
  std::optional<TimeMicros> collected_at;
  std::string text;   // dcgm-exporter's text, untrusted; empty when `error` is set
  std::string error;  // why there is no recent text (the exporter is down, the field was bad...)
};

struct AgentPoll {
  std::string agent_id;
  TimeMicros now = 0;
  std::vector<AgentJob> jobs;
  // Present when asked for (dcgm=1) and the host has DCGM. A malformed `dcgm` field fails only
  // this part: it becomes an `error`, the rest of the poll stands.
  std::optional<AgentDcgm> dcgm;
  // The host's GPU readings (docs/agent-api.md "GPU readings"): present when the agent sent the
  // "gpus" field (replies with metrics=1 of an agent that reads them). A reading the agent left
  // out is absent ("not available"); a present one of the wrong type or out of its range fails
  // the whole reply, like any other field.
  std::optional<std::vector<model::GpuReading>> gpus;
};

struct ClusterInfo {
  int nodes_num = 1;
  int node_rank = 0;
  std::string master_node_ip;
  std::vector<std::string> nodes_ips;
  int gpus_per_node = 0;
};

struct StartJobRequest {
  std::string job_id;
  std::string job_name;
  std::string run_name;
  std::vector<std::string> commands;
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<std::string> working_dir;
  std::vector<int> gpu_indices;
  int cpus = 1;
  std::optional<int64_t> memory_bytes;
  ClusterInfo cluster;
};

// A piece of a job's output.
struct LogChunk {
  std::string data;
  int64_t size = 0;  // the whole log so far
};

// Ids follow model/names.h (IsValidJobId, IsValidAgentId); a job id listed twice, more than
// 10,000 jobs or any field out of its range fails the whole reply.
Result<AgentInventory> ParseAgentInventory(std::string_view body);
Result<AgentPoll> ParseAgentPoll(std::string_view body);
Result<AgentJob> ParseAgentJob(std::string_view body);

// ParseAgentPoll for one agent's replies, one after another: an agent answers a plain poll with
// the same body tick after tick but for the digits of `now`, and such a reply is not parsed
// again: it is the last parsed poll with the new `now`, exactly what ParseAgentPoll would make of
// it. What is remembered is the last successful reply without metrics, DCGM text or GPU readings
// whose body has no backslash and names the key "now" once (so that key is the top-level one);
// any other reply is parsed in full, and a reply that fails leaves the remembered one in place.
// Not thread-safe: one per agent, on one thread.
class AgentPollParser {
 public:
  Result<AgentPoll> Parse(std::string_view body);
  // Whether the last Parse reused the remembered poll (for tests).
  bool last_reused() const { return last_reused_; }
  // Changes with every Parse that did not reuse the remembered poll: two parses with the same
  // generation gave the same poll but for `now`.
  uint64_t generation() const { return generation_; }

 private:
  std::string body_;                    // empty: nothing remembered
  size_t now_begin_ = 0, now_end_ = 0;  // the digits of `now` in body_
  AgentPoll poll_;
  bool last_reused_ = false;
  uint64_t generation_ = 0;
};
// A reply of GET /api/jobs/{id}/logs?offset=&limit=: its body and its X-Log-Size header. Fails
// when the body is longer than `limit` or the size is missing, malformed or smaller than
// offset + body.
Result<LogChunk> ParseAgentLogChunk(std::string body, std::string_view log_size, int64_t offset,
                                    int64_t limit);
std::string StartJobRequestToJson(const StartJobRequest& request);

}  // namespace fleetwatch::server
