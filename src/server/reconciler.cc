#include "server/reconciler.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "model/run_spec.h"
#include "server/placement_reasons.h"
#include "server/scheduler.h"
#include "server/status_message.h"

namespace fleetwatch::server {
namespace {

using model::Instance;
using model::InstanceStatus;
using model::Job;
using model::JobStatus;
using model::JobTerminationReason;
using model::Run;
using model::RunStatus;

void Finish(Job& job, JobStatus status, std::optional<JobTerminationReason> reason, TimeMicros at) {
  job.status = status;
  if (reason) job.termination_reason = reason;
  job.finished_at = at;
}

// The fields of a run and its jobs that a tick may change, as they were before it: what tells
// the changed runs from the others without a copy of every run.
struct JobFields {
  JobStatus status;
  std::optional<JobTerminationReason> termination_reason;
  std::optional<int> exit_code;
  std::optional<std::string> instance_id;
  std::vector<int> gpu_indices;
  std::optional<TimeMicros> started_at;
  std::optional<TimeMicros> finished_at;
  std::optional<std::string> status_detail;

  explicit JobFields(const Job& j)
      : status(j.status),
        termination_reason(j.termination_reason),
        exit_code(j.exit_code),
        instance_id(j.instance_id),
        gpu_indices(j.gpu_indices),
        started_at(j.started_at),
        finished_at(j.finished_at),
        status_detail(j.status_detail) {}
  bool SameAs(const Job& j) const {
    return status == j.status && termination_reason == j.termination_reason &&
           exit_code == j.exit_code && instance_id == j.instance_id &&
           gpu_indices == j.gpu_indices && started_at == j.started_at &&
           finished_at == j.finished_at && status_detail == j.status_detail;
  }
};

struct RunFields {
  RunStatus status;
  std::optional<model::RunTerminationReason> termination_reason;
  std::optional<TimeMicros> finished_at;
  size_t first_job = 0;  // into the tick's JobFields
  size_t jobs = 0;
};

class Tick {
 public:
  // `runs` are the input's runs, changed in place (they may be `in.runs` itself, which the tick
  // then never reads through `in`).
  Tick(const ReconcileInput& in, std::vector<model::Run>& runs, const ReconcileSettings& settings)
      : in_(in), settings_(settings) {
    runs_.reserve(runs.size());
    for (model::Run& r : runs) runs_.push_back(WorkRun{&r, nullptr});
  }

  ReconcileOutput Run() {
    for (const Instance& i : in_.instances) instances_[i.id] = i;
    instance_by_id_.reserve(instances_.size());
    for (auto& [id, instance] : instances_) instance_by_id_.emplace(id, &instance);
    // Oldest first; the store lists them so already, and equal times keep their order.
    if (!std::is_sorted(runs_.begin(), runs_.end(), SubmittedBefore)) {
      std::stable_sort(runs_.begin(), runs_.end(), SubmittedBefore);
    }
    before_.reserve(runs_.size());
    for (WorkRun& w : runs_) {
      w.config = &ParsedConfig(*w.run);
      before_.push_back(RunFields{w.run->status, w.run->termination_reason, w.run->finished_at,
                                  jobs_before_.size(), w.run->jobs.size()});
      for (const Job& j : w.run->jobs) jobs_before_.emplace_back(j);
    }

    FindDuplicateInstances();
    observations_.reserve(in_.observations.size());
    for (const auto& [id, obs] : in_.observations) {
      if (!duplicates_.count(id)) observations_.emplace(id, &obs);
    }
    FindRestartedAgents();
    ObserveInstances();
    for (WorkRun& w : runs_) ObserveJobs(w);
    FailRunsThatCannotBeRead();
    HandleOtherAgentJobs();
    Schedule();
    for (WorkRun& w : runs_) AggregateRun(*w.run);
    UpdateInstanceBusy();

    // A job that stopped being provisioned this tick (its run ended) must not be started.
    if (std::any_of(out_.commands.begin(), out_.commands.end(),
                    [](const AgentCommand& c) { return c.kind == AgentCommand::Kind::kStart; })) {
      std::unordered_set<std::string_view> provisioning;
      for (const WorkRun& w : runs_) {
        for (const Job& j : w.run->jobs) {
          if (j.status == JobStatus::kProvisioning) provisioning.insert(j.id);
        }
      }
      std::erase_if(out_.commands, [&](const AgentCommand& c) {
        return c.kind == AgentCommand::Kind::kStart && !provisioning.count(c.job_id);
      });
    }
    // The server's own jobs first, then what the hosts hold that is not the server's.
    for (AgentCommand& c : foreign_commands_) out_.commands.push_back(std::move(c));
    ApplyCaps();
    // instances_ holds a working copy of every input instance, by id.
    for (const Instance& before : in_.instances) {
      const Instance& after = instances_.at(before.id);
      if (Changed(before, after)) out_.instances.push_back(after);
    }
    for (size_t k = 0; k < runs_.size(); ++k) {
      if (Changed(before_[k], *runs_[k].run)) out_.runs.push_back(*runs_[k].run);
    }
    return std::move(out_);
  }

 private:
  bool Changed(const Instance& a, const Instance& b) const {
    bool seen_moved =
        a.last_seen_at.has_value() != b.last_seen_at.has_value() ||
        (a.last_seen_at && b.last_seen_at &&
         std::abs(*a.last_seen_at - *b.last_seen_at) >= settings_.last_seen_resolution);
    return a.status != b.status || a.unreachable != b.unreachable || seen_moved ||
           a.agent_id != b.agent_id || a.resources.cpus != b.resources.cpus ||
           a.resources.memory_bytes != b.resources.memory_bytes ||
           a.resources.gpus.size() != b.resources.gpus.size();
  }

  bool Changed(const RunFields& a, const model::Run& b) const {
    if (a.status != b.status || a.termination_reason != b.termination_reason ||
        a.finished_at != b.finished_at || a.jobs != b.jobs.size()) {
      return true;
    }
    for (size_t i = 0; i < a.jobs; ++i) {
      if (!jobs_before_[a.first_job + i].SameAs(b.jobs[i])) return true;
    }
    return false;
  }

  // A run of the tick with its configuration as parsed (an error when it does not parse).
  struct WorkRun {
    model::Run* run;
    const Result<model::RunConfiguration>* config;
  };
  static bool SubmittedBefore(const WorkRun& a, const WorkRun& b) {
    return a.run->submitted_at < b.run->submitted_at;
  }
  // nullptr when the run's configuration cannot be read.
  static const model::RunConfiguration* Config(const WorkRun& w) {
    return w.config->ok() ? &**w.config : nullptr;
  }
  Instance* FindInstance(std::string_view id) const {
    auto it = instance_by_id_.find(id);
    return it == instance_by_id_.end() ? nullptr : it->second;
  }

  // What the instance's agent said this tick; nullptr when it was not polled, or when its agent
  // answers to an older instance (then it is as good as silent).
  const InstanceObservation* Observation(std::string_view instance_id) const {
    auto it = observations_.find(instance_id);
    return it == observations_.end() ? nullptr : it->second;
  }

  // Instances that reached an agent which answers to another, older instance: the stored owner
  // of its id, or an older instance that reached the same new id this tick.
  void FindDuplicateInstances() {
    std::map<std::string, std::string> owners = AgentIdOwners(in_.instances);
    std::vector<const Instance*> by_age;
    for (const Instance& i : in_.instances) by_age.push_back(&i);
    std::sort(by_age.begin(), by_age.end(), [](const Instance* a, const Instance* b) {
      return std::tie(a->created_at, a->id) < std::tie(b->created_at, b->id);
    });
    for (const Instance* instance : by_age) {
      auto obs = in_.observations.find(instance->id);
      if (obs == in_.observations.end() || !obs->second.reached) continue;
      const std::string& agent_id = obs->second.poll.agent_id;
      if (agent_id.empty()) continue;
      auto [owner, claimed] = owners.emplace(agent_id, instance->id);
      if (!claimed && owner->second != instance->id) {
        duplicates_[instance->id] = instances_.at(owner->second).name;
      }
    }
  }

  // Instances whose agent answers with another id than the stored one: it restarted (or another
  // agent took its place), and whatever the old one was asked to start may have run already.
  void FindRestartedAgents() {
    for (const Instance& instance : in_.instances) {
      const InstanceObservation* obs = Observation(instance.id);
      if (obs == nullptr || !obs->reached) continue;
      const std::string& agent_id = obs->poll.agent_id;
      if (!instance.agent_id.empty() && !agent_id.empty() && agent_id != instance.agent_id) {
        restarted_[instance.id] = instance.agent_id + " -> " + agent_id;
      }
    }
  }

  // Whether jobs may be placed on the instance this tick: not while a restarted agent's new id
  // is not stored yet (its inventory did not come), as the next tick would take a job placed now
  // for one the old agent may have started.
  bool AgentIdSettled(const std::string& instance_id) const {
    if (!restarted_.count(instance_id)) return true;
    const InstanceObservation* obs = Observation(instance_id);
    return obs != nullptr && obs->inventory.has_value();
  }

  void Event(std::string text) { out_.events.push_back(std::move(text)); }

  void ObserveInstances() {
    for (auto& [id, instance] : instances_) {
      if (auto dup = duplicates_.find(id); dup != duplicates_.end()) {
        if (!instance.unreachable) {
          instance.unreachable = true;
          Event("instance " + instance.name + " is unreachable: its agent (" +
                in_.observations.at(id).poll.agent_id + ") already serves instance " + dup->second +
                "; a host belongs to one fleet, so this one is never commanded");
        }
        continue;
      }
      const InstanceObservation* obs = Observation(id);
      if (obs == nullptr) continue;
      if (obs->reached) {
        instance.last_seen_at = in_.now;
        if (instance.unreachable) {
          instance.unreachable = false;
          Event("instance " + instance.name + " is reachable again");
        }
        if (obs->inventory) {
          instance.resources.cpus = obs->inventory->cpus;
          instance.resources.memory_bytes = obs->inventory->memory_bytes;
          instance.resources.gpus = obs->inventory->gpus;
          instance.agent_id = obs->inventory->agent_id;
        }
        if (instance.status == InstanceStatus::kPending && instance.resources.cpus > 0) {
          instance.status = InstanceStatus::kIdle;
          Event("instance " + instance.name + " is up: " + std::to_string(instance.resources.cpus) +
                " CPUs, " + std::to_string(instance.resources.gpus.size()) + " GPUs");
        }
      } else {
        TimeMicros since = instance.last_seen_at.value_or(instance.created_at);
        if (!instance.unreachable && in_.now - since > settings_.unreachable_after) {
          instance.unreachable = true;
          Event("instance " + instance.name + " is unreachable: " + obs->error);
        }
      }
    }
  }

  const AgentJob* AgentJobOf(const InstanceObservation& obs, const std::string& job_id) const {
    for (const AgentJob& j : obs.poll.jobs) {
      if (j.job_id == job_id) return &j;
    }
    return nullptr;
  }

  // `placed_here`: the job is the server's, on that instance.
  void Command(AgentCommand::Kind kind, const std::string& instance_id, const std::string& job_id,
               bool placed_here = true) {
    if (kind == AgentCommand::Kind::kAcknowledge && !acked_.insert(job_id).second) return;
    AgentCommand c;
    c.kind = kind;
    c.instance_id = instance_id;
    c.job_id = job_id;
    c.grace_seconds = settings_.stop_grace_seconds;
    (placed_here ? out_.commands : foreign_commands_).push_back(std::move(c));
  }

  // Keeps the first commands of each instance up to the caps, in order; the rest are decided
  // again by a later tick.
  void ApplyCaps() {
    std::map<std::string, std::pair<int, int>> used;  // instance id → (copies, stops)
    std::erase_if(out_.commands, [&](const AgentCommand& c) {
      auto& [copies, stops] = used[c.instance_id];
      switch (c.kind) {
        case AgentCommand::Kind::kStart:
          return false;
        case AgentCommand::Kind::kAcknowledge:
          return ++copies > settings_.max_log_copies_per_host;
        case AgentCommand::Kind::kStop:
        case AgentCommand::Kind::kForget:
          return ++stops > settings_.max_stops_per_host;
      }
      return false;
    });
  }

  // The run's stored configuration, parsed once per tick; an error when it no longer parses.
  const Result<model::RunConfiguration>& ParsedConfig(const model::Run& run) {
    if (in_.parsed_configs != nullptr) {
      auto known = in_.parsed_configs->find(run.id);
      if (known != in_.parsed_configs->end()) return known->second;
    }
    auto it = configs_.find(run.id);
    if (it == configs_.end()) {
      it = configs_
               .emplace(run.id, model::ParseRunConfiguration(run.configuration_json,
                                                             model::ConfigFormat::kJson))
               .first;
    }
    return it->second;
  }

  // The run's unfinished jobs end, with `terminated_by_server` unless they already have a reason:
  // those on an instance are stopped there, the others end at once.
  void TerminateUnfinishedJobs(model::Run& run) {
    for (Job& j : run.jobs) {
      if (model::IsFinished(j.status) || j.status == JobStatus::kTerminating) continue;
      j.termination_reason = JobTerminationReason::kTerminatedByServer;
      if (j.instance_id) {
        j.status = JobStatus::kTerminating;
        Command(AgentCommand::Kind::kStop, *j.instance_id, j.id);
      } else {
        Finish(j, JobStatus::kTerminated, std::nullopt, in_.now);
      }
    }
  }

  // A run whose stored configuration no longer parses (damaged in the database, or refused by a
  // rule newer than the run) can never be placed or started: it fails with `server_error`
  // rather than staying submitted forever.
  void FailRunsThatCannotBeRead() {
    for (WorkRun& w : runs_) {
      model::Run& run = *w.run;
      if (run.status == RunStatus::kTerminating || model::IsFinished(run.status)) continue;
      const Result<model::RunConfiguration>& parsed = *w.config;
      if (parsed.ok()) continue;
      run.status = RunStatus::kTerminating;
      run.termination_reason = model::RunTerminationReason::kServerError;
      TerminateUnfinishedJobs(run);
      Event("run " + run.run_name +
            " failed: its stored configuration does not parse: " + parsed.status().message());
    }
  }

  void StartCommand(const WorkRun& w, const Job& job) {
    const model::Run& run = *w.run;
    const model::RunConfiguration* config = Config(w);
    if (config == nullptr || !job.instance_id) return;
    AgentCommand c;
    c.kind = AgentCommand::Kind::kStart;
    c.instance_id = *job.instance_id;
    c.job_id = job.id;
    StartJobRequest& s = c.start;
    s.job_id = job.id;
    s.job_name = job.job_name;
    s.run_name = run.run_name;
    s.commands = config->type == model::RunType::kDevEnvironment && !config->init.empty()
                     ? config->init
                     : config->commands;
    if (config->type == model::RunType::kDevEnvironment) {
      // A dev environment stays up after its init commands until it is stopped.
      s.commands.push_back("exec sleep infinity");
    }
    s.env = config->env;
    s.working_dir = config->working_dir;
    s.gpu_indices = job.gpu_indices;
    s.cpus = config->resources.cpus;
    s.memory_bytes = config->resources.memory_bytes;
    s.cluster.nodes_num = config->nodes;
    s.cluster.node_rank = job.job_num;
    s.cluster.gpus_per_node = config->resources.gpu.count;
    // Node addresses by rank, from the jobs of the same replica.
    std::vector<std::string> ips(static_cast<size_t>(config->nodes));
    for (const Job& other : run.jobs) {
      if (other.replica_num != job.replica_num || !other.instance_id) continue;
      const Instance* instance = FindInstance(*other.instance_id);
      if (instance != nullptr && other.job_num < config->nodes) {
        ips[static_cast<size_t>(other.job_num)] = instance->hostname;
      }
    }
    s.cluster.nodes_ips = ips;
    s.cluster.master_node_ip = ips.empty() ? "" : ips[0];
    out_.commands.push_back(std::move(c));
  }

  void ObserveJobs(const WorkRun& w) {
    model::Run& run = *w.run;
    for (Job& job : run.jobs) {
      if (model::IsFinished(job.status) || !job.instance_id) continue;
      const Instance* instance = FindInstance(*job.instance_id);
      if (instance == nullptr || instance->unreachable) {
        Finish(job, JobStatus::kFailed, JobTerminationReason::kInstanceUnreachable, in_.now);
        job.status_detail = "instance " + job.instance_name.value_or("?") + " is unreachable";
        Event("job " + job.job_name + " failed: " + *job.status_detail);
        continue;
      }
      const InstanceObservation* obs = Observation(instance->id);
      if (obs == nullptr || !obs->reached) continue;  // wait for the agent
      const AgentJob* aj = AgentJobOf(*obs, job.id);
      if (aj != nullptr) {
        std::vector<const Job*>& matched = matched_[obs];
        if (matched.empty()) matched.assign(obs->poll.jobs.size(), nullptr);
        matched[static_cast<size_t>(aj - obs->poll.jobs.data())] = &job;
      }
      auto restarted = restarted_.find(instance->id);
      if (aj == nullptr) {
        if (restarted != restarted_.end() && job.status != JobStatus::kTerminating) {
          // The start may have reached the old agent and run: never start it a second time.
          Finish(job, JobStatus::kFailed, JobTerminationReason::kExecutorError, in_.now);
          job.status_detail = "the agent of " + instance->name + " restarted (agent id " +
                              restarted->second + ") and does not have it";
          Event("job " + job.job_name + " failed: " + *job.status_detail);
        } else if (job.status == JobStatus::kProvisioning) {
          // Never reached this agent, or unsure: the same agent process dedups starts by job id.
          StartCommand(w, job);
        } else if (job.status == JobStatus::kTerminating) {
          Finish(job,
                 model::FinalStatusFor(
                     job.termination_reason.value_or(JobTerminationReason::kTerminatedByServer)),
                 std::nullopt, in_.now);
        } else {
          Finish(job, JobStatus::kFailed, JobTerminationReason::kExecutorError, in_.now);
          job.status_detail = "the agent of " + instance->name + " no longer has it";
          Event("job " + job.job_name + " failed: " + *job.status_detail);
        }
        continue;
      }
      if (aj->state == AgentJobState::kRunning) {
        if (job.status == JobStatus::kProvisioning || job.status == JobStatus::kPulling) {
          job.status = JobStatus::kRunning;
          job.started_at = aj->started_at.value_or(in_.now);
          Event("job " + job.job_name + " is running on " + instance->name);
        }
        const model::RunConfiguration* config = Config(w);
        if (job.status == JobStatus::kRunning && config != nullptr &&
            config->max_duration_seconds &&
            in_.now - job.started_at.value_or(in_.now) >=
                *config->max_duration_seconds * 1'000'000) {
          job.status = JobStatus::kTerminating;
          job.termination_reason = JobTerminationReason::kMaxDurationExceeded;
          job.status_detail = "max duration " + DurationWords(*config->max_duration_seconds);
          Event("job " + job.job_name + " exceeded its max_duration");
        }
        if (job.status == JobStatus::kRunning) {
          auto idle = in_.low_utilization.find(job.id);
          if (idle != in_.low_utilization.end()) {
            job.status = JobStatus::kTerminating;
            job.termination_reason = JobTerminationReason::kTerminatedDueToUtilizationPolicy;
            job.status_detail = idle->second;
            Event("job " + job.job_name +
                  " is terminated by its utilization policy: " + idle->second);
          }
        }
        if (job.status == JobStatus::kTerminating && !aj->stop_requested) {
          Command(AgentCommand::Kind::kStop, instance->id, job.id);
        }
        continue;
      }
      // The process ended.
      job.exit_code = aj->exit_code;
      if (!aj->exit_code && aj->signal) job.exit_code = 128 + *aj->signal;
      if (!job.started_at) job.started_at = aj->started_at;
      TimeMicros at = aj->finished_at.value_or(in_.now);
      if (aj->state == AgentJobState::kFailedToStart) {
        Finish(job, JobStatus::kFailed, JobTerminationReason::kExecutorError, at);
        job.status_detail = "could not start: " + aj->error;
        Event("job " + job.job_name + " " + *job.status_detail);
      } else if (job.status == JobStatus::kTerminating) {
        JobTerminationReason reason =
            job.termination_reason.value_or(JobTerminationReason::kTerminatedByServer);
        Finish(job, model::FinalStatusFor(reason), reason, at);
      } else if (aj->state == AgentJobState::kLost) {
        Finish(job, JobStatus::kFailed, JobTerminationReason::kExecutorError, at);
        job.status_detail = "lost by the agent of " + instance->name + ": " + aj->error;
        Event("job " + job.job_name + " was " + *job.status_detail);
      } else if (aj->exit_code && *aj->exit_code == 0) {
        Finish(job, JobStatus::kDone, JobTerminationReason::kDoneByRunner, at);
      } else {
        Finish(job, JobStatus::kFailed, JobTerminationReason::kContainerExitedWithError, at);
      }
      Event("job " + job.job_name + " ended " + std::string(model::ToString(job.status)));
      Command(AgentCommand::Kind::kAcknowledge, instance->id, job.id);
    }
  }

  // Jobs an agent holds that the server is not (or no longer) running there. The server's own
  // jobs on that instance are stopped while they run and acknowledged once ended (their log is
  // copied first: this is also how a copy that failed in an earlier tick is retried). Anything
  // else — ids the server never placed there, whoever else they belong to — is stopped or
  // forgotten, and nothing of it is copied.
  void HandleOtherAgentJobs() {
    size_t reported = 0;
    for (const auto& [id, obs] : observations_) {
      if (obs->reached) reported += obs->poll.jobs.size();
    }
    if (reported == 0) return;
    // The agent jobs ObserveJobs matched with a job of the runs are found without a lookup; the
    // others (ended jobs, ids that are not the server's) in a map made only if there are any.
    std::unordered_map<std::string_view, const Job*> jobs;
    auto find_job = [&](const AgentJob& aj) -> const Job* {
      if (jobs.empty()) {
        jobs.reserve(in_.ended_jobs.size() + reported);
        for (const Job& job : in_.ended_jobs) jobs[job.id] = &job;
        for (const WorkRun& w : runs_) {
          for (const Job& job : w.run->jobs) jobs[job.id] = &job;
        }
      }
      auto it = jobs.find(aj.job_id);
      return it == jobs.end() ? nullptr : it->second;
    };
    for (const auto& [instance_id, unused] : in_.observations) {
      const InstanceObservation* obs = Observation(instance_id);
      if (obs == nullptr || !obs->reached) continue;
      auto m = matched_.find(obs);
      const std::vector<const Job*>* matched = m == matched_.end() ? nullptr : &m->second;
      for (size_t k = 0; k < obs->poll.jobs.size(); ++k) {
        const AgentJob& aj = obs->poll.jobs[k];
        const Job* job = matched != nullptr ? (*matched)[k] : nullptr;
        if (job == nullptr) job = find_job(aj);
        bool placed_here = job != nullptr && job->instance_id == instance_id;
        if (placed_here && !model::IsFinished(job->status)) continue;  // ObserveJobs'
        if (aj.state == AgentJobState::kRunning) {
          if (!aj.stop_requested) {
            Command(AgentCommand::Kind::kStop, instance_id, aj.job_id, placed_here);
          }
        } else if (placed_here) {
          // The store's id, not the reply's text: the log copy's path is built from it.
          Command(AgentCommand::Kind::kAcknowledge, instance_id, job->id);
        } else {
          Command(AgentCommand::Kind::kForget, instance_id, aj.job_id, false);
        }
      }
    }
  }

  void Schedule() {
    // The free capacity is worked out when the first job waits for a place (most ticks have
    // none): nothing has changed the runs between the start of the pass and that moment.
    std::optional<CapacityMap> capacity;
    for (const WorkRun& w : runs_) {
      model::Run& run = *w.run;
      if (run.status != RunStatus::kSubmitted && run.status != RunStatus::kProvisioning &&
          run.status != RunStatus::kRunning && run.status != RunStatus::kPending) {
        continue;
      }
      const model::RunConfiguration* config = Config(w);
      if (config == nullptr) continue;
      std::map<int, std::vector<Job*>> waiting;  // by replica: the jobs of its nodes
      for (Job& job : run.jobs) {
        if (job.status == JobStatus::kSubmitted && !job.instance_id) {
          waiting[job.replica_num].push_back(&job);
        }
      }
      if (waiting.empty()) continue;
      if (!capacity) {
        std::vector<std::pair<const model::Run*, const model::RunConfiguration*>> runs;
        runs.reserve(runs_.size());
        for (const WorkRun& r : runs_) runs.emplace_back(r.run, Config(r));
        capacity = FreeCapacity(instances_, runs);
        ExcludeGpus(*capacity, in_.excluded_gpus);
      }
      for (auto& [replica, jobs] : waiting) Place(w, *config, jobs, *capacity);
    }
  }

  // The instances of a project, in the input's order.
  const std::vector<Instance*>& ProjectInstances(const std::string& project_id) {
    auto [it, inserted] = project_instances_.try_emplace(project_id);
    if (inserted) {
      for (const Instance& original : in_.instances) {
        Instance& instance = instances_.at(original.id);
        if (instance.project_id == project_id) it->second.push_back(&instance);
      }
    }
    return it->second;
  }

  // Places the jobs of one replica (one per node) all together on distinct instances of one fleet,
  // or none of them.
  void Place(const WorkRun& w, const model::RunConfiguration& config, std::vector<Job*>& jobs,
             CapacityMap& capacity) {
    model::Run& run = *w.run;
    const std::vector<Instance*>& project_instances = ProjectInstances(run.project_id);
    GroupPlacement placement = PlaceGroup(
        config.resources, jobs.size(), project_instances, capacity,
        [this](const Instance& instance) {
          return AgentIdSettled(instance.id) && (in_.placeable_instances == nullptr ||
                                                 in_.placeable_instances->count(instance.id) > 0);
        });
    switch (placement.outcome) {
      case GroupPlacement::Outcome::kNeverFits: {
        std::vector<Instance> project;
        for (const Instance* i : project_instances) project.push_back(*i);
        const std::string why =
            NoCapacityReason(run.project_name, project, config.resources, config.nodes);
        for (Job* job : jobs) {
          Finish(*job, JobStatus::kFailed, JobTerminationReason::kFailedToStartDueToNoCapacity,
                 in_.now);
          job->status_detail = why;
        }
        Event("run " + run.run_name + " cannot be placed: " + why);
        return;
      }
      case GroupPlacement::Outcome::kNoCapacity: {
        // Capacity is busy: the jobs wait, and say for what.
        std::map<std::string, int> fleet_sizes;
        for (const Instance* i : project_instances) ++fleet_sizes[i->fleet_id];
        std::vector<InstanceFree> free;
        for (const Instance* i : project_instances) {
          const Capacity& c = capacity.at(i->id);
          auto excluded = in_.excluded_gpus.find(i->id);
          free.push_back({i, fleet_sizes[i->fleet_id],
                          UsableForScheduling(*i) && AgentIdSettled(i->id), c.cpus, c.memory_bytes,
                          c.free_gpus,
                          excluded == in_.excluded_gpus.end() ? nullptr : &excluded->second});
        }
        const std::string why = WaitReason(free, config.resources, config.nodes);
        for (Job* job : jobs) job->status_detail = why;
        return;
      }
      case GroupPlacement::Outcome::kPlaced:
        break;
    }
    std::sort(jobs.begin(), jobs.end(),
              [](const Job* a, const Job* b) { return a->job_num < b->job_num; });
    for (size_t k = 0; k < jobs.size(); ++k) {
      Job& job = *jobs[k];
      job.status = JobStatus::kProvisioning;
      job.instance_id = placement.chosen[k].first->id;
      job.instance_name = placement.chosen[k].first->name;
      job.gpu_indices = placement.chosen[k].second;
      job.status_detail.reset();
      Event("job " + job.job_name + " placed on " + placement.chosen[k].first->name);
    }
    for (Job* job : jobs) StartCommand(w, *job);
  }

  void AggregateRun(model::Run& run) {
    auto unfinished = [&] {
      return std::count_if(run.jobs.begin(), run.jobs.end(),
                           [](const Job& j) { return !model::IsFinished(j.status); });
    };
    if (run.status != RunStatus::kTerminating) {
      bool failed = false, terminated = false, all_done = !run.jobs.empty();
      bool running = false, provisioning = false;
      for (const Job& j : run.jobs) {
        failed = failed || j.status == JobStatus::kFailed;
        terminated =
            terminated || j.status == JobStatus::kTerminated || j.status == JobStatus::kAborted;
        all_done = all_done && j.status == JobStatus::kDone;
        running = running || j.status == JobStatus::kRunning || j.status == JobStatus::kTerminating;
        provisioning =
            provisioning || j.status == JobStatus::kProvisioning || j.status == JobStatus::kPulling;
      }
      if (failed || terminated) {
        run.status = RunStatus::kTerminating;
        // A job ended by the server (max_duration, ...) has no run-level reason in dstack's
        // vocabulary; the run ends `terminated` without one.
        if (failed) run.termination_reason = model::RunTerminationReason::kJobFailed;
        TerminateUnfinishedJobs(run);
      } else if (all_done) {
        run.status = RunStatus::kDone;
        run.termination_reason = model::RunTerminationReason::kAllJobsDone;
        run.finished_at = in_.now;
        Event("run " + run.run_name + " is done");
        return;
      } else if (running) {
        run.status = RunStatus::kRunning;
      } else if (provisioning) {
        run.status = RunStatus::kProvisioning;
      }
    }
    if (run.status == RunStatus::kTerminating && unfinished() == 0) {
      run.status = run.termination_reason ? model::FinalStatusFor(*run.termination_reason)
                                          : RunStatus::kTerminated;
      run.finished_at = in_.now;
      Event("run " + run.run_name + " ended " + std::string(model::ToString(run.status)));
    }
  }

  void UpdateInstanceBusy() {
    std::unordered_set<std::string_view> busy;
    busy.reserve(instances_.size());
    for (const WorkRun& w : runs_) {
      for (const Job& j : w.run->jobs) {
        if (!model::IsFinished(j.status) && j.instance_id) busy.insert(*j.instance_id);
      }
    }
    for (auto& [id, instance] : instances_) {
      if (instance.status == InstanceStatus::kIdle && busy.count(id)) {
        instance.status = InstanceStatus::kBusy;
      } else if (instance.status == InstanceStatus::kBusy && !busy.count(id)) {
        instance.status = InstanceStatus::kIdle;
      }
    }
  }

  const ReconcileInput& in_;
  const ReconcileSettings& settings_;
  std::map<std::string, Instance> instances_;                       // working copies, by id
  std::unordered_map<std::string_view, Instance*> instance_by_id_;  // the same, for lookups
  std::unordered_map<std::string_view, const InstanceObservation*> observations_;  // Observation
  std::vector<WorkRun> runs_;                                                      // oldest first
  std::vector<RunFields> before_;  // as runs_, before the tick
  std::vector<JobFields> jobs_before_;
  std::map<std::string, std::vector<Instance*>> project_instances_;  // ProjectInstances
  std::map<std::string, Result<model::RunConfiguration>> configs_;
  std::set<std::string> acked_;
  std::map<std::string, std::string> duplicates_;  // instance id → name of the agent's owner
  std::map<std::string, std::string> restarted_;   // instance id → "old agent id -> new"
  // Per observation, per job of its poll (same index): the job of the runs ObserveJobs matched
  // it with, placed on that instance; nullptr where none.
  std::unordered_map<const InstanceObservation*, std::vector<const Job*>> matched_;
  std::vector<AgentCommand> foreign_commands_;  // for jobs that are not the server's there
  ReconcileOutput out_;
};

}  // namespace

std::map<std::string, std::string> AgentIdOwners(const std::vector<model::Instance>& instances) {
  std::map<std::string, const Instance*> oldest;
  for (const Instance& i : instances) {
    if (i.agent_id.empty() || i.status == InstanceStatus::kTerminated) continue;
    auto [it, inserted] = oldest.emplace(i.agent_id, &i);
    if (!inserted &&
        std::tie(i.created_at, i.id) < std::tie(it->second->created_at, it->second->id)) {
      it->second = &i;
    }
  }
  std::map<std::string, std::string> owners;
  for (const auto& [agent_id, instance] : oldest) owners.emplace(agent_id, instance->id);
  return owners;
}

ReconcileOutput Reconcile(const ReconcileInput& input, const ReconcileSettings& settings) {
  std::vector<model::Run> runs = input.runs;
  return Tick(input, runs, settings).Run();
}

ReconcileOutput ReconcileInPlace(ReconcileInput& input, const ReconcileSettings& settings) {
  return Tick(input, input.runs, settings).Run();
}

}  // namespace fleetwatch::server
