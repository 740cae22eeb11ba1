#include "server/fleet_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <set>

#include "http/message.h"
#include "server/live_logs.h"

namespace fleetwatch::server {
namespace {

const std::vector<model::RunStatus> kUnfinishedRunStatuses = {
    model::RunStatus::kPending, model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
    model::RunStatus::kRunning, model::RunStatus::kTerminating};

// The job ids the agents reported that are not jobs of the unfinished runs: ended jobs waiting
// for their acknowledgement, or ids that are not the server's.
std::vector<std::string> ReportedOtherJobIds(const ReconcileInput& input) {
  std::set<std::string_view> known;
  for (const model::Run& run : input.runs) {
    for (const model::Job& job : run.jobs) known.insert(job.id);
  }
  std::set<std::string_view> other;
  for (const auto& [instance_id, obs] : input.observations) {
    if (!obs.reached) continue;
    for (const AgentJob& aj : obs.poll.jobs) {
      if (!known.count(aj.job_id)) other.insert(aj.job_id);
    }
  }
  return {other.begin(), other.end()};
}

std::string Describe(const Result<http::Response>& r) {
  if (!r.ok()) return r.status().message();
  if (r->status == 401) return "the agent rejected the token";
  return "the agent answered HTTP " + std::to_string(r->status);
}

}  // namespace

// The log of a job on one instance, for LogCopies.
class InstanceLogSource final : public AgentLogSource {
 public:
  InstanceLogSource(FleetController& controller, const model::Instance& instance)
      : controller_(controller), instance_(instance) {}
  Result<LogChunk> Read(const std::string& job_id, int64_t offset, int64_t limit) override {
    return controller_.ReadAgentLog(instance_, job_id, offset, limit);
  }

 private:
  FleetController& controller_;
  const model::Instance& instance_;
};

FleetController::FleetController(store::Store& store, const Clock& clock, std::mutex& runs_mutex,
                                 http::AsyncClient& client, FleetControllerOptions options)
    : store_(store),
      clock_(clock),
      runs_mutex_(runs_mutex),
      client_(client),
      options_(std::move(options)),
      log_copies_(LogCopyOptions{.dir = options_.log_dir,
                                 .max_bytes = options_.max_log_copy_bytes,
                                 .deadline = options_.log_copy_deadline}),
      polls_(std::make_shared<PollState>()) {}

http::AsyncRequest FleetController::AgentRequest(const model::Instance& instance,
                                                 std::string method, std::string target,
                                                 std::string body) const {
  http::AsyncRequest r;
  r.host = instance.hostname;
  r.port = static_cast<uint16_t>(instance.agent_port);
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  r.headers = {{"Authorization", "Bearer " + instance.agent_token}};
  if (!r.body.empty()) r.headers.emplace_back("Content-Type", "application/json");
  r.timeout = options_.agent_timeout;
  r.max_response_bytes = options_.max_poll_bytes;
  if (instance.tls) r.tls = http::TlsClientOptions{instance.tls_fingerprint, instance.tls_ca_cert};
  return r;
}

void FleetController::LogHostProblem(const model::Instance& instance, const std::string& what) {
  std::lock_guard lock(log_mu_);
  TimeMicros now = clock_.Now();
  auto it = last_logged_.find(instance.id);
  if (it != last_logged_.end() && now - it->second < 60'000'000) return;
  last_logged_[instance.id] = now;
  spdlog::warn("instance {} ({}:{}): {}", instance.name, instance.hostname, instance.agent_port,
               what);
}

// Poll replies as they arrive, per instance. Shared with the AsyncClient's callbacks, which may
// outlive a tick (a slow host answers during a later one).
struct FleetController::PollState {
  std::mutex mu;
  std::condition_variable arrived;
  std::set<std::string> in_flight;                      // instance ids
  std::map<std::string, Result<http::Response>> ready;  // replies not yet used by a tick
};

void FleetController::NoteHostProblem(const std::string& instance_id, std::string what) {
  std::lock_guard lock(log_mu_);
  if (what.empty()) {
    host_problems_.erase(instance_id);
  } else {
    host_problems_.insert_or_assign(instance_id, std::move(what));
  }
}

std::map<std::string, std::string> FleetController::HostProblems() const {
  std::lock_guard lock(log_mu_);
  return host_problems_;
}

InstanceObservation FleetController::ObservationOf(const model::Instance& instance,
                                                   const Result<http::Response>& reply) {
  InstanceObservation obs;
  if (!reply.ok() || reply->status != 200) {
    obs.error = Describe(reply);
    LogHostProblem(instance, obs.error);
    NoteHostProblem(instance.id, obs.error);
    ++bad_replies_;
    return obs;
  }
  Result<AgentPoll> poll = ParseAgentPoll(reply->body);
  if (!poll.ok()) {
    // A malformed or partial reply loses this host's tick, nothing else.
    obs.error = poll.status().message();
    LogHostProblem(instance, obs.error);
    NoteHostProblem(instance.id, obs.error);
    ++bad_replies_;
    return obs;
  }
  NoteHostProblem(instance.id, "");
  obs.reached = true;
  obs.poll = std::move(poll).value();
  return obs;
}

std::map<std::string, InstanceObservation> FleetController::Observe(
    const std::vector<model::Instance>& instances, bool with_metrics) {
  // Send a poll to every host that has none in flight; a host still busy with an earlier one
  // (slow, or silent until its timeout) is simply not asked again.
  std::set<std::string> asked;
  {
    // Problems of instances that are gone (deleted fleets) are forgotten.
    std::set<std::string> known;
    for (const model::Instance& i : instances) known.insert(i.id);
    std::lock_guard lock(log_mu_);
    std::erase_if(host_problems_, [&](const auto& entry) { return !known.contains(entry.first); });
  }
  for (const model::Instance& i : instances) {
    if (i.status == model::InstanceStatus::kTerminated) continue;
    if (!i.tls && i.backend != "local" && plain_http_warned_.insert(i.id).second) {
      spdlog::warn(
          "instance {} ({}:{}): plain HTTP (tls: false): the agent token and all job "
          "data cross the network unencrypted",
          i.name, i.hostname, i.agent_port);
    }
    {
      std::lock_guard lock(polls_->mu);
      if (!polls_->in_flight.insert(i.id).second) continue;
    }
    asked.insert(i.id);
    client_.Send(AgentRequest(i, "GET",
                              !with_metrics           ? "/api/poll"
                              : options_.collect_dcgm ? "/api/poll?metrics=1&dcgm=1"
                                                      : "/api/poll?metrics=1"),
                 [state = polls_, id = i.id](Result<http::Response> reply) {
                   std::lock_guard lock(state->mu);
                   state->in_flight.erase(id);
                   state->ready.insert_or_assign(id, std::move(reply));
                   state->arrived.notify_all();
                 });
  }
  // Wait for this tick's replies, but never longer than the tick budget: what arrives later is
  // used by the next tick.
  std::map<std::string, Result<http::Response>> replies;
  {
    std::unique_lock lock(polls_->mu);
    polls_->arrived.wait_for(lock, options_.tick_budget, [&] {
      for (const std::string& id : asked) {
        if (polls_->in_flight.count(id)) return false;
      }
      return true;
    });
    replies.swap(polls_->ready);
  }

  std::map<std::string, InstanceObservation> observations;
  std::vector<const model::Instance*> need_inventory;
  std::vector<http::AsyncRequest> inventory_requests;
  // An agent that answers to another instance gets no inventory request either (reconciler.h).
  const std::map<std::string, std::string> owners = AgentIdOwners(instances);
  for (const model::Instance& instance : instances) {
    auto reply = replies.find(instance.id);
    if (reply == replies.end()) continue;
    InstanceObservation& obs = observations[instance.id] = ObservationOf(instance, reply->second);
    auto owner = obs.reached ? owners.find(obs.poll.agent_id) : owners.end();
    if (owner != owners.end() && owner->second != instance.id) continue;
    if (obs.reached && (instance.resources.cpus == 0 || obs.poll.agent_id != instance.agent_id)) {
      need_inventory.push_back(&instance);
      inventory_requests.push_back(AgentRequest(instance, "GET", "/api/inventory"));
    }
  }
  if (!inventory_requests.empty()) {
    // First contact or a restarted agent: rare, so a plain wait is fine here.
    std::vector<Result<http::Response>> inventories =
        client_.SendAll(std::move(inventory_requests));
    for (size_t k = 0; k < need_inventory.size(); ++k) {
      const model::Instance& instance = *need_inventory[k];
      const Result<http::Response>& reply = inventories[k];
      if (!reply.ok() || reply->status != 200) {
        LogHostProblem(instance, "inventory: " + Describe(reply));
        continue;
      }
      Result<AgentInventory> inventory = ParseAgentInventory(reply->body);
      if (!inventory.ok()) {
        LogHostProblem(instance, inventory.status().message());
        continue;
      }
      InstanceObservation& obs = observations[instance.id];
      if (inventory->agent_id != obs.poll.agent_id) {
        // Restarted between the two requests, or not an honest agent: ask again next tick.
        LogHostProblem(instance, "inventory: the agent id differs from its poll's");
        continue;
      }
      obs.inventory = std::move(inventory).value();
    }
  }
  return observations;
}

Status FleetController::Tick() {
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> polled, store_.ListInstances(""));
  TimeMicros started = clock_.Now();
  bool with_metrics = started >= next_metrics_at_;
  if (with_metrics) {
    next_metrics_at_ =
        started +
        std::chrono::duration_cast<std::chrono::microseconds>(options_.metrics_interval).count();
  }
  std::map<std::string, InstanceObservation> observations = Observe(polled, with_metrics);
  std::vector<model::Run> active_runs;

  ReconcileOutput out;
  {
    std::lock_guard lock(runs_mutex_);
    ReconcileInput input;
    FW_ASSIGN_OR_RETURN(input.instances, store_.ListInstances(""));
    FW_ASSIGN_OR_RETURN(input.runs, store_.ListRunsWithStatus(kUnfinishedRunStatuses));
    input.now = clock_.Now();
    input.observations = std::move(observations);
    FW_ASSIGN_OR_RETURN(input.ended_jobs, store_.ListJobsByIds(ReportedOtherJobIds(input)));
    out = Reconcile(input, options_.reconcile);
    for (const model::Instance& instance : out.instances) {
      Status s = store_.UpdateInstance(instance);
      if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
    }
    for (const model::Run& run : out.runs) FW_RETURN_IF_ERROR(store_.UpdateRun(run));
    NoteRunEvents(input.runs, out.runs);
    active_runs = std::move(input.runs);
    observations = std::move(input.observations);
  }
  if (with_metrics) Collect(observations, active_runs);
  if (with_metrics && options_.collect_dcgm) KeepDcgm(observations);
  for (const std::string& event : out.events) spdlog::info("{}", event);
  Execute(out.commands);
  return Status::Ok();
}

void FleetController::Collect(const std::map<std::string, InstanceObservation>& observations,
                              const std::vector<model::Run>& runs) {
  if (!last_points_loaded_) {
    Result<std::vector<std::pair<std::string, TimeMicros>>> latest =
        store_.LatestMetricsOfUnfinishedJobs();
    if (!latest.ok()) {
      spdlog::warn("metrics: {}", latest.status().ToString());
      return;
    }
    for (const auto& [job_id, at] : *latest) last_point_[job_id] = at;
    last_points_loaded_ = true;
  }
  std::map<std::string, const std::string*> running_on;  // job id → instance id
  for (const model::Run& run : runs) {
    for (const model::Job& job : run.jobs) {
      if (job.instance_id && !model::IsFinished(job.status)) running_on[job.id] = &*job.instance_id;
    }
  }
  std::vector<model::JobMetricsPoint> batch;
  for (const auto& [instance_id, obs] : observations) {
    if (!obs.reached) continue;
    for (const AgentJob& aj : obs.poll.jobs) {
      if (!aj.metrics) continue;
      auto on = running_on.find(aj.job_id);
      if (on == running_on.end() || *on->second != instance_id) continue;
      auto last = last_point_.find(aj.job_id);
      if (last != last_point_.end() &&
          aj.metrics->timestamp_micro - last->second < options_.min_point_spacing) {
        continue;
      }
      batch.push_back(*aj.metrics);
    }
  }
  // Forget jobs that ended; their points stay in the store.
  std::erase_if(last_point_, [&](const auto& entry) { return !running_on.count(entry.first); });
  if (batch.empty()) return;
  Status s = store_.AddJobMetricsPoints(batch);
  if (!s.ok()) {
    spdlog::warn("metrics: storing {} points: {}", batch.size(), s.ToString());
    return;
  }
  for (const model::JobMetricsPoint& p : batch) last_point_[p.job_id] = p.timestamp_micro;
  points_stored_ += batch.size();
}

void FleetController::KeepDcgm(const std::map<std::string, InstanceObservation>& observations) {
  std::lock_guard lock(events_mu_);
  for (const auto& [instance_id, obs] : observations) {
    if (obs.reached && obs.poll.dcgm) dcgm_[instance_id] = obs.poll.dcgm.value();
  }
}

std::vector<DcgmReport> FleetController::TakeDcgmReports() {
  std::map<std::string, AgentDcgm> taken;
  {
    std::lock_guard lock(events_mu_);
    taken.swap(dcgm_);
  }
  std::vector<DcgmReport> out;
  out.reserve(taken.size());
  for (auto& [instance_id, dcgm] : taken) out.push_back({instance_id, std::move(dcgm)});
  return out;
}

void FleetController::NoteRunEvents(const std::vector<model::Run>& before,
                                    const std::vector<model::Run>& changed) {
  auto placed = [](const model::Run& run) {
    return std::any_of(run.jobs.begin(), run.jobs.end(),
                       [](const model::Job& j) { return j.instance_id.has_value(); });
  };
  std::map<std::string_view, const model::Run*> after;
  for (const model::Run& run : changed) after[run.id] = &run;
  TimeMicros now = clock_.Now();
  std::lock_guard lock(events_mu_);
  for (const model::Run& run : before) {
    if (placed(run)) continue;
    auto it = after.find(run.id);
    const model::Run& now_run = it != after.end() ? *it->second : run;
    if (placed(now_run)) {
      run_events_.provisioned.push_back(
          {run.project_name, run.type,
           static_cast<double>(std::max<TimeMicros>(0, now - run.submitted_at)) / 1e6});
      waiting_runs_.erase(run.id);
    } else if (!model::IsFinished(now_run.status) && waiting_runs_.insert(run.id).second) {
      run_events_.pending.push_back({run.project_name, run.type});
    }
  }
  // Runs that ended (here or through the API) without ever being placed stop waiting.
  std::set<std::string_view> unfinished;
  for (const model::Run& run : before) unfinished.insert(run.id);
  std::erase_if(waiting_runs_, [&](const std::string& id) {
    auto it = after.find(id);
    return !unfinished.count(id) || (it != after.end() && model::IsFinished(it->second->status));
  });
}

RunEvents FleetController::TakeRunEvents() {
  std::lock_guard lock(events_mu_);
  RunEvents out = std::move(run_events_);
  run_events_ = RunEvents{};
  return out;
}

void FleetController::Execute(const std::vector<AgentCommand>& commands) {
  if (commands.empty()) return;
  Result<std::vector<model::Instance>> listed = store_.ListInstances("");
  if (!listed.ok()) return;
  std::map<std::string, model::Instance> instances;
  for (auto& i : *listed) instances[i.id] = std::move(i);

  std::vector<http::AsyncRequest> requests;
  std::vector<const AgentCommand*> sent;
  for (const AgentCommand& c : commands) {
    auto it = instances.find(c.instance_id);
    if (it == instances.end()) continue;
    const std::string job_path = "/api/jobs/" + http::UrlEncode(c.job_id);
    switch (c.kind) {
      case AgentCommand::Kind::kStart:
        requests.push_back(
            AgentRequest(it->second, "POST", "/api/jobs", StartJobRequestToJson(c.start)));
        break;
      case AgentCommand::Kind::kStop:
        requests.push_back(
            AgentRequest(it->second, "POST", job_path + "/stop",
                         "{\"grace_seconds\":" + std::to_string(c.grace_seconds) + "}"));
        break;
      case AgentCommand::Kind::kForget:
        requests.push_back(AgentRequest(it->second, "DELETE", job_path));
        break;
      case AgentCommand::Kind::kAcknowledge:
        continue;  // below, each after its log copy
    }
    sent.push_back(&c);
  }
  std::vector<Result<http::Response>> replies = client_.SendAll(std::move(requests));
  std::map<std::string, std::string> refused;  // job id → why the agent refused to start it
  for (size_t k = 0; k < sent.size(); ++k) {
    const AgentCommand& c = *sent[k];
    const Result<http::Response>& reply = replies[k];
    if (reply.ok() && reply->status >= 200 && reply->status < 300) continue;
    if (c.kind == AgentCommand::Kind::kForget && reply.ok() && reply->status == 404) continue;
    const model::Instance& instance = instances.at(c.instance_id);
    if (c.kind == AgentCommand::Kind::kStart && reply.ok() && reply->status >= 400 &&
        reply->status < 500 && reply->status != 401) {
      refused[c.job_id] = reply->body.substr(0, 500);
    }
    // Otherwise the next tick retries: starts, stops and forgets are idempotent.
    const char* what = c.kind == AgentCommand::Kind::kStart  ? "start "
                       : c.kind == AgentCommand::Kind::kStop ? "stop "
                                                             : "forget ";
    LogHostProblem(instance, what + c.job_id + ": " + Describe(reply));
  }
  if (!refused.empty()) FailJobs(refused);

  Acknowledge(instances, commands);
}

void FleetController::Acknowledge(const std::map<std::string, model::Instance>& instances,
                                  const std::vector<AgentCommand>& commands) {
  std::map<std::string, std::vector<const AgentCommand*>> by_host;  // instance id → its acks
  for (const AgentCommand& c : commands) {
    if (c.kind == AgentCommand::Kind::kAcknowledge && instances.count(c.instance_id)) {
      by_host[c.instance_id].push_back(&c);
    }
  }
  if (by_host.empty()) return;
  // One copy per host in turn, from a different host each tick, while the tick's budget lasts:
  // a slow or hostile host delays the others by at most one copy, and the acknowledgements left
  // over are decided again by the next tick.
  std::vector<const std::vector<const AgentCommand*>*> hosts;
  for (const auto& [instance_id, acks] : by_host) hosts.push_back(&acks);
  std::rotate(hosts.begin(),
              hosts.begin() + static_cast<std::ptrdiff_t>(copy_turn_++ % hosts.size()),
              hosts.end());
  const auto budget_ends = std::chrono::steady_clock::now() + options_.tick_budget;
  for (size_t round = 0;; ++round) {
    bool any = false;
    for (const std::vector<const AgentCommand*>* acks : hosts) {
      if (round >= acks->size()) continue;
      if (std::chrono::steady_clock::now() > budget_ends) return;
      any = true;
      const AgentCommand& c = *(*acks)[round];
      const model::Instance& instance = instances.at(c.instance_id);
      // The command's job id is the server's own (Reconcile acknowledges only jobs it placed on
      // that instance), so the copy's path is built from the server's id.
      InstanceLogSource source(*this, instance);
      if (Status copied = log_copies_.Copy(c.job_id, source); !copied.ok()) {
        // Keep the job on the agent: a later tick copies again.
        LogHostProblem(instance, "copy the log of " + c.job_id + ": " + copied.message());
        continue;
      }
      auto reply = client_.SendAll(
          {AgentRequest(instance, "DELETE", "/api/jobs/" + http::UrlEncode(c.job_id))});
      if (!reply[0].ok() || (reply[0]->status != 200 && reply[0]->status != 404)) {
        LogHostProblem(instance, "acknowledge " + c.job_id + ": " + Describe(reply[0]));
      }
    }
    if (!any) return;
  }
}

void FleetController::FailJobs(const std::map<std::string, std::string>& job_errors) {
  std::lock_guard lock(runs_mutex_);
  Result<std::vector<model::Run>> runs = store_.ListRunsWithStatus(kUnfinishedRunStatuses);
  if (!runs.ok()) return;
  for (model::Run& run : *runs) {
    bool changed = false;
    for (model::Job& job : run.jobs) {
      auto it = job_errors.find(job.id);
      if (it == job_errors.end() || job.status != model::JobStatus::kProvisioning) continue;
      spdlog::warn("job {}: the agent refused to start it: {}", job.job_name, it->second);
      job.status = model::JobStatus::kFailed;
      job.termination_reason = model::JobTerminationReason::kExecutorError;
      job.finished_at = clock_.Now();
      changed = true;
    }
    if (changed) {
      Status s = store_.UpdateRun(run);
      if (!s.ok()) spdlog::error("recording refused starts: {}", s.ToString());
    }
  }
}

Result<LogChunk> FleetController::ReadAgentLog(const model::Instance& instance,
                                               const std::string& job_id, int64_t offset,
                                               int64_t limit) {
  auto reply = client_.SendAll({AgentLogRequest(instance, job_id, offset, limit,
                                                options_.agent_timeout, options_.max_poll_bytes)});
  return AgentLogReply(instance, job_id, std::move(reply[0]), offset, limit);
}

}  // namespace fleetwatch::server
