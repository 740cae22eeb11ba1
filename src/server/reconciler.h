#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/entities.h"
#include "model/run_spec.h"
#include "server/agent_protocol.h"
#include "server/scheduler.h"  // GpuNameMatches, for the reconciler's users
#include "util/clock.h"

namespace fleetwatch::server {

// The server's decisions for one tick, as a pure function of what it knows (instances, unfinished
// runs) and what it just observed (one poll per agent). No I/O: the FleetController feeds it and
// carries out the result. See docs/architecture.md "Reconciling with agents".

struct ReconcileSettings {
  TimeMicros unreachable_after = 60'000'000;  // no successful poll for this long → unreachable
  int stop_grace_seconds = 10;                // SIGTERM → SIGKILL on the agent
  // last_seen_at alone is written back only when it moved this much: with thousands of hosts
  // polled every second, writing it every tick would be most of the store's work.
  TimeMicros last_seen_resolution = 10'000'000;
  // Work per host per tick; the rest waits for later ticks, so that a host reporting thousands
  // of jobs cannot make one tick unbounded.
  int max_log_copies_per_host = 4;  // acknowledgements: each copies a log first
  int max_stops_per_host = 64;      // stops and forgets
};

// What the server learned about one instance this tick.
struct InstanceObservation {
  bool reached = false;  // the poll succeeded and parsed
  AgentPoll poll;
  // Reached: the host's parser's AgentPollParser::generation after this poll (equal across two
  // observations: the same poll but for `now`); 0: not known.
  uint64_t poll_generation = 0;
  std::optional<AgentInventory> inventory;  // fetched this tick (first contact, agent restart)
  std::string error;                        // why not reached
};

struct AgentCommand {
  // kAcknowledge: copy the log of a job the server placed on that instance and whose end is
  // stored, then let the agent forget it. kForget: let the agent forget an ended job the server
  // did not place there, copying nothing.
  enum class Kind { kStart, kStop, kAcknowledge, kForget };
  Kind kind = Kind::kStart;
  std::string instance_id;
  std::string job_id;
  StartJobRequest start;  // kStart only
  int grace_seconds = 0;  // kStop only
};

struct ReconcileInput {
  TimeMicros now = 0;
  // Every instance of every project, with its stored agent_id: a poll that answers with another
  // id means the agent restarted, and every job of the instance that the new agent does not
  // list ends (failed, executor_error) instead of being started again, since the old agent may
  // have started it. With the same id a `provisioning` job the agent does not list is started
  // (again): one agent process dedups starts by job id.
  std::vector<model::Instance> instances;
  std::vector<model::Run> runs;  // every unfinished run, with its jobs
  // By instance id. An instance without an entry was not polled this tick.
  std::map<std::string, InstanceObservation> observations;
  // The store's jobs for the ids the agents reported that are not jobs of `runs` (the
  // controller asks once per tick): ended jobs waiting for their log copy and acknowledgement.
  // An id found neither here nor in `runs` is not the server's.
  std::vector<model::Job> ended_jobs = {};
  // Optional: the runs' configurations already parsed (model::ParseRunConfiguration of the stored
  // JSON), by run id; a run's configuration never changes, so a caller may keep them between
  // ticks. Runs missing here are parsed by Reconcile.
  const std::unordered_map<std::string, Result<model::RunConfiguration>>* parsed_configs = nullptr;
  // GPUs that take no new jobs this tick (GpuHealthMonitor::Excluded): placement skips them, and
  // a job that could fit only with them waits, its status detail naming them and why.
  ExcludedGpus excluded_gpus = {};
  // Running jobs to end under their run's utilization policy (UtilizationPolicyTracker), by job
  // id → the message kept as the job's status detail: they are stopped with termination reason
  // terminated_due_to_utilization_policy. Ids of jobs that are not running are ignored.
  std::map<std::string, std::string> low_utilization = {};
  // Optional: the only instances that new jobs may be placed on (those this replica leases, so
  // that two replicas never place onto one host's capacity); nullptr: any.
  const std::unordered_set<std::string>* placeable_instances = nullptr;
};

struct ReconcileOutput {
  std::vector<model::Instance> instances;  // the ones that changed
  std::vector<model::Run> runs;            // the ones that changed (run or any job)
  // Carried out after the changes are stored. Acknowledgements only for jobs the server placed
  // on that instance and whose end is stored; never a command to an instance whose agent answers
  // to an older instance (AgentIdOwners); at most the settings' caps per instance.
  std::vector<AgentCommand> commands;
  std::vector<std::string> events;  // one line per noteworthy change, for the log
};

ReconcileOutput Reconcile(const ReconcileInput& input, const ReconcileSettings& settings);

// The same decisions, with `input.runs` brought to the state after the tick in place (the changed
// ones are also in the output, as copies): no copy of the unchanged runs, for a caller that keeps
// the runs between ticks. Only `input.runs` changes.
ReconcileOutput ReconcileInPlace(ReconcileInput& input, const ReconcileSettings& settings);

// Every agent id that instances have stored → the id of the oldest such instance (by created_at,
// then id). An agent answers to that instance only: another instance that reaches the same agent
// (one host listed twice under different names, in one project or two) is unreachable for as
// long as that lasts, and never commanded, so it cannot stop the first instance's jobs.
std::map<std::string, std::string> AgentIdOwners(const std::vector<model::Instance>& instances);

}  // namespace fleetwatch::server
