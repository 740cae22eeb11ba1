// The controller over a real SQLite file, a fake clock and one agent on loopback (an HTTP server
// that answers the agent API from memory): what it keeps between ticks follows every write
// made to the store in between, whichever path made it.
#include "server/fleet_controller.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "http/server.h"
#include "model/names.h"
#include "server/auth.h"
#include "server/fleets.h"
#include "server/runs.h"
#include "server/users.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

namespace json = boost::json;

constexpr TimeMicros kStart = 1'800'000'000'000'000;
constexpr TimeMicros kSecond = 1'000'000;
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kAgentToken[] = "agent-token";

// One agent: jobs it was asked to start run until they are asked to stop, then they have exited.
class FakeAgent {
 public:
  explicit FakeAgent(std::string agent_id = "agent-1")
      : agent_id_(std::move(agent_id)),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    port_ = *server_.Start();
  }
  ~FakeAgent() { server_.Stop(); }
  uint16_t port() const { return port_; }
  bool HasJob(const std::string& id) {
    std::lock_guard lock(mu_);
    return jobs_.count(id) > 0;
  }

 private:
  http::Response Handle(const http::Request& r) {
    http::Response response;
    if (r.Header("Authorization") != std::string("Bearer ") + kAgentToken) {
      response.status = 401;
      return response;
    }
    std::lock_guard lock(mu_);
    if (r.path == "/api/inventory") {
      response.body = json::serialize(json::value{{"agent_id", agent_id_},
                                                  {"hostname", "host-1"},
                                                  {"cpus", 8},
                                                  {"memory_bytes", int64_t{32} << 30},
                                                  {"gpus", json::array()}});
    } else if (r.path == "/api/poll") {
      json::array jobs;
      for (const auto& [id, exited] : jobs_) {
        json::object job{
            {"job_id", id}, {"state", exited ? "exited" : "running"}, {"started_at", kStart}};
        if (exited) {
          job["signal"] = 15;
          job["finished_at"] = kStart + kSecond;
        }
        jobs.push_back(std::move(job));
      }
      response.body = json::serialize(
          json::value{{"agent_id", agent_id_}, {"now", kStart}, {"jobs", std::move(jobs)}});
    } else if (r.method == "POST" && r.path == "/api/jobs") {
      const std::string id = json::parse(r.body).at("job_id").as_string().c_str();
      response.status = jobs_.emplace(id, false).second ? 201 : 200;
      response.body = "{}";
    } else if (r.method == "POST" && r.path.ends_with("/stop")) {
      const std::string id = r.path.substr(10, r.path.size() - 10 - 5);  // /api/jobs/<id>/stop
      jobs_[id] = true;
      response.body = "{}";
    } else {
      response.status = 200;  // acknowledgements, log reads: nothing to say
      response.body = "{}";
    }
    return response;
  }

  const std::string agent_id_;
  std::mutex mu_;
  std::map<std::string, bool> jobs_;  // job id → exited
  http::Server server_;
  uint16_t port_ = 0;
};

class FleetControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore((dir_.path() / "fleetwatch.db").string());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    clock_.Set(kStart);
    auth_ = std::make_unique<AuthService>(*store_);
    users_ = std::make_unique<UserService>(*store_, clock_);
    fleets_ = std::make_unique<FleetService>(*store_, clock_);
    runs_ = std::make_unique<RunService>(*store_, clock_);
    ASSERT_TRUE(users_->Bootstrap(std::string(kAdminToken)).ok());
    admin_ = *auth_->Authenticate(std::string("Bearer ") + kAdminToken);
    FleetControllerOptions options;
    options.tick_budget = std::chrono::milliseconds(10'000);  // every poll is used at once
    options.metrics_interval = std::chrono::hours(1);
    options.log_dir = (dir_.path() / "logs").string();
    options.reconcile.last_seen_resolution = 10 * kSecond;
    controller_ = std::make_unique<FleetController>(*store_, clock_, runs_->mutex(), client_,
                                                    std::move(options));
  }

  ProjectAccess Access() { return *auth_->AccessProject(admin_, "main"); }

  // A fleet of one instance whose agent is `agent`, written straight to the store.
  void AddFleet(const std::string& name, const FakeAgent& agent) {
    const ProjectAccess access = Access();
    model::Fleet fleet{NewId(), access.project.id, "main", name, model::FleetStatus::kActive,
                       "{}",    clock_.Now()};
    model::Instance instance;
    instance.id = NewId();
    instance.project_id = access.project.id;
    instance.fleet_id = fleet.id;
    instance.name = name + "-0";
    instance.backend = "remote";
    instance.hostname = "127.0.0.1";
    instance.agent_port = agent.port();
    instance.agent_token = kAgentToken;
    instance.created_at = clock_.Now();
    ASSERT_TRUE(store_->CreateFleet(fleet, {instance}).ok());
  }

  TickReport Tick() {
    Result<TickReport> report = controller_->Tick();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? std::move(report).value() : TickReport{};
  }

  testing::TempDir dir_;
  FakeClock clock_{kStart};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AuthService> auth_;
  std::unique_ptr<UserService> users_;
  std::unique_ptr<FleetService> fleets_;
  std::unique_ptr<RunService> runs_;
  model::User admin_;
  http::AsyncClient client_{1};
  std::unique_ptr<FleetController> controller_;
};

TEST_F(FleetControllerTest, RunsWrittenThroughTheApiBetweenTicksAreSeenByTheNextTick) {
  FakeAgent agent;
  AddFleet("gpus", agent);
  TickReport first = Tick();
  ASSERT_EQ(first.instances.size(), 1u);
  EXPECT_EQ(first.instances[0].status, model::InstanceStatus::kIdle);
  EXPECT_TRUE(first.runs.empty());

  // Submitted between two ticks, through the API's service: placed by the next tick.
  auto submitted = runs_->Submit(Access(), admin_, "type: task\nname: train\ncommands: [echo hi]\n",
                                 model::ConfigFormat::kYaml);
  ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
  const std::string job_id = submitted->jobs.at(0).id;
  TickReport placed = Tick();
  ASSERT_EQ(placed.runs.size(), 1u);
  EXPECT_EQ(placed.runs[0].jobs[0].status, model::JobStatus::kProvisioning);
  EXPECT_EQ(placed.run_events.provisioned.size(), 1u);
  ASSERT_TRUE(testing::WaitUntil([&] { return agent.HasJob(job_id); }, std::chrono::seconds(30)));
  TickReport running = Tick();
  ASSERT_EQ(running.runs.size(), 1u);
  EXPECT_EQ(running.runs[0].jobs[0].status, model::JobStatus::kRunning);
  EXPECT_EQ(runs_->Get(Access(), "train")->jobs[0].status, model::JobStatus::kRunning);
  // A tick with nothing new changes nothing and still reports the run.
  TickReport quiet = Tick();
  ASSERT_EQ(quiet.runs.size(), 1u);
  EXPECT_EQ(quiet.runs[0].status, model::RunStatus::kRunning);

  // Stopped through the API between ticks: the next tick sees it and stops the job on the agent;
  // the one after that sees the job end and the run finish.
  // The agent's reply is the same as the last ones (its parse is reused): the change in the runs
  // is acted on all the same.
  ASSERT_TRUE(runs_->Stop(Access(), admin_, "train", /*abort=*/false).ok());
  TickReport stopping = Tick();
  ASSERT_EQ(stopping.runs.size(), 1u);
  EXPECT_EQ(stopping.runs[0].status, model::RunStatus::kTerminating);
  // Reports share the controller's lists: one taken earlier still says what its tick saw.
  EXPECT_EQ(quiet.runs[0].status, model::RunStatus::kRunning);
  EXPECT_EQ(running.runs[0].jobs[0].status, model::JobStatus::kRunning);
  EXPECT_EQ(placed.runs[0].jobs[0].status, model::JobStatus::kProvisioning);
  EXPECT_TRUE(first.runs.empty());
  // After replies that stayed the same, the one that says the job exited is acted on.
  bool ended = false;
  for (int tick = 0; tick < 20 && !ended; ++tick) {
    TickReport report = Tick();
    ended = report.runs.empty();
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(runs_->Get(Access(), "train")->status, model::RunStatus::kTerminated);

  // A run changed behind the controller's back (any path that writes the store) is read again.
  auto second = runs_->Submit(Access(), admin_, "type: task\nname: other\ncommands: [echo hi]\n",
                              model::ConfigFormat::kYaml);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(Tick().runs.size(), 1u);
  model::Run aborted = *runs_->Get(Access(), "other");
  aborted.status = model::RunStatus::kTerminated;
  for (model::Job& job : aborted.jobs) {
    job.status = model::JobStatus::kAborted;
    job.finished_at = clock_.Now();
  }
  ASSERT_TRUE(store_->UpdateRun(aborted).ok());
  EXPECT_TRUE(Tick().runs.empty());
}

TEST_F(FleetControllerTest, AnInstanceWhoseOnlyChangeIsLastSeenShowsTheNewTime) {
  FakeAgent agent;
  AddFleet("gpus", agent);
  Tick();
  auto seen = [&] { return fleets_->ListInstances(Access())->at(0).last_seen_at; };
  EXPECT_EQ(seen(), kStart);
  // Within the resolution: not written; the report says what is stored.
  clock_.Advance(3 * kSecond);
  EXPECT_EQ(Tick().instances.at(0).last_seen_at, kStart);
  EXPECT_EQ(seen(), kStart);
  // Past it: written, and the next moves are too (what the controller keeps is the new time).
  for (int i = 1; i <= 3; ++i) {
    clock_.Advance(20 * kSecond);
    const TimeMicros now = clock_.Now();
    TickReport report = Tick();
    EXPECT_EQ(report.instances.at(0).last_seen_at, now);
    EXPECT_EQ(seen(), now);
    EXPECT_EQ(report.instances.at(0).status, model::InstanceStatus::kIdle);
  }
}

TEST_F(FleetControllerTest, FleetsAddedOrDeletedBetweenTicksAreSeenByTheNextTick) {
  FakeAgent one("agent-1"), two("agent-2");
  AddFleet("a", one);
  EXPECT_EQ(Tick().instances.size(), 1u);
  AddFleet("b", two);
  TickReport both = Tick();
  ASSERT_EQ(both.instances.size(), 2u);
  EXPECT_EQ(both.instances[1].status, model::InstanceStatus::kIdle);
  ASSERT_TRUE(fleets_->Delete(Access(), "a").ok());
  TickReport after = Tick();
  ASSERT_EQ(after.instances.size(), 1u);
  EXPECT_EQ(after.instances[0].name, "b-0");
}

TEST_F(FleetControllerTest, ATickWithNothingNewSkipsTheReconcilerButNotItsRulesOfTime) {
  FakeAgent agent;
  AddFleet("gpus", agent);
  auto submitted = runs_->Submit(
      Access(), admin_, "type: task\nname: train\nmax_duration: 1m\ncommands: [sleep 600]\n",
      model::ConfigFormat::kYaml);
  ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
  const std::string job_id = submitted->jobs.at(0).id;
  Tick();  // placed
  ASSERT_TRUE(testing::WaitUntil([&] { return agent.HasJob(job_id); }, std::chrono::seconds(30)));
  bool running = false;
  for (int tick = 0; tick < 20 && !running; ++tick) {
    TickReport report = Tick();
    running = report.runs.size() == 1 && report.runs[0].status == model::RunStatus::kRunning;
  }
  ASSERT_TRUE(running);
  // Nothing new: the ticks are quiet, and report the same state.
  Tick();
  const uint64_t quiet_before = controller_->quiet_ticks();
  clock_.Advance(kSecond);
  TickReport quiet = Tick();
  EXPECT_EQ(controller_->quiet_ticks(), quiet_before + 1);
  ASSERT_EQ(quiet.runs.size(), 1u);
  EXPECT_EQ(quiet.runs[0].jobs[0].status, model::JobStatus::kRunning);
  ASSERT_EQ(quiet.observations.size(), 1u);
  EXPECT_TRUE(quiet.observations.begin()->second.reached);

  // The agent's replies stay the same, but the clock passes max_duration: the job is stopped.
  clock_.Advance(61 * kSecond);
  TickReport due = Tick();
  EXPECT_EQ(controller_->quiet_ticks(), quiet_before + 1);
  ASSERT_EQ(due.runs.size(), 1u);
  EXPECT_EQ(due.runs[0].jobs[0].status, model::JobStatus::kTerminating);
  EXPECT_EQ(due.runs[0].jobs[0].termination_reason,
            model::JobTerminationReason::kMaxDurationExceeded);
  // And the last_seen_at resolution passed too: the instance's time is stored.
  EXPECT_EQ(fleets_->ListInstances(Access())->at(0).last_seen_at, clock_.Now());
  bool ended = false;
  for (int tick = 0; tick < 20 && !ended; ++tick) ended = Tick().runs.empty();
  EXPECT_TRUE(ended);
  EXPECT_EQ(runs_->Get(Access(), "train")->status, model::RunStatus::kTerminated);
}

}  // namespace
}  // namespace fleetwatch::server
