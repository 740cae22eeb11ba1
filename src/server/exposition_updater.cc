#include "server/exposition_updater.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <utility>

#include "expose/text_format.h"
#include "model/run_spec.h"
#include "model/status.h"
#include "util/check.h"

namespace fleetwatch::server {
namespace {

// The fields of an instance that its families and its jobs' read, copied (not its token, TLS
// settings or address).
model::Instance ExportedFields(const model::Instance& i) {
  model::Instance f;
  f.id = i.id;
  f.project_name = i.project_name;
  f.fleet_id = i.fleet_id;
  f.fleet_name = i.fleet_name;
  f.name = i.name;
  f.status = i.status;
  f.backend = i.backend;
  f.price = i.price;
  f.resources = i.resources;
  f.created_at = i.created_at;
  f.unreachable = i.unreachable;
  return f;
}

bool SameGpus(const std::vector<model::Gpu>& a, const std::vector<model::Gpu>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const model::Gpu& x, const model::Gpu& y) {
                      return x.index == y.index && x.name == y.name && x.uuid == y.uuid &&
                             x.memory_bytes == y.memory_bytes && x.vendor == y.vendor;
                    });
}

// Whether the job families of the jobs on `b` read the same as those on `a`.
bool SameJobFamilies(const model::Instance& a, const model::Instance& b) {
  return a.backend == b.backend && a.price == b.price &&
         a.resources.memory_bytes == b.resources.memory_bytes &&
         SameGpus(a.resources.gpus, b.resources.gpus);
}

// Whether `b`'s instance families (and its jobs') read the same as `a`'s.
bool SameInstanceFamilies(const model::Instance& a, const model::Instance& b) {
  return SameJobFamilies(a, b) && a.id == b.id && a.project_name == b.project_name &&
         a.fleet_id == b.fleet_id && a.fleet_name == b.fleet_name && a.name == b.name &&
         a.status == b.status && a.created_at == b.created_at && a.unreachable == b.unreachable;
}

}  // namespace

ExpositionUpdater::ExpositionUpdater(store::Store& store, const Clock& clock,
                                     expose::ExpositionSnapshot& snapshot,
                                     expose::ExpositionSnapshot* replica, ExpositionOptions options)
    : store_(store), clock_(clock), snapshot_(snapshot), replica_(replica), options_(options) {
  const auto register_in = [this](expose::ExpositionSnapshot& into, const ServerFamily& f) {
    server_family_names_.emplace_back(f.name);
    return RegisterFamilies(into, std::span<const ServerFamily>(&f, 1)).front();
  };
  for (const ServerFamily& f : ServerFamilies()) ids_[f.name] = register_in(snapshot_, f);
  for (const ServerFamily& f : ReplicaFamilies()) {
    if (replica_ != nullptr) {
      replica_ids_[f.name] = register_in(*replica_, f);
    } else {
      server_family_names_.emplace_back(f.name);
    }
  }
  own_.replica_id = options_.replica_id;
  for (size_t k = 0; k < kInstanceSampleFamilies; ++k) {
    instance_ids_[k] = ids_.at(InstanceSampleFamilyNames()[k]);
  }
  for (size_t k = 0; k < kJobSampleFamilies; ++k) job_ids_[k] = ids_.at(JobSampleFamilyNames()[k]);
}

void ExpositionUpdater::IngestDcgm(const std::vector<DcgmReport>& reports) {
  if (dcgm_placement_dirty_) {
    for (auto& [id, instance] : instances_) instance.dcgm_jobs.clear();
    for (auto& [id, e] : jobs_) {
      if (!e.exported || !e.instance_id) continue;
      if (auto i = instances_.find(*e.instance_id); i != instances_.end()) {
        i->second.dcgm_jobs.push_back(&e);
      }
    }
    dcgm_placement_dirty_ = false;
  }
  std::vector<expose::DcgmJob> jobs;
  std::vector<std::array<expose::Label, 11>> labels;
  for (const DcgmReport& report : reports) {
    if (!report.dcgm.error.empty() || !report.dcgm.collected_at) {
      spdlog::debug("DCGM of instance {}: {}", report.instance_id, report.dcgm.error);
      continue;  // what the host sent before stays until it expires
    }
    auto instance_it = instances_.find(report.instance_id);
    if (instance_it == instances_.end()) continue;
    const InstanceEntry& instance = instance_it->second;
    // The jobs on this host, each with its GPUs' UUIDs and its labels (views into the entries).
    const std::vector<JobEntry*>& on = instance.dcgm_jobs;
    jobs.clear();
    labels.clear();
    labels.reserve(on.size());
    for (const JobEntry* e : on) {
      jobs.push_back(
          {e->gpu_uuids, labels.emplace_back(expose::JobLabels(e->label_values)), &e->pairs});
    }
    // One pass over the text for every job on the host; nothing refers to the text after it.
    Result<expose::RelabeledDcgm> relabeled =
        dcgm_relabeler_.Relabel(report.dcgm.text, jobs, server_family_names_);
    std::vector<expose::DcgmChange> changes;
    changes.reserve(on.size());
    if (!relabeled.ok()) {
      ++own_.dcgm_text_errors;
      spdlog::warn("DCGM text of instance {} ({}) dropped: {}", instance.fields.name,
                   instance.current->hostname, relabeled.status().message());
      for (JobEntry* e : on) {
        changes.push_back({e->key, {}, 0});
        e->dcgm_held = false;
      }
    } else {
      own_.dcgm_families_dropped += relabeled->foreign_families;
      for (size_t i = 0; i < on.size(); ++i) {
        expose::DcgmSamples& samples = relabeled->jobs[i];
        on[i]->dcgm_held = !samples.empty();
        changes.push_back(
            {on[i]->key, std::move(samples), *report.dcgm.collected_at + options_.dcgm_max_age});
      }
    }
    snapshot_.ApplyDcgm(std::move(changes));
  }
  // Headers of families no job exports any more.
  dcgm_relabeler_.headers().Prune();
}

void ExpositionUpdater::RemoveJobDcgm(JobEntry& job) {
  if (!job.dcgm_held) return;
  snapshot_.RemoveDcgm(job.key);
  job.dcgm_held = false;
}

Status ExpositionUpdater::RecordRunEvents() {
  if (unrecorded_events_.empty()) return Status::Ok();
  Result<int> recorded = store_.RecordRunEvents(unrecorded_events_);
  if (!recorded.ok()) {
    const StatusCode code = recorded.status().code();
    if (code != StatusCode::kInvalidArgument && code != StatusCode::kNotFound) {
      return recorded.status();  // kept for the next update
    }
    // Never recordable as they are (a run deleted meanwhile leaves its row): dropped.
    spdlog::warn("{} run events dropped: {}", unrecorded_events_.size(),
                 recorded.status().ToString());
  }
  unrecorded_events_.clear();
  return Status::Ok();
}

Status ExpositionUpdater::ReadStore(std::optional<std::vector<model::JobMetricsPoint>>& points,
                                    ExpositionState& counters) {
  if (!points_loaded_) {
    FW_ASSIGN_OR_RETURN(points, store_.ListNewestMetricsOfUnfinishedJobs());
  }
  FW_ASSIGN_OR_RETURN(counters.run_counts, store_.CountRuns());
  FW_ASSIGN_OR_RETURN(counters.usage, store_.ListUsageTotals());
  FW_ASSIGN_OR_RETURN(counters.run_events, store_.ListRunEventTotals());
  return Status::Ok();
}

void ExpositionUpdater::UpdateReplica(bool instances_changed) {
  if (replica_ == nullptr) return;
  std::vector<expose::FragmentChange> changes;
  const auto set = [&](const std::string& name, std::string text) {
    const expose::FamilyId id = replica_ids_.at(name);
    std::shared_ptr<const expose::Fragment> current = replica_->GetFragment(id, "all");
    if (current ? current->text == text : text.empty()) return;
    changes.push_back(expose::FragmentChange{id, "all", expose::Fragment{std::move(text), {}, {}}});
  };
  if (instances_changed || poll_errors_changed_) {
    poll_errors_changed_ = false;
    std::string text;
    for (const InstanceEntry* i : instance_order_) {
      auto it = own_.agent_poll_errors.find(i->fields.id);
      AppendPollErrors(text, i->poll_pairs, it == own_.agent_poll_errors.end() ? 0 : it->second);
    }
    set("fleetwatch_agent_poll_errors_total", std::move(text));
  }
  std::map<std::string, std::string> small;
  RenderReplicaCounters(own_, options_, small);
  for (auto& [name, text] : small) set(name, std::move(text));
  if (!changes.empty()) replica_->Apply(std::move(changes));
}

bool ExpositionUpdater::SyncInstances(const std::vector<model::Instance>& instances) {
  bool changed = false;
  for (const model::Instance& i : instances) {
    auto [it, inserted] = instances_.try_emplace(i.id);
    InstanceEntry& entry = it->second;
    entry.seen = updates_;
    entry.current = &i;
    if (!inserted && SameInstanceFamilies(entry.fields, i)) continue;
    changed = true;
    if (inserted || !SameJobFamilies(entry.fields, i)) entry.generation = ++generations_;
    entry.fields = ExportedFields(i);
    entry.pairs = InstancePairs(i);
    entry.poll_pairs = PollErrorPairs(i);
  }
  const uint64_t update = updates_;  // the lambda is opaque to the lock analysis
  changed |= std::erase_if(instances_, [&](const auto& e) { return e.second.seen != update; }) > 0;
  if (changed) {
    durations_dirty_ = true;
    dcgm_placement_dirty_ = true;
    instance_order_.clear();
    for (const auto& [id, entry] : instances_) {
      if (InstanceStatusExported(entry.fields.status)) instance_order_.push_back(&entry);
    }
    std::sort(instance_order_.begin(), instance_order_.end(),
              [](const InstanceEntry* a, const InstanceEntry* b) {
                return InstanceBefore(a->fields, b->fields);
              });
  }
  return changed;
}

bool ExpositionUpdater::SyncJobs(const std::vector<model::Run>& runs,
                                 std::vector<expose::SharedFragmentChange>& changes) {
  for (const model::Run& run : runs) {
    for (const model::Job& job : run.jobs) {
      // Like the store's newest points: of the jobs that are not finished.
      if (model::IsFinished(job.status)) continue;
      auto [it, inserted] = jobs_.try_emplace(job.id);
      JobEntry& e = it->second;
      e.seen = updates_;
      e.run = &run;
      e.job = &job;
      const InstanceEntry* instance = nullptr;
      if (job.instance_id) {
        if (auto i = instances_.find(*job.instance_id); i != instances_.end())
          instance = &i->second;
      }
      const uint64_t generation = instance != nullptr ? instance->generation : 0;
      if (!inserted && e.project_name == run.project_name && e.user_name == run.user_name &&
          e.run_name == run.run_name && e.run_type == run.type && e.job_name == job.job_name &&
          e.job_num == job.job_num && e.replica_num == job.replica_num &&
          e.exported == JobExported(job.status) && e.instance_id == job.instance_id &&
          e.gpu_indices == job.gpu_indices && e.submitted_at == job.submitted_at &&
          e.instance_generation == generation) {
        continue;
      }
      e.project_name = run.project_name;
      e.user_name = run.user_name;
      e.run_name = run.run_name;
      e.run_type = run.type;
      e.job_name = job.job_name;
      e.job_num = job.job_num;
      e.replica_num = job.replica_num;
      e.exported = JobExported(job.status);
      e.instance_id = job.instance_id;
      e.gpu_indices = job.gpu_indices;
      e.submitted_at = job.submitted_at;
      e.instance_generation = generation;
      e.inputs_changed = true;
      dcgm_placement_dirty_ = true;
    }
  }
  bool removed = false;
  std::vector<const JobEntry*> gone;  // to take out of job_order_ before they are erased
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second.seen == updates_) {
      ++it;
      continue;
    }
    gone.push_back(&it->second);
    if (it->second.rendered) {
      RemoveJobFragments(it->second, changes);
      removed = true;
    }
    // Jobs that ended lose their DCGM samples now rather than when they expire.
    RemoveJobDcgm(it->second);
    dcgm_placement_dirty_ = true;
    it = jobs_.erase(it);
  }
  if (!gone.empty()) {
    std::sort(gone.begin(), gone.end());
    std::erase_if(job_order_, [&gone](const JobEntry* e) {
      return std::binary_search(gone.begin(), gone.end(), e);
    });
  }
  return removed;
}

const model::ResourcesRequest& ExpositionUpdater::ResourcesOf(JobEntry& job) {
  if (!job.resources) {
    std::weak_ptr<const model::ResourcesRequest>& shared = run_resources_[job.run->id];
    job.resources = shared.lock();
    if (!job.resources) {
      job.resources = std::make_shared<const model::ResourcesRequest>(RunResources(*job.run));
      shared = job.resources;
    }
  }
  return *job.resources;
}

void ExpositionUpdater::RemoveJobFragments(JobEntry& job,
                                           std::vector<expose::SharedFragmentChange>& changes) {
  for (size_t k = 0; k < kJobSampleFamilies; ++k) {
    if (job.held[k]) changes.push_back({job_ids_[k], job.key, nullptr});
    job.held[k] = nullptr;
  }
  job.rendered = false;
  job.fresh = false;
}

bool ExpositionUpdater::RenderJobs(TimeMicros now,
                                   std::vector<expose::SharedFragmentChange>& changes) {
  bool order_changed = false;
  std::array<std::string, kJobSampleFamilies> texts;
  // The jobs rendered before in key order, then the others.
  for (JobEntry* e : job_order_) {
    if (e->visited == updates_) continue;
    e->visited = updates_;
    RenderJob(*e, now, texts, changes, order_changed);
  }
  for (auto& [id, e] : jobs_) {
    if (e.visited == updates_) continue;
    e.visited = updates_;
    RenderJob(e, now, texts, changes, order_changed);
  }
  return order_changed;
}

void ExpositionUpdater::RenderJob(JobEntry& e, TimeMicros now,
                                  std::array<std::string, kJobSampleFamilies>& texts,
                                  std::vector<expose::SharedFragmentChange>& changes,
                                  bool& order_changed) {
  if (!e.exported) {
    if (e.rendered) {
      RemoveJobFragments(e, changes);
      order_changed = true;
    }
    RemoveJobDcgm(e);
    e.inputs_changed = e.point_changed = false;
    return;
  }
  const model::ResourcesRequest& resources = ResourcesOf(e);
  const bool fresh = e.point && now - e.point->timestamp_micro <= options_.stale_after;
  if (e.rendered && !e.inputs_changed && fresh == e.fresh && !(fresh && e.point_changed)) {
    e.point_changed = false;
    return;
  }
  const model::Instance* instance = nullptr;
  if (e.job->instance_id) {
    if (auto i = instances_.find(*e.job->instance_id); i != instances_.end()) {
      instance = i->second.current;
    }
  }
  if (e.inputs_changed || !e.rendered) {
    std::string key = JobKey(*e.run, *e.job);
    if (key != e.key) {
      if (e.rendered) RemoveJobFragments(e, changes);
      RemoveJobDcgm(e);  // held under the old key
    }
    if (!e.rendered) order_changed = true;
    e.key = std::move(key);
    // JobPairs, with what the job's DCGM samples are relabeled with.
    e.label_values = JobLabelValuesOf(*e.run, *e.job, instance);
    e.pairs = expose::RenderLabelPairs(expose::JobLabels(e.label_values));
    e.gpu_uuids.clear();
    if (instance != nullptr) {
      for (int index : e.job->gpu_indices) {
        const model::Gpu* gpu = FindGpu(*instance, index);
        if (gpu != nullptr && !gpu->uuid.empty()) e.gpu_uuids.push_back(gpu->uuid);
      }
    }
    durations_dirty_ = true;
  }
  std::array<std::string*, kJobSampleFamilies> out{};
  for (size_t k = 0; k < texts.size(); ++k) {
    texts[k].clear();
    out[k] = &texts[k];
  }
  AppendJobSamples(*e.job, instance, resources, fresh ? &*e.point : nullptr, e.pairs, out);
  for (size_t k = 0; k < kJobSampleFamilies; ++k) {
    std::shared_ptr<const expose::Fragment>& held = e.held[k];
    if (held ? held->text == texts[k] : texts[k].empty()) continue;
    held = texts[k].empty() ? nullptr : std::make_shared<const expose::Fragment>(texts[k]);
    changes.push_back({job_ids_[k], e.key, held});
  }
  e.rendered = true;
  e.fresh = fresh;
  e.inputs_changed = e.point_changed = false;
}

void ExpositionUpdater::SetWhole(expose::FamilyId family, expose::Fragment fragment,
                                 std::vector<expose::SharedFragmentChange>& changes) {
  // Compared with what the snapshot holds, so that the samples are held once, there.
  std::shared_ptr<const expose::Fragment> current = snapshot_.GetFragment(family, "all");
  if (current ? *current == fragment : fragment.empty()) return;
  fragment.ShrinkToFit();
  changes.push_back({family, "all", std::make_shared<const expose::Fragment>(std::move(fragment))});
}

Status ExpositionUpdater::Update(const TickReport& report) {
  MutexLock lock(mu_);
  for (const RunEvents::Provisioned& p : report.run_events.provisioned) {
    unrecorded_events_.push_back(store::RunEvent{
        p.run_id, store::kRunEventProvisioned, p.project_name,
        std::string(model::ToString(p.run_type)), SubmitToProvisionBucket(p.seconds), p.seconds});
  }
  for (const RunEvents::Pending& p : report.run_events.pending) {
    unrecorded_events_.push_back(store::RunEvent{p.run_id, store::kRunEventPending, p.project_name,
                                                 std::string(model::ToString(p.run_type)), 0, 0});
  }
  for (const auto& [instance_id, count] : report.bad_replies) {
    own_.agent_poll_errors[instance_id] += count;
    poll_errors_changed_ = true;
  }
  // The store first: on an error nothing below has changed (but the report's points are lost,
  // so the next update reads them all again).
  std::optional<std::vector<model::JobMetricsPoint>> loaded;
  ExpositionState counters;
  Status s = RecordRunEvents();
  if (s.ok()) s = ReadStore(loaded, counters);
  if (!s.ok()) {
    points_loaded_ = false;
    return s;
  }
  ++updates_;
  const TimeMicros now = clock_.Now();
  std::vector<expose::SharedFragmentChange> changes;

  // The very lists the last update synced, unchanged (a quiet tick's): nothing to sync; the
  // entries still point into them.
  const bool same_lists =
      report.state_generation != 0 && report.state_generation == synced_generation_;
  synced_generation_ = 0;
  const bool instances_changed = !same_lists && SyncInstances(report.instances);
  bool jobs_changed = !same_lists && SyncJobs(report.runs, changes);
  if (loaded) {
    for (model::JobMetricsPoint& p : *loaded) {
      auto it = jobs_.find(p.job_id);
      if (it == jobs_.end()) continue;
      it->second.point = std::move(p);
      it->second.point_changed = true;
    }
    points_loaded_ = true;
  }
  for (const model::JobMetricsPoint& p : report.stored_points) {
    auto it = jobs_.find(p.job_id);
    if (it == jobs_.end()) continue;
    JobEntry& e = it->second;
    if (e.point && e.point->timestamp_micro > p.timestamp_micro) continue;
    e.point = p;
    e.point_changed = true;
  }
  jobs_changed |= RenderJobs(now, changes);
  if (jobs_changed) {
    std::erase_if(run_resources_, [](const auto& r) { return r.second.expired(); });
  }

  // DCGM: the new texts (the samples of jobs that ended or are no longer exported are gone).
  if (!report.dcgm.empty()) IngestDcgm(report.dcgm);
  snapshot_.DropExpiredDcgm(now);

  if (jobs_changed) {
    durations_dirty_ = true;
    job_order_.clear();
    for (auto& [id, e] : jobs_) {
      if (e.rendered) job_order_.push_back(&e);
    }
    std::sort(job_order_.begin(), job_order_.end(),
              [](const JobEntry* a, const JobEntry* b) { return a->key < b->key; });
  }
  // The durations: time-valued samples the scrape evaluates, made again only when an exported
  // instance or job, its labels or its anchor changed.
  if (durations_dirty_) {
    durations_dirty_ = false;
    expose::Fragment jobs;
    jobs.timed.reserve(job_order_.size());
    for (const JobEntry* e : job_order_)
      jobs.timed.push_back(JobDuration(e->pairs, e->submitted_at));
    SetWhole(ids_.at("dstack_job_duration_seconds_total"), std::move(jobs), changes);
    expose::Fragment ages;
    for (const InstanceEntry* i : instance_order_) {
      if (InstanceExported(i->fields.status)) {
        ages.timed.push_back(InstanceDuration(i->pairs, i->fields.created_at));
      }
    }
    SetWhole(ids_.at("dstack_instance_duration_seconds_total"), std::move(ages), changes);
  }

  if (instances_changed) {
    std::array<std::string, kInstanceSampleFamilies> texts;
    std::array<std::string*, kInstanceSampleFamilies> out{};
    for (size_t k = 0; k < texts.size(); ++k) out[k] = &texts[k];
    for (const InstanceEntry* i : instance_order_) AppendInstanceSamples(i->fields, i->pairs, out);
    for (size_t k = 0; k < texts.size(); ++k) {
      SetWhole(instance_ids_[k], expose::Fragment{std::move(texts[k]), {}, {}}, changes);
    }
  }

  // The small families: rendered each time, changed when their text did.
  std::map<std::string, std::string> small;
  RenderRunFamilies(counters.run_counts, small);
  RenderServerCounters(counters, options_, small);
  for (const ServerFamily& f : ServerFamilies()) {
    if (f.section == expose::Section::kRun || f.section == expose::Section::kServer) {
      SetWhole(ids_.at(f.name), expose::Fragment{std::move(small[f.name]), {}, {}}, changes);
    }
  }
  if (!changes.empty()) snapshot_.ApplyShared(std::move(changes));
  UpdateReplica(instances_changed);
  synced_generation_ = report.state_generation;
  return Status::Ok();
}

}  // namespace fleetwatch::server
