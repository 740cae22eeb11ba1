#include "server/agent_lanes.h"

#include <algorithm>
#include <map>

#include "util/mutex.h"

namespace fleetwatch::server {

namespace {
using LaneKey = std::pair<std::string, AgentRequestKind>;
}  // namespace

http::AsyncRequest AgentHttpRequest(const model::Instance& instance, std::string method,
                                    std::string target, std::string body,
                                    std::chrono::milliseconds timeout, size_t max_response_bytes) {
  http::AsyncRequest r;
  r.host = instance.hostname;
  r.port = static_cast<uint16_t>(instance.agent_port);
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  r.headers = {{"Authorization", "Bearer " + instance.agent_token}};
  if (!r.body.empty()) r.headers.emplace_back("Content-Type", "application/json");
  r.timeout = timeout;
  r.max_response_bytes = max_response_bytes;
  if (instance.tls) r.tls = http::TlsClientOptions{instance.tls_fingerprint, instance.tls_ca_cert};
  // Every agent endpoint is idempotent (docs/agent-api.md: a start names its job id, a second
  // one answers 200), so a POST that met a connection the agent had just closed goes again.
  r.retry_on_stale_connection = true;
  return r;
}

struct AgentLanes::State : std::enable_shared_from_this<AgentLanes::State> {
  explicit State(http::AsyncClient& c) : client(c) {}

  // A WaitIdle call: how many of its lanes it has not seen idle yet.
  struct Waiter {
    size_t remaining = 0;
  };

  struct Lane {
    bool busy = false;
    // The WaitIdle calls waiting for this lane to be idle (mostly none or one).
    std::vector<Waiter*> waiters;
    std::string in_flight_key;
    // In order, the next first. A vector, not a deque: a lane is made for each poll of each tick
    // and mostly holds one operation, and an empty vector allocates nothing.
    std::vector<std::pair<std::string, AgentOperation>> waiting;
  };

  http::AsyncClient& client;
  mutable Mutex mu;
  CondVar changed;
  bool open FW_GUARDED_BY(mu) = true;  // false once the AgentLanes is gone: nothing starts any more
  std::map<LaneKey, Lane> lanes FW_GUARDED_BY(mu);
  std::vector<AgentReply> inbox FW_GUARDED_BY(mu);
  size_t in_flight FW_GUARDED_BY(mu) = 0;

  // Removes an idle lane (or one being emptied) and tells its waiters; returns the next lane.
  // Wakes the WaitIdle calls whose last lane this was, so a tick waiting on a thousand polls is
  // woken once, not once per reply.
  std::map<LaneKey, Lane>::iterator EraseLane(std::map<LaneKey, Lane>::iterator it)
      FW_REQUIRES(mu) {
    bool wake = false;
    for (Waiter* waiter : it->second.waiters) wake |= --waiter->remaining == 0;
    if (wake) changed.NotifyAll();
    return lanes.erase(it);
  }

  // The end of the operation `op_key` of lane `key`: its outcome goes to the inbox and the lane's
  // next operation starts.
  void Done(const LaneKey& key, std::string op_key, Result<http::Response> reply) {
    bool more = false;
    {
      MutexLock lock(mu);
      inbox.push_back(AgentReply{key.first, key.second, std::move(op_key), std::move(reply)});
      --in_flight;
      auto it = lanes.find(key);
      if (it != lanes.end()) {
        it->second.busy = false;
        it->second.in_flight_key.clear();
        if (it->second.waiting.empty()) {
          EraseLane(it);
        } else {
          more = true;
        }
      }
    }
    if (more) StartNext(key);
  }

  // Starts the lane's next operation when it is idle and has one.
  void StartNext(const LaneKey& key) {
    AgentOperation op;
    std::string op_key;
    {
      MutexLock lock(mu);
      if (!open) return;
      auto it = lanes.find(key);
      if (it == lanes.end() || it->second.busy || it->second.waiting.empty()) return;
      Lane& lane = it->second;
      op_key = std::move(lane.waiting.front().first);
      op = std::move(lane.waiting.front().second);
      lane.waiting.erase(lane.waiting.begin());
      lane.busy = true;
      lane.in_flight_key = op_key;
      ++in_flight;
    }
    std::shared_ptr<State> self = shared_from_this();
    AgentSend send = [self](http::AsyncRequest request,
                            std::function<void(Result<http::Response>)> done) {
      bool open = false;
      {
        MutexLock lock(self->mu);
        open = self->open;
      }
      if (!open) {
        done(Unavailable("the server is stopping"));
        return;
      }
      self->client.Send(std::move(request), std::move(done));
    };
    op(send, [self, key, op_key = std::move(op_key)](Result<http::Response> reply) mutable {
      self->Done(key, std::move(op_key), std::move(reply));
    });
  }
};

AgentLanes::AgentLanes(http::AsyncClient& client) : state_(std::make_shared<State>(client)) {}

AgentLanes::~AgentLanes() {
  MutexLock lock(state_->mu);
  state_->open = false;
}

void AgentLanes::Replace(const std::string& instance_id, AgentRequestKind kind,
                         std::vector<std::pair<std::string, AgentOperation>> operations) {
  LaneOperations one;
  one.emplace(LaneKey{instance_id, kind}, std::move(operations));
  ReplaceAll({}, std::move(one));
}

void AgentLanes::ReplaceAll(const std::vector<AgentRequestKind>& kinds, LaneOperations operations) {
  std::vector<LaneKey> start;
  {
    MutexLock lock(state_->mu);
    auto& lanes = state_->lanes;
    for (auto it = lanes.begin(); it != lanes.end();) {
      const bool listed = std::find(kinds.begin(), kinds.end(), it->first.second) != kinds.end();
      if (!listed || operations.count(it->first) || it->second.waiting.empty()) {
        ++it;
        continue;
      }
      it->second.waiting.clear();
      it = it->second.busy ? std::next(it) : state_->EraseLane(it);
    }
    for (auto& [key, ops] : operations) {
      auto it = lanes.find(key);
      if (it == lanes.end()) {
        if (ops.empty()) continue;
        it = lanes.emplace(key, State::Lane{}).first;
      }
      State::Lane& lane = it->second;
      lane.waiting.clear();
      for (auto& [op_key, op] : ops) {
        if (lane.busy && op_key == lane.in_flight_key) continue;
        lane.waiting.emplace_back(std::move(op_key), std::move(op));
      }
      if (!lane.busy && lane.waiting.empty()) {
        state_->EraseLane(it);
        continue;
      }
      if (!lane.busy) start.push_back(key);
    }
  }
  for (const LaneKey& key : start) state_->StartNext(key);
}

bool AgentLanes::SendIfIdle(const std::string& instance_id, AgentRequestKind kind,
                            http::AsyncRequest request) {
  // The request goes to the client as it is, with no operation wrapped around it: the lane is
  // idle and empty, so it is the lane's only work (the object is alive, so the lanes are open).
  LaneKey key;
  {
    MutexLock lock(state_->mu);
    auto [it, made] = state_->lanes.try_emplace(LaneKey{instance_id, kind});
    State::Lane& lane = it->second;
    if (lane.busy || !lane.waiting.empty()) return false;
    lane.busy = true;
    ++state_->in_flight;
    key = it->first;
  }
  state_->client.Send(std::move(request),
                      [self = state_, key = std::move(key)](Result<http::Response> reply) {
                        self->Done(key, std::string(), std::move(reply));
                      });
  return true;
}

void AgentLanes::WaitIdle(const std::vector<std::pair<std::string, AgentRequestKind>>& lanes,
                          std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(state_->mu);
  // The lanes that are busy or hold waiting operations count this call as a waiter; each one
  // that becomes idle (is removed) counts down, and the last one wakes it. A lane seen idle is
  // not looked at again (what starts on it later is not waited for).
  State::Waiter waiter;
  for (const auto& key : lanes) {
    auto it = state_->lanes.find(key);
    if (it == state_->lanes.end()) continue;
    State::Lane& lane = it->second;
    if (std::find(lane.waiters.begin(), lane.waiters.end(), &waiter) != lane.waiters.end()) {
      continue;  // listed twice
    }
    lane.waiters.push_back(&waiter);
    ++waiter.remaining;
  }
  while (waiter.remaining > 0 && state_->changed.WaitUntil(state_->mu, deadline)) {
  }
  if (waiter.remaining == 0) return;
  // Timed out: the lanes still busy or waiting forget this waiter.
  for (auto& [key, lane] : state_->lanes) std::erase(lane.waiters, &waiter);
}

std::vector<AgentReply> AgentLanes::Take() {
  MutexLock lock(state_->mu);
  std::vector<AgentReply> out;
  out.swap(state_->inbox);
  return out;
}

void AgentLanes::Keep(const std::function<bool(const std::string&)>& keep) {
  MutexLock lock(state_->mu);
  for (auto it = state_->lanes.begin(); it != state_->lanes.end();) {
    if (keep(it->first.first)) {
      ++it;
      continue;
    }
    it->second.waiting.clear();
    it = it->second.busy ? std::next(it) : state_->EraseLane(it);
  }
}

size_t AgentLanes::in_flight() const {
  MutexLock lock(state_->mu);
  return state_->in_flight;
}

}  // namespace fleetwatch::server
