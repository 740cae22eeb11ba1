#include "server/live_logs.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "http/message.h"
#include "server/agent_lanes.h"
#include "util/mutex.h"

namespace fleetwatch::server {

// What the replies share with the LiveLogs: the store that keeps the copies to fall back on and
// the count of reads in flight per instance.
struct LiveLogs::Shared {
  explicit Shared(store::Store& s) : store(s) {}

  // The job's stored copy: set when there is one, nullopt when there is none, or the store's
  // error.
  Result<std::optional<LogChunk>> Copy(const std::string& job_id, int64_t offset, int64_t limit) {
    FW_ASSIGN_OR_RETURN(std::optional<store::JobLogPart> part,
                        store.ReadJobLog(job_id, offset, limit));
    if (!part) return std::optional<LogChunk>();
    return std::optional<LogChunk>(LogChunk{std::move(part->data), part->size});
  }

  // One read counted against its instance while it is alive.
  class Slot {
   public:
    Slot(std::shared_ptr<Shared> shared, std::string instance_id)
        : shared_(std::move(shared)), instance_id_(std::move(instance_id)) {}
    ~Slot() {
      MutexLock lock(shared_->mu);
      auto it = shared_->in_flight.find(instance_id_);
      if (it != shared_->in_flight.end() && --it->second == 0) shared_->in_flight.erase(it);
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    const std::shared_ptr<Shared> shared_;
    const std::string instance_id_;
  };

  store::Store& store;
  mutable Mutex mu;
  std::map<std::string, size_t> in_flight FW_GUARDED_BY(mu);  // instance id → reads
};

LiveLogs::LiveLogs(store::Store& store, http::AsyncClient& client, LiveLogOptions options)
    : store_(store),
      client_(client),
      options_(std::move(options)),
      shared_(std::make_shared<Shared>(store)) {}

void LiveLogs::Read(const model::Job& job, int64_t offset, int64_t limit, Done done) {
  if (offset < 0 || limit < 0) {
    return done({InvalidArgument("a log's offset and limit cannot be negative"), std::nullopt});
  }
  Result<std::optional<LogChunk>> copy = shared_->Copy(job.id, offset, limit);
  if (!copy.ok()) return done({copy.status(), std::nullopt});
  if (*copy) return done({std::move(**copy), std::nullopt});
  if (!job.instance_id) return done({LogChunk{}, std::nullopt});
  Result<std::vector<model::Instance>> instances = store_.ListInstances("");
  if (!instances.ok()) return done({instances.status(), std::nullopt});
  auto instance = std::find_if(instances->begin(), instances->end(),
                               [&](const model::Instance& i) { return i.id == *job.instance_id; });
  if (instance == instances->end()) return done({LogChunk{}, std::nullopt});

  const size_t limit_per_instance = std::max<size_t>(1, options_.max_reads_per_instance);
  {
    MutexLock lock(shared_->mu);
    size_t& reads = shared_->in_flight[instance->id];
    if (reads >= limit_per_instance) {
      return done({Unavailable("instance " + instance->name + " (" + instance->hostname + ":" +
                               std::to_string(instance->agent_port) + ") already has " +
                               std::to_string(limit_per_instance) +
                               " log reads in flight, the most allowed per host "
                               "(FLEETWATCH_MAX_LOG_READS_PER_HOST); try again shortly"),
                   options_.retry_after_seconds});
    }
    ++reads;
  }
  auto slot = std::make_shared<Shared::Slot>(shared_, instance->id);
  client_.Send(AgentLogRequest(*instance, job.id, offset, limit, options_.agent_timeout,
                               static_cast<size_t>(std::max<int64_t>(limit, 0))),
               [shared = shared_, slot = std::move(slot), instance = *instance, job_id = job.id,
                offset, limit, done = std::move(done)](Result<http::Response> reply) mutable {
                 Result<LogChunk> chunk =
                     AgentLogReply(instance, job_id, std::move(reply), offset, limit);
                 if (!chunk.ok() && chunk.status().code() == StatusCode::kNotFound) {
                   // The job ended and was acknowledged meanwhile: its log was copied just before
                   // (by whichever replica holds the host).
                   Result<std::optional<LogChunk>> kept = shared->Copy(job_id, offset, limit);
                   chunk = kept.ok() ? std::move(*kept).value_or(LogChunk{})
                                     : Result<LogChunk>(kept.status());
                 }
                 slot.reset();  // the host's read is over before anyone hears of it
                 done({std::move(chunk), std::nullopt});
               });
}

http::AsyncRequest AgentLogRequest(const model::Instance& instance, const std::string& job_id,
                                   int64_t offset, int64_t limit, std::chrono::milliseconds timeout,
                                   size_t max_response_bytes) {
  return AgentHttpRequest(instance, "GET",
                          "/api/jobs/" + http::UrlEncode(job_id) + "/logs?offset=" +
                              std::to_string(offset) + "&limit=" + std::to_string(limit),
                          "", timeout, max_response_bytes);
}

Result<LogChunk> AgentLogReply(const model::Instance& instance, const std::string& job_id,
                               Result<http::Response> reply, int64_t offset, int64_t limit) {
  const std::string cannot = "cannot read the log from " + instance.name + ": ";
  if (!reply.ok()) return Unavailable(cannot + reply.status().message());
  if (reply->status == 404) return NotFound("the agent has no job " + job_id);
  if (reply->status == 401) return Unavailable(cannot + "the agent rejected the token");
  if (reply->status != 200) {
    return Unavailable(cannot + "the agent answered HTTP " + std::to_string(reply->status));
  }
  std::string_view log_size;
  for (const auto& [name, value] : reply->headers) {
    if (name == "x-log-size") log_size = value;
  }
  Result<LogChunk> chunk = ParseAgentLogChunk(std::move(reply->body), log_size, offset, limit);
  if (!chunk.ok()) return Unavailable(cannot + chunk.status().message());
  return chunk;
}

}  // namespace fleetwatch::server
