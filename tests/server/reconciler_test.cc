// The server's decisions, as a pure function of state and observations.
#include "server/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "model/run_spec.h"
#include "server/run_cost.h"

namespace fleetwatch::server {
namespace {

using model::InstanceStatus;
using model::JobStatus;
using model::JobTerminationReason;
using model::RunStatus;

constexpr TimeMicros kNow = 1'800'000'000'000'000;
constexpr TimeMicros kSecond = 1'000'000;

model::Instance MakeInstance(const std::string& name, int cpus, int gpus,
                             const std::string& fleet = "f1") {
  model::Instance i;
  i.id = "id-" + name;
  i.project_id = "p1";
  i.project_name = "main";
  i.fleet_id = fleet;
  i.fleet_name = fleet;
  i.name = name;
  i.status = InstanceStatus::kIdle;
  i.backend = "remote";
  i.hostname = "10.0.0." + std::to_string(name.back() - '0' + 1);
  i.agent_port = 10998;
  i.agent_token = "t";
  i.resources.cpus = cpus;
  i.resources.memory_bytes = int64_t{64} << 30;
  for (int g = 0; g < gpus; ++g) {
    i.resources.gpus.push_back(
        {g, "NVIDIA A100-SXM4-80GB", "GPU-" + std::to_string(g), int64_t{80} << 30, "nvidia"});
  }
  i.created_at = kNow - 3600 * kSecond;
  i.last_seen_at = kNow - kSecond;
  i.agent_id = "agent-" + name;
  return i;
}

model::Run MakeRun(const std::string& name, const std::string& yaml, TimeMicros submitted = kNow) {
  auto config = model::ParseRunConfiguration(yaml, model::ConfigFormat::kYaml);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  model::Run run;
  run.id = "run-" + name;
  run.project_id = "p1";
  run.project_name = "main";
  run.run_name = name;
  run.status = RunStatus::kSubmitted;
  run.submitted_at = submitted;
  run.configuration_json = model::ToJson(*config);
  for (int n = 0; n < config->nodes; ++n) {
    model::Job job;
    job.id = name + "-job-" + std::to_string(n);
    job.run_id = run.id;
    job.job_num = n;
    job.job_name = name + "-" + std::to_string(n) + "-0";
    job.submitted_at = submitted;
    run.jobs.push_back(job);
  }
  return run;
}

InstanceObservation Reached(std::vector<AgentJob> jobs = {}, const std::string& agent_id = "") {
  InstanceObservation o;
  o.reached = true;
  o.poll.agent_id = agent_id;
  o.poll.now = kNow;
  o.poll.jobs = std::move(jobs);
  return o;
}

AgentJob Running(const std::string& job_id) {
  AgentJob j;
  j.job_id = job_id;
  j.state = AgentJobState::kRunning;
  j.started_at = kNow - 5 * kSecond;
  return j;
}

AgentJob Exited(const std::string& job_id, int code) {
  AgentJob j = Running(job_id);
  j.state = AgentJobState::kExited;
  j.exit_code = code;
  j.finished_at = kNow - kSecond;
  return j;
}

const model::Run* FindRun(const ReconcileOutput& out, const std::string& name) {
  for (const auto& r : out.runs) {
    if (r.run_name == name) return &r;
  }
  return nullptr;
}

int CountCommands(const ReconcileOutput& out, AgentCommand::Kind kind) {
  return static_cast<int>(std::count_if(out.commands.begin(), out.commands.end(),
                                        [&](const AgentCommand& c) { return c.kind == kind; }));
}

TEST(Reconcile, FirstContactFillsResourcesAndMakesThePendingInstanceIdle) {
  ReconcileInput in;
  in.now = kNow;
  model::Instance i = MakeInstance("h0", 0, 0);
  i.status = InstanceStatus::kPending;
  i.resources = {};
  i.last_seen_at.reset();
  in.instances = {i};
  InstanceObservation obs = Reached({}, "agent-1");
  obs.inventory = AgentInventory{"agent-1", "host", 16, int64_t{128} << 30, {}, "v1"};
  in.observations[i.id] = obs;
  ReconcileOutput out = Reconcile(in, {});
  ASSERT_EQ(out.instances.size(), 1u);
  EXPECT_EQ(out.instances[0].status, InstanceStatus::kIdle);
  EXPECT_EQ(out.instances[0].resources.cpus, 16);
  EXPECT_EQ(out.instances[0].agent_id, "agent-1");
  EXPECT_EQ(out.instances[0].last_seen_at, kNow);
}

TEST(Reconcile, SilenceLongerThanTheGraceMakesAnInstanceUnreachableAndFailsItsJobs) {
  ReconcileSettings settings;
  settings.unreachable_after = 30 * kSecond;
  model::Instance i = MakeInstance("h0", 8, 0);
  i.last_seen_at = kNow - 20 * kSecond;
  model::Run run = MakeRun("train", "type: task\ncommands: [sleep 600]\n");
  run.status = RunStatus::kRunning;
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].instance_id = i.id;
  ReconcileInput in{kNow, {i}, {run}, {}};
  InstanceObservation down;
  down.error = "Connection refused";
  in.observations[i.id] = down;
  // Within the grace period nothing changes.
  EXPECT_TRUE(Reconcile(in, settings).runs.empty());

  in.now = kNow + 11 * kSecond;
  ReconcileOutput out = Reconcile(in, settings);
  ASSERT_EQ(out.instances.size(), 1u);
  EXPECT_TRUE(out.instances[0].unreachable);
  const model::Run* failed = FindRun(out, "train");
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(failed->jobs[0].termination_reason, JobTerminationReason::kInstanceUnreachable);
  EXPECT_EQ(failed->status, RunStatus::kFailed);
  EXPECT_EQ(failed->termination_reason, model::RunTerminationReason::kJobFailed);

  // A successful poll brings it back.
  in.instances[0] = out.instances[0];
  in.observations[i.id] = Reached();
  ReconcileOutput back = Reconcile(in, settings);
  ASSERT_EQ(back.instances.size(), 1u);
  EXPECT_FALSE(back.instances[0].unreachable);
}

TEST(Reconcile, PlacesASubmittedJobAndSendsItsStart) {
  model::Instance i = MakeInstance("h0", 8, 2);
  model::Run run = MakeRun("train",
                           "type: task\ncommands: [python train.py]\nenv: {A: '1'}\n"
                           "resources: {cpu: 4, gpu: A100:1}\n");
  ReconcileInput in{kNow, {i}, {run}, {{i.id, Reached()}}};
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* placed = FindRun(out, "train");
  ASSERT_NE(placed, nullptr);
  EXPECT_EQ(placed->status, RunStatus::kProvisioning);
  EXPECT_EQ(placed->jobs[0].status, JobStatus::kProvisioning);
  EXPECT_EQ(placed->jobs[0].instance_name, "h0");
  EXPECT_EQ(placed->jobs[0].gpu_indices, std::vector<int>{0});
  ASSERT_EQ(out.commands.size(), 1u);
  const AgentCommand& start = out.commands[0];
  EXPECT_EQ(start.kind, AgentCommand::Kind::kStart);
  EXPECT_EQ(start.start.commands, std::vector<std::string>{"python train.py"});
  EXPECT_EQ(start.start.cpus, 4);
  EXPECT_EQ(start.start.gpu_indices, std::vector<int>{0});
  EXPECT_EQ(start.start.cluster.master_node_ip, "10.0.0.1");
  EXPECT_EQ(start.start.cluster.gpus_per_node, 1);
  ASSERT_EQ(out.instances.size(), 1u);
  EXPECT_EQ(out.instances[0].status, InstanceStatus::kBusy);
}

TEST(Reconcile, TwoOneGpuRunsGetDifferentGpusAndAThirdWaits) {
  model::Instance i = MakeInstance("h0", 8, 2);
  const char* yaml = "type: task\ncommands: [x]\nresources: {gpu: 1}\n";
  ReconcileInput in{
      kNow,
      {i},
      {MakeRun("a", yaml, kNow - 3), MakeRun("b", yaml, kNow - 2), MakeRun("c", yaml, kNow - 1)},
      {{i.id, Reached()}}};
  ReconcileOutput out = Reconcile(in, {});
  ASSERT_NE(FindRun(out, "a"), nullptr);
  ASSERT_NE(FindRun(out, "b"), nullptr);
  EXPECT_EQ(FindRun(out, "a")->jobs[0].gpu_indices, std::vector<int>{0});
  EXPECT_EQ(FindRun(out, "b")->jobs[0].gpu_indices, std::vector<int>{1});
  // The third run waits, and says for what.
  const model::Run* c = FindRun(out, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, RunStatus::kSubmitted);
  EXPECT_EQ(c->jobs[0].status, JobStatus::kSubmitted);
  EXPECT_FALSE(c->jobs[0].instance_id.has_value());
  EXPECT_EQ(c->jobs[0].status_detail, "0 of 2 GPUs free on f1");
  // The same wait next tick is not written again.
  in.runs[2] = *c;
  ReconcileOutput again = Reconcile(in, {});
  EXPECT_EQ(FindRun(again, "c"), nullptr);
}

TEST(Reconcile, InPlaceDecidesTheSameAndLeavesTheRunsAsTheyAreAfterTheTick) {
  model::Instance i = MakeInstance("h0", 8, 2);
  const char* yaml = "type: task\ncommands: [x]\nresources: {gpu: 1}\n";
  // Out of submission order on purpose: the decisions go oldest first either way.
  model::Run running = MakeRun("running", yaml, kNow - 10);
  running.status = RunStatus::kRunning;
  running.jobs[0].status = JobStatus::kRunning;
  running.jobs[0].instance_id = i.id;
  running.jobs[0].instance_name = i.name;
  running.jobs[0].gpu_indices = {0};
  running.jobs[0].started_at = kNow - 5 * kSecond;
  model::Run ending = running;
  ending.id = "run-ending";
  ending.run_name = "ending";
  ending.submitted_at = kNow - 20;
  ending.jobs[0].id = "ending-job-0";
  ending.jobs[0].gpu_indices = {1};
  ReconcileInput in{
      kNow,
      {i},
      {MakeRun("waits", yaml, kNow - 1), MakeRun("placed", yaml, kNow - 2), running, ending},
      {{i.id, Reached({Running(running.jobs[0].id), Exited("ending-job-0", 0)})}}};
  const ReconcileOutput copied = Reconcile(in, {});
  ReconcileInput kept = in;
  const ReconcileOutput in_place = ReconcileInPlace(kept, {});

  ASSERT_EQ(in_place.runs.size(), copied.runs.size());
  for (size_t k = 0; k < copied.runs.size(); ++k) {
    EXPECT_EQ(in_place.runs[k].run_name, copied.runs[k].run_name);
    EXPECT_EQ(in_place.runs[k].status, copied.runs[k].status);
    EXPECT_EQ(in_place.runs[k].jobs[0].status, copied.runs[k].jobs[0].status);
    EXPECT_EQ(in_place.runs[k].jobs[0].status_detail, copied.runs[k].jobs[0].status_detail);
  }
  EXPECT_EQ(in_place.events, copied.events);
  ASSERT_EQ(in_place.commands.size(), copied.commands.size());
  // The unchanged run is not in the output; "ending" is done, "placed" placed, "waits" waits.
  EXPECT_EQ(FindRun(in_place, "running"), nullptr);
  EXPECT_EQ(FindRun(in_place, "ending")->status, RunStatus::kDone);
  EXPECT_EQ(FindRun(in_place, "placed")->jobs[0].gpu_indices, std::vector<int>{1});
  EXPECT_TRUE(FindRun(in_place, "waits")->jobs[0].status_detail.has_value());

  // The kept runs are the input's with the output applied, in the input's order.
  ASSERT_EQ(kept.runs.size(), in.runs.size());
  for (size_t k = 0; k < kept.runs.size(); ++k) {
    EXPECT_EQ(kept.runs[k].id, in.runs[k].id);
    const model::Run* changed = FindRun(in_place, kept.runs[k].run_name);
    const model::Run& expected = changed != nullptr ? *changed : in.runs[k];
    EXPECT_EQ(kept.runs[k].status, expected.status) << expected.run_name;
    EXPECT_EQ(kept.runs[k].jobs[0].status, expected.jobs[0].status) << expected.run_name;
    EXPECT_EQ(kept.runs[k].jobs[0].instance_id, expected.jobs[0].instance_id);
    EXPECT_EQ(kept.runs[k].jobs[0].status_detail, expected.jobs[0].status_detail);
  }
  // Deciding again on what is kept changes nothing.
  EXPECT_TRUE(Reconcile(kept, {}).runs.empty());
}

TEST(Reconcile, ARequestNoInstanceCouldEverSatisfyFails) {
  model::Instance i = MakeInstance("h0", 8, 2);
  ReconcileInput in{kNow,
                    {i},
                    {MakeRun("big", "type: task\ncommands: [x]\nresources: {cpu: 64}\n"),
                     MakeRun("h100", "type: task\ncommands: [x]\nresources: {gpu: H100:1}\n"),
                     MakeRun("wide", "type: task\nnodes: 2\ncommands: [x]\n")},
                    {{i.id, Reached()}}};
  ReconcileOutput out = Reconcile(in, {});
  const std::map<std::string, std::string> why = {
      {"big", "no instance of project main has 64 CPUs"},
      {"h100", "no instance of project main has a GPU named H100"},
      {"wide", "no fleet of project main has 2 instances that fit"}};
  for (const auto& [name, detail] : why) {
    SCOPED_TRACE(name);
    const model::Run* run = FindRun(out, name);
    ASSERT_NE(run, nullptr);
    EXPECT_EQ(run->jobs[0].termination_reason, JobTerminationReason::kFailedToStartDueToNoCapacity);
    EXPECT_EQ(run->jobs[0].status_detail, detail);
    EXPECT_EQ(run->status, RunStatus::kFailed);
  }
  EXPECT_NE(std::find(out.events.begin(), out.events.end(),
                      "run big cannot be placed: no instance of project main has 64 CPUs"),
            out.events.end());
  EXPECT_TRUE(out.commands.empty());
}

TEST(Reconcile, ASubmittedRunWhoseStoredConfigurationDoesNotParseFailsWithServerError) {
  model::Instance i = MakeInstance("h0", 8, 2);
  model::Run broken = MakeRun("broken", "type: task\ncommands: [x]\n");
  broken.configuration_json = "{broken";
  model::Run fine = MakeRun("fine", "type: task\ncommands: [x]\n");
  ReconcileInput in{kNow, {i}, {broken, fine}, {{i.id, Reached()}}};
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* failed = FindRun(out, "broken");
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->status, RunStatus::kFailed);
  EXPECT_EQ(failed->termination_reason, model::RunTerminationReason::kServerError);
  EXPECT_EQ(failed->finished_at, kNow);
  EXPECT_EQ(failed->jobs[0].status, JobStatus::kTerminated);
  EXPECT_EQ(failed->jobs[0].termination_reason, JobTerminationReason::kTerminatedByServer);
  bool logged = std::any_of(out.events.begin(), out.events.end(), [](const std::string& e) {
    return e.find("run broken failed: its stored configuration does not parse: malformed JSON") !=
           std::string::npos;
  });
  EXPECT_TRUE(logged);
  // The other run is placed as usual, and only it is started.
  ASSERT_NE(FindRun(out, "fine"), nullptr);
  EXPECT_EQ(FindRun(out, "fine")->status, RunStatus::kProvisioning);
  ASSERT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 1);
  EXPECT_EQ(out.commands[0].job_id, FindRun(out, "fine")->jobs[0].id);
}

TEST(Reconcile, ARunningJobWhoseConfigurationNoLongerParsesIsStoppedAndTheRunFails) {
  model::Instance i = MakeInstance("h0", 8, 0);
  model::Run run = MakeRun("train", "type: task\ncommands: [x]\n");
  run.status = RunStatus::kRunning;
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].instance_id = i.id;
  run.jobs[0].started_at = kNow - 5 * kSecond;
  // Valid JSON, refused by a rule: as if a newer version no longer accepted what was stored.
  run.configuration_json = R"({"type": "task", "commands": ["x"], "image": "ubuntu"})";
  std::string job_id = run.jobs[0].id;

  ReconcileInput in{kNow, {i}, {run}, {{i.id, Reached({Running(job_id)})}}};
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* ending = FindRun(out, "train");
  ASSERT_NE(ending, nullptr);
  EXPECT_EQ(ending->status, RunStatus::kTerminating);
  EXPECT_EQ(ending->termination_reason, model::RunTerminationReason::kServerError);
  EXPECT_EQ(ending->jobs[0].status, JobStatus::kTerminating);
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStop), 1);

  AgentJob stopped = Exited(job_id, 143);
  ReconcileInput next{kNow + kSecond, {i}, {*ending}, {{i.id, Reached({stopped})}}};
  out = Reconcile(next, {});
  ASSERT_NE(FindRun(out, "train"), nullptr);
  EXPECT_EQ(FindRun(out, "train")->status, RunStatus::kFailed);
  EXPECT_EQ(FindRun(out, "train")->termination_reason, model::RunTerminationReason::kServerError);
  EXPECT_EQ(FindRun(out, "train")->jobs[0].status, JobStatus::kTerminated);
}

TEST(Reconcile, AMultiNodeRunIsPlacedAllOrNothingOnDistinctInstancesOfOneFleet) {
  model::Instance a = MakeInstance("h0", 4, 0), b = MakeInstance("h1", 4, 0);
  model::Instance other = MakeInstance("h2", 4, 0, "f2");
  model::Run run = MakeRun("dist", "type: task\nnodes: 2\ncommands: [x]\nresources: {cpu: 4}\n");
  ReconcileInput in{
      kNow, {a, b, other}, {run}, {{a.id, Reached()}, {b.id, Reached()}, {other.id, Reached()}}};
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* placed = FindRun(out, "dist");
  ASSERT_NE(placed, nullptr);
  EXPECT_NE(placed->jobs[0].instance_id, placed->jobs[1].instance_id);
  EXPECT_NE(placed->jobs[0].instance_name, "h2");
  EXPECT_NE(placed->jobs[1].instance_name, "h2");
  ASSERT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 2);
  for (const AgentCommand& c : out.commands) {
    EXPECT_EQ(c.start.cluster.nodes_num, 2);
    EXPECT_EQ(c.start.cluster.nodes_ips.size(), 2u);
    EXPECT_EQ(c.start.cluster.master_node_ip, c.start.cluster.nodes_ips[0]);
  }

  // When one instance of the fleet is busy, nothing is placed (no half-started cluster).
  model::Run busy = MakeRun("busy", "type: task\ncommands: [x]\nresources: {cpu: 4}\n", kNow - 1);
  busy.status = RunStatus::kRunning;
  busy.jobs[0].status = JobStatus::kRunning;
  busy.jobs[0].instance_id = a.id;
  in.runs = {busy, run};
  in.observations[a.id] = Reached({Running(busy.jobs[0].id)});
  ReconcileOutput waiting = Reconcile(in, {});
  const model::Run* held = FindRun(waiting, "dist");
  ASSERT_NE(held, nullptr);  // only its words changed
  for (const model::Job& job : held->jobs) {
    EXPECT_EQ(job.status, JobStatus::kSubmitted);
    EXPECT_FALSE(job.instance_id.has_value());
    EXPECT_EQ(job.status_detail, "1 of 2 instances free in fleet f1");
  }
  EXPECT_EQ(CountCommands(waiting, AgentCommand::Kind::kStart), 0);
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    instance_ = MakeInstance("h0", 8, 0);
    run_ = MakeRun("train", "type: task\ncommands: [x]\nmax_duration: 60s\n");
    run_.status = RunStatus::kProvisioning;
    run_.jobs[0].status = JobStatus::kProvisioning;
    run_.jobs[0].instance_id = instance_.id;
    run_.jobs[0].instance_name = instance_.name;
  }

  ReconcileOutput Observe(std::vector<AgentJob> jobs, TimeMicros now = kNow) {
    return ObserveObservation(Reached(std::move(jobs)), now);
  }

  // What the agent with `agent_id` said; with `inventory`, its inventory came this tick too.
  ReconcileOutput ObserveAgent(const std::string& agent_id, std::vector<AgentJob> jobs,
                               bool inventory = true) {
    InstanceObservation obs = Reached(std::move(jobs), agent_id);
    if (inventory) {
      obs.inventory = AgentInventory{agent_id, "host", 8, int64_t{64} << 30, {}, "v2"};
    }
    return ObserveObservation(std::move(obs), kNow);
  }

  ReconcileOutput ObserveObservation(InstanceObservation obs, TimeMicros now) {
    ReconcileInput in{now, {instance_}, {run_}, {{instance_.id, std::move(obs)}}};
    ReconcileOutput out = Reconcile(in, {});
    if (const model::Run* r = FindRun(out, "train")) run_ = *r;
    for (const model::Instance& i : out.instances) {
      if (i.id == instance_.id) instance_ = i;
    }
    return out;
  }

  std::string job_id() const { return run_.jobs[0].id; }

  model::Instance instance_;
  model::Run run_;
};

TEST_F(LifecycleTest, RunningThenExitZeroIsDoneAndAcknowledged) {
  Observe({Running(job_id())});
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kRunning);
  EXPECT_EQ(run_.jobs[0].started_at, kNow - 5 * kSecond);
  EXPECT_EQ(run_.status, RunStatus::kRunning);
  ReconcileOutput out = Observe({Exited(job_id(), 0)});
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kDone);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kDoneByRunner);
  EXPECT_EQ(run_.jobs[0].exit_code, 0);
  EXPECT_EQ(run_.status, RunStatus::kDone);
  EXPECT_EQ(run_.termination_reason, model::RunTerminationReason::kAllJobsDone);
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kAcknowledge), 1);
}

TEST_F(LifecycleTest, NonZeroExitFailsTheRun) {
  Observe({Running(job_id())});
  Observe({Exited(job_id(), 3)});
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kContainerExitedWithError);
  EXPECT_EQ(run_.jobs[0].exit_code, 3);
  EXPECT_EQ(run_.status, RunStatus::kFailed);
}

TEST_F(LifecycleTest, AStoppedJobIsStoppedOnTheAgentAndEndsTerminated) {
  Observe({Running(job_id())});
  run_.status = RunStatus::kTerminating;
  run_.termination_reason = model::RunTerminationReason::kStoppedByUser;
  run_.jobs[0].status = JobStatus::kTerminating;
  run_.jobs[0].termination_reason = JobTerminationReason::kTerminatedByUser;
  ReconcileOutput out = Observe({Running(job_id())});
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStop), 1);
  AgentJob killed = Exited(job_id(), 0);
  killed.exit_code.reset();
  killed.signal = 15;
  killed.stop_requested = true;
  Observe({killed});
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kTerminated);
  EXPECT_EQ(run_.jobs[0].exit_code, 143);
  EXPECT_EQ(run_.status, RunStatus::kTerminated);
  EXPECT_EQ(run_.termination_reason, model::RunTerminationReason::kStoppedByUser);
}

TEST_F(LifecycleTest, MaxDurationStopsTheJob) {
  Observe({Running(job_id())});
  ReconcileOutput early = Observe({Running(job_id())}, kNow + 30 * kSecond);
  EXPECT_EQ(CountCommands(early, AgentCommand::Kind::kStop), 0);
  ReconcileOutput out = Observe({Running(job_id())}, kNow + 60 * kSecond);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kTerminating);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kMaxDurationExceeded);
  EXPECT_EQ(run_.jobs[0].status_detail, "max duration 1m");
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStop), 1);
  AgentJob killed = Exited(job_id(), 143);
  Observe({killed}, kNow + 61 * kSecond);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kTerminated);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kMaxDurationExceeded);
  EXPECT_EQ(run_.status, RunStatus::kTerminated);
}

TEST_F(LifecycleTest, AJobTheAgentLostFailsWithExecutorError) {
  Observe({Running(job_id())});
  Observe({});
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kExecutorError);
}

TEST_F(LifecycleTest, AProvisioningJobTheAgentDoesNotHaveIsStartedAgainNotTwice) {
  ReconcileOutput resend = Observe({});
  EXPECT_EQ(CountCommands(resend, AgentCommand::Kind::kStart), 1);
  ReconcileOutput running = Observe({Running(job_id())});
  EXPECT_EQ(CountCommands(running, AgentCommand::Kind::kStart), 0);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kRunning);
}

TEST_F(LifecycleTest, WithTheSameAgentIdAProvisioningJobIsStartedAgain) {
  ReconcileOutput out = ObserveAgent(instance_.agent_id, {});
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 1);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kProvisioning);
}

TEST_F(LifecycleTest, ARestartedAgentEndsAProvisioningJobItDoesNotListInsteadOfStartingIt) {
  ReconcileOutput out = ObserveAgent("agent-new", {});
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 0);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kExecutorError);
  EXPECT_EQ(run_.status, RunStatus::kFailed);
  ASSERT_FALSE(out.events.empty());
  EXPECT_NE(out.events[0].find("restarted"), std::string::npos) << out.events[0];
  EXPECT_EQ(instance_.agent_id, "agent-new");  // stored: the next tick sees no restart
}

TEST_F(LifecycleTest, ARestartedAgentWhoseInventoryDidNotComeStillStartsNothing) {
  ReconcileOutput first = ObserveAgent("agent-new", {}, /*inventory=*/false);
  EXPECT_EQ(CountCommands(first, AgentCommand::Kind::kStart), 0);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(instance_.agent_id, "agent-h0");
}

TEST_F(LifecycleTest, ARestartedAgentEndsARunningJobItDoesNotList) {
  ObserveAgent(instance_.agent_id, {Running(job_id())});
  ASSERT_EQ(run_.jobs[0].status, JobStatus::kRunning);
  ReconcileOutput out = ObserveAgent("agent-new", {});
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 0);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kExecutorError);
}

TEST_F(LifecycleTest, ALostJobFailsWithExecutorErrorAndIsAcknowledged) {
  AgentJob lost;
  lost.job_id = job_id();
  lost.state = AgentJobState::kLost;
  lost.started_at = kNow - 5 * kSecond;
  lost.finished_at = kNow - kSecond;
  lost.error = "the agent restarted";
  ReconcileOutput out = ObserveAgent("agent-new", {lost});
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStart), 0);
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kAcknowledge), 1);
  EXPECT_EQ(run_.jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(run_.jobs[0].termination_reason, JobTerminationReason::kExecutorError);
  EXPECT_EQ(run_.jobs[0].finished_at, kNow - kSecond);
  EXPECT_FALSE(run_.jobs[0].exit_code.has_value());
  bool said = std::any_of(out.events.begin(), out.events.end(), [](const std::string& e) {
    return e.find("lost") != std::string::npos &&
           e.find("the agent restarted") != std::string::npos;
  });
  EXPECT_TRUE(said);
}

TEST(Reconcile, NothingIsPlacedOnARestartedAgentUntilItsNewIdIsStored) {
  ReconcileInput in;
  in.now = kNow;
  model::Instance i = MakeInstance("h0", 8, 0);
  in.instances = {i};
  in.runs = {MakeRun("r", "type: task\ncommands: [x]\n")};
  in.observations[i.id] = Reached({}, "agent-new");
  ReconcileOutput waiting = Reconcile(in, {});
  EXPECT_EQ(CountCommands(waiting, AgentCommand::Kind::kStart), 0);
  in.observations[i.id].inventory =
      AgentInventory{"agent-new", "host", 8, int64_t{64} << 30, {}, "v2"};
  ReconcileOutput placed = Reconcile(in, {});
  EXPECT_EQ(CountCommands(placed, AgentCommand::Kind::kStart), 1);
}

TEST_F(LifecycleTest, JobsTheServerDoesNotRunAreStoppedOrForgottenNeverCopied) {
  ReconcileOutput out = Observe({Running(job_id()), Running("stray"), Exited("old", 0)});
  ASSERT_EQ(out.commands.size(), 2u);
  for (const AgentCommand& c : out.commands) {
    if (c.job_id == "stray") {
      EXPECT_EQ(c.kind, AgentCommand::Kind::kStop);
    } else {
      EXPECT_EQ(c.job_id, "old");
      EXPECT_EQ(c.kind, AgentCommand::Kind::kForget);
    }
  }
}

// --- Agent replies are untrusted: what a host reports never picks what the server acts on. ---

// A finished job of the server's, as the store keeps it after its run ended.
model::Job EndedJob(const std::string& id, const std::string& instance_id) {
  model::Job job;
  job.id = id;
  job.run_id = "run-of-" + id;
  job.job_name = id;
  job.status = JobStatus::kDone;
  job.instance_id = instance_id;
  job.finished_at = kNow - 10 * kSecond;
  return job;
}

std::vector<AgentCommand> CommandsTo(const ReconcileOutput& out, const std::string& instance_id) {
  std::vector<AgentCommand> mine;
  for (const AgentCommand& c : out.commands) {
    if (c.instance_id == instance_id) mine.push_back(c);
  }
  return mine;
}

TEST(ReconcileTrust, AnEndedJobIsAcknowledgedOnlyOnTheInstanceItWasPlacedOn) {
  model::Instance victim_host = MakeInstance("h0", 8, 0);
  model::Instance hostile = MakeInstance("h1", 8, 0);
  ReconcileInput in;
  in.now = kNow;
  in.instances = {victim_host, hostile};
  // The victim's job ended in an earlier tick; its log copy failed, so its agent still has it.
  in.ended_jobs = {EndedJob("victim-job", victim_host.id)};
  in.observations[victim_host.id] = Reached({Exited("victim-job", 0)});
  // Another host reports the same id, as ended, plus ids the server never placed anywhere.
  in.observations[hostile.id] =
      Reached({Exited("victim-job", 0), Exited("never-placed", 0), Running("also-never")});
  ReconcileOutput out = Reconcile(in, {});

  std::vector<AgentCommand> to_victim = CommandsTo(out, victim_host.id);
  ASSERT_EQ(to_victim.size(), 1u);  // the retry of the copy, on its own instance
  EXPECT_EQ(to_victim[0].kind, AgentCommand::Kind::kAcknowledge);
  EXPECT_EQ(to_victim[0].job_id, "victim-job");
  std::map<std::string, AgentCommand::Kind> to_hostile;
  for (const AgentCommand& c : CommandsTo(out, hostile.id)) to_hostile[c.job_id] = c.kind;
  EXPECT_EQ(to_hostile, (std::map<std::string, AgentCommand::Kind>{
                            {"victim-job", AgentCommand::Kind::kForget},
                            {"never-placed", AgentCommand::Kind::kForget},
                            {"also-never", AgentCommand::Kind::kStop}}));
  EXPECT_TRUE(out.runs.empty());
}

TEST(ReconcileTrust, AVictimsRunningJobReportedByAnotherHostIsUntouched) {
  model::Instance victim_host = MakeInstance("h0", 8, 0);
  model::Instance hostile = MakeInstance("h1", 8, 0, "f2");
  hostile.project_id = "p2";
  model::Run victim = MakeRun("victim", "type: task\ncommands: [x]\n");
  victim.status = RunStatus::kRunning;
  victim.jobs[0].status = JobStatus::kRunning;
  victim.jobs[0].instance_id = victim_host.id;
  victim.jobs[0].started_at = kNow - 60 * kSecond;
  ReconcileInput in;
  in.now = kNow;
  in.instances = {victim_host, hostile};
  in.runs = {victim};
  in.observations[victim_host.id] = Reached({Running(victim.jobs[0].id)});
  in.observations[hostile.id] = Reached({Exited(victim.jobs[0].id, 1)});
  ReconcileOutput out = Reconcile(in, {});
  EXPECT_TRUE(out.runs.empty());  // the victim's job did not end
  EXPECT_TRUE(CommandsTo(out, victim_host.id).empty());
  ASSERT_EQ(out.commands.size(), 1u);
  EXPECT_EQ(out.commands[0].kind, AgentCommand::Kind::kForget);
  EXPECT_EQ(out.commands[0].instance_id, hostile.id);
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kAcknowledge), 0);
}

TEST(ReconcileTrust, EachHostGetsAtMostItsCapsPerTickAndTheServersOwnJobsFirst) {
  model::Instance flooding = MakeInstance("h0", 8, 0);
  model::Instance quiet = MakeInstance("h1", 8, 0);
  ReconcileInput in;
  in.now = kNow;
  in.instances = {flooding, quiet};
  std::vector<AgentJob> flood;
  for (int k = 0; k < 10; ++k) {
    std::string id = "ended-" + std::to_string(k);
    in.ended_jobs.push_back(EndedJob(id, flooding.id));
    flood.push_back(Exited(id, 0));
  }
  for (int k = 0; k < 1000; ++k) {
    std::string id = "new-" + std::to_string(k);
    flood.push_back(k % 2 == 0 ? Running(id) : Exited(id, 0));
  }
  in.ended_jobs.push_back(EndedJob("quiet-ended", quiet.id));
  in.observations[flooding.id] = Reached(flood);
  in.observations[quiet.id] = Reached({Exited("quiet-ended", 0), Running("quiet-stray")});
  ReconcileSettings settings;
  ASSERT_EQ(settings.max_log_copies_per_host, 4);
  ASSERT_EQ(settings.max_stops_per_host, 64);
  ReconcileOutput out = Reconcile(in, settings);

  std::map<AgentCommand::Kind, int> counts;
  for (const AgentCommand& c : CommandsTo(out, flooding.id)) ++counts[c.kind];
  EXPECT_EQ(counts[AgentCommand::Kind::kAcknowledge], 4);
  EXPECT_EQ(counts[AgentCommand::Kind::kStop] + counts[AgentCommand::Kind::kForget], 64);
  // The other host is not starved by the first one.
  EXPECT_EQ(CommandsTo(out, quiet.id).size(), 2u);

  // The next tick takes the next ones: the acknowledged jobs are gone from the agent.
  for (const AgentCommand& c : out.commands) {
    if (c.kind != AgentCommand::Kind::kAcknowledge) continue;
    std::erase_if(flood, [&](const AgentJob& j) { return j.job_id == c.job_id; });
  }
  in.observations[flooding.id] = Reached(flood);
  ReconcileOutput next = Reconcile(in, settings);
  int acks = 0;
  for (const AgentCommand& c : CommandsTo(next, flooding.id)) {
    if (c.kind == AgentCommand::Kind::kAcknowledge) ++acks;
  }
  EXPECT_EQ(acks, 4);
}

TEST(ReconcileTrust, TheServersOwnStopsComeBeforeAFloodOfStrangers) {
  model::Instance host = MakeInstance("h0", 64, 0);
  model::Run run = MakeRun("mine", "type: task\ncommands: [x]\n");
  run.status = RunStatus::kTerminating;
  run.termination_reason = model::RunTerminationReason::kStoppedByUser;
  run.jobs[0].status = JobStatus::kTerminating;
  run.jobs[0].instance_id = host.id;
  std::vector<AgentJob> jobs = {Running(run.jobs[0].id)};
  for (int k = 0; k < 200; ++k) jobs.push_back(Running("stranger-" + std::to_string(k)));
  ReconcileInput in{kNow, {host}, {run}, {{host.id, Reached(jobs)}}};
  ReconcileOutput out = Reconcile(in, {});
  ASSERT_EQ(CountCommands(out, AgentCommand::Kind::kStop), 64);
  EXPECT_EQ(out.commands[0].job_id, run.jobs[0].id);
}

TEST(ReconcileTrust, AnInstanceWhoseAgentAnOlderInstanceHasIsNeverCommanded) {
  model::Instance first = MakeInstance("h0", 8, 0);
  first.agent_id = "agent-shared";
  first.status = InstanceStatus::kBusy;
  model::Run run = MakeRun("train", "type: task\ncommands: [x]\n");
  run.status = RunStatus::kRunning;
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].instance_id = first.id;
  run.jobs[0].started_at = kNow - 60 * kSecond;
  // The same agent listed again, under another name, in another project's fleet.
  model::Instance second = MakeInstance("h1", 0, 0, "f2");
  second.project_id = "p2";
  second.status = InstanceStatus::kPending;
  second.agent_id = "";
  second.created_at = first.created_at + kSecond;
  ReconcileInput in;
  in.now = kNow;
  in.instances = {first, second};
  in.runs = {run};
  InstanceObservation seen_by_second =
      Reached({Running(run.jobs[0].id), Running("stray"), Exited("old", 0)}, "agent-shared");
  seen_by_second.inventory = AgentInventory{"agent-shared", "host", 8, int64_t{1} << 30, {}, "v2"};
  in.observations[first.id] = Reached({Running(run.jobs[0].id)}, "agent-shared");
  in.observations[second.id] = seen_by_second;
  ReconcileOutput out = Reconcile(in, {});

  EXPECT_TRUE(CommandsTo(out, second.id).empty());
  EXPECT_TRUE(CommandsTo(out, first.id).empty());
  EXPECT_TRUE(out.runs.empty());  // the first instance's job runs on
  ASSERT_EQ(out.instances.size(), 1u);
  EXPECT_EQ(out.instances[0].id, second.id);
  EXPECT_TRUE(out.instances[0].unreachable);
  EXPECT_EQ(out.instances[0].agent_id, "");  // never takes the id over
  EXPECT_EQ(out.instances[0].resources.cpus, 0);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_NE(out.events[0].find("already serves instance h0"), std::string::npos) << out.events[0];

  // Two instances that meet a new agent id in the same tick: the older one has it.
  first.agent_id = "";
  in.instances = {second, first};
  in.runs.clear();
  in.observations[first.id] = Reached({Exited("old", 0)}, "agent-new");
  in.observations[second.id] = Reached({Exited("old", 0)}, "agent-new");
  ReconcileOutput tie = Reconcile(in, {});
  EXPECT_EQ(CommandsTo(tie, first.id).size(), 1u);
  EXPECT_TRUE(CommandsTo(tie, second.id).empty());
}

TEST(AgentIdOwners, TheOldestInstanceWithTheIdOwnsIt) {
  model::Instance a = MakeInstance("h0", 8, 0);
  model::Instance b = MakeInstance("h1", 8, 0);
  model::Instance c = MakeInstance("h2", 8, 0);
  a.agent_id = b.agent_id = "x";
  b.created_at = a.created_at - kSecond;
  c.agent_id = "";
  std::map<std::string, std::string> owners = AgentIdOwners({a, b, c});
  EXPECT_EQ(owners, (std::map<std::string, std::string>{{"x", b.id}}));
}

TEST(GpuNameMatches, MatchesWordsAndRunsOfWords) {
  EXPECT_TRUE(GpuNameMatches("A100", "NVIDIA A100-SXM4-80GB"));
  EXPECT_TRUE(GpuNameMatches("a100", "NVIDIA A100-SXM4-80GB"));
  EXPECT_TRUE(GpuNameMatches("rtx4090", "NVIDIA GeForce RTX 4090"));
  EXPECT_TRUE(GpuNameMatches("H100", "NVIDIA H100 80GB HBM3"));
  EXPECT_FALSE(GpuNameMatches("A10", "NVIDIA A100-SXM4-80GB"));
  EXPECT_FALSE(GpuNameMatches("H100", "NVIDIA A100-SXM4-80GB"));
  EXPECT_FALSE(GpuNameMatches("", "NVIDIA A100"));
}

}  // namespace
}  // namespace fleetwatch::server

namespace fleetwatch::server {
namespace {

TEST(Reconcile, LastSeenIsWrittenBackOnlyWhenItMovedEnough) {
  model::Instance i = MakeInstance("h0", 8, 0);
  i.last_seen_at = kNow - 5 * kSecond;
  ReconcileInput in{kNow, {i}, {}, {{i.id, Reached()}}};
  ReconcileSettings settings;
  settings.last_seen_resolution = 10 * kSecond;
  EXPECT_TRUE(Reconcile(in, settings).instances.empty());
  in.now = kNow + 6 * kSecond;
  ReconcileOutput out = Reconcile(in, settings);
  ASSERT_EQ(out.instances.size(), 1u);
  EXPECT_EQ(out.instances[0].last_seen_at, kNow + 6 * kSecond);
}

}  // namespace
}  // namespace fleetwatch::server

namespace fleetwatch::server {
namespace {

TEST(RunCost, PriceTimesRunningTimeOfEachJob) {
  model::Run run = MakeRun("train", "type: task\nnodes: 3\ncommands: [x]\n");
  InstancePrices prices = {{"id-h0", 3.6}, {"id-h1", 7.2}};
  run.jobs[0].instance_id = "id-h0";
  run.jobs[0].started_at = kNow - 1000 * kSecond;
  run.jobs[0].finished_at = kNow - 500 * kSecond;  // 500 s at $3.6/h
  run.jobs[1].instance_id = "id-h1";
  run.jobs[1].started_at = kNow - 100 * kSecond;  // still running: 100 s at $7.2/h
  run.jobs[2].instance_id = "id-unpriced";
  run.jobs[2].started_at = kNow - 100 * kSecond;
  EXPECT_DOUBLE_EQ(JobCost(run.jobs[0], prices, kNow), 0.5);
  EXPECT_DOUBLE_EQ(JobCost(run.jobs[1], prices, kNow), 0.2);
  EXPECT_DOUBLE_EQ(JobCost(run.jobs[2], prices, kNow), 0.0);
  EXPECT_DOUBLE_EQ(RunCost(run, prices, kNow), 0.7);
  model::Job never_started;
  never_started.instance_id = "id-h0";
  EXPECT_DOUBLE_EQ(JobCost(never_started, prices, kNow), 0.0);
}

}  // namespace
}  // namespace fleetwatch::server

namespace fleetwatch::server {
namespace {

TEST(ReconcileGpuHealth, AnExcludedGpuTakesNoJobAndTheWaitNamesItAndWhy) {
  model::Instance i = MakeInstance("h0", 8, 2);
  const char* yaml = "type: task\ncommands: [x]\nresources: {gpu: 1}\n";
  ReconcileInput in{
      kNow, {i}, {MakeRun("a", yaml, kNow - 2), MakeRun("b", yaml, kNow - 1)}, {{i.id, Reached()}}};
  in.excluded_gpus[i.id][0] = "GPU 0 of h0 is unhealthy: XID 79 (GPU has fallen off the bus)";
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* a = FindRun(out, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->jobs[0].gpu_indices, std::vector<int>{1});  // never GPU 0
  const model::Run* b = FindRun(out, "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->jobs[0].status, JobStatus::kSubmitted);  // waits: the GPU may be repaired
  EXPECT_EQ(b->jobs[0].status_detail,
            "0 of 2 GPUs free on f1 (GPU 0 of h0 is unhealthy: XID 79 (GPU has fallen off the "
            "bus))");
}

TEST(ReconcileGpuHealth, AJobThatCanNeverFitStillFailsWithTheUsualReason) {
  model::Instance i = MakeInstance("h0", 8, 1);
  ReconcileInput in{kNow,
                    {i},
                    {MakeRun("a", "type: task\ncommands: [x]\nresources: {gpu: 2}\n")},
                    {{i.id, Reached()}}};
  in.excluded_gpus[i.id][0] = "GPU 0 of h0 is unhealthy: row remapping failed";
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* a = FindRun(out, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->jobs[0].status, JobStatus::kFailed);
  EXPECT_EQ(a->jobs[0].termination_reason, JobTerminationReason::kFailedToStartDueToNoCapacity);
}

TEST(ReconcileUtilizationPolicy, ALowUtilizationJobIsStoppedWithTheReasonAndMessage) {
  model::Instance i = MakeInstance("h0", 8, 2);
  model::Run run = MakeRun("idle",
                           "type: task\ncommands: [x]\nresources: {gpu: 2}\n"
                           "utilization_policy: {min_gpu_utilization: 10, time_window: 30m}\n");
  run.status = RunStatus::kRunning;
  model::Job& job = run.jobs[0];
  job.status = JobStatus::kRunning;
  job.instance_id = i.id;
  job.instance_name = i.name;
  job.gpu_indices = {0, 1};
  job.started_at = kNow - 3600 * kSecond;
  ReconcileInput in{kNow, {i}, {run}, {{i.id, Reached({Running(job.id)})}}};
  const std::string why = "GPUs 0,1 stayed below 10 % for 30m (max 3 %)";
  in.low_utilization[job.id] = why;
  in.low_utilization["not-running"] = "ignored";
  ReconcileOutput out = Reconcile(in, {});
  const model::Run* r = FindRun(out, "idle");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->jobs[0].status, JobStatus::kTerminating);
  EXPECT_EQ(r->jobs[0].termination_reason, JobTerminationReason::kTerminatedDueToUtilizationPolicy);
  EXPECT_EQ(r->jobs[0].status_detail, why);
  EXPECT_EQ(r->status, RunStatus::kRunning);  // until its job has ended
  EXPECT_EQ(CountCommands(out, AgentCommand::Kind::kStop), 1);

  // The agent reports the process gone: the job and the run end terminated.
  in.runs = {*r};
  in.low_utilization.clear();
  AgentJob gone = Exited(job.id, 143);
  in.observations = {{i.id, Reached({gone})}};
  ReconcileOutput after = Reconcile(in, {});
  const model::Run* ended = FindRun(after, "idle");
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->jobs[0].status, JobStatus::kTerminated);
  EXPECT_EQ(ended->jobs[0].termination_reason,
            JobTerminationReason::kTerminatedDueToUtilizationPolicy);
  EXPECT_EQ(ended->status, RunStatus::kTerminated);
}

}  // namespace
}  // namespace fleetwatch::server
