#include "server/fleet_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <set>
#include <string_view>
#include <unordered_set>

#include "http/message.h"
#include "server/acknowledgements.h"
#include "server/dcgm_poll_reply.h"
#include "server/gpu_health.h"
#include "server/utilization_policy.h"
#include "store/change_keys.h"
#include "util/check.h"

namespace fleetwatch::server {
namespace {

constexpr size_t kDcgmReadBufferBytes = 32 << 10;  // a metrics poll's receive buffer

const std::vector<model::RunStatus> kUnfinishedRunStatuses = {
    model::RunStatus::kPending, model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
    model::RunStatus::kRunning, model::RunStatus::kTerminating};

// The job ids the agents reported that are not jobs of the unfinished runs (`known`): ended jobs
// waiting for their acknowledgement, or ids that are not the server's.
std::vector<std::string> ReportedOtherJobIds(const ReconcileInput& input,
                                             const std::unordered_set<std::string>& known) {
  std::set<std::string_view> other;
  for (const auto& [instance_id, obs] : input.observations) {
    if (!obs.reached) continue;
    for (const AgentJob& aj : obs.poll.jobs) {
      if (!known.count(aj.job_id)) other.insert(aj.job_id);
    }
  }
  return {other.begin(), other.end()};
}

// `newer` keeps what it has and takes from `older` what only the older carries: points of jobs
// it reports without any, and the DCGM text.
void MergeMetrics(AgentPoll& older, AgentPoll& newer) {
  std::map<std::string_view, AgentJob*> by_id;
  for (AgentJob& j : older.jobs) {
    if (j.metrics) by_id[j.job_id] = &j;
  }
  for (AgentJob& j : newer.jobs) {
    if (j.metrics) continue;
    auto it = by_id.find(j.job_id);
    if (it != by_id.end()) j.metrics = std::move(it->second->metrics);
  }
  if (!newer.dcgm && older.dcgm) newer.dcgm = std::move(older.dcgm);
}

std::string Describe(const Result<http::Response>& r) {
  if (!r.ok()) return r.status().message();
  if (r->status == 401) return "the agent rejected the token";
  return "the agent answered HTTP " + std::to_string(r->status);
}

}  // namespace

FleetController::FleetController(store::Store& store, const Clock& clock, Mutex& runs_mutex,
                                 http::AsyncClient& client, FleetControllerOptions options)
    : store_(store),
      clock_(clock),
      runs_mutex_(runs_mutex),
      client_(client),
      options_(std::move(options)),
      log_copies_(LogCopyOptions{.dir = options_.log_dir,
                                 .store = &store_,
                                 .max_bytes = options_.max_log_copy_bytes,
                                 .deadline = options_.log_copy_deadline}),
      lanes_(std::make_unique<AgentLanes>(client)) {}

FleetController::~FleetController() = default;

http::AsyncRequest FleetController::AgentRequest(const model::Instance& instance,
                                                 std::string method, std::string target,
                                                 std::string body) const {
  return AgentHttpRequest(instance, std::move(method), std::move(target), std::move(body),
                          options_.agent_timeout, options_.max_poll_bytes);
}

void FleetController::LogHostProblem(const model::Instance& instance, const std::string& what) {
  MutexLock lock(log_mu_);
  TimeMicros now = clock_.Now();
  auto it = last_logged_.find(instance.id);
  if (it != last_logged_.end() && now - it->second < 60'000'000) return;
  last_logged_[instance.id] = now;
  spdlog::warn("instance {} ({}:{}): {}", instance.name, instance.hostname, instance.agent_port,
               what);
}

void FleetController::NoteHostProblem(const std::string& instance_id, std::string what) {
  MutexLock lock(log_mu_);
  if (what.empty()) {
    host_problems_.erase(instance_id);
  } else {
    host_problems_.insert_or_assign(instance_id, std::move(what));
  }
}

std::map<std::string, std::string> FleetController::HostProblems() const {
  MutexLock lock(log_mu_);
  return host_problems_;
}

InstanceObservation FleetController::ObservationOf(const model::Instance& instance,
                                                   Result<http::Response>& reply) {
  InstanceObservation obs;
  if (!reply.ok() || reply->status != 200) {
    obs.error = Describe(reply);
    LogHostProblem(instance, obs.error);
    NoteHostProblem(instance.id, obs.error);
    ++bad_replies_;
    return obs;
  }
  // Consumes the body: a DCGM text after the JSON becomes the poll's without a copy.
  AgentPollParser& parser = poll_parsers_[instance.id];
  Result<AgentPoll> poll = ParsePollReply(*reply, parser);
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
  obs.poll_generation = parser.generation();
  return obs;
}

void FleetController::TakeReplies(const InstancesById& by_id,
                                  std::map<std::string, std::string>& refused) {
  for (AgentReply& r : lanes_->Take()) {
    auto it = by_id.find(r.instance_id);
    if (it == by_id.end()) continue;  // the instance is gone
    const model::Instance& instance = *it->second;
    switch (r.kind) {
      case AgentRequestKind::kPoll: {
        InstanceObservation obs = ObservationOf(instance, r.reply);
        auto [earlier, first] = replies_.try_emplace(r.instance_id, std::move(obs));
        if (!first) {
          // A newer reply replaces an older one not used yet; what only the older one carries
          // (the points and DCGM text of a metrics poll) is kept.
          // A failed newer reply leaves the older, successful one in place (the failure is
          // counted and logged all the same).
          InstanceObservation& older = earlier->second;
          if (obs.reached || !older.reached) {
            if (older.reached && obs.reached) MergeMetrics(older.poll, obs.poll);
            older = std::move(obs);
          }
        }
        break;
      }
      case AgentRequestKind::kInventory: {
        if (!r.reply.ok() || r.reply->status != 200) {
          LogHostProblem(instance, "inventory: " + Describe(r.reply));
          break;
        }
        Result<AgentInventory> inventory = ParseAgentInventory(r.reply->body);
        if (!inventory.ok()) {
          LogHostProblem(instance, inventory.status().message());
          break;
        }
        inventories_.insert_or_assign(r.instance_id, std::move(inventory).value());
        break;
      }
      case AgentRequestKind::kStart:
      case AgentRequestKind::kStop:
      case AgentRequestKind::kForget: {
        const Result<http::Response>& reply = r.reply;
        if (reply.ok() && reply->status >= 200 && reply->status < 300) break;
        if (r.kind == AgentRequestKind::kForget && reply.ok() && reply->status == 404) break;
        if (r.kind == AgentRequestKind::kStart && reply.ok() && reply->status >= 400 &&
            reply->status < 500 && reply->status != 401) {
          refused[r.key] = reply->body.substr(0, 500);
        }
        // Otherwise a later tick retries: starts, stops and forgets are idempotent.
        const char* what = r.kind == AgentRequestKind::kStart  ? "start "
                           : r.kind == AgentRequestKind::kStop ? "stop "
                                                               : "forget ";
        LogHostProblem(instance, what + r.key + ": " + Describe(reply));
        break;
      }
      case AgentRequestKind::kAcknowledge:
        // The copy failed (the job stays on the agent and a later tick copies again), or the
        // agent did not take the acknowledgement.
        if (!r.reply.ok()) {
          LogHostProblem(instance, r.reply.status().message());
        } else if (r.reply->status != 200 && r.reply->status != 404) {
          LogHostProblem(instance, "acknowledge " + r.key + ": " + Describe(r.reply));
        }
        break;
    }
  }
}

std::map<std::string, InstanceObservation> FleetController::Observe(
    const std::vector<model::Instance>& instances, std::map<std::string, std::string>& refused) {
  const auto deadline = std::chrono::steady_clock::now() + options_.tick_budget;
  // The index by id is made again only when the list's ids or places moved (most ticks poll the
  // same instances in the same list).
  bool same_ids = instances.size() == observed_ids_.size();
  bool same_places = same_ids;
  for (size_t k = 0; same_ids && k < instances.size(); ++k) {
    same_ids = instances[k].id == observed_ids_[k];
    same_places = same_places && &instances[k] == observed_at_[k];
  }
  if (!same_ids || !same_places) {
    by_id_.clear();
    observed_ids_.clear();
    observed_at_.clear();
    observed_ids_.reserve(instances.size());
    observed_at_.reserve(instances.size());
    for (const model::Instance& i : instances) {
      observed_ids_.push_back(i.id);
      observed_at_.push_back(&i);
    }
    by_id_.reserve(instances.size());
    for (size_t k = 0; k < instances.size(); ++k) by_id_.emplace(observed_ids_[k], &instances[k]);
  }
  const InstancesById& by_id = by_id_;
  {
    // Problems of instances that are gone (deleted fleets) are forgotten, and so are their lanes.
    auto known = [&](const std::string& id) { return by_id.contains(id); };
    lanes_->Keep(known);
    // These hold ids of the instances of earlier calls only: with the same ids, none is gone.
    if (!same_ids) {
      std::erase_if(next_metrics_at_, [&](const auto& e) { return !known(e.first); });
      std::erase_if(inventories_, [&](const auto& e) { return !known(e.first); });
      std::erase_if(poll_parsers_, [&](const auto& e) { return !known(e.first); });
      MutexLock lock(log_mu_);
      std::erase_if(host_problems_, [&](const auto& entry) { return !known(entry.first); });
    }
  }
  // What arrived since the last tick: late polls, inventories, the commands' outcomes.
  TakeReplies(by_id, refused);

  // Send a poll to every host that has none in flight; a host still busy with an earlier one
  // (slow, or silent until its timeout) is simply not asked again. Each host asks for points on
  // its own schedule, so a slow host gets them as often as a fast one.
  const TimeMicros now = clock_.Now();
  const TimeMicros metrics_every =
      std::chrono::duration_cast<std::chrono::microseconds>(options_.metrics_interval).count();
  std::vector<std::pair<std::string, AgentRequestKind>> asked;
  for (const model::Instance& i : instances) {
    if (i.status == model::InstanceStatus::kTerminated) continue;
    if (!i.tls && i.backend != "local" && plain_http_warned_.insert(i.id).second) {
      spdlog::warn(
          "instance {} ({}:{}): plain HTTP (tls: false): the agent token and all job "
          "data cross the network unencrypted",
          i.name, i.hostname, i.agent_port);
    }
    TimeMicros& metrics_at = next_metrics_at_[i.id];
    const bool with_metrics = now >= metrics_at;
    const char* target = !with_metrics           ? "/api/poll"
                         : options_.collect_dcgm ? "/api/poll?metrics=1&dcgm=1&dcgm_raw=1"
                                                 : "/api/poll?metrics=1";
    http::AsyncRequest poll = AgentRequest(i, "GET", target);
    // A DCGM text is about 100 KB for 8 GPUs: read in a few large reads, not hundreds of small.
    if (with_metrics && options_.collect_dcgm) poll.read_buffer_bytes = kDcgmReadBufferBytes;
    if (!lanes_->SendIfIdle(i.id, AgentRequestKind::kPoll, std::move(poll))) continue;
    if (with_metrics) metrics_at = now + metrics_every;
    asked.emplace_back(i.id, AgentRequestKind::kPoll);
  }
  // Wait for this tick's replies, but never past the tick's budget: what arrives later is used
  // by the next tick.
  lanes_->WaitIdle(asked, deadline);
  TakeReplies(by_id, refused);

  // First contact or a restarted agent: the inventory, asked for now and waited for within the
  // same budget; one that comes later is used by the next tick whose poll has the same agent id.
  // An agent that answers to another instance gets no inventory request (reconciler.h).
  // Made only when a host may need one (rarely: most ticks have none).
  std::optional<std::map<std::string, std::string>> owners;
  auto needs_inventory = [&](const model::Instance& instance, const InstanceObservation& obs) {
    if (!obs.reached) return false;
    if (instance.resources.cpus != 0 && obs.poll.agent_id == instance.agent_id) return false;
    if (!owners) owners = AgentIdOwners(instances);
    auto owner = owners->find(obs.poll.agent_id);
    return owner == owners->end() || owner->second == instance.id;
  };
  std::vector<std::pair<std::string, AgentRequestKind>> inventories;
  for (const model::Instance& instance : instances) {
    auto obs = replies_.find(instance.id);
    if (obs == replies_.end() || !needs_inventory(instance, obs->second) ||
        inventories_.count(instance.id)) {
      continue;
    }
    if (lanes_->SendIfIdle(instance.id, AgentRequestKind::kInventory,
                           AgentRequest(instance, "GET", "/api/inventory"))) {
      inventories.emplace_back(instance.id, AgentRequestKind::kInventory);
    }
  }
  if (!inventories.empty()) {
    lanes_->WaitIdle(inventories, deadline);
    TakeReplies(by_id, refused);
  }

  std::map<std::string, InstanceObservation> observations;
  observations.swap(replies_);
  for (auto& [instance_id, obs] : observations) {
    auto inventory = inventories_.find(instance_id);
    if (inventory == inventories_.end() || !obs.reached) continue;
    if (needs_inventory(*by_id.at(instance_id), obs)) {
      if (inventory->second.agent_id == obs.poll.agent_id) {
        obs.inventory = std::move(inventory->second);
      } else {
        // Restarted between the two requests, or not an honest agent: ask again next tick.
        LogHostProblem(*by_id.at(instance_id), "inventory: the agent id differs from its poll's");
      }
    }
    inventories_.erase(inventory);
  }
  return observations;
}

Result<TickReport> StoredStateReport(store::Store& store, TimeMicros now) {
  TickReport report;
  report.started_at = report.ended_at = now;
  FW_ASSIGN_OR_RETURN(report.instances, store.ListInstances(""));
  FW_ASSIGN_OR_RETURN(report.runs, store.ListRunsWithStatus(kUnfinishedRunStatuses));
  return report;
}

std::vector<model::Instance>& FleetController::MutableInstances() {
  if (instances_.use_count() > 1) {
    instances_ = std::make_shared<std::vector<model::Instance>>(*instances_);
  }
  return *instances_;
}

std::vector<model::Run>& FleetController::MutableRuns() {
  if (runs_.use_count() > 1) runs_ = std::make_shared<std::vector<model::Run>>(*runs_);
  return *runs_;
}

Status FleetController::LoadInstances() {
  // The version first: a write that lands between the two is seen by the next look.
  const int64_t version = store_.InstancesVersion();
  if (version == instances_version_) return Status::Ok();
  instances_version_ = -1;
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances, store_.ListInstances(""));
  instances_ = std::make_shared<std::vector<model::Instance>>(std::move(instances));
  instances_version_ = version;
  return Status::Ok();
}

Status FleetController::LoadRuns() {
  const int64_t version = store_.RunsVersion();
  if (version == runs_version_) return Status::Ok();
  runs_version_ = -1;
  FW_ASSIGN_OR_RETURN(std::vector<model::Run> runs,
                      store_.ListRunsWithStatus(kUnfinishedRunStatuses));
  runs_ = std::make_shared<std::vector<model::Run>>(std::move(runs));
  runs_version_ = version;
  run_job_ids_stale_ = true;
  // Each run's configuration is parsed once, not on every tick; those of runs that ended go.
  std::unordered_set<std::string_view> unfinished;
  unfinished.reserve(runs_->size());
  for (const model::Run& run : *runs_) unfinished.insert(run.id);
  std::erase_if(configs_, [&](const auto& entry) { return !unfinished.count(entry.first); });
  return Status::Ok();
}

void FleetController::SetChangeListener(store::ChangeListener* listener) { changes_ = listener; }

void FleetController::RunsChanged() {
  run_job_ids_stale_ = true;
  std::unordered_set<std::string_view> unfinished;
  unfinished.reserve(runs_->size());
  for (const model::Run& run : *runs_) unfinished.insert(run.id);
  std::erase_if(configs_, [&](const auto& entry) { return !unfinished.count(entry.first); });
}

Status FleetController::SyncChanges() {
  // Taken before anything is read: a change committed after this is in the next batch.
  store::ChangeBatch batch = changes_->Take();
  if (batch.resync || instances_version_ < 0 || runs_version_ < 0 ||
      clock_.Now() >= next_resync_at_) {
    return Resync();
  }
  std::set<std::string> instance_ids;
  instance_ids.swap(stale_instances_);
  if (auto it = batch.keys.find(store::kInstancesChannel); it != batch.keys.end()) {
    instance_ids.insert(it->second.begin(), it->second.end());
  }
  std::set<std::string> run_ids;
  run_ids.swap(stale_runs_);
  if (auto it = batch.keys.find(store::kRunsChannel); it != batch.keys.end()) {
    std::unordered_map<std::string_view, int64_t> have;  // run id → row version of the copy
    have.reserve(runs_->size());
    for (const model::Run& run : *runs_) have.emplace(run.id, run.row_version);
    for (const std::string& key : it->second) {
      std::optional<std::pair<std::string, int64_t>> run = store::ParseVersionedKey(key);
      if (!run) continue;  // not a key of this channel's form: nothing to read by it
      auto copy = have.find(run->first);
      if (copy != have.end() && copy->second >= run->second) continue;  // its own write, or older
      run_ids.insert(std::move(run->first));
    }
  }
  if (Status s = ReadInstances(instance_ids); !s.ok()) {
    instances_version_ = -1;  // a full read next time: the keys taken are not kept
    return s;
  }
  if (Status s = ReadRuns(run_ids); !s.ok()) {
    runs_version_ = -1;
    return s;
  }
  return Status::Ok();
}

Status FleetController::Resync() {
  instances_version_ = runs_version_ = -1;
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances, store_.ListInstances(""));
  FW_ASSIGN_OR_RETURN(std::vector<model::Run> runs,
                      store_.ListRunsWithStatus(kUnfinishedRunStatuses));
  instances_ = std::make_shared<std::vector<model::Instance>>(std::move(instances));
  runs_ = std::make_shared<std::vector<model::Run>>(std::move(runs));
  // With notifications the copies are the store's; the versions only say "known".
  instances_version_ = runs_version_ = 0;
  stale_instances_.clear();
  stale_runs_.clear();
  suspects_.clear();
  next_resync_at_ =
      clock_.Now() +
      std::chrono::duration_cast<std::chrono::microseconds>(options_.resync_interval).count();
  ++resyncs_;
  ++copies_epoch_;
  RunsChanged();
  return Status::Ok();
}

namespace {

// Whether `after` differs from `before` in last_seen_at and nothing else that UpdateInstance
// writes.
bool OnlyLastSeenMoved(const model::Instance& before, const model::Instance& after) {
  auto same_gpu = [](const model::Gpu& a, const model::Gpu& b) {
    return a.index == b.index && a.name == b.name && a.uuid == b.uuid &&
           a.memory_bytes == b.memory_bytes && a.vendor == b.vendor;
  };
  const auto& ga = before.resources.gpus;
  const auto& gb = after.resources.gpus;
  return after.last_seen_at.has_value() && before.status == after.status &&
         before.resources.cpus == after.resources.cpus &&
         before.resources.memory_bytes == after.resources.memory_bytes &&
         std::equal(ga.begin(), ga.end(), gb.begin(), gb.end(), same_gpu) &&
         before.price == after.price && before.hostname == after.hostname &&
         before.agent_port == after.agent_port && before.agent_token == after.agent_token &&
         before.unreachable == after.unreachable && before.agent_id == after.agent_id &&
         before.tls == after.tls && before.tls_ca_cert == after.tls_ca_cert &&
         before.tls_fingerprint == after.tls_fingerprint;
}

// Whether the two are the same but perhaps for last_seen_at (SetInstancesLastSeen notifies
// nothing).
bool SameButLastSeen(model::Instance a, model::Instance b) {
  a.last_seen_at = b.last_seen_at = 0;
  return a.id == b.id && a.name == b.name && a.fleet_id == b.fleet_id && OnlyLastSeenMoved(a, b);
}

}  // namespace

Status FleetController::ReadInstances(const std::set<std::string>& ids) {
  if (ids.empty()) return Status::Ok();
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> read,
                      store_.ListInstancesByIds({ids.begin(), ids.end()}));
  std::unordered_map<std::string_view, const model::Instance*> fresh;
  fresh.reserve(read.size());
  for (const model::Instance& i : read) fresh.emplace(i.id, &i);
  // What changed: a copy that differs, one that is gone, one that is new.
  size_t matched = 0;
  bool changed = false;
  for (const model::Instance& i : *instances_) {
    if (!ids.count(i.id)) continue;
    auto it = fresh.find(i.id);
    if (it == fresh.end()) {
      changed = true;
      continue;
    }
    ++matched;
    if (!SameButLastSeen(i, *it->second) || i.last_seen_at != it->second->last_seen_at) {
      changed = true;
    }
  }
  if (matched < read.size()) {
    // A new instance (a fleet created): its place in the order is ListInstances', read whole.
    FW_ASSIGN_OR_RETURN(std::vector<model::Instance> all, store_.ListInstances(""));
    instances_ = std::make_shared<std::vector<model::Instance>>(std::move(all));
    ++copies_epoch_;
    return Status::Ok();
  }
  if (!changed) return Status::Ok();  // e.g. this replica's own write, read back
  std::vector<model::Instance>& instances = MutableInstances();
  for (model::Instance& i : instances) {
    auto it = fresh.find(i.id);
    if (it != fresh.end()) i = *it->second;
  }
  std::erase_if(instances, [&](const model::Instance& i) {
    return ids.count(i.id) > 0 && !fresh.count(i.id);  // deleted with its fleet
  });
  ++copies_epoch_;
  return Status::Ok();
}

Status FleetController::ReadRuns(const std::set<std::string>& ids) {
  if (ids.empty()) return Status::Ok();
  FW_ASSIGN_OR_RETURN(std::vector<model::Run> read, store_.ListRunsByIds({ids.begin(), ids.end()}));
  std::unordered_map<std::string, model::Run> fresh;  // the unfinished ones
  for (model::Run& run : read) {
    if (!model::IsFinished(run.status)) fresh.emplace(run.id, std::move(run));
  }
  std::vector<model::Run>& runs = MutableRuns();
  std::unordered_set<std::string> gone;
  for (model::Run& run : runs) {
    if (!ids.count(run.id)) continue;
    auto it = fresh.find(run.id);
    if (it == fresh.end()) {
      gone.insert(run.id);  // finished or deleted meanwhile
    } else {
      run = std::move(it->second);
      fresh.erase(it);
    }
  }
  if (!gone.empty()) {
    std::erase_if(runs, [&](const model::Run& run) { return gone.count(run.id) > 0; });
  }
  // New runs, in ListRunsWithStatus' order (oldest first).
  auto older = [](const model::Run& a, const model::Run& b) {
    return std::tie(a.submitted_at, a.id) < std::tie(b.submitted_at, b.id);
  };
  for (auto& [id, run] : fresh) {
    runs.insert(std::upper_bound(runs.begin(), runs.end(), run, older), std::move(run));
  }
  RunsChanged();
  ++copies_epoch_;
  return Status::Ok();
}

Status FleetController::VerifyCopies(TimeMicros now) {
  FW_ASSIGN_OR_RETURN(std::vector<model::Instance> instances, store_.ListInstances(""));
  FW_ASSIGN_OR_RETURN(std::vector<model::Run> runs,
                      store_.ListRunsWithStatus(kUnfinishedRunStatuses));
  std::set<std::string> differ;
  {
    std::unordered_map<std::string_view, const model::Instance*> mine;
    for (const model::Instance& i : *instances_) mine.emplace(i.id, &i);
    for (const model::Instance& i : instances) {
      auto it = mine.find(i.id);
      if (it == mine.end() || !SameButLastSeen(*it->second, i)) {
        differ.insert("instance " + i.id);
      }
      if (it != mine.end()) mine.erase(it);
    }
    for (const auto& [id, i] : mine) differ.insert("instance " + std::string(id));
  }
  {
    std::unordered_map<std::string_view, const model::Run*> mine;
    for (const model::Run& r : *runs_) mine.emplace(r.id, &r);
    for (const model::Run& r : runs) {
      auto it = mine.find(r.id);
      if (it == mine.end() || it->second->row_version != r.row_version) {
        differ.insert("run " + r.id);
      }
      if (it != mine.end()) mine.erase(it);
    }
    for (const auto& [id, r] : mine) differ.insert("run " + std::string(id));
  }
  // A change shows here as soon as it commits and in the copies once its notification came: a
  // difference that outlives a few quiet ticks and seconds was never notified.
  std::erase_if(suspects_, [&](const auto& entry) { return !differ.count(entry.first); });
  for (const std::string& key : differ) {
    auto [it, first] = suspects_.try_emplace(key, now, 0);
    if (!first) ++it->second.second;
    if (it->second.second >= 5 && now - it->second.first >= 10'000'000) {
      spdlog::critical(
          "replica {}: its copy of {} differs from the store's and no notification "
          "named it",
          options_.replica_id, key);
      FW_CHECK(false, "a replica's copy differs from the store's and no notification named it");
    }
  }
  return Status::Ok();
}

Status FleetController::StoreChanges(const ReconcileOutput& out,
                                     std::unordered_set<std::string>& dropped_jobs,
                                     std::unordered_set<std::string>& lost_instances) {
  // runs_ holds the changes already: until they are all stored it is not the store's state.
  const int64_t runs_before = runs_version_;
  runs_version_ = -1;
  // Instances: those whose only change is that their agent answered, all in one statement's
  // transaction; the others one by one.
  std::unordered_map<std::string_view, model::Instance*> cached;
  std::vector<model::Instance>& instances = MutableInstances();
  cached.reserve(instances.size());
  for (model::Instance& i : instances) cached.emplace(i.id, &i);
  const int64_t instances_before = instances_version_;
  int64_t instance_writes = 0;
  bool instances_known = instances_before >= 0;
  std::vector<std::pair<std::string, TimeMicros>> seen;
  for (const model::Instance& instance : out.instances) {
    // --- replicas: only the leased instances' changes are this replica's to store ---
    auto lease = held_.find(instance.id);
    if (leasing() && lease == held_.end()) continue;  // its holder stores it; the cache stays
    auto it = cached.find(instance.id);
    if (it != cached.end() && OnlyLastSeenMoved(*it->second, instance)) {
      seen.emplace_back(instance.id, *instance.last_seen_at);
    } else {
      ++instance_writes;
      Status s = leasing() ? store_.UpdateInstanceIfLeased(instance, lease->second)
                           : store_.UpdateInstance(instance);
      if (!s.ok()) instances_known = false;  // gone meanwhile (NotFound), or worse
      if (!s.ok() && notified()) stale_instances_.insert(instance.id);
      if (s.code() == StatusCode::kFailedPrecondition) {
        spdlog::warn("instance {}: this tick's result dropped: {}", instance.name, s.message());
        lost_instances.insert(instance.id);
        continue;
      }
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        instances_version_ = -1;
        return s;
      }
    }
    if (it != cached.end()) *it->second = instance;
  }
  if (!seen.empty()) {
    ++instance_writes;
    Status s = store_.SetInstancesLastSeen(seen);
    if (!s.ok()) {
      instances_version_ = -1;
      return s;
    }
  }
  // Only this tick's own writes since the cache was read: it is the store's state now.
  const int64_t instances_after = store_.InstancesVersion();
  instances_version_ = instances_known && instances_after == instances_before + instance_writes
                           ? instances_after
                           : -1;

  // Each run on the row version it was decided on: another replica's (or the API's) write since
  // wins, and this tick's decision on that run is dropped and made again from the stored state.
  std::unordered_map<std::string_view, model::Run*> cached_runs;
  cached_runs.reserve(runs_->size());
  for (model::Run& r : *runs_) cached_runs.emplace(r.id, &r);
  bool runs_known = runs_before >= 0;
  for (const model::Run& run : out.runs) {
    Status s = store_.UpdateRunIfCurrent(run, LeasesOf(run));
    if (s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kNotFound) {
      spdlog::warn("run {}: this tick's result dropped: {}", run.run_name, s.message());
      for (const model::Job& job : run.jobs) dropped_jobs.insert(job.id);
      runs_known = false;
      if (notified()) stale_runs_.insert(run.id);  // the copy holds what was not stored
      continue;
    }
    FW_RETURN_IF_ERROR(s);
    if (auto it = cached_runs.find(run.id); it != cached_runs.end()) ++it->second->row_version;
  }
  const int64_t runs_after = store_.RunsVersion();
  if (runs_known && runs_after == runs_before + static_cast<int64_t>(out.runs.size())) {
    runs_version_ = runs_after;
  }
  if (notified()) {
    // The copies hold this tick's stored writes; what was refused is read again (stale_*), and
    // everyone else's writes come as notifications.
    instances_version_ = instances_before >= 0 ? 0 : -1;
    runs_version_ = runs_before >= 0 ? 0 : -1;
  }
  return Status::Ok();
}

void FleetController::SetGpuGuards(GpuHealthMonitor* health,
                                   UtilizationPolicyTracker* utilization) {
  gpu_health_ = health;
  utilization_ = utilization;
}

Result<TickReport> FleetController::Tick() {
  TickReport report;
  FW_RETURN_IF_ERROR(TakeLeases());
  if (notified()) {
    MutexLock lock(runs_mutex_);
    FW_RETURN_IF_ERROR(SyncChanges());
  } else {
    FW_RETURN_IF_ERROR(LoadInstances());
  }
  if (!leasing()) leased_ = instances_->size();  // the only replica: every instance is its own
  report.started_at = clock_.Now();
  std::map<std::string, std::string> refused;  // job id → why the agent refused to start it
  bool quiet = false;
  // --- replicas: only the leased instances are polled, and only their replies are used ---
  std::vector<model::Instance> leased;
  if (leasing()) {
    leased.reserve(held_.size());
    for (const model::Instance& i : *instances_) {
      if (held_.count(i.id)) leased.push_back(i);
    }
  }
  std::map<std::string, InstanceObservation> observations =
      Observe(leasing() ? leased : *instances_, refused);
  if (leasing()) {
    std::erase_if(observations, [&](const auto& entry) { return !held_.count(entry.first); });
  }
  if (!refused.empty()) FailJobs(refused);

  ReconcileOutput out;
  std::unordered_set<std::string> dropped_jobs;    // of runs whose write was refused
  std::unordered_set<std::string> lost_instances;  // whose lease was lost since the tick began
  {
    MutexLock lock(runs_mutex_);
    // Other replicas' writes do not move this store object's versions: while they are live,
    // the runs are read again when the database's mark of run writes moved.
    if (reread_) {
      Result<std::pair<int64_t, int64_t>> mark = store_.RunsChangeMark();
      if (!mark.ok() || mark.value() != runs_mark_) runs_version_ = -1;
      runs_mark_ = mark.ok() ? mark.value() : std::pair<int64_t, int64_t>{-1, -1};
    }
    // Instances created or deleted (fleets) while the agents were polled count from now on.
    if (notified()) {
      FW_RETURN_IF_ERROR(SyncChanges());
    } else {
      FW_RETURN_IF_ERROR(LoadInstances());
      FW_RETURN_IF_ERROR(LoadRuns());
    }
    const TimeMicros now = clock_.Now();
    for (const model::Run& run : *runs_) {
      if (!configs_.count(run.id)) {
        configs_.emplace(run.id, model::ParseRunConfiguration(run.configuration_json,
                                                              model::ConfigFormat::kJson));
      }
    }
    // The guards keep state across ticks: they observe every tick, quiet or not.
    ExcludedGpus excluded_gpus;
    if (gpu_health_ != nullptr) {
      gpu_health_->Observe(*instances_, observations, now);
      excluded_gpus = gpu_health_->Excluded();
    }
    std::map<std::string, std::string> low_utilization;
    if (utilization_ != nullptr) {
      low_utilization = utilization_->Observe(*runs_, configs_, observations, now);
    }
    if (refused.empty() && low_utilization.empty() && QuietTick(observations, excluded_gpus, now)) {
      if (options_.verify_quiet_ticks) {
        FW_RETURN_IF_ERROR(CheckQuiet(observations, excluded_gpus, now));
        if (notified()) FW_RETURN_IF_ERROR(VerifyCopies(now));
      }
      ++quiet_ticks_;
      quiet = true;
      report.observations = std::move(observations);
      report.instances = SharedList<model::Instance>(instances_);
      report.runs = SharedList<model::Run>(runs_);
    } else {
      ReconcileInput input;
      input.now = now;
      input.observations = std::move(observations);
      // Lent to the reconciler and taken back after it (an error in between: read again).
      input.instances = std::move(MutableInstances());
      input.runs = std::move(MutableRuns());
      if (run_job_ids_stale_) {
        run_job_ids_.clear();
        for (const model::Run& run : input.runs) {
          for (const model::Job& job : run.jobs) run_job_ids_.insert(job.id);
        }
        run_job_ids_stale_ = false;
      }
      Result<std::vector<model::Job>> ended =
          store_.ListJobsByIds(ReportedOtherJobIds(input, run_job_ids_));
      if (!ended.ok()) {
        instances_version_ = runs_version_ = -1;
        return ended.status();
      }
      input.ended_jobs = std::move(ended).value();
      input.parsed_configs = &configs_;
      if (leasing()) input.placeable_instances = &placeable_;
      input.excluded_gpus = excluded_gpus;
      input.low_utilization = std::move(low_utilization);
      // The runs that wait for their first placement, for the run events.
      std::vector<const model::Run*> unplaced;
      for (const model::Run& run : input.runs) {
        if (std::none_of(run.jobs.begin(), run.jobs.end(),
                         [](const model::Job& j) { return j.instance_id.has_value(); })) {
          unplaced.push_back(&run);
        }
      }
      out = ReconcileInPlace(input, options_.reconcile);
      *instances_ = std::move(input.instances);
      *runs_ = std::move(input.runs);  // the pointers in `unplaced` stay valid
      FW_RETURN_IF_ERROR(StoreChanges(out, dropped_jobs, lost_instances));
      if (!dropped_jobs.empty()) {
        // A run whose placement was not stored is neither provisioned nor waiting yet.
        std::erase_if(unplaced, [&](const model::Run* run) {
          return std::any_of(run->jobs.begin(), run->jobs.end(),
                             [&](const model::Job& j) { return dropped_jobs.count(j.id) > 0; });
        });
      }
      report.run_events = NoteRunEvents(*runs_, unplaced);
      report.observations = std::move(input.observations);
      // The state as stored now: the input with this tick's changes.
      if (std::any_of(runs_->begin(), runs_->end(),
                      [](const model::Run& r) { return model::IsFinished(r.status); })) {
        for (const model::Run& r : *runs_) {
          if (model::IsFinished(r.status)) report.finished_runs.push_back(r);
        }
        std::erase_if(*runs_, [](const model::Run& r) { return model::IsFinished(r.status); });
        run_job_ids_stale_ = true;
        std::unordered_set<std::string_view> unfinished;
        for (const model::Run& run : *runs_) unfinished.insert(run.id);
        std::erase_if(configs_, [&](const auto& entry) { return !unfinished.count(entry.first); });
      }
      NoteQuietBasis(out, !dropped_jobs.empty() || !lost_instances.empty(), report.observations,
                     std::move(excluded_gpus));
      // Shared, not copied: the next tick copies a list only if a report still holds it.
      report.instances = SharedList<model::Instance>(instances_);
      report.runs = SharedList<model::Run>(runs_);
    }
  }
  for (auto& [instance_id, obs] : report.observations) {
    if (!obs.reached) ++report.bad_replies[instance_id];
    if (obs.reached && obs.poll.dcgm && options_.collect_dcgm) {
      // Moved, not copied: a host's text is tens of kilobytes.
      report.dcgm.push_back({instance_id, std::move(*obs.poll.dcgm)});
      obs.poll.dcgm.reset();
    }
  }
  // Points come with the replies of polls that asked for them, whichever tick uses the reply.
  report.points_stored = Collect(report.observations, report.runs, report.stored_points);
  for (const std::string& event : out.events) spdlog::info("{}", event);
  // --- replicas: commands go to leased hosts only, and none for a decision that was dropped ---
  if (leasing() || !dropped_jobs.empty()) {
    std::erase_if(out.commands, [&](const AgentCommand& c) {
      return (leasing() && !held_.count(c.instance_id)) || lost_instances.count(c.instance_id) ||
             dropped_jobs.count(c.job_id);
    });
  }
  Execute(report.instances, out.commands);
  report.bad_replies_total = bad_replies_.load();
  if (!quiet) ++state_generation_;
  report.state_generation = state_generation_;
  report.ended_at = clock_.Now();
  return report;
}

bool FleetController::QuietTick(const std::map<std::string, InstanceObservation>& observations,
                                const ExcludedGpus& excluded, TimeMicros now) const {
  const QuietBasis& q = quiet_;
  if (!q.valid || (leasing() && !notified()) || reread_ || now >= q.until ||
      instances_version_ != q.instances_version || runs_version_ != q.runs_version ||
      copies_epoch_ != q.copies_epoch || observations.size() != q.generations.size() ||
      excluded != q.excluded) {
    return false;
  }
  for (const auto& [id, obs] : observations) {
    auto it = q.generations.find(id);
    if (it == q.generations.end() || !obs.reached || obs.inventory ||
        obs.poll_generation != it->second) {
      return false;
    }
  }
  return true;
}

void FleetController::NoteQuietBasis(const ReconcileOutput& out, bool dropped,
                                     const std::map<std::string, InstanceObservation>& observations,
                                     ExcludedGpus excluded) {
  QuietBasis& q = quiet_;
  q.valid = false;
  q.generations.clear();
  if ((leasing() && !notified()) || reread_ || dropped || !out.instances.empty() ||
      !out.runs.empty() || !out.commands.empty() || !out.events.empty() || instances_version_ < 0 ||
      runs_version_ < 0) {
    return;
  }
  // Every instance that is polled answered, with a poll whose content is known.
  size_t polled = 0;
  TimeMicros until = std::numeric_limits<TimeMicros>::max();
  for (const model::Instance& i : *instances_) {
    if (i.status == model::InstanceStatus::kTerminated) continue;
    if (leasing() && !held_.count(i.id)) continue;  // another replica's to poll
    ++polled;
    auto obs = observations.find(i.id);
    if (obs == observations.end() || !obs->second.reached || obs->second.inventory ||
        obs->second.poll_generation == 0 || !i.last_seen_at) {
      q.generations.clear();
      return;
    }
    q.generations.emplace(i.id, obs->second.poll_generation);
    // Reconciler: last_seen_at is stored again once it moved by the resolution.
    until = std::min(until, *i.last_seen_at + options_.reconcile.last_seen_resolution);
  }
  if (polled != observations.size()) {
    q.generations.clear();
    return;
  }
  // Reconciler: a running job ends once it has run for its max_duration.
  for (const model::Run& run : *runs_) {
    auto config = configs_.find(run.id);
    if (config == configs_.end() || !config->second.ok() || !config->second->max_duration_seconds) {
      continue;
    }
    for (const model::Job& job : run.jobs) {
      if (job.status != model::JobStatus::kRunning || !job.started_at) continue;
      until = std::min(until, *job.started_at + *config->second->max_duration_seconds * 1'000'000);
    }
  }
  q.instances_version = instances_version_;
  q.runs_version = runs_version_;
  q.copies_epoch = copies_epoch_;
  q.excluded = std::move(excluded);
  q.until = until;
  q.valid = true;
}

Status FleetController::CheckQuiet(const std::map<std::string, InstanceObservation>& observations,
                                   const ExcludedGpus& excluded, TimeMicros now) {
  ReconcileInput input;
  input.now = now;
  input.observations = observations;
  input.instances = *instances_;
  input.runs = *runs_;
  std::unordered_set<std::string> job_ids;
  for (const model::Run& run : input.runs) {
    for (const model::Job& job : run.jobs) job_ids.insert(job.id);
  }
  FW_ASSIGN_OR_RETURN(input.ended_jobs, store_.ListJobsByIds(ReportedOtherJobIds(input, job_ids)));
  input.parsed_configs = &configs_;
  input.excluded_gpus = excluded;
  const ReconcileOutput out = ReconcileInPlace(input, options_.reconcile);
  FW_CHECK(out.instances.empty() && out.runs.empty() && out.commands.empty() && out.events.empty(),
           "a quiet tick's reconcile changed something");
  return Status::Ok();
}

size_t FleetController::Collect(const std::map<std::string, InstanceObservation>& observations,
                                const std::vector<model::Run>& runs,
                                std::vector<model::JobMetricsPoint>& stored) {
  if (!last_points_loaded_) {
    Result<std::vector<std::pair<std::string, TimeMicros>>> latest =
        store_.LatestMetricsOfUnfinishedJobs();
    if (!latest.ok()) {
      spdlog::warn("metrics: {}", latest.status().ToString());
      return 0;
    }
    for (const auto& [job_id, at] : *latest) last_point_[job_id] = at;
    last_points_loaded_ = true;
  }
  // Most ticks carry no points (plain polls): nothing to look at then. Jobs that ended are
  // forgotten by the next tick that has points, before it looks at their spacing.
  const bool any_points = std::any_of(observations.begin(), observations.end(), [](const auto& e) {
    return e.second.reached &&
           std::any_of(e.second.poll.jobs.begin(), e.second.poll.jobs.end(),
                       [](const AgentJob& aj) { return aj.metrics.has_value(); });
  });
  if (!any_points) return 0;
  std::unordered_map<std::string_view, const std::string*> running_on;  // job id → instance id
  running_on.reserve(runs.size());
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
  if (batch.empty()) return 0;
  Status s = store_.AddJobMetricsPoints(batch);
  if (!s.ok()) {
    spdlog::warn("metrics: storing {} points: {}", batch.size(), s.ToString());
    return 0;
  }
  for (const model::JobMetricsPoint& p : batch) last_point_[p.job_id] = p.timestamp_micro;
  points_stored_ += batch.size();
  stored = std::move(batch);
  return stored.size();
}

RunEvents FleetController::NoteRunEvents(const std::vector<model::Run>& runs,
                                         const std::vector<const model::Run*>& unplaced) {
  RunEvents events;
  auto placed = [](const model::Run& run) {
    return std::any_of(run.jobs.begin(), run.jobs.end(),
                       [](const model::Job& j) { return j.instance_id.has_value(); });
  };
  TimeMicros now = clock_.Now();
  for (const model::Run* run : unplaced) {
    if (placed(*run)) {
      events.provisioned.push_back(
          {run->id, run->project_name, run->type,
           static_cast<double>(std::max<TimeMicros>(0, now - run->submitted_at)) / 1e6});
      waiting_runs_.erase(run->id);
    } else if (!model::IsFinished(run->status) && waiting_runs_.insert(run->id).second) {
      events.pending.push_back({run->id, run->project_name, run->type});
    }
  }
  // Runs that ended (here or through the API) without ever being placed stop waiting.
  if (!waiting_runs_.empty()) {
    std::unordered_map<std::string_view, const model::Run*> by_id;
    by_id.reserve(runs.size());
    for (const model::Run& run : runs) by_id.emplace(run.id, &run);
    std::erase_if(waiting_runs_, [&](const std::string& id) {
      auto it = by_id.find(id);
      return it == by_id.end() || model::IsFinished(it->second->status);
    });
  }
  return events;
}

void FleetController::Execute(const std::vector<model::Instance>& known,
                              const std::vector<AgentCommand>& commands) {
  InstancesById instances;
  if (!commands.empty()) {
    instances.reserve(known.size());
    for (const model::Instance& i : known) instances.emplace(i.id, &i);
  }
  // Each (host, kind) lane gets this tick's decisions, in order; what waited there from an
  // earlier tick is replaced (decided again now), and what is in flight is not sent twice.
  AgentLanes::LaneOperations lanes;
  for (const AgentCommand& c : commands) {
    auto it = instances.find(c.instance_id);
    if (it == instances.end()) continue;
    const model::Instance& instance = *it->second;
    const std::string job_path = "/api/jobs/" + http::UrlEncode(c.job_id);
    auto one = [](http::AsyncRequest request) -> AgentOperation {
      return [request = std::move(request)](const AgentSend& send,
                                            std::function<void(Result<http::Response>)> done) {
        send(request, std::move(done));
      };
    };
    switch (c.kind) {
      case AgentCommand::Kind::kStart:
        lanes[{c.instance_id, AgentRequestKind::kStart}].emplace_back(
            c.job_id,
            one(AgentRequest(instance, "POST", "/api/jobs", StartJobRequestToJson(c.start))));
        break;
      case AgentCommand::Kind::kStop:
        lanes[{c.instance_id, AgentRequestKind::kStop}].emplace_back(
            c.job_id,
            one(AgentRequest(instance, "POST", job_path + "/stop",
                             "{\"grace_seconds\":" + std::to_string(c.grace_seconds) + "}")));
        break;
      case AgentCommand::Kind::kForget:
        lanes[{c.instance_id, AgentRequestKind::kForget}].emplace_back(
            c.job_id, one(AgentRequest(instance, "DELETE", job_path)));
        break;
      case AgentCommand::Kind::kAcknowledge: {
        // Each log copy has its own deadline; its requests have the agent timeout each.
        lanes[{c.instance_id, AgentRequestKind::kAcknowledge}].emplace_back(
            c.job_id,
            CopyLogThenAcknowledge(log_copies_, AgentRequest(instance, "GET", ""), c.job_id));
        break;
      }
    }
  }
  // Lanes of hosts that are gone were dropped by Observe (AgentLanes::Keep).
  lanes_->ReplaceAll({AgentRequestKind::kStart, AgentRequestKind::kStop, AgentRequestKind::kForget,
                      AgentRequestKind::kAcknowledge},
                     std::move(lanes));
}

// --- replicas ---

Status FleetController::TakeLeases() {
  if (!leasing()) return Status::Ok();
  store::LeaseRequest request;
  request.owner = options_.replica_id;
  request.now = clock_.Now();
  request.lease_micros =
      std::chrono::duration_cast<std::chrono::microseconds>(options_.lease_time).count();
  Result<store::LeaseState> state = store_.TakeLeases(request);
  if (!state.ok()) {
    // Without a fresh lease nothing is polled or decided: another replica may hold it now.
    held_.clear();
    placeable_.clear();
    leased_ = 0;
    return state.status();
  }
  if (state->taken > 0 || state->released > 0) {
    spdlog::info("replica {}: holds {} of {} instances ({} taken, {} given up), {} live replicas",
                 options_.replica_id, state->held.size(), state->instances, state->taken,
                 state->released, state->live_replicas);
  }
  std::unordered_map<std::string, std::string> before;
  before.swap(held_);
  placeable_.clear();
  bool moved = before.size() != state->held.size();
  for (const store::InstanceLease& lease : state->held) {
    held_.emplace(lease.instance_id, lease.token);
    placeable_.insert(lease.instance_id);
    auto was = before.find(lease.instance_id);
    if (was == before.end() || was->second != lease.token) {
      moved = true;
      // Taken over: its last_seen_at, which notifies nothing, as the last holder stored it.
      if (notified()) stale_instances_.insert(lease.instance_id);
    }
  }
  if (moved) ++copies_epoch_;  // what this replica polls and places onto changed
  const bool shared = state->live_replicas > 1;
  // Without notifications: read again while others write, and once more after the last of them
  // stopped.
  reread_ = !notified() && (shared || shared_);
  if (reread_) instances_version_ = -1;
  shared_ = shared;
  live_replicas_ = state->live_replicas;
  leased_ = held_.size();
  return Status::Ok();
}

std::vector<std::pair<std::string, std::string>> FleetController::LeasesOf(
    const model::Run& run) const {
  std::vector<std::pair<std::string, std::string>> leases;
  if (!leasing()) return leases;
  for (const model::Job& job : run.jobs) {
    if (!job.instance_id) continue;
    auto it = held_.find(*job.instance_id);
    if (it == held_.end()) continue;
    if (std::none_of(leases.begin(), leases.end(),
                     [&](const auto& l) { return l.first == it->first; })) {
      leases.emplace_back(it->first, it->second);
    }
  }
  return leases;
}

ReplicaView FleetController::Replica() const {
  return ReplicaView{options_.replica_id, live_replicas_.load(), leased_.load()};
}

void FleetController::FailJobs(const std::map<std::string, std::string>& job_errors) {
  MutexLock lock(runs_mutex_);
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
      // On the version just read: a replica that wrote the run since decides again.
      Status s = store_.UpdateRunIfCurrent(run, LeasesOf(run));
      if (!s.ok()) spdlog::error("recording refused starts: {}", s.ToString());
    }
  }
}

}  // namespace fleetwatch::server
