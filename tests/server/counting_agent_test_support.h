#pragma once

// A fake agent on loopback for the controller's replica tests: an HTTP server that answers the
// agent API (docs/agent-api.md) from memory and counts what it is asked. Jobs it is asked to
// start run forever. Thread-safe; the destructor stops the server.

#include <boost/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "http/server.h"
#include "util/clock.h"

namespace fleetwatch::server::testing_agents {

namespace json = boost::json;

inline constexpr TimeMicros kAgentNow = 1'800'000'000'000'000;
inline constexpr char kAgentToken[] = "agent-token";

// One agent: jobs it is asked to start run forever. Counts polls and starts; `on_poll`, when
// set, runs (once) inside the next poll, before the reply.
class CountingAgent {
 public:
  explicit CountingAgent(std::string agent_id)
      : agent_id_(std::move(agent_id)),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    port_ = *server_.Start();
  }
  ~CountingAgent() { server_.Stop(); }
  uint16_t port() const { return port_; }
  int polls() const { return polls_.load(); }
  // Jobs this agent started: 1 for a job it was asked to start, however often. Like the real
  // agent it dedups starts by job id (a poll may overtake a start on its way, and the server then
  // sends the start again, by design); a job started by two agents counts 1 on each.
  int starts(const std::string& job_id) {
    std::lock_guard lock(mu_);
    return starts_.count(job_id) ? 1 : 0;
  }
  int all_starts() {
    std::lock_guard lock(mu_);
    return static_cast<int>(starts_.size());
  }
  void OnNextPoll(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    on_poll_ = std::move(fn);
  }

 private:
  http::Response Handle(const http::Request& r) {
    http::Response response;
    response.body = "{}";
    if (r.Header("Authorization") != std::string("Bearer ") + kAgentToken) {
      response.status = 401;
      return response;
    }
    if (r.path == "/api/inventory") {
      response.body = json::serialize(json::value{{"agent_id", agent_id_},
                                                  {"hostname", agent_id_},
                                                  {"cpus", 8},
                                                  {"memory_bytes", int64_t{32} << 30},
                                                  {"gpus", json::array()}});
    } else if (r.path == "/api/poll") {
      std::function<void()> hook;
      {
        std::lock_guard lock(mu_);
        hook.swap(on_poll_);
      }
      if (hook) hook();
      ++polls_;
      std::lock_guard lock(mu_);
      json::array jobs;
      for (const auto& [id, count] : starts_) {
        jobs.push_back(
            json::object{{"job_id", id}, {"state", "running"}, {"started_at", kAgentNow}});
      }
      response.body = json::serialize(
          json::value{{"agent_id", agent_id_}, {"now", kAgentNow}, {"jobs", std::move(jobs)}});
    } else if (r.method == "POST" && r.path == "/api/jobs") {
      std::lock_guard lock(mu_);
      const int received = starts_[json::parse(r.body).at("job_id").as_string().c_str()]++;
      response.status = received == 0 ? 201 : 200;  // 200: already started, as the agent does
    }
    return response;
  }

  const std::string agent_id_;
  std::mutex mu_;
  std::map<std::string, int> starts_;  // job id → start requests received
  std::function<void()> on_poll_;
  std::atomic<int> polls_{0};
  http::Server server_;
  uint16_t port_ = 0;
};

}  // namespace fleetwatch::server::testing_agents
