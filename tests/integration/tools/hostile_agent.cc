// fleetwatch-hostile-agent: the agent API (docs/agent-api.md) as a host that wants to hurt the
// server would serve it, for hostile_agent_test.cc.
//
// Every other poll carries job ids that try to name files outside the server's log dir
// (--path-ids, e.g. "../../x" and "/abs/path/x"), which makes that whole reply bad. The polls in
// between are well-formed and report: the victim ids (--victim-ids, real jobs of other projects)
// as ended or running, --new-ids-per-poll fresh ids that the server never placed here (half
// running, half ended), and the jobs the server did start here (POST /api/jobs), as ended at
// once. Every job's log is --log-bytes long. With --agent-id the host claims another agent's id.
//
// With --slow-ms every agent endpoint answers that late (a host slow on every endpoint), and
// with --keep-running the jobs the server starts run until it stops them. With --gpus the host
// has that many GPUs, and its polls carry metrics points for running jobs (metrics=1) and a DCGM
// text for its GPUs (dcgm=1), like a real agent's.
// With --slow-logs the host is slow where it hurts the API: the jobs the server starts here stay
// running, and every log read is held unanswered (without holding a thread) until
// POST /hostile/recover (no token), which answers the held reads and every later one at once.
//
// GET /hostile/stats (no token) says what the server asked for, for the test's assertions.
// SIGTERM or SIGINT stops it.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http/deferred.h"
#include "http/message.h"
#include "http/router.h"
#include "http/server.h"
#include "util/clock.h"
#include "util/signals.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

struct Flags {
  std::string token;
  std::string agent_id = "hostile-agent";
  std::vector<std::string> path_ids;
  std::vector<std::string> victim_ids;
  int new_ids_per_poll = 1000;
  int64_t log_bytes = 4 << 20;
  int slow_ms = 0;
  bool keep_running = false;
  int gpus = 0;
  bool slow_logs = false;
};

// The log every job has: lines of a known shape, so a test can tell which part it holds.
char LogByte(int64_t i) {
  constexpr std::string_view kLine = "hostile log line, filler to make it long enough to count\n";
  return kLine[static_cast<size_t>(i % static_cast<int64_t>(kLine.size()))];
}

class HostileAgent {
 public:
  explicit HostileAgent(Flags flags) : flags_(std::move(flags)) {
    router_.Add("GET", "/api/healthcheck", [this](http::Request&) {
      return Json(json::object{{"service", "fleetwatch-agent"},
                               {"version", "0.1.0"},
                               {"agent_id", flags_.agent_id},
                               {"started_at", started_at_}});
    });
    router_.Add("GET", "/api/inventory", [this](http::Request&) {
      json::array gpus;
      for (int k = 0; k < flags_.gpus; ++k) {
        gpus.push_back(json::object{{"index", k},
                                    {"name", "NVIDIA H100 80GB HBM3"},
                                    {"memory_bytes", int64_t{80} << 30},
                                    {"uuid", GpuUuid(k)},
                                    {"vendor", "nvidia"}});
      }
      return Json(json::object{{"agent_id", flags_.agent_id},
                               {"hostname", "hostile"},
                               {"cpus", 64},
                               {"memory_bytes", int64_t{256} << 30},
                               {"cgroup", "none"},
                               {"gpus", std::move(gpus)}});
    });
    router_.Add("GET", "/api/poll", [this](http::Request& r) {
      return Poll(r.query.count("metrics") && r.query.at("metrics") == "1",
                  r.query.count("dcgm") && r.query.at("dcgm") == "1");
    });
    router_.Add("POST", "/api/jobs", [this](http::Request& r) { return Start(r); });
    router_.Add("POST", "/api/jobs/{job_id}/stop", [this](http::Request& r) {
      return Command(r.path_params.at("job_id"), /*forget=*/false);
    });
    router_.Add("DELETE", "/api/jobs/{job_id}", [this](http::Request& r) {
      return Command(r.path_params.at("job_id"), /*forget=*/true);
    });
    router_.Add("GET", "/api/jobs/{job_id}/logs", [this](http::Request& r) { return Logs(r); });
  }

  http::Response Handle(http::Request& request) {
    if (request.path == "/hostile/stats") return Stats();
    if (request.path == "/hostile/recover" && request.method == "POST") return Recover();
    if (request.Header("authorization") != "Bearer " + flags_.token) {
      return http::JsonError(401, "unauthenticated", "missing or wrong agent token");
    }
    if (flags_.slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(flags_.slow_ms));
    return router_.Dispatch(request);
  }

 private:
  static http::Response Json(const json::value& v, int status = 200) {
    http::Response r;
    r.status = status;
    r.body = json::serialize(v);
    return r;
  }

  static std::string GpuUuid(int k) { return "GPU-hostile-" + std::to_string(k); }

  json::object JobState(const std::string& id, bool running) const {
    return json::object{{"job_id", id},
                        {"state", running ? "running" : "exited"},
                        {"pid", 4242},
                        {"exit_code", running ? json::value(nullptr) : json::value(0)},
                        {"signal", nullptr},
                        {"stop_requested", false},
                        {"started_at", started_at_},
                        {"finished_at", running ? json::value(nullptr) : json::value(started_at_)},
                        {"error", nullptr}};
  }

  http::Response Poll(bool with_metrics, bool with_dcgm) {
    std::lock_guard lock(mu_);
    ++polls_;
    if (with_metrics) ++metrics_polls_;
    if (with_dcgm) ++dcgm_polls_;
    const TimeMicros now = SystemClock::Get().Now();
    max_foreign_commands_ = std::max(max_foreign_commands_, foreign_commands_since_poll_);
    max_placed_copies_ = std::max(max_placed_copies_, placed_logs_since_poll_.size());
    foreign_commands_since_poll_ = 0;
    placed_logs_since_poll_.clear();
    json::array jobs;
    if (polls_ % 2 == 0) {
      // Ids that are paths: the whole reply must be refused.
      for (const std::string& id : flags_.path_ids) jobs.push_back(JobState(id, false));
    } else {
      for (size_t k = 0; k < flags_.victim_ids.size(); ++k) {
        jobs.push_back(JobState(flags_.victim_ids[k], k % 2 == 1));
      }
      for (int k = 0; k < flags_.new_ids_per_poll; ++k) {
        jobs.push_back(JobState("hostile-" + std::to_string(next_id_++), k % 2 == 0));
      }
    }
    for (const std::string& id : placed_) {
      if (acknowledged_.count(id)) continue;
      const bool running = (flags_.keep_running || flags_.slow_logs) && !stopped_.count(id);
      json::object job = JobState(id, running);
      if (with_metrics) {
        json::array gpus;
        for (int k = 0; k < flags_.gpus; ++k) {
          gpus.push_back(
              json::object{{"gpu_memory_usage_bytes", int64_t{1} << 30}, {"gpu_util_percent", 40}});
        }
        job["metrics"] = running
                             ? json::value(json::object{{"timestamp_micro", now},
                                                        {"cpu_usage_micro", 12'000'000},
                                                        {"memory_usage_bytes", 300'000'000},
                                                        {"memory_working_set_bytes", 280'000'000},
                                                        {"gpus", std::move(gpus)}})
                             : json::value(nullptr);
      }
      jobs.push_back(std::move(job));
    }
    json::object reply{{"agent_id", flags_.agent_id}, {"now", now}, {"jobs", std::move(jobs)}};
    if (with_dcgm) {
      std::string text =
          "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
          "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n";
      for (int k = 0; k < flags_.gpus; ++k) {
        text += "DCGM_FI_DEV_GPU_UTIL{gpu=\"" + std::to_string(k) + "\",UUID=\"" + GpuUuid(k) +
                "\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"hostile\"} 97\n";
      }
      reply["dcgm"] = flags_.gpus > 0
                          ? json::value(json::object{{"collected_at", now}, {"text", text}})
                          : json::value(nullptr);
    }
    return Json(reply);
  }

  http::Response Start(const http::Request& request) {
    json::error_code ec;
    json::value body = json::parse(request.body, ec);
    const json::value* id =
        ec || !body.is_object() ? nullptr : body.as_object().if_contains("job_id");
    if (id == nullptr || !id->is_string())
      return http::JsonError(400, "invalid_argument", "job_id");
    std::string job_id(id->as_string());
    std::lock_guard lock(mu_);
    placed_.insert(job_id);
    return Json(JobState(job_id, flags_.slow_logs), 201);
  }

  http::Response Command(const std::string& job_id, bool forget) {
    std::lock_guard lock(mu_);
    if (placed_.count(job_id)) {
      if (forget) acknowledged_.insert(job_id);
      if (!forget) stopped_.insert(job_id);
    } else {
      ++foreign_commands_since_poll_;
      ++(forget ? forgets_ : stops_);
    }
    return Json(JobState(job_id, false));
  }

  http::Response Logs(const http::Request& request) {
    const std::string& job_id = request.path_params.at("job_id");
    int64_t offset = 0, limit = 1 << 20;
    if (auto it = request.query.find("offset"); it != request.query.end()) {
      offset = std::stoll(it->second);
    }
    if (auto it = request.query.find("limit"); it != request.query.end()) {
      limit = std::min<int64_t>(limit, std::stoll(it->second));
    }
    {
      std::lock_guard lock(mu_);
      if (placed_.count(job_id)) {
        placed_logs_since_poll_.insert(job_id);
        ++placed_log_reads_;
      } else {
        ++foreign_log_reads_;
      }
    }
    http::Response r;
    r.content_type = "application/octet-stream";
    for (int64_t i = offset; i < std::min(flags_.log_bytes, offset + limit); ++i) {
      r.body.push_back(LogByte(i));
    }
    r.headers.emplace_back("X-Log-Size", std::to_string(flags_.log_bytes));
    std::lock_guard lock(mu_);
    if (!flags_.slow_logs || recovered_) return r;
    auto [now, later] = http::DeferResponse();
    held_.emplace_back(std::move(later), std::move(r));
    ++held_log_reads_;
    return std::move(now);
  }

  // Stops being slow: the held log reads are answered now, later ones at once.
  http::Response Recover() {
    std::vector<std::pair<http::Responder, http::Response>> held;
    {
      std::lock_guard lock(mu_);
      recovered_ = true;
      held.swap(held_);
    }
    for (auto& [responder, response] : held) responder.Send(std::move(response));
    return Json(json::object{{"answered", held.size()}});
  }

  http::Response Stats() {
    std::lock_guard lock(mu_);
    json::array acknowledged(acknowledged_.begin(), acknowledged_.end());
    return Json(json::object{{"polls", polls_},
                             {"metrics_polls", metrics_polls_},
                             {"dcgm_polls", dcgm_polls_},
                             {"stopped", stopped_.size()},
                             {"placed", placed_.size()},
                             {"acknowledged", std::move(acknowledged)},
                             {"stops", stops_},
                             {"forgets", forgets_},
                             {"foreign_log_reads", foreign_log_reads_},
                             {"placed_log_reads", placed_log_reads_},
                             {"max_foreign_commands_between_polls", max_foreign_commands_},
                             {"max_placed_copies_between_polls", max_placed_copies_},
                             {"held_log_reads", held_log_reads_},
                             {"holding_log_reads", held_.size()}});
  }

  const Flags flags_;
  const TimeMicros started_at_ = SystemClock::Get().Now();
  http::Router router_;
  std::mutex mu_;
  int64_t polls_ = 0;
  int64_t metrics_polls_ = 0;
  int64_t dcgm_polls_ = 0;
  std::set<std::string> stopped_;  // placed jobs the server stopped
  int64_t next_id_ = 0;
  std::set<std::string> placed_;        // started by the server
  std::set<std::string> acknowledged_;  // of those, deleted by the server
  int64_t stops_ = 0;                   // of jobs the server did not place here
  int64_t forgets_ = 0;
  int64_t foreign_log_reads_ = 0;
  int64_t placed_log_reads_ = 0;
  int64_t foreign_commands_since_poll_ = 0;
  int64_t max_foreign_commands_ = 0;
  std::set<std::string> placed_logs_since_poll_;
  size_t max_placed_copies_ = 0;
  // --slow-logs: log reads not answered yet, each with its answer; until POST /hostile/recover.
  std::vector<std::pair<http::Responder, http::Response>> held_;
  int64_t held_log_reads_ = 0;  // ever held
  bool recovered_ = false;
};

int Run(const Flags& flags) {
  const TerminationSignals signals;
  HostileAgent agent(flags);
  http::ServerOptions options;
  // A slow host still answers every request it gets (several lanes of the server at once).
  options.threads = flags.slow_ms > 0 ? 16 : 2;
  http::Server server(options, [&agent](http::Request& r) { return agent.Handle(r); });
  Result<uint16_t> port = server.Start();
  if (!port.ok()) {
    std::cerr << "error: " << port.status().message() << "\n";
    return 1;
  }
  std::cout << "listening on http://127.0.0.1:" << *port << std::endl;
  signals.Wait();
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace fleetwatch::testing

int main(int argc, char** argv) {
  fleetwatch::testing::Flags flags;
  CLI::App app{"A hostile fleetwatch agent, for tests", "fleetwatch-hostile-agent"};
  app.add_option("--token", flags.token, "The bearer token the server sends")->required();
  app.add_option("--agent-id", flags.agent_id, "The agent id to claim");
  app.add_option("--path-ids", flags.path_ids, "Job ids that are paths");
  app.add_option("--victim-ids", flags.victim_ids, "Real job ids of other projects");
  app.add_option("--new-ids-per-poll", flags.new_ids_per_poll, "Fresh job ids in each poll");
  app.add_option("--log-bytes", flags.log_bytes, "Length of every job's log");
  app.add_option("--slow-ms", flags.slow_ms, "Answer every agent request this late");
  app.add_flag("--keep-running", flags.keep_running, "Placed jobs run until stopped");
  app.add_option("--gpus", flags.gpus, "GPUs of the host, with metrics and DCGM text");
  app.add_flag("--slow-logs", flags.slow_logs,
               "Keep started jobs running and hold log reads until POST /hostile/recover");
  CLI11_PARSE(app, argc, argv);
  return fleetwatch::testing::Run(flags);
}
