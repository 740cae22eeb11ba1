#include "server/energy_accountant.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

#include "model/fleet_spec.h"
#include "model/run_spec.h"
#include "model/status.h"
#include "util/check.h"

namespace fleetwatch::server {

EnergyAccountant::EnergyAccountant(store::Store& store, const Clock& clock, EnergyOptions options)
    : store_(store), clock_(clock), options_(options) {}

Status EnergyAccountant::LoadOpen() {
  FW_ASSIGN_OR_RETURN(std::vector<store::JobAggregate> rows, store_.ListOpenJobAggregates());
  for (const store::JobAggregate& row : rows) {
    Result<JobAggregates> aggregates = JobAggregatesFromJson(row.state_json);
    if (!aggregates.ok()) {
      spdlog::warn("job {}: stored aggregates unreadable, left as they are: {}", row.job_id,
                   aggregates.status().message());
      continue;
    }
    open_[row.job_id] = OpenJob{row.revision, std::move(aggregates).value(), {}, std::nullopt};
  }
  loaded_ = true;
  return Status::Ok();
}

double EnergyAccountant::CarbonIntensityOf(const model::Instance* instance) {
  if (instance == nullptr) return options_.default_carbon_intensity;
  auto it = fleet_intensity_.find(instance->fleet_id);
  if (it == fleet_intensity_.end()) {
    Result<model::Fleet> fleet = store_.GetFleet(instance->project_id, instance->fleet_name);
    if (!fleet.ok() || fleet->id != instance->fleet_id) return options_.default_carbon_intensity;
    it = fleet_intensity_.emplace(fleet->id, model::CarbonIntensityOf(fleet->configuration_json))
             .first;
  }
  return it->second.value_or(options_.default_carbon_intensity);
}

JobAggregates EnergyAccountant::Fresh(const model::Run& run, const model::Job& job,
                                      const model::Instance* instance) {
  JobAggregates a;
  a.job_id = job.id;
  a.run_id = run.id;
  a.run_name = run.run_name;
  a.run_type = std::string(model::ToString(run.type));
  a.job_name = job.job_name;
  a.job_num = job.job_num;
  a.replica_num = job.replica_num;
  a.project_name = run.project_name;
  a.user_name = run.user_name;
  a.instance_id = job.instance_id.value_or("");
  a.started_at = job.started_at;
  a.carbon_intensity = CarbonIntensityOf(instance);
  Result<model::RunConfiguration> config =
      model::ParseRunConfiguration(run.configuration_json, model::ConfigFormat::kJson);
  if (config.ok()) a.memory_limit_bytes = config->resources.memory_bytes.value_or(0);
  if (instance != nullptr) {
    a.price = instance->price;
    a.cpus = instance->resources.cpus;
    if (a.memory_limit_bytes == 0) a.memory_limit_bytes = instance->resources.memory_bytes;
  }
  for (int index : job.gpu_indices) {
    GpuAggregate g;
    g.index = index;
    if (instance != nullptr) {
      for (const model::Gpu& gpu : instance->resources.gpus) {
        if (gpu.index != index) continue;
        g.memory_total_bytes = gpu.memory_bytes;
        g.uuid = gpu.uuid;
      }
    }
    a.gpus.push_back(std::move(g));
  }
  return a;
}

Status EnergyAccountant::Adopt(const TickReport& report, bool& adopted_none) {
  // Running jobs, and jobs that ended before any Update saw them running (shorter than a tick):
  // those get their summary too.
  std::vector<std::pair<const model::Run*, const model::Job*>> candidates;
  auto consider = [&](const model::Run& run) {
    for (const model::Job& job : run.jobs) {
      if (!job.started_at || !job.instance_id || open_.contains(job.id)) continue;
      if (model::IsFinished(job.status) && closed_.contains(job.id)) continue;
      candidates.emplace_back(&run, &job);
    }
  };
  for (const model::Run& run : report.runs) consider(run);
  for (const model::Run& run : report.finished_runs) consider(run);
  adopted_none = candidates.empty();
  if (candidates.empty()) return Status::Ok();
  std::unordered_map<std::string_view, const model::Instance*> instances;
  for (const model::Instance& i : report.instances) instances[i.id] = &i;
  std::vector<std::string> ids;
  for (const auto& [run, job] : candidates) ids.push_back(job->id);
  FW_ASSIGN_OR_RETURN(std::vector<store::JobAggregate> stored, store_.ListJobAggregates(ids));
  std::map<std::string, const store::JobAggregate*> by_id;
  for (const store::JobAggregate& row : stored) by_id[row.job_id] = &row;
  for (const auto& [run, job] : candidates) {
    auto row = by_id.find(job->id);
    if (row != by_id.end()) {
      if (row->second->summary_json) {  // ended already (summed up earlier, or by another replica)
        if (model::IsFinished(job->status)) closed_[job->id] = updates_;
        continue;
      }
      Result<JobAggregates> aggregates = JobAggregatesFromJson(row->second->state_json);
      if (!aggregates.ok()) continue;
      open_[job->id] =
          OpenJob{row->second->revision, std::move(aggregates).value(), {}, std::nullopt};
      continue;
    }
    auto instance = instances.find(*job->instance_id);
    OpenJob fresh;
    fresh.aggregates = Fresh(*run, *job, instance == instances.end() ? nullptr : instance->second);
    fresh.pending.changed = true;
    open_[job->id] = std::move(fresh);
  }
  return Status::Ok();
}

Status EnergyAccountant::Update(const TickReport& report) {
  if (!loaded_) FW_RETURN_IF_ERROR(LoadOpen());
  const bool readings =
      std::any_of(report.observations.begin(), report.observations.end(),
                  [](const auto& entry) { return entry.second.reached && entry.second.poll.gpus; });
  // The same runs as the last update, which found every job of them held or closed, none ended
  // and none gone, and let go of none: adopting, noting and looking for gone jobs would find
  // the same again, so only the points are added and the due aggregates stored.
  const bool same_runs = settled_ && !readings && report.state_generation != 0 &&
                         report.state_generation == settled_generation_ &&
                         report.finished_runs.empty();
  settled_ = false;
  if (same_runs) {
    AddPoints(report);
    FW_RETURN_IF_ERROR(Store({}));
    settled_ = !open_released_;
    return Status::Ok();
  }
  bool adopted_none = false;
  FW_RETURN_IF_ERROR(Adopt(report, adopted_none));

  // Which job holds each GPU (instance id → GPU index → its open job), on ticks with readings
  // only; every open job still listed unfinished is marked seen by this update.
  std::unordered_map<std::string_view, std::unordered_map<int, OpenJob*>> holders;
  std::map<std::string, model::Job> ended;
  const uint64_t update = ++updates_;
  auto note = [&](const model::Run& run) {
    for (const model::Job& job : run.jobs) {
      auto open = open_.find(job.id);
      if (open == open_.end()) {
        auto closed = closed_.find(job.id);
        if (closed != closed_.end()) closed->second = update;
        continue;
      }
      if (model::IsFinished(job.status)) {
        ended[job.id] = job;
        continue;
      }
      open->second.seen = update;
      if (!readings || !job.instance_id) continue;
      for (int index : job.gpu_indices) holders[*job.instance_id][index] = &open->second;
    }
  };
  for (const model::Run& run : report.runs) note(run);
  for (const model::Run& run : report.finished_runs) note(run);
  if (!closed_.empty()) {
    std::erase_if(closed_, [update](const auto& entry) { return entry.second != update; });
  }
  AddPoints(report);
  for (const auto& [instance_id, observation] : report.observations) {
    if (!observation.reached || !observation.poll.gpus) continue;
    const TimeMicros at = observation.poll.now > 0 ? observation.poll.now : report.started_at;
    auto host = holders.find(instance_id);
    std::vector<std::optional<GpuBaseline>>& baselines = baselines_[instance_id];
    for (const model::GpuReading& reading : *observation.poll.gpus) {
      const bool tracked = reading.index >= 0 && reading.index < kMaxGpuIndex;
      const size_t index = tracked ? static_cast<size_t>(reading.index) : 0;
      if (tracked && baselines.size() <= index) baselines.resize(index + 1);
      if (host != holders.end()) {
        auto holder = host->second.find(reading.index);
        if (holder != host->second.end()) {
          Add(*holder->second,
              AddReading(holder->second->aggregates, reading, at,
                         tracked ? baselines[index] : std::optional<GpuBaseline>()));
        }
      }
      if (!tracked) continue;
      std::optional<GpuBaseline>& baseline = baselines[index];
      if (reading.error.empty() && (!baseline || baseline->at < at)) {
        if (!baseline) baseline.emplace();
        baseline->at = at;
        baseline->energy_mj = reading.energy_mj;
        baseline->uuid = reading.uuid;
      }
    }
  }
  if (baselines_.size() > 2 * report.instances.size() + 16) {  // instances removed meanwhile
    std::set<std::string_view> known;
    for (const model::Instance& i : report.instances) known.insert(i.id);
    std::erase_if(baselines_, [&](const auto& entry) { return !known.contains(entry.first); });
  }
  // Held jobs that are in no unfinished run any more: their records say how they ended.
  std::vector<std::string> gone;
  for (const auto& [id, open] : open_) {
    if (open.seen != update && !ended.contains(id)) gone.push_back(id);
  }
  if (!gone.empty()) {
    FW_ASSIGN_OR_RETURN(std::vector<model::Job> jobs, store_.ListJobsByIds(gone));
    std::set<std::string> found;
    for (model::Job& job : jobs) {
      found.insert(job.id);
      if (model::IsFinished(job.status)) ended[job.id] = std::move(job);
    }
    for (const std::string& id : gone) {
      if (!found.contains(id)) open_.erase(id);  // its run was removed
    }
  }
  const bool nothing_ended = ended.empty() && gone.empty();
  FW_RETURN_IF_ERROR(Store(ended));
  settled_ = adopted_none && nothing_ended && !open_released_;
  settled_generation_ = report.state_generation;
  return Status::Ok();
}

void EnergyAccountant::Add(OpenJob& open, const AggregateDelta& d) {
  open.pending.energy_joules += d.energy_joules;
  open.pending.busy_gpu_seconds += d.busy_gpu_seconds;
  open.pending.carbon_grams += d.carbon_grams;
  open.pending.changed |= d.changed;
}

void EnergyAccountant::AddPoints(const TickReport& report) {
  for (const model::JobMetricsPoint& point : report.stored_points) {
    auto it = open_.find(point.job_id);
    if (it != open_.end()) Add(it->second, AddPoint(it->second.aggregates, point));
  }
}

Status EnergyAccountant::Store(const std::map<std::string, model::Job>& ended) {
  const TimeMicros now = clock_.Now();
  open_released_ = false;
  std::vector<store::JobAggregateUpdate> updates;
  std::vector<std::string> ids;
  for (auto& [id, open] : open_) {
    auto end = ended.find(id);
    if (end == ended.end()) {
      if (!open.pending.changed) continue;
      if (open.stored_at && now - *open.stored_at < options_.store_interval) continue;
    }
    if (end != ended.end()) {
      // What its GPUs drew after their last readings, up to its end (AddEnd charges it once,
      // even if this store fails and is tried again).
      const AggregateDelta tail = AddEnd(open.aggregates, end->second.finished_at.value_or(now));
      open.pending.energy_joules += tail.energy_joules;
      open.pending.carbon_grams += tail.carbon_grams;
    }
    store::JobAggregateUpdate u;
    u.job_id = id;
    u.revision = open.revision;
    u.state_json = ToJson(open.aggregates);
    if (end != ended.end()) {
      const model::Job& job = end->second;
      JobEnd how;
      how.status = std::string(model::ToString(job.status));
      if (job.termination_reason) {
        how.termination_reason = std::string(model::ToString(*job.termination_reason));
      }
      how.finished_at = job.finished_at.value_or(now);
      u.summary_json = ToJson(SummaryOf(open.aggregates, how, now));
    }
    u.project_name = open.aggregates.project_name;
    u.user_name = open.aggregates.user_name;
    u.energy_joules = open.pending.energy_joules;
    u.job_energy_joules = open.aggregates.energy_joules;
    u.busy_gpu_seconds = open.pending.busy_gpu_seconds;
    u.carbon_grams = open.pending.carbon_grams;
    updates.push_back(std::move(u));
    ids.push_back(id);
  }
  if (!updates.empty()) {
    Result<std::vector<bool>> result = store_.UpdateJobAggregates(updates);
    if (result.status().code() == StatusCode::kNotFound) {
      // A job that is gone (its run removed): forget it, so that the others are stored next time.
      FW_ASSIGN_OR_RETURN(std::vector<model::Job> jobs, store_.ListJobsByIds(ids));
      std::set<std::string> found;
      for (const model::Job& job : jobs) found.insert(job.id);
      for (const std::string& id : ids) {
        if (!found.contains(id)) open_.erase(id);
      }
      open_released_ = true;
    }
    FW_ASSIGN_OR_RETURN(std::vector<bool> applied, std::move(result));
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = open_.find(ids[i]);
      // Lost to another writer: its state is the stored one, read again when next needed.
      if (applied[i] && updates[i].summary_json) closed_[ids[i]] = updates_;
      if (!applied[i] || updates[i].summary_json) {
        open_.erase(it);
        open_released_ = true;
      } else {
        ++it->second.revision;
        it->second.pending = {};
        it->second.stored_at = now;
      }
    }
  }
  return Status::Ok();
}

}  // namespace fleetwatch::server
