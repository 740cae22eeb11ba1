#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "http/async_client.h"
#include "model/entities.h"
#include "util/status.h"

namespace fleetwatch::server {

// A request to `instance`'s agent: its address, its bearer token, TLS pinned as the instance says,
// a JSON body when `body` is not empty. The one place that builds requests to agents.
http::AsyncRequest AgentHttpRequest(const model::Instance& instance, std::string method,
                                    std::string target, std::string body,
                                    std::chrono::milliseconds timeout, size_t max_response_bytes);

// What a request to an agent is for. Each host has one lane per kind.
enum class AgentRequestKind { kPoll, kInventory, kStart, kStop, kForget, kAcknowledge };

// The outcome of one operation on one host, waiting for the controller's next look.
struct AgentReply {
  std::string instance_id;
  AgentRequestKind kind = AgentRequestKind::kPoll;
  std::string key;  // the job id of a command; empty for polls and inventories
  Result<http::Response> reply = Unavailable("no reply");
};

// One operation on an agent: one request or a chain of them (a log copy, then the
// acknowledgement). It sends through `send` and calls `done` exactly once, from any thread,
// with the last reply or the error that ended it.
using AgentSend =
    std::function<void(http::AsyncRequest, std::function<void(Result<http::Response>)>)>;
using AgentOperation =
    std::function<void(const AgentSend& send, std::function<void(Result<http::Response>)> done)>;

// Asynchronous requests to agents, in lanes: one lane per (host, kind), at most one operation in
// flight per lane, the others of that lane waiting in order. When an operation ends its outcome
// goes to an inbox and the lane's next operation starts at once (from the I/O thread), so a fast
// host works through its lane within a tick and a slow or silent one delays only its own lanes,
// each request bounded by its own timeout. Nothing blocks a caller but WaitIdle, up to its
// deadline.
//
// Thread-safe. Callbacks may outlive the object (they hold the shared state); once it is
// destroyed no operation starts any more, and `client` need only outlive the object itself.
class AgentLanes {
 public:
  explicit AgentLanes(http::AsyncClient& client);
  ~AgentLanes();
  AgentLanes(const AgentLanes&) = delete;
  AgentLanes& operator=(const AgentLanes&) = delete;

  // The lane's waiting operations become `operations` (keyed; one whose key is the operation in
  // flight is dropped, as it is being done). Starts the first when the lane is idle.
  void Replace(const std::string& instance_id, AgentRequestKind kind,
               std::vector<std::pair<std::string, AgentOperation>> operations);
  // Replace for many lanes at once, under one lock: each lane of `operations` as Replace does,
  // and every other lane of one of `kinds` loses what waits there (what is in flight goes on).
  // The cost follows the lanes that hold or get work, not the number of hosts.
  using LaneOperations = std::map<std::pair<std::string, AgentRequestKind>,
                                  std::vector<std::pair<std::string, AgentOperation>>>;
  void ReplaceAll(const std::vector<AgentRequestKind>& kinds, LaneOperations operations);
  // Starts one request on an idle lane; false (and nothing sent) when the lane is busy.
  bool SendIfIdle(const std::string& instance_id, AgentRequestKind kind,
                  http::AsyncRequest request);
  // Waits until each of these lanes has been seen with no operation in flight or waiting (what
  // starts on a lane after that is not waited for), or until `deadline`.
  void WaitIdle(const std::vector<std::pair<std::string, AgentRequestKind>>& lanes,
                std::chrono::steady_clock::time_point deadline);
  // The outcomes that arrived since the last call, in arrival order.
  std::vector<AgentReply> Take();
  // Lanes of the hosts `keep` says no to are dropped (what waits there is discarded; what is in
  // flight still ends in the inbox). `keep` is called under the lanes' lock: it must not call
  // back into them.
  void Keep(const std::function<bool(const std::string&)>& keep);
  // Operations in flight, all lanes together.
  size_t in_flight() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace fleetwatch::server
