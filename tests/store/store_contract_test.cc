#include "store/store_contract.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/status.h"
#include "store/store.h"

namespace fleetwatch::store {
namespace {

// --- opening ---

TEST_P(StoreContract, DataSurvivesCloseAndReopen) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 2);
  ASSERT_TRUE(store_->CreateRun(run).ok());

  Reopen();
  auto user = store_->GetUserByTokenHash("hash-alice");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->name, "alice");
  auto got_fleet = store_->GetFleet(project_.id, "gpus");
  ASSERT_TRUE(got_fleet.ok());
  EXPECT_EQ(got_fleet->id, fleet.id);
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ(instances->front().resources.gpus.size(), 2u);
  auto got_run = store_->GetRun(project_.id, "train");
  ASSERT_TRUE(got_run.ok());
  EXPECT_EQ(got_run->status, RunStatus::kRunning);
  EXPECT_EQ(got_run->jobs.size(), 2u);
}

// --- bootstrap and users ---

TEST_P(StoreContract, BootstrapCreatesAdminMainProjectAndMembershipOnlyOnce) {
  // A database of its own: the fixture's already has a user.
  std::unique_ptr<StoreFactory> fresh = GetParam().make();
  auto opened = fresh->Open();
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;

  model::User admin = MakeUser("admin", GlobalRole::kAdmin);
  model::Project main = MakeProject("main", admin);
  auto first = store.Bootstrap(admin, "admin-hash", main);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(*first);

  auto by_token = store.GetUserByTokenHash("admin-hash");
  ASSERT_TRUE(by_token.ok());
  EXPECT_EQ(by_token->id, admin.id);
  EXPECT_EQ(by_token->global_role, GlobalRole::kAdmin);
  auto project = store.GetProject("main");
  ASSERT_TRUE(project.ok());
  EXPECT_EQ(project->owner_id, admin.id);
  auto role = store.GetMemberRole(main.id, admin.id);
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, ProjectRole::kAdmin);

  model::User other = MakeUser("root", GlobalRole::kAdmin);
  model::Project other_main = MakeProject("other", other);
  auto second = store.Bootstrap(other, "other-hash", other_main);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(*second);
  auto users = store.ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().name, "admin");
  auto projects = store.ListProjects();
  ASSERT_TRUE(projects.ok());
  ASSERT_EQ(projects->size(), 1u);
  EXPECT_EQ(store.GetUserByTokenHash("other-hash").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, BootstrapChangesNothingWhenUsersExist) {
  model::User admin = MakeUser("admin", GlobalRole::kAdmin);
  auto result = store_->Bootstrap(admin, "admin-hash", MakeProject("boot", admin));
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(*result);
  EXPECT_EQ(store_->GetUserByName("admin").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetProject("boot").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, UsersAreFoundByNameAndByTokenHash) {
  model::User bob = MakeUser("bob", GlobalRole::kAdmin);
  ASSERT_TRUE(store_->CreateUser(bob, "hash-bob").ok());

  auto by_name = store_->GetUserByName("bob");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, bob.id);
  EXPECT_EQ(by_name->global_role, GlobalRole::kAdmin);
  EXPECT_EQ(by_name->created_at, bob.created_at);

  auto by_hash = store_->GetUserByTokenHash("hash-bob");
  ASSERT_TRUE(by_hash.ok());
  EXPECT_EQ(by_hash->name, "bob");

  EXPECT_EQ(store_->GetUserByName("carol").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetUserByTokenHash("hash-carol").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, DuplicateUserNameOrTokenHashIsAlreadyExists) {
  Status same_name = store_->CreateUser(MakeUser("alice"), "another-hash");
  EXPECT_EQ(same_name.code(), StatusCode::kAlreadyExists) << same_name.ToString();
  Status same_hash = store_->CreateUser(MakeUser("bob"), "hash-alice");
  EXPECT_EQ(same_hash.code(), StatusCode::kAlreadyExists) << same_hash.ToString();
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u);
}

TEST_P(StoreContract, ListUsersIsOrderedByName) {
  for (const char* name : {"zed", "bob", "mia"}) {
    ASSERT_TRUE(store_->CreateUser(MakeUser(name), std::string("hash-") + name).ok());
  }
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  std::vector<std::string> names;
  for (const model::User& user : *users) names.push_back(user.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob", "mia", "zed"}));
}

// --- projects and members ---

TEST_P(StoreContract, ProjectOwnerBecomesAdminMemberAndDuplicateNameIsAlreadyExists) {
  auto project = store_->GetProject("main");
  ASSERT_TRUE(project.ok());
  EXPECT_EQ(project->id, project_.id);
  EXPECT_EQ(project->owner_id, owner_.id);
  EXPECT_EQ(project->created_at, project_.created_at);

  auto members = store_->ListMembers(project_.id);
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ(members->front().user_id, owner_.id);
  EXPECT_EQ(members->front().user_name, "alice");
  EXPECT_EQ(members->front().role, ProjectRole::kAdmin);

  EXPECT_EQ(store_->CreateProject(MakeProject("main", owner_)).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetProject("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, ProjectOfUnknownOwnerIsNotFoundAndNotCreated) {
  model::User ghost = MakeUser("ghost");  // never stored
  EXPECT_EQ(store_->CreateProject(MakeProject("haunted", ghost)).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetProject("haunted").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, MemberRoleCanBeSetChangedAndRemoved) {
  model::User bob = MakeUser("bob");
  ASSERT_TRUE(store_->CreateUser(bob, "hash-bob").ok());

  auto none = store_->GetMemberRole(project_.id, bob.id);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(store_->SetMember(project_.id, bob.id, ProjectRole::kUser).ok());
  auto role = store_->GetMemberRole(project_.id, bob.id);
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, ProjectRole::kUser);

  ASSERT_TRUE(store_->SetMember(project_.id, bob.id, ProjectRole::kManager).ok());
  role = store_->GetMemberRole(project_.id, bob.id);
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, ProjectRole::kManager);
  auto members = store_->ListMembers(project_.id);
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[1].user_name, "bob");
  EXPECT_EQ((*members)[1].role, ProjectRole::kManager);

  ASSERT_TRUE(store_->RemoveMember(project_.id, bob.id).ok());
  role = store_->GetMemberRole(project_.id, bob.id);
  ASSERT_TRUE(role.ok());
  EXPECT_FALSE(role->has_value());
  EXPECT_EQ(store_->RemoveMember(project_.id, bob.id).code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, SetMemberOfUnknownUserOrProjectIsNotFound) {
  EXPECT_EQ(store_->SetMember(project_.id, NewId(), ProjectRole::kUser).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->SetMember(NewId(), owner_.id, ProjectRole::kUser).code(),
            StatusCode::kNotFound);
}

TEST_P(StoreContract, ListProjectsOfUserListsOnlyTheirProjectsByName) {
  model::User bob = MakeUser("bob");
  ASSERT_TRUE(store_->CreateUser(bob, "hash-bob").ok());
  model::Project zoo = MakeProject("zoo", owner_);
  model::Project art = MakeProject("art", owner_);
  model::Project own = MakeProject("bobs", bob);
  ASSERT_TRUE(store_->CreateProject(zoo).ok());
  ASSERT_TRUE(store_->CreateProject(art).ok());
  ASSERT_TRUE(store_->CreateProject(own).ok());
  ASSERT_TRUE(store_->SetMember(zoo.id, bob.id, ProjectRole::kUser).ok());

  auto of_bob = store_->ListProjectsOfUser(bob.id);
  ASSERT_TRUE(of_bob.ok());
  std::vector<std::string> names;
  for (const model::Project& p : *of_bob) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bobs", "zoo"}));

  auto all = store_->ListProjects();
  ASSERT_TRUE(all.ok());
  names.clear();
  for (const model::Project& p : *all) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"art", "bobs", "main", "zoo"}));
}

// --- fleets and instances ---

TEST_P(StoreContract, FleetWithInstancesRoundTripsIncludingGpusAndOptionalPrice) {
  model::Fleet fleet = MakeFleet(project_, "h100s");
  model::Instance with_price = MakeInstance(fleet, 0);
  with_price.price = 2.49;
  with_price.resources = {.cpus = 96, .memory_bytes = 1LL << 40, .gpus = {MakeGpu(0), MakeGpu(1)}};
  model::Instance without_price = MakeInstance(fleet, 1);
  without_price.status = InstanceStatus::kPending;
  ASSERT_TRUE(store_->CreateFleet(fleet, {without_price, with_price}).ok());

  auto got = store_->GetFleet(project_.id, "h100s");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, fleet.id);
  EXPECT_EQ(got->project_id, project_.id);
  EXPECT_EQ(got->project_name, "main");
  EXPECT_EQ(got->status, FleetStatus::kActive);
  EXPECT_EQ(got->configuration_json, fleet.configuration_json);
  EXPECT_EQ(got->created_at, fleet.created_at);

  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  ASSERT_EQ(instances->size(), 2u);
  const model::Instance& first = (*instances)[0];
  EXPECT_EQ(first.id, with_price.id);
  EXPECT_EQ(first.project_name, "main");
  EXPECT_EQ(first.fleet_id, fleet.id);
  EXPECT_EQ(first.fleet_name, "h100s");
  EXPECT_EQ(first.name, "h100s-0");
  EXPECT_EQ(first.instance_num, 0);
  EXPECT_EQ(first.status, InstanceStatus::kIdle);
  EXPECT_EQ(first.backend, "remote");
  EXPECT_EQ(first.hostname, "10.0.0.1");
  EXPECT_EQ(first.agent_port, 10998);
  EXPECT_EQ(first.agent_token, "agent-token-0");
  ASSERT_TRUE(first.price.has_value());
  EXPECT_DOUBLE_EQ(*first.price, 2.49);
  EXPECT_EQ(first.resources.cpus, 96);
  EXPECT_EQ(first.resources.memory_bytes, 1LL << 40);
  ASSERT_EQ(first.resources.gpus.size(), 2u);
  EXPECT_EQ(first.resources.gpus[1].index, 1);
  EXPECT_EQ(first.resources.gpus[1].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(first.resources.gpus[1].uuid, "GPU-1-0b6d");
  EXPECT_EQ(first.resources.gpus[1].memory_bytes, 85'899'345'920);
  EXPECT_EQ(first.resources.gpus[1].vendor, "nvidia");
  EXPECT_EQ(first.created_at, with_price.created_at);

  const model::Instance& second = (*instances)[1];
  EXPECT_EQ(second.instance_num, 1);
  EXPECT_EQ(second.status, InstanceStatus::kPending);
  EXPECT_FALSE(second.price.has_value());
  EXPECT_TRUE(second.resources.gpus.empty());
}

TEST_P(StoreContract, DuplicateFleetNameIsAlreadyExistsAndWritesNothing) {
  CreateFleetWithInstance("gpus");
  model::Fleet again = MakeFleet(project_, "gpus");
  Status status = store_->CreateFleet(again, {MakeInstance(again, 0), MakeInstance(again, 1)});
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  EXPECT_EQ(instances->size(), 1u);

  // The same name in another project is a different fleet.
  model::Project other = MakeProject("other", owner_);
  ASSERT_TRUE(store_->CreateProject(other).ok());
  EXPECT_TRUE(store_->CreateFleet(MakeFleet(other, "gpus"), {}).ok());
}

TEST_P(StoreContract, FleetWhoseInstancesViolateAConstraintLeavesNoFleetRow) {
  model::Fleet fleet = MakeFleet(project_, "broken");
  model::Instance a = MakeInstance(fleet, 0);
  model::Instance b = MakeInstance(fleet, 1);
  b.instance_num = 0;  // two instances with number 0
  Status status = store_->CreateFleet(fleet, {a, b});
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  EXPECT_EQ(store_->GetFleet(project_.id, "broken").status().code(), StatusCode::kNotFound);
  auto fleets = store_->ListFleets(project_.id);
  ASSERT_TRUE(fleets.ok());
  EXPECT_TRUE(fleets->empty());
  auto instances = store_->ListInstances("");
  ASSERT_TRUE(instances.ok());
  EXPECT_TRUE(instances->empty());

  // The same fleet with valid instances can then be created.
  EXPECT_TRUE(store_->CreateFleet(fleet, {a}).ok());
}

TEST_P(StoreContract, ListFleetsIsOrderedByName) {
  CreateFleetWithInstance("zeta");
  CreateFleetWithInstance("alpha");
  auto fleets = store_->ListFleets(project_.id);
  ASSERT_TRUE(fleets.ok());
  ASSERT_EQ(fleets->size(), 2u);
  EXPECT_EQ((*fleets)[0].name, "alpha");
  EXPECT_EQ((*fleets)[1].name, "zeta");
}

TEST_P(StoreContract, DeleteFleetIsBlockedByAnUnfinishedJobAndAllowedAfter) {
  auto [fleet, instance] = CreateFleetWithInstance("busy");
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning);
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].instance_id = instance.id;
  run.jobs[0].instance_name = instance.name;
  run.jobs[0].gpu_indices = {0, 1};
  ASSERT_TRUE(store_->CreateRun(run).ok());

  Status blocked = store_->DeleteFleet(project_.id, "busy");
  EXPECT_EQ(blocked.code(), StatusCode::kFailedPrecondition) << blocked.ToString();
  EXPECT_TRUE(store_->GetFleet(project_.id, "busy").ok());

  run.status = RunStatus::kDone;
  run.jobs[0].status = JobStatus::kDone;
  run.jobs[0].exit_code = 0;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  ASSERT_TRUE(store_->DeleteFleet(project_.id, "busy").ok());
  EXPECT_EQ(store_->GetFleet(project_.id, "busy").status().code(), StatusCode::kNotFound);
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  EXPECT_TRUE(instances->empty());

  // The job keeps its history but no longer points at the deleted instance.
  auto got = store_->GetRunById(run.id);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->jobs[0].instance_id.has_value());
  EXPECT_EQ(got->jobs[0].instance_name, instance.name);

  EXPECT_EQ(store_->DeleteFleet(project_.id, "busy").code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, ListInstancesOrdersByProjectFleetAndNumberAndEmptyProjectMeansAll) {
  model::Project alpha = MakeProject("alpha", owner_);  // sorts before "main"
  ASSERT_TRUE(store_->CreateProject(alpha).ok());
  model::Fleet main_b = MakeFleet(project_, "b");
  model::Fleet main_a = MakeFleet(project_, "a");
  model::Fleet alpha_z = MakeFleet(alpha, "z");
  ASSERT_TRUE(store_->CreateFleet(main_b, {MakeInstance(main_b, 1), MakeInstance(main_b, 0)}).ok());
  ASSERT_TRUE(store_->CreateFleet(main_a, {MakeInstance(main_a, 0)}).ok());
  ASSERT_TRUE(store_->CreateFleet(alpha_z, {MakeInstance(alpha_z, 0)}).ok());

  auto all = store_->ListInstances("");
  ASSERT_TRUE(all.ok());
  std::vector<std::string> names;
  for (const model::Instance& i : *all) names.push_back(i.project_name + "/" + i.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha/z-0", "main/a-0", "main/b-0", "main/b-1"}));

  auto only_main = store_->ListInstances(project_.id);
  ASSERT_TRUE(only_main.ok());
  names.clear();
  for (const model::Instance& i : *only_main) names.push_back(i.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a-0", "b-0", "b-1"}));
}

TEST_P(StoreContract, UpdateInstanceWritesItsMutableFields) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  instance.status = InstanceStatus::kBusy;
  instance.price = 1.25;
  instance.resources.gpus.push_back(MakeGpu(2));
  instance.hostname = "10.0.0.9";
  instance.agent_port = 20000;
  instance.agent_token = "new-token";
  instance.unreachable = true;
  instance.last_seen_at = 1234;
  instance.agent_id = "agent-2";
  instance.name = "renamed";  // not a mutable field
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());

  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ(instances->front().status, InstanceStatus::kBusy);
  EXPECT_EQ(instances->front().price, 1.25);
  EXPECT_EQ(instances->front().resources.gpus.size(), 3u);
  EXPECT_EQ(instances->front().hostname, "10.0.0.9");
  EXPECT_EQ(instances->front().agent_port, 20000);
  EXPECT_EQ(instances->front().agent_token, "new-token");
  EXPECT_TRUE(instances->front().unreachable);
  EXPECT_EQ(instances->front().last_seen_at, 1234);
  EXPECT_EQ(instances->front().agent_id, "agent-2");
  EXPECT_EQ(instances->front().name, "gpus-0");

  instance.price.reset();
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  EXPECT_FALSE(instances->front().price.has_value());

  model::Instance unknown = MakeInstance(fleet, 5);
  EXPECT_EQ(store_->UpdateInstance(unknown).code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, InstanceTlsSettingsRoundTripAndUpdate) {
  const model::Fleet fleet = MakeFleet(project_, "secure");
  model::Instance pinned = MakeInstance(fleet, 0);
  pinned.tls = true;
  pinned.tls_fingerprint = "sha256:" + std::string(64, 'a');
  model::Instance by_ca = MakeInstance(fleet, 1);
  by_ca.tls = true;
  by_ca.tls_ca_cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  model::Instance plain = MakeInstance(fleet, 2);
  ASSERT_TRUE(store_->CreateFleet(fleet, {pinned, by_ca, plain}).ok());

  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 3u);
  EXPECT_TRUE((*instances)[0].tls);
  EXPECT_EQ((*instances)[0].tls_fingerprint, pinned.tls_fingerprint);
  EXPECT_EQ((*instances)[0].tls_ca_cert, "");
  EXPECT_TRUE((*instances)[1].tls);
  EXPECT_EQ((*instances)[1].tls_ca_cert, by_ca.tls_ca_cert);
  EXPECT_FALSE((*instances)[2].tls);

  model::Instance changed = (*instances)[0];
  changed.tls_fingerprint = "sha256:" + std::string(64, 'b');
  ASSERT_TRUE(store_->UpdateInstance(changed).ok());
  instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  EXPECT_EQ((*instances)[0].tls_fingerprint, changed.tls_fingerprint);
}

// --- runs and jobs ---

TEST_P(StoreContract, RunWithJobsRoundTripsWithJobsInOrder) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  model::Run run =
      MakeRun(project_, owner_, "train", 1'700'000'000'123'456, RunStatus::kRunning, 0);
  run.type = model::RunType::kService;
  run.cost = 3.5;
  run.jobs = {MakeJob(run, 1, 1), MakeJob(run, 0, 1), MakeJob(run, 1, 0), MakeJob(run, 0, 0)};
  run.jobs[3].status = JobStatus::kRunning;
  run.jobs[3].instance_id = instance.id;
  run.jobs[3].instance_name = instance.name;
  run.jobs[3].gpu_indices = {1, 0};
  ASSERT_TRUE(store_->CreateRun(run).ok());

  auto got = store_->GetRun(project_.id, "train");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, run.id);
  EXPECT_EQ(got->project_id, project_.id);
  EXPECT_EQ(got->project_name, "main");
  EXPECT_EQ(got->user_id, owner_.id);
  EXPECT_EQ(got->user_name, "alice");
  EXPECT_EQ(got->type, model::RunType::kService);
  EXPECT_EQ(got->status, RunStatus::kRunning);
  EXPECT_FALSE(got->termination_reason.has_value());
  EXPECT_EQ(got->submitted_at, 1'700'000'000'123'456);
  EXPECT_FALSE(got->finished_at.has_value());
  EXPECT_EQ(got->configuration_json, run.configuration_json);
  EXPECT_DOUBLE_EQ(got->cost, 3.5);

  ASSERT_EQ(got->jobs.size(), 4u);
  std::vector<std::pair<int, int>> order;
  for (const model::Job& job : got->jobs) order.emplace_back(job.job_num, job.replica_num);
  EXPECT_EQ(order, (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {1, 0}, {1, 1}}));
  const model::Job& placed = got->jobs[0];
  EXPECT_EQ(placed.id, run.jobs[3].id);
  EXPECT_EQ(placed.run_id, run.id);
  EXPECT_EQ(placed.job_name, "train-0-0");
  EXPECT_EQ(placed.status, JobStatus::kRunning);
  EXPECT_EQ(placed.instance_id, instance.id);
  EXPECT_EQ(placed.instance_name, instance.name);
  EXPECT_EQ(placed.gpu_indices, (std::vector<int>{1, 0}));
  EXPECT_FALSE(placed.exit_code.has_value());
  EXPECT_FALSE(placed.termination_reason.has_value());
  EXPECT_FALSE(got->jobs[1].instance_id.has_value());
  EXPECT_TRUE(got->jobs[1].gpu_indices.empty());

  auto by_id = store_->GetRunById(run.id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->run_name, "train");
  EXPECT_EQ(by_id->jobs.size(), 4u);

  EXPECT_EQ(store_->GetRun(project_.id, "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRunById(NewId()).status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, RunWithADuplicateJobIsNotCreatedAtAll) {
  model::Run run = MakeRun(project_, owner_, "dup", 100, RunStatus::kSubmitted, 2);
  run.jobs[1].job_num = 0;  // (0, 0) twice
  EXPECT_EQ(store_->CreateRun(run).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetRunById(run.id).status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, ListRunsIsNewestFirstFilteredByStatusAndLimited) {
  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "old", 100, RunStatus::kDone)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "mid", 200, RunStatus::kRunning)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "new", 300, RunStatus::kFailed)).ok());
  model::Project other = MakeProject("other", owner_);
  ASSERT_TRUE(store_->CreateProject(other).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(other, owner_, "elsewhere", 400)).ok());

  auto all = store_->ListRuns(Filter(project_.id));
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(RunNames(*all), (std::vector<std::string>{"new", "mid", "old"}));
  EXPECT_EQ(all->front().jobs.size(), 1u);

  RunFilter finished_filter = Filter(project_.id);
  finished_filter.statuses = {RunStatus::kDone, RunStatus::kFailed};
  auto finished = store_->ListRuns(finished_filter);
  ASSERT_TRUE(finished.ok());
  EXPECT_EQ(RunNames(*finished), (std::vector<std::string>{"new", "old"}));

  RunFilter limit_filter = Filter(project_.id);
  limit_filter.limit = 2;
  auto limited = store_->ListRuns(limit_filter);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(RunNames(*limited), (std::vector<std::string>{"new", "mid"}));

  RunFilter pending_filter = Filter(project_.id);
  pending_filter.statuses = {RunStatus::kPending};
  auto none = store_->ListRuns(pending_filter);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreContract, ListRunsWithStatusIsOldestFirstAcrossProjects) {
  model::Project other = MakeProject("other", owner_);
  ASSERT_TRUE(store_->CreateProject(other).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "b", 300, RunStatus::kRunning)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(other, owner_, "a", 100, RunStatus::kSubmitted)).ok());
  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "c", 200, RunStatus::kDone)).ok());

  auto active = store_->ListRunsWithStatus({RunStatus::kSubmitted, RunStatus::kRunning});
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  EXPECT_EQ(RunNames(*active), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(active->front().project_name, "other");
  EXPECT_EQ(active->front().jobs.size(), 1u);

  auto empty = store_->ListRunsWithStatus({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_P(StoreContract, UnfinishedRunNameIsTakenAndAFinishedOneIsReplaced) {
  model::Run first = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning);
  ASSERT_TRUE(store_->CreateRun(first).ok());
  model::Run refused = MakeRun(project_, owner_, "train", 200);
  Status taken = store_->CreateRun(refused);
  EXPECT_EQ(taken.code(), StatusCode::kAlreadyExists) << taken.ToString();
  EXPECT_EQ(store_->GetRunById(refused.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRun(project_.id, "train")->id, first.id);

  // Another project may use the name, and keeps its run when this one's is replaced.
  model::Project other = MakeProject("other", owner_);
  ASSERT_TRUE(store_->CreateProject(other).ok());
  model::Run elsewhere = MakeRun(other, owner_, "train", 200, RunStatus::kDone);
  EXPECT_TRUE(store_->CreateRun(elsewhere).ok());

  first.status = RunStatus::kTerminated;
  first.termination_reason = model::RunTerminationReason::kStoppedByUser;
  ASSERT_TRUE(store_->UpdateRun(first).ok());
  model::Run second = MakeRun(project_, owner_, "train", 300);
  ASSERT_TRUE(store_->CreateRun(second).ok());

  auto got = store_->GetRun(project_.id, "train");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id, second.id);
  auto list = store_->ListRuns(Filter(project_.id));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(RunNames(*list), (std::vector<std::string>{"train"}));
  EXPECT_EQ(list->front().id, second.id);
  EXPECT_EQ(store_->GetRun(other.id, "train")->id, elsewhere.id);
  // The replaced run is deleted, not gone: its jobs stay and it still counts.
  auto replaced = store_->GetRunById(first.id);
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->jobs.size(), 1u);
  int64_t all = 0, undeleted = 0;
  const std::vector<RunCount> counts = store_->CountRuns().value();
  for (const RunCount& c : counts) {
    if (c.project_name != project_.name) continue;
    all += c.all;
    undeleted += c.undeleted;
  }
  EXPECT_EQ(all, 2);
  EXPECT_EQ(undeleted, 1);
}

TEST_P(StoreContract, UpdateRunWritesRunAndJobFields) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kSubmitted, 2);
  ASSERT_TRUE(store_->CreateRun(run).ok());

  run.status = RunStatus::kFailed;
  run.termination_reason = model::RunTerminationReason::kJobFailed;
  run.finished_at = 900;
  run.cost = 12.75;
  run.run_name = "renamed";  // not a mutable field
  run.jobs[1].status = JobStatus::kFailed;
  run.jobs[1].termination_reason = model::JobTerminationReason::kContainerExitedWithError;
  run.jobs[1].exit_code = 137;
  run.jobs[1].instance_id = instance.id;
  run.jobs[1].instance_name = instance.name;
  run.jobs[1].gpu_indices = {1};
  run.jobs[1].finished_at = 850;
  ASSERT_TRUE(store_->UpdateRun(run).ok());

  auto got = store_->GetRunById(run.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->run_name, "train");
  EXPECT_EQ(got->status, RunStatus::kFailed);
  EXPECT_EQ(got->termination_reason, model::RunTerminationReason::kJobFailed);
  EXPECT_EQ(got->finished_at, 900);
  EXPECT_DOUBLE_EQ(got->cost, 12.75);
  EXPECT_EQ(got->jobs[0].status, JobStatus::kSubmitted);
  const model::Job& job = got->jobs[1];
  EXPECT_EQ(job.status, JobStatus::kFailed);
  EXPECT_EQ(job.termination_reason, model::JobTerminationReason::kContainerExitedWithError);
  EXPECT_EQ(job.exit_code, 137);
  EXPECT_EQ(job.instance_id, instance.id);
  EXPECT_EQ(job.instance_name, instance.name);
  EXPECT_EQ(job.gpu_indices, (std::vector<int>{1}));
  EXPECT_EQ(job.finished_at, 850);
}

TEST_P(StoreContract, UpdateRunOfUnknownRunOrJobIsNotFoundAndChangesNothing) {
  model::Run unknown = MakeRun(project_, owner_, "ghost", 100);
  EXPECT_EQ(store_->UpdateRun(unknown).code(), StatusCode::kNotFound);

  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  run.status = RunStatus::kDone;
  run.jobs.push_back(MakeJob(run, 7, 0));  // never stored
  EXPECT_EQ(store_->UpdateRun(run).code(), StatusCode::kNotFound);
  auto got = store_->GetRunById(run.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, RunStatus::kRunning);  // the run update was rolled back too
}

TEST_P(StoreContract, DeleteRunRequiresAFinishedRunAndHidesIt) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  Status refused = store_->DeleteRun(run.id);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_TRUE(store_->GetRun(project_.id, "train").ok());

  run.status = RunStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  ASSERT_TRUE(store_->DeleteRun(run.id).ok());
  EXPECT_EQ(store_->GetRun(project_.id, "train").status().code(), StatusCode::kNotFound);
  auto listed = store_->ListRuns(Filter(project_.id));
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());

  // The row is kept for counters.
  RunFilter deleted_filter = Filter(project_.id);
  deleted_filter.include_deleted = true;
  auto with_deleted = store_->ListRuns(deleted_filter);
  ASSERT_TRUE(with_deleted.ok());
  ASSERT_EQ(with_deleted->size(), 1u);
  EXPECT_EQ(with_deleted->front().id, run.id);
  EXPECT_EQ(with_deleted->front().jobs.size(), 1u);

  EXPECT_EQ(store_->DeleteRun(NewId()).code(), StatusCode::kNotFound);
}

// --- robustness ---

TEST_P(StoreContract, HostileStringsRoundTripVerbatim) {
  const std::vector<std::string> hostile = {
      "'; DROP TABLE runs; --",
      R"(quote " and ' and back\slash \" \n)",
      "line one\nline two\r\n\ttabbed",
      "<script>alert('x')</script>",
      "naïve 日本語 emoji 🚀 Ünïcödé",
      std::string("embedded\0nul", 12),
      "?1 ?2 :name @x $y",
  };
  size_t refused = 0;
  for (size_t i = 0; i < hostile.size(); ++i) {
    SCOPED_TRACE(i);
    const std::string& text = hostile[i];
    if (!factory_->StoresAnyBytes() && text.find('\0') != std::string::npos) {
      // Text that cannot hold a NUL byte refuses it clearly and stores nothing.
      EXPECT_EQ(store_->CreateUser(MakeUser(text), "hash-nul").code(),
                StatusCode::kInvalidArgument);
      EXPECT_EQ(store_->GetUserByTokenHash("hash-nul").status().code(), StatusCode::kNotFound);
      ++refused;
      continue;
    }
    model::User user = MakeUser(text + "#" + std::to_string(i));
    ASSERT_TRUE(store_->CreateUser(user, text).ok());
    auto by_hash = store_->GetUserByTokenHash(text);
    ASSERT_TRUE(by_hash.ok());
    EXPECT_EQ(by_hash->name, user.name);

    model::Project project = MakeProject("p" + std::to_string(i) + text, user);
    ASSERT_TRUE(store_->CreateProject(project).ok());
    auto got_project = store_->GetProject(project.name);
    ASSERT_TRUE(got_project.ok());
    EXPECT_EQ(got_project->name, project.name);

    model::Fleet fleet = MakeFleet(project, text);
    fleet.configuration_json = text;
    model::Instance instance = MakeInstance(fleet, 0);
    instance.hostname = text;
    instance.agent_token = text;
    model::Gpu gpu = MakeGpu(0);
    gpu.name = text + "\xff\xfe not utf-8";
    gpu.uuid = text;
    instance.resources.gpus = {gpu};
    if (!factory_->StoresAnyBytes()) {
      // Bytes that are not UTF-8 are refused clearly, and nothing of the fleet is stored.
      EXPECT_EQ(store_->CreateFleet(fleet, {instance}).code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(store_->GetFleet(project.id, text).status().code(), StatusCode::kNotFound);
      gpu.name = text;
      instance.resources.gpus = {gpu};
    }
    ASSERT_TRUE(store_->CreateFleet(fleet, {instance}).ok());
    auto got_fleet = store_->GetFleet(project.id, text);
    ASSERT_TRUE(got_fleet.ok());
    EXPECT_EQ(got_fleet->name, text);
    EXPECT_EQ(got_fleet->configuration_json, text);
    auto instances = store_->ListInstances(project.id);
    ASSERT_TRUE(instances.ok()) << instances.status().ToString();
    ASSERT_EQ(instances->size(), 1u);
    EXPECT_EQ(instances->front().fleet_name, text);
    EXPECT_EQ(instances->front().hostname, text);
    EXPECT_EQ(instances->front().agent_token, text);
    ASSERT_EQ(instances->front().resources.gpus.size(), 1u);
    EXPECT_EQ(instances->front().resources.gpus[0].name, gpu.name);
    EXPECT_EQ(instances->front().resources.gpus[0].uuid, text);

    model::Run run = MakeRun(project, user, text, 100);
    run.configuration_json = text;
    run.jobs[0].job_name = text;
    run.jobs[0].instance_name = text;
    ASSERT_TRUE(store_->CreateRun(run).ok());
    auto got_run = store_->GetRun(project.id, text);
    ASSERT_TRUE(got_run.ok());
    EXPECT_EQ(got_run->run_name, text);
    EXPECT_EQ(got_run->configuration_json, text);
    EXPECT_EQ(got_run->user_name, user.name);
    EXPECT_EQ(got_run->jobs[0].job_name, text);
    EXPECT_EQ(got_run->jobs[0].instance_name, text);
  }
  // Nothing was executed as SQL.
  EXPECT_EQ(factory_->QueryInt("SELECT COUNT(*) FROM runs"),
            static_cast<int64_t>(hostile.size() - refused));
}

TEST_P(StoreContract, AStoredValueTheModelDoesNotKnowIsInternal) {
  model::Run run = MakeRun(project_, owner_, "train", 100);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  factory_->Exec("UPDATE runs SET status = 'exploded'");
  auto got = store_->GetRunById(run.id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInternal);
  EXPECT_NE(got.status().message().find("exploded"), std::string::npos);
}

TEST_P(StoreContract, ConcurrentWritersFromEightThreadsAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kUsersEach = 50;
  std::vector<std::vector<Status>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kUsersEach; ++i) {
        const std::string name = "user-" + std::to_string(t) + "-" + std::to_string(i);
        results[t].push_back(store_->CreateUser(MakeUser(name), "hash-" + name));
        // Readers interleave with the writers.
        results[t].push_back(store_->GetUserByName(name).status());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& per_thread : results) {
    for (const Status& status : per_thread) EXPECT_TRUE(status.ok()) << status.ToString();
  }
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u + kThreads * kUsersEach);
}

TEST_P(StoreContract, TwoConnectionsToOneDatabaseWaitForEachOther) {
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  std::vector<Store*> stores = {store_.get(), second->get()};
  constexpr int kThreads = 4;
  constexpr int kUsersEach = 25;
  std::vector<std::vector<Status>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kUsersEach; ++i) {
        const std::string name = "conn-" + std::to_string(t) + "-" + std::to_string(i);
        results[t].push_back(stores[t % 2]->CreateUser(MakeUser(name), "hash-" + name));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& per_thread : results) {
    for (const Status& status : per_thread) EXPECT_TRUE(status.ok()) << status.ToString();
  }
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u + kThreads * kUsersEach);
}

// --- token lifecycle ---

TEST_P(StoreContract, ANewTokenHashReplacesTheOldOneAtOnce) {
  ASSERT_TRUE(store_->SetUserTokenHash(owner_.id, "hash-alice-2").ok());
  EXPECT_EQ(store_->GetUserByTokenHash("hash-alice").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetUserByTokenHash("hash-alice-2").value().name, "alice");
  EXPECT_EQ(store_->SetUserTokenHash("no-such-id", "x").code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, TheLastGlobalAdminCanBeNeitherDemotedNorDeleted) {
  model::User root = MakeUser("root", GlobalRole::kAdmin);
  ASSERT_TRUE(store_->CreateUser(root, "hash-root").ok());
  EXPECT_EQ(store_->SetUserGlobalRole(root.id, GlobalRole::kUser).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->DeleteUsers({"root"}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetUserByName("root").value().global_role, GlobalRole::kAdmin);

  ASSERT_TRUE(store_->SetUserGlobalRole(owner_.id, GlobalRole::kAdmin).ok());
  ASSERT_TRUE(store_->SetUserGlobalRole(root.id, GlobalRole::kUser).ok());
  EXPECT_EQ(store_->GetUserByName("root").value().global_role, GlobalRole::kUser);
  EXPECT_EQ(store_->DeleteUsers({"alice"}).code(), StatusCode::kFailedPrecondition);
}

TEST_P(StoreContract, ADeletedUserLosesTokenAndMembershipsButTheirRunsStayCounted) {
  model::User admin = MakeUser("root", GlobalRole::kAdmin);
  ASSERT_TRUE(store_->CreateUser(admin, "hash-root").ok());
  model::User bob = MakeUser("bob");
  ASSERT_TRUE(store_->CreateUser(bob, "hash-bob").ok());
  ASSERT_TRUE(store_->SetMember(project_.id, bob.id, ProjectRole::kUser).ok());
  model::Run run = MakeRun(project_, bob, "bobs-run", 100, RunStatus::kDone);
  ASSERT_TRUE(store_->CreateRun(run).ok());

  EXPECT_EQ(store_->DeleteUsers({"bob", "nobody"}).code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetUserByName("bob").ok());  // all or none

  ASSERT_TRUE(store_->DeleteUsers({"bob"}).ok());
  EXPECT_EQ(store_->GetUserByTokenHash("hash-bob").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetUserByName("bob").status().code(), StatusCode::kNotFound);
  const std::vector<model::User> users = store_->ListUsers().value();
  for (const model::User& u : users) EXPECT_NE(u.name, "bob");
  EXPECT_FALSE(store_->GetMemberRole(project_.id, bob.id).value().has_value());
  EXPECT_EQ(store_->GetRun(project_.id, "bobs-run").value().user_name, "bob");
  bool counted = false;
  const std::vector<RunCount> counts = store_->CountRuns().value();
  for (const RunCount& c : counts) counted |= c.user_name == "bob";
  EXPECT_TRUE(counted);
  // The name stays taken: counters labeled by it must not merge two people.
  EXPECT_EQ(store_->CreateUser(MakeUser("bob"), "hash-bob-2").code(), StatusCode::kAlreadyExists);
  // Projects a deleted user owns stay.
  EXPECT_TRUE(store_->GetProject("main").ok());
}

TEST_P(StoreContract, RunCountsFollowEveryWriteOfARunWhateverCameBetween) {
  // (undeleted, all) runs of the project with that status.
  auto counted = [&](RunStatus status) {
    std::pair<int64_t, int64_t> n{0, 0};
    const std::vector<RunCount> counts = store_->CountRuns().value();
    for (const RunCount& c : counts) {
      if (c.project_name != project_.name || c.status != status) continue;
      n.first += c.undeleted;
      n.second += c.all;
    }
    return n;
  };
  using Counts = std::pair<int64_t, int64_t>;
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  EXPECT_EQ(counted(RunStatus::kRunning), Counts(1, 1));
  // Writes that change no count, then one that does: the counts follow the last.
  model::JobMetricsPoint point;
  point.job_id = run.jobs[0].id;
  point.timestamp_micro = 150;
  point.gpus_memory_usage_bytes = {1};
  point.gpus_util_percent = {50};
  ASSERT_TRUE(store_->AddJobMetricsPoints({point}).ok());
  ASSERT_TRUE(store_->SetInstancesLastSeen({{instance.id, 160}}).ok());
  EXPECT_EQ(counted(RunStatus::kRunning), Counts(1, 1));
  run.status = RunStatus::kDone;
  run.finished_at = 200;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EXPECT_EQ(counted(RunStatus::kRunning), Counts(0, 0));
  EXPECT_EQ(counted(RunStatus::kDone), Counts(1, 1));
  ASSERT_TRUE(store_->DeleteRun(run.id).ok());
  EXPECT_EQ(counted(RunStatus::kDone), Counts(0, 1));
  // Another store object on the same database: its writes are counted too.
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  model::Run other = MakeRun(project_, owner_, "other", 300, RunStatus::kRunning, 1);
  ASSERT_TRUE((*second)->CreateRun(other).ok());
  EXPECT_EQ(counted(RunStatus::kRunning), Counts(1, 1));
}

// --- several stores on one database (replicas) ---

TEST_P(StoreContract, TwoStoresChargingOneJobAtOnceChargeItOnce) {
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 1);
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].started_at = 100;
  ASSERT_TRUE(store_->CreateRun(run).ok());
  constexpr int kRounds = 20;
  std::optional<TimeMicros> accounted;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    // Both stores read the same accounted time and charge the same interval at once.
    const UsageCharge charge{run.jobs[0].id, accounted, 200 + round, "main", "alice", 1.5, 2.0};
    std::optional<Result<int>> first;
    std::optional<Result<int>> other;
    std::thread a([&] { first.emplace(store_->ChargeUsage({charge})); });
    std::thread b([&] { other.emplace((*second)->ChargeUsage({charge})); });
    a.join();
    b.join();
    ASSERT_TRUE(first->ok()) << first->status().ToString();
    ASSERT_TRUE(other->ok()) << other->status().ToString();
    EXPECT_EQ(**first + **other, 1);
    accounted = charge.new_accounted_until;
  }
  auto totals = store_->ListUsageTotals();
  ASSERT_TRUE(totals.ok());
  ASSERT_EQ(totals->size(), 1u);
  EXPECT_DOUBLE_EQ(totals->front().cost_dollars, 1.5 * kRounds);
  EXPECT_DOUBLE_EQ(totals->front().gpu_seconds, 2.0 * kRounds);
}

TEST_P(StoreContract, TwoStoresDemotingTheLastTwoAdminsAtOnceKeepOne) {
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  model::User root = MakeUser("root", GlobalRole::kAdmin);
  ASSERT_TRUE(store_->CreateUser(root, "hash-root").ok());
  ASSERT_TRUE(store_->SetUserGlobalRole(owner_.id, GlobalRole::kAdmin).ok());
  Status first;
  Status other;
  std::thread a([&] { first = store_->SetUserGlobalRole(owner_.id, GlobalRole::kUser); });
  std::thread b([&] { other = (*second)->SetUserGlobalRole(root.id, GlobalRole::kUser); });
  a.join();
  b.join();
  // Exactly one demotion wins; the other finds the last admin and is refused.
  EXPECT_NE(first.ok(), other.ok()) << first.ToString() << " / " << other.ToString();
  EXPECT_EQ((first.ok() ? other : first).code(), StatusCode::kFailedPrecondition);
  int admins = 0;
  const std::vector<model::User> users = store_->ListUsers().value();
  for (const model::User& user : users) {
    admins += user.global_role == GlobalRole::kAdmin ? 1 : 0;
  }
  EXPECT_EQ(admins, 1);
}

// --- jobs by id and newest metrics ---

TEST_P(StoreContract, ListJobsByIdsFindsJobsOfAnyRunInOneQuery) {
  model::Run running = MakeRun(project_, owner_, "running", 100, RunStatus::kRunning, 2);
  model::Run finished = MakeRun(project_, owner_, "finished", 200, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(running).ok());
  ASSERT_TRUE(store_->CreateRun(finished).ok());
  finished.status = RunStatus::kDone;
  finished.jobs[0].status = model::JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(finished).ok());
  ASSERT_TRUE(store_->DeleteRun(finished.id).ok());  // deleted runs' jobs are still found

  EXPECT_TRUE(store_->ListJobsByIds({})->empty());
  // Many ids, most of them unknown (as a hostile host would report), in one statement.
  std::vector<std::string> ids = {finished.jobs[0].id, running.jobs[1].id, "../../x", "'); --"};
  for (int k = 0; k < 20'000; ++k) ids.push_back("unknown-" + std::to_string(k));
  auto found = store_->ListJobsByIds(ids);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  std::map<std::string, model::JobStatus> by_id;
  for (const model::Job& job : *found) by_id[job.id] = job.status;
  EXPECT_EQ(by_id, (std::map<std::string, model::JobStatus>{
                       {finished.jobs[0].id, model::JobStatus::kDone},
                       {running.jobs[1].id, running.jobs[1].status}}));
}

TEST_P(StoreContract, RunsAndInstancesAreReadByIdWithTheirJobsInListOrder) {
  model::Run late = MakeRun(project_, owner_, "late", 300, RunStatus::kRunning, 3);
  model::Run early = MakeRun(project_, owner_, "early", 100, RunStatus::kSubmitted, 2);
  model::Run other = MakeRun(project_, owner_, "other", 200, RunStatus::kRunning, 1);
  model::Run done = MakeRun(project_, owner_, "done", 50, RunStatus::kRunning, 1);
  for (const model::Run* run : {&late, &early, &other, &done}) {
    ASSERT_TRUE(store_->CreateRun(*run).ok());
  }
  done.status = RunStatus::kDone;
  done.jobs[0].status = model::JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(done).ok());
  ASSERT_TRUE(store_->DeleteRun(done.id).ok());

  EXPECT_TRUE(store_->ListRunsByIds({})->empty());
  // Oldest first whatever the order asked; unknown and hostile ids are left out; deleted and
  // finished runs are found, with their row versions.
  auto runs = store_->ListRunsByIds({late.id, "no-such-run", done.id, early.id, "'); --"});
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  EXPECT_EQ(RunNames(*runs), (std::vector<std::string>{"done", "early", "late"}));
  EXPECT_EQ((*runs)[0].status, RunStatus::kDone);
  EXPECT_EQ((*runs)[0].row_version, 2);
  ASSERT_EQ((*runs)[2].jobs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*runs)[2].jobs[i].id, late.jobs[i].id) << i;
    EXPECT_EQ((*runs)[2].jobs[i].job_num, i);
  }
  ASSERT_EQ((*runs)[1].jobs.size(), 2u);
  EXPECT_EQ((*runs)[1].jobs[0].run_id, early.id);

  auto [fleet_b, b] = CreateFleetWithInstance("b");
  auto [fleet_a, a] = CreateFleetWithInstance("a");
  EXPECT_TRUE(store_->ListInstancesByIds({})->empty());
  auto instances = store_->ListInstancesByIds({b.id, "no-such-instance", a.id});
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  ASSERT_EQ(instances->size(), 2u);
  EXPECT_EQ((*instances)[0].id, a.id);  // ListInstances' order: by fleet name
  EXPECT_EQ((*instances)[1].id, b.id);
  EXPECT_EQ((*instances)[1].agent_token, b.agent_token);  // decrypted, as ListInstances does
  EXPECT_EQ((*instances)[1].fleet_name, "b");
}

TEST_P(StoreContract, NewestMetricsOfUnfinishedJobsComeWholeInOneQuery) {
  model::Run running = MakeRun(project_, owner_, "running", 100, RunStatus::kRunning, 2);
  model::Run finished = MakeRun(project_, owner_, "finished", 200, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(running).ok());
  ASSERT_TRUE(store_->CreateRun(finished).ok());
  auto point = [](const std::string& job, TimeMicros t, int64_t cpu) {
    model::JobMetricsPoint p;
    p.job_id = job;
    p.timestamp_micro = t;
    p.cpu_usage_micro = cpu;
    p.memory_usage_bytes = cpu * 2;
    p.memory_working_set_bytes = cpu * 3;
    p.gpus_memory_usage_bytes = {cpu, cpu + 1};
    p.gpus_util_percent = {50, 60};
    return p;
  };
  EXPECT_TRUE(store_->ListNewestMetricsOfUnfinishedJobs()->empty());
  // Inserted out of order: the newest is found by time, not by insertion.
  ASSERT_TRUE(store_
                  ->AddJobMetricsPoints(
                      {point(running.jobs[0].id, 3000, 30), point(running.jobs[0].id, 1000, 10),
                       point(running.jobs[0].id, 2000, 20), point(finished.jobs[0].id, 5000, 50)})
                  .ok());
  finished.status = RunStatus::kDone;
  finished.jobs[0].status = model::JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(finished).ok());

  auto newest = store_->ListNewestMetricsOfUnfinishedJobs();
  ASSERT_TRUE(newest.ok()) << newest.status().ToString();
  // The finished job and the job without points are left out.
  ASSERT_EQ(newest->size(), 1u);
  const model::JobMetricsPoint& p = newest->front();
  EXPECT_EQ(p.job_id, running.jobs[0].id);
  EXPECT_EQ(p.timestamp_micro, 3000);
  EXPECT_EQ(p.cpu_usage_micro, 30);
  EXPECT_EQ(p.memory_usage_bytes, 60);
  EXPECT_EQ(p.memory_working_set_bytes, 90);
  EXPECT_EQ(p.gpus_memory_usage_bytes, (std::vector<int64_t>{30, 31}));
  EXPECT_EQ(p.gpus_util_percent, (std::vector<int64_t>{50, 60}));
}

}  // namespace
}  // namespace fleetwatch::store
