#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "http/async_client.h"
#include "model/entities.h"
#include "server/agent_protocol.h"
#include "server/log_copies.h"
#include "store/store.h"
#include "util/status.h"

namespace fleetwatch::server {

struct LiveLogOptions {
  std::chrono::milliseconds agent_timeout{5000};  // per read from an agent
  // Reads from one instance's agent in flight at once (FLEETWATCH_MAX_LOG_READS_PER_HOST); a
  // read beyond it is refused at once. At least 1.
  size_t max_reads_per_instance = 4;
  int retry_after_seconds = 1;  // what a refused read is told to wait
};

struct LiveLogResult {
  Result<LogChunk> chunk;
  // Set when the read was refused because the job's instance already had max_reads_per_instance
  // reads in flight (`chunk` is then Unavailable, naming the instance and the limit): worth
  // trying again after this many seconds.
  std::optional<int> retry_after_seconds;
};

// A job's output for the API: from the copy in the store once the job has ended and been
// acknowledged (LogCopies; any replica's copy), else from its agent (GET /api/jobs/{id}/logs),
// asynchronously: no thread waits for a slow host. Each instance has at most max_reads_per_instance
// reads in flight; one more fails fast instead of piling up. What the agent says is untrusted
// (ParseAgentLogChunk). Thread-safe. Replies that arrive after the LiveLogs is gone still find
// what they need (it is shared with them), so it may go before the AsyncClient.
class LiveLogs {
 public:
  using Done = std::function<void(LiveLogResult)>;

  // `store` and `client` must outlive it, and `store` must outlive `client` (replies read it).
  LiveLogs(store::Store& store, http::AsyncClient& client, LiveLogOptions options);

  // At most `limit` bytes of `job`'s log from `offset`, and the log's size. An unplaced job, or
  // one whose instance is gone, has an empty log. Calls `done` exactly once: on the calling
  // thread when the answer needs no agent (a copy, no instance, a store error, the instance
  // busy), else on one of the client's I/O threads once the agent answered or agent_timeout
  // passed; `done` must be quick and must not throw. Errors: Unavailable ("cannot read the log
  // from <instance>: ...", or the instance busy, see LiveLogResult), InvalidArgument for a
  // negative offset or limit, and the store's errors.
  void Read(const model::Job& job, int64_t offset, int64_t limit, Done done);

 private:
  struct Shared;
  store::Store& store_;
  http::AsyncClient& client_;
  const LiveLogOptions options_;
  const std::shared_ptr<Shared> shared_;
};

// GET /api/jobs/{job_id}/logs?offset=&limit= for the instance's agent, with its token and TLS
// settings.
http::AsyncRequest AgentLogRequest(const model::Instance& instance, const std::string& job_id,
                                   int64_t offset, int64_t limit, std::chrono::milliseconds timeout,
                                   size_t max_response_bytes);

// The chunk in an agent's reply to AgentLogRequest. NotFound when the agent has no such job;
// Unavailable ("cannot read the log from <instance name>: ...") when it could not be reached,
// answered another status, or sent a chunk out of its bounds (ParseAgentLogChunk).
Result<LogChunk> AgentLogReply(const model::Instance& instance, const std::string& job_id,
                               Result<http::Response> reply, int64_t offset, int64_t limit);

}  // namespace fleetwatch::server
