// Services over a real SQLite file and a fake clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "model/names.h"
#include "server/auth.h"
#include "server/fleets.h"
#include "server/projects.h"
#include "server/reconciler.h"
#include "server/runs.h"
#include "server/users.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/ids.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kStart = 1'800'000'000'000'000;
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

constexpr char kRunYaml[] = R"(type: task
name: train
nodes: 2
commands: [echo hi]
)";

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore((dir_.path() / "fleetwatch.db").string());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    auth_ = std::make_unique<AuthService>(*store_);
    users_ = std::make_unique<UserService>(*store_, clock_);
    projects_ = std::make_unique<ProjectService>(*store_, *auth_, clock_);
    fleets_ = std::make_unique<FleetService>(*store_, clock_);
    runs_ = std::make_unique<RunService>(*store_, clock_);
    auto token = users_->Bootstrap(std::string(kAdminToken));
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    admin_ = *auth_->Authenticate(std::string("Bearer ") + kAdminToken);
  }

  // One reconcile pass over the store's state with no agents observed, as the FleetController
  // would run it.
  void ReconcileOnce() {
    server::ReconcileInput in;
    in.now = clock_.Now();
    in.instances = *store_->ListInstances("");
    in.runs = *store_->ListRunsWithStatus(
        {model::RunStatus::kPending, model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
         model::RunStatus::kRunning, model::RunStatus::kTerminating});
    for (const model::Run& run : server::Reconcile(in, {}).runs) {
      ASSERT_TRUE(store_->UpdateRun(run).ok());
    }
  }

  model::User NewUser(const std::string& name) {
    auto created = users_->CreateUser(admin_, name, model::GlobalRole::kUser);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created->user;
  }

  ProjectAccess Access(const model::User& user, const std::string& project = "main") {
    auto access = auth_->AccessProject(user, project);
    EXPECT_TRUE(access.ok()) << access.status().ToString();
    return *access;
  }

  testing::TempDir dir_;
  FakeClock clock_{kStart};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AuthService> auth_;
  std::unique_ptr<UserService> users_;
  std::unique_ptr<ProjectService> projects_;
  std::unique_ptr<FleetService> fleets_;
  std::unique_ptr<RunService> runs_;
  model::User admin_;
};

TEST_F(ServicesTest, BootstrapHappensOnceAndChecksTheGivenToken) {
  auto again = users_->Bootstrap(std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(admin_.name, "admin");
  EXPECT_EQ(admin_.global_role, model::GlobalRole::kAdmin);

  testing::TempDir other;
  auto store = store::OpenSqliteStore((other.path() / "db").string());
  ASSERT_TRUE(store.ok());
  UserService fresh(**store, clock_);
  EXPECT_EQ(fresh.Bootstrap(std::string("short")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fresh.Bootstrap(std::string("has spaces in the token value")).status().code(),
            StatusCode::kInvalidArgument);
  auto generated = fresh.Bootstrap(std::nullopt);
  ASSERT_TRUE(generated.ok() && generated->has_value());
  EXPECT_EQ((*generated)->size(), 64u);
}

TEST_F(ServicesTest, AuthenticateAcceptsOnlyBearerWithAKnownToken) {
  EXPECT_EQ(auth_->Authenticate("").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate(kAdminToken).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate(std::string("Basic ") + kAdminToken).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate("Bearer nope").status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(auth_->Authenticate(std::string("bearer  ") + kAdminToken).ok());
  // The store keeps only the hash.
  EXPECT_TRUE(store_->GetUserByTokenHash(Sha256Hex(kAdminToken)).ok());
  EXPECT_FALSE(store_->GetUserByTokenHash(kAdminToken).ok());
}

TEST_F(ServicesTest, ProjectAccessFollowsMembership) {
  model::User alice = NewUser("alice");
  EXPECT_EQ(auth_->AccessProject(alice, "main").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(auth_->AccessProject(alice, "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(auth_->AccessProject(alice, "<script>").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Access(admin_).role, model::ProjectRole::kAdmin);
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "alice", model::ProjectRole::kManager).ok());
  EXPECT_EQ(Access(alice).role, model::ProjectRole::kManager);
  // A project created by a user makes them its admin.
  ASSERT_TRUE(projects_->Create(alice, "vision").ok());
  EXPECT_EQ(Access(alice, "vision").role, model::ProjectRole::kAdmin);
}

TEST_F(ServicesTest, TheLastProjectAdminCannotLeaveOrBeDemoted) {
  model::User alice = NewUser("alice");
  ASSERT_TRUE(projects_->Create(alice, "vision").ok());
  EXPECT_EQ(projects_->RemoveMember(alice, "vision", "alice").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      projects_->SetMember(alice, "vision", "alice", model::ProjectRole::kUser).status().code(),
      StatusCode::kFailedPrecondition);
  ASSERT_TRUE(projects_->SetMember(alice, "vision", "admin", model::ProjectRole::kAdmin).ok());
  EXPECT_TRUE(projects_->RemoveMember(alice, "vision", "alice").ok());
}

TEST_F(ServicesTest, SubmitCreatesNodesTimesReplicasJobs) {
  auto run = runs_->Submit(Access(admin_), admin_,
                           "type: service\nname: web\nport: 8000\nreplicas: 3\ncommands: [serve]\n",
                           model::ConfigFormat::kYaml);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_EQ(run->jobs.size(), 3u);
  EXPECT_EQ(run->jobs[2].job_name, "web-0-2");
  EXPECT_EQ(run->type, model::RunType::kService);
  EXPECT_EQ(run->submitted_at, kStart);
  auto stored = runs_->Get(Access(admin_), "web");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->jobs.size(), 3u);
  EXPECT_EQ(stored->status, model::RunStatus::kSubmitted);
}

TEST_F(ServicesTest, StopEndsUnplacedJobsAndTheLifecycleFinishesTheRun) {
  ProjectAccess access = Access(admin_);
  ASSERT_TRUE(runs_->Submit(access, admin_, kRunYaml, model::ConfigFormat::kYaml).ok());
  clock_.Advance(5'000'000);
  auto stopping = runs_->Stop(access, admin_, "train", /*abort=*/false);
  ASSERT_TRUE(stopping.ok());
  EXPECT_EQ(stopping->status, model::RunStatus::kTerminating);
  EXPECT_EQ(stopping->jobs[0].status, model::JobStatus::kTerminated);
  EXPECT_EQ(stopping->jobs[0].termination_reason, model::JobTerminationReason::kTerminatedByUser);
  EXPECT_EQ(stopping->jobs[0].finished_at, kStart + 5'000'000);
  EXPECT_EQ(runs_->Delete(access, admin_, "train").code(), StatusCode::kFailedPrecondition);

  clock_.Advance(1'000'000);
  ReconcileOnce();
  auto done = runs_->Get(access, "train");
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, model::RunStatus::kTerminated);
  EXPECT_EQ(done->termination_reason, model::RunTerminationReason::kStoppedByUser);
  EXPECT_EQ(done->finished_at, kStart + 6'000'000);
  // Stopping a finished run changes nothing.
  auto again = runs_->Stop(access, admin_, "train", /*abort=*/true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->termination_reason, model::RunTerminationReason::kStoppedByUser);
  EXPECT_TRUE(runs_->Delete(access, admin_, "train").ok());
  EXPECT_EQ(runs_->Get(access, "train").status().code(), StatusCode::kNotFound);
}

TEST_F(ServicesTest, AbortEndsJobsAsAborted) {
  ProjectAccess access = Access(admin_);
  ASSERT_TRUE(runs_->Submit(access, admin_, kRunYaml, model::ConfigFormat::kYaml).ok());
  auto aborted = runs_->Stop(access, admin_, "train", /*abort=*/true);
  ASSERT_TRUE(aborted.ok());
  EXPECT_EQ(aborted->jobs[1].status, model::JobStatus::kAborted);
  ReconcileOnce();
  EXPECT_EQ(runs_->Get(access, "train")->status, model::RunStatus::kTerminated);
  EXPECT_EQ(runs_->Get(access, "train")->termination_reason,
            model::RunTerminationReason::kAbortedByUser);
}

// A clock whose next reading first runs a hook: what another replica stores between the API's
// read of a run and its write (RunService::Stop reads the time in between). Single-threaded.
class InterleavingClock final : public Clock {
 public:
  TimeMicros Now() const override {
    if (hook_) hook_();
    return kStart;
  }
  void SetHook(std::function<void()> hook) { hook_ = std::move(hook); }

 private:
  std::function<void()> hook_;
};

TEST_F(ServicesTest, AStopOvertakenByAnotherReplicasPlacementStopsThePlacedJob) {
  constexpr char kFleet[] =
      "type: fleet\nname: gpus\nssh_config:\n  token: secret\n  tls: false\n"
      "  hosts: [10.0.0.1]\n";
  auto fleet = fleets_->Apply(Access(admin_), kFleet, model::ConfigFormat::kYaml);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  const std::string instance_id = fleet->instances[0].id;
  ProjectAccess access = Access(admin_);
  auto submitted = runs_->Submit(access, admin_, "type: task\nname: train\ncommands: [echo]\n",
                                 model::ConfigFormat::kYaml);
  ASSERT_TRUE(submitted.ok());

  // Another replica, on its own connection to the database, places the job on its host after
  // the stop read the run (unplaced) and before the stop writes.
  auto replica = store::OpenSqliteStore((dir_.path() / "fleetwatch.db").string());
  ASSERT_TRUE(replica.ok()) << replica.status().ToString();
  InterleavingClock clock;
  int placements = 0;
  clock.SetHook([&] {
    if (placements > 0) return;
    model::Run run = (*replica)->GetRunById(submitted->id).value();
    run.status = model::RunStatus::kProvisioning;
    run.jobs[0].status = model::JobStatus::kProvisioning;
    run.jobs[0].instance_id = instance_id;
    ASSERT_TRUE((*replica)->UpdateRunIfCurrent(run, {}).ok());
    ++placements;
  });
  RunService api(*store_, clock);
  auto stopped = api.Stop(access, admin_, "train", /*abort=*/false);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(placements, 1);
  // The stop won, applied to what the replica decided: the placed job is stopped on its host,
  // not ended as if it had never been placed (which would leave it running there unseen).
  model::Run stored = store_->GetRunById(submitted->id).value();
  EXPECT_EQ(stored.status, model::RunStatus::kTerminating);
  EXPECT_EQ(stored.termination_reason, model::RunTerminationReason::kStoppedByUser);
  EXPECT_EQ(stored.jobs[0].status, model::JobStatus::kTerminating);
  EXPECT_EQ(stored.jobs[0].instance_id, instance_id);
  EXPECT_EQ(stored.jobs[0].termination_reason, model::JobTerminationReason::kTerminatedByUser);
  EXPECT_EQ(stopped->row_version, stored.row_version);
  EXPECT_EQ(stopped->jobs[0].status, model::JobStatus::kTerminating);
}

TEST_F(ServicesTest, AStopOvertakenOnEveryAttemptSaysSoAndWritesNothing) {
  ProjectAccess access = Access(admin_);
  auto submitted = runs_->Submit(access, admin_, "type: task\nname: train\ncommands: [echo]\n",
                                 model::ConfigFormat::kYaml);
  ASSERT_TRUE(submitted.ok());
  auto replica = store::OpenSqliteStore((dir_.path() / "fleetwatch.db").string());
  ASSERT_TRUE(replica.ok()) << replica.status().ToString();
  InterleavingClock clock;
  int writes = 0;
  clock.SetHook([&] {  // a replica that writes the run between every read and write
    model::Run run = (*replica)->GetRunById(submitted->id).value();
    run.jobs[0].status_detail = "busy " + std::to_string(++writes);
    ASSERT_TRUE((*replica)->UpdateRunIfCurrent(run, {}).ok());
  });
  RunService api(*store_, clock);
  auto refused = api.Stop(access, admin_, "train", /*abort=*/false);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("try again"), std::string::npos)
      << refused.status().ToString();
  EXPECT_GE(writes, 2);
  model::Run stored = store_->GetRunById(submitted->id).value();
  EXPECT_EQ(stored.status, model::RunStatus::kSubmitted);
  EXPECT_FALSE(stored.termination_reason.has_value());

  clock.SetHook(nullptr);  // the replica is quiet now: the stop goes through
  auto stopped = api.Stop(access, admin_, "train", /*abort=*/false);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(store_->GetRunById(submitted->id)->status, model::RunStatus::kTerminating);
}

TEST_F(ServicesTest, UsersMayChangeOnlyTheirOwnRunsManagersAny) {
  model::User alice = NewUser("alice");
  model::User bob = NewUser("bob");
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "alice", model::ProjectRole::kUser).ok());
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "bob", model::ProjectRole::kUser).ok());
  ASSERT_TRUE(runs_->Submit(Access(alice), alice, kRunYaml, model::ConfigFormat::kYaml).ok());
  EXPECT_EQ(runs_->Stop(Access(bob), bob, "train", false).status().code(),
            StatusCode::kPermissionDenied);
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "bob", model::ProjectRole::kManager).ok());
  EXPECT_TRUE(runs_->Stop(Access(bob), bob, "train", false).ok());
}

// As in dstack: a run's name is free again once it finished; resubmitting deletes the old run.
TEST_F(ServicesTest, ResubmittingAFinishedRunsNameReplacesItAndAnActiveOneIsRefused) {
  ProjectAccess access = Access(admin_);
  auto first = runs_->Submit(access, admin_, kRunYaml, model::ConfigFormat::kYaml);
  ASSERT_TRUE(first.ok());
  auto active = runs_->Submit(access, admin_, kRunYaml, model::ConfigFormat::kYaml);
  ASSERT_EQ(active.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(active.status().message(),
            "run 'train' is submitted; stop it (fleetwatch stop train) or choose another name");
  EXPECT_EQ(runs_->Get(access, "train")->id, first->id);

  ASSERT_TRUE(runs_->Stop(access, admin_, "train", /*abort=*/false).ok());
  ReconcileOnce();
  ASSERT_EQ(runs_->Get(access, "train")->status, model::RunStatus::kTerminated);
  clock_.Advance(1'000'000);
  auto second = runs_->Submit(access, admin_, kRunYaml, model::ConfigFormat::kYaml);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto listed = runs_->List(access, {}, 100);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, second->id);
  EXPECT_EQ(listed->front().status, model::RunStatus::kSubmitted);
}

TEST_F(ServicesTest, ReplacingAnotherUsersFinishedRunNeedsTheRightToDeleteIt) {
  model::User alice = NewUser("alice");
  model::User bob = NewUser("bob");
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "alice", model::ProjectRole::kUser).ok());
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "bob", model::ProjectRole::kUser).ok());
  auto alices = runs_->Submit(Access(alice), alice, kRunYaml, model::ConfigFormat::kYaml);
  ASSERT_TRUE(alices.ok());
  ASSERT_TRUE(runs_->Stop(Access(alice), alice, "train", /*abort=*/false).ok());
  ReconcileOnce();
  EXPECT_EQ(runs_->Submit(Access(bob), bob, kRunYaml, model::ConfigFormat::kYaml).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(runs_->Get(Access(bob), "train")->id, alices->id);  // untouched
  EXPECT_TRUE(runs_->Submit(Access(alice), alice, kRunYaml, model::ConfigFormat::kYaml).ok());
}

TEST_F(ServicesTest, GeneratedRunNamesAreValidAndDistinct) {
  ProjectAccess access = Access(admin_);
  std::set<std::string> names;
  for (int i = 0; i < 10; ++i) {
    auto run =
        runs_->Submit(access, admin_, "type: task\ncommands: [x]\n", model::ConfigFormat::kYaml);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    EXPECT_TRUE(model::IsValidName(run->run_name)) << run->run_name;
    names.insert(run->run_name);
  }
  EXPECT_EQ(names.size(), 10u);
}

// Submits and fleet applies on many threads at once, as the HTTP workers make them: one run per
// name and one fleet per host, whatever the interleaving (the ThreadSanitizer build checks the
// locking too).
TEST_F(ServicesTest, ConcurrentSubmitsAndAppliesKeepOneRunPerNameAndOneFleetPerHost) {
  const ProjectAccess access = Access(admin_);
  constexpr int kThreads = 4;
  std::vector<StatusCode> run_codes(kThreads);
  std::vector<StatusCode> fleet_codes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      run_codes[t] = runs_
                         ->Submit(access, admin_, "type: task\nname: same\ncommands: [x]\n",
                                  model::ConfigFormat::kYaml)
                         .status()
                         .code();
      // Named apart, one host: only one fleet may have it.
      fleet_codes[t] = fleets_
                           ->Apply(access,
                                   "type: fleet\nname: f" + std::to_string(t) +
                                       "\nssh_config:\n  token: t\n  tls: false\n  hosts: "
                                       "[10.1.1.1]\n",
                                   model::ConfigFormat::kYaml)
                           .status()
                           .code();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::vector<StatusCode>* codes : {&run_codes, &fleet_codes}) {
    EXPECT_EQ(std::count(codes->begin(), codes->end(), StatusCode::kOk), 1);
    EXPECT_EQ(std::count(codes->begin(), codes->end(), StatusCode::kAlreadyExists), kThreads - 1);
  }
  auto fleets = fleets_->List(access);
  ASSERT_TRUE(fleets.ok());
  EXPECT_EQ(fleets->size(), 1u);
}

TEST_F(ServicesTest, FleetsNeedManagersAndGetOneInstancePerHost) {
  model::User alice = NewUser("alice");
  ASSERT_TRUE(projects_->SetMember(admin_, "main", "alice", model::ProjectRole::kUser).ok());
  constexpr char kFleet[] =
      "type: fleet\nname: gpus\nssh_config:\n  token: secret\n  tls: false\n  hosts: [10.0.0.1, "
      "10.0.0.2, "
      "10.0.0.3]\n";
  EXPECT_EQ(fleets_->Apply(Access(alice), kFleet, model::ConfigFormat::kYaml).status().code(),
            StatusCode::kPermissionDenied);
  auto fleet = fleets_->Apply(Access(admin_), kFleet, model::ConfigFormat::kYaml);
  ASSERT_TRUE(fleet.ok()) << fleet.status().ToString();
  ASSERT_EQ(fleet->instances.size(), 3u);
  EXPECT_EQ(fleet->instances[2].name, "gpus-2");
  EXPECT_EQ(fleet->instances[2].agent_port, 10998);
  EXPECT_EQ(fleet->instances[2].status, model::InstanceStatus::kPending);
  EXPECT_EQ(fleet->fleet.configuration_json.find("secret"), std::string::npos);
  EXPECT_EQ(fleets_->Apply(Access(admin_), kFleet, model::ConfigFormat::kYaml).status().code(),
            StatusCode::kAlreadyExists);
  auto listed = fleets_->List(Access(alice));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].instances.size(), 3u);
  EXPECT_EQ(fleets_->Delete(Access(alice), "gpus").code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(fleets_->Delete(Access(admin_), "gpus").ok());
  EXPECT_EQ(fleets_->Get(Access(admin_), "gpus").status().code(), StatusCode::kNotFound);
}

TEST_F(ServicesTest, AHostBelongsToOneFleetOfOneProject) {
  constexpr char kFleet[] =
      "type: fleet\nname: gpus\nssh_config:\n  token: secret\n  tls: false\n  hosts: "
      "[gpu-1.example.com]\n";
  ASSERT_TRUE(fleets_->Apply(Access(admin_), kFleet, model::ConfigFormat::kYaml).ok());
  // The server's local agent, as LocalAgent registers it.
  model::Fleet local{NewId(),     Access(admin_).project.id,   "main",
                     "local",     model::FleetStatus::kActive, "{}",
                     clock_.Now()};
  model::Instance agent;
  agent.id = NewId();
  agent.project_id = local.project_id;
  agent.fleet_id = local.id;
  agent.name = "local-0";
  agent.backend = "local";
  agent.hostname = "127.0.0.1";
  agent.agent_port = 41000;
  agent.agent_token = "local-token";
  agent.created_at = clock_.Now();
  ASSERT_TRUE(store_->CreateFleet(local, {agent}).ok());

  model::User alice = NewUser("alice");
  ASSERT_TRUE(projects_->Create(alice, "vision").ok());
  auto apply = [&](const model::User& user, const std::string& project, const std::string& host) {
    return fleets_->Apply(
        Access(user, project),
        "type: fleet\nname: mine\nssh_config:\n  token: t\n  tls: false\n  hosts: ['" + host +
            "']\n",
        model::ConfigFormat::kYaml);
  };
  // Another project's host, under another spelling: refused without naming that project.
  auto taken = apply(alice, "vision", "GPU-1.Example.COM");
  EXPECT_EQ(taken.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(taken.status().message().find("already registered in another fleet"), std::string::npos)
      << taken.status().message();
  EXPECT_EQ(taken.status().message().find("main"), std::string::npos);
  // A member of that project (here: a global admin) is told which fleet.
  taken = apply(admin_, "vision", "gpu-1.example.com");
  EXPECT_EQ(taken.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(taken.status().message().find("fleet 'gpus' of project 'main'"), std::string::npos)
      << taken.status().message();
  // The local agent, by any name of the loopback address.
  for (const char* host : {"127.0.0.1", "localhost", "127.1.2.3", "::1", "0.0.0.0"}) {
    auto local_taken = fleets_->Apply(
        Access(alice, "vision"),
        std::string(
            "type: fleet\nname: mine\nssh_config:\n  tls: false\n  hosts:\n    - hostname: '") +
            host + "'\n      port: 41000\n      token: t\n",
        model::ConfigFormat::kYaml);
    EXPECT_EQ(local_taken.status().code(), StatusCode::kAlreadyExists) << host;
    EXPECT_NE(local_taken.status().message().find("local agent"), std::string::npos) << host;
  }
  // Nothing was created by the refusals; another port of the same machine is another host.
  EXPECT_TRUE(fleets_->List(Access(alice, "vision"))->empty());
  EXPECT_TRUE(apply(alice, "vision", "gpu-2.example.com").ok());
}

}  // namespace
}  // namespace fleetwatch::server
