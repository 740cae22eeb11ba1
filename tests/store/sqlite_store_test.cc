#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/status.h"
#include "store/sqlite_migrations.h"
#include "util/ids.h"

namespace fleetwatch::store {
namespace {

namespace fs = std::filesystem;
using model::FleetStatus;
using model::GlobalRole;
using model::InstanceStatus;
using model::JobStatus;
using model::ProjectRole;
using model::RunStatus;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("fleetwatch-store-test-" + NewId())) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Direct SQLite access to the store's file, for what the Store interface cannot show.
class RawDb {
 public:
  explicit RawDb(const fs::path& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
  }
  // The first column of the first row as text ("" when there is none).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (text != nullptr) out = text;
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t QueryInt(const std::string& sql) { return std::stoll(QueryText(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

model::User MakeUser(const std::string& name, GlobalRole role = GlobalRole::kUser) {
  model::User user;
  user.id = NewId();
  user.name = name;
  user.global_role = role;
  user.created_at = 1'700'000'000'000'000;
  return user;
}

model::Project MakeProject(const std::string& name, const model::User& owner) {
  model::Project project;
  project.id = NewId();
  project.name = name;
  project.owner_id = owner.id;
  project.created_at = 1'700'000'000'000'001;
  return project;
}

model::Fleet MakeFleet(const model::Project& project, const std::string& name) {
  model::Fleet fleet;
  fleet.id = NewId();
  fleet.project_id = project.id;
  fleet.name = name;
  fleet.status = FleetStatus::kActive;
  fleet.configuration_json = R"({"type":"fleet","name":")" + name + R"("})";
  fleet.created_at = 1'700'000'000'000'002;
  return fleet;
}

model::Instance MakeInstance(const model::Fleet& fleet, int num) {
  model::Instance instance;
  instance.id = NewId();
  instance.project_id = fleet.project_id;
  instance.fleet_id = fleet.id;
  instance.name = fleet.name + "-" + std::to_string(num);
  instance.instance_num = num;
  instance.status = InstanceStatus::kIdle;
  instance.backend = "remote";
  instance.hostname = "10.0.0." + std::to_string(num + 1);
  instance.agent_port = 10998;
  instance.agent_token = "agent-token-" + std::to_string(num);
  instance.created_at = 1'700'000'000'000'003;
  return instance;
}

model::Gpu MakeGpu(int index) {
  model::Gpu gpu;
  gpu.index = index;
  gpu.name = "NVIDIA H100 80GB HBM3";
  gpu.uuid = "GPU-" + std::to_string(index) + "-0b6d";
  gpu.memory_bytes = 85'899'345'920;
  gpu.vendor = "nvidia";
  return gpu;
}

model::Job MakeJob(const model::Run& run, int job_num, int replica_num) {
  model::Job job;
  job.id = NewId();
  job.run_id = run.id;
  job.job_name = run.run_name + "-" + std::to_string(job_num) + "-" + std::to_string(replica_num);
  job.job_num = job_num;
  job.replica_num = replica_num;
  job.status = JobStatus::kSubmitted;
  job.submitted_at = run.submitted_at;
  return job;
}

model::Run MakeRun(const model::Project& project, const model::User& user, const std::string& name,
                   TimeMicros submitted_at, RunStatus status = RunStatus::kSubmitted,
                   int job_count = 1) {
  model::Run run;
  run.id = NewId();
  run.project_id = project.id;
  run.user_id = user.id;
  run.run_name = name;
  run.type = model::RunType::kTask;
  run.status = status;
  run.submitted_at = submitted_at;
  run.configuration_json = R"({"type":"task","commands":["nvidia-smi"]})";
  for (int i = 0; i < job_count; ++i) run.jobs.push_back(MakeJob(run, i, 0));
  return run;
}

RunFilter Filter(const std::string& project_id) {
  RunFilter filter;
  filter.project_id = project_id;
  return filter;
}

std::vector<std::string> RunNames(const std::vector<model::Run>& runs) {
  std::vector<std::string> names;
  for (const model::Run& run : runs) names.push_back(run.run_name);
  return names;
}

// Every test gets its own database file, under a directory that does not exist yet.
class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() / "nested" / "server" / "fleetwatch.db";
    Reopen();
    owner_ = MakeUser("alice");
    ASSERT_TRUE(store_->CreateUser(owner_, "hash-alice").ok());
    project_ = MakeProject("main", owner_);
    ASSERT_TRUE(store_->CreateProject(project_).ok());
  }

  void Reopen() {
    store_.reset();
    auto opened = OpenSqliteStore(db_path_.string());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  // A fleet with one instance (two GPUs), created in project_.
  std::pair<model::Fleet, model::Instance> CreateFleetWithInstance(const std::string& name) {
    model::Fleet fleet = MakeFleet(project_, name);
    model::Instance instance = MakeInstance(fleet, 0);
    instance.resources = {
        .cpus = 32, .memory_bytes = 256LL << 30, .gpus = {MakeGpu(0), MakeGpu(1)}};
    EXPECT_TRUE(store_->CreateFleet(fleet, {instance}).ok());
    return {fleet, instance};
  }

  TempDir dir_;
  fs::path db_path_;
  std::unique_ptr<Store> store_;
  model::User owner_;
  model::Project project_;
};

// --- opening, settings, migrations ---

TEST_F(SqliteStore, OpenCreatesTheFileAndMissingParentDirectoriesInWalMode) {
  EXPECT_TRUE(fs::exists(db_path_));
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStore, MigrationsAreAppliedOnceAndReopeningKeepsTheVersion) {
  {
    RawDb raw(db_path_);
    EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), LatestSqliteSchemaVersion());
    EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs'"), 1);
  }
  Reopen();  // would fail with "table users already exists" if step 1 ran again
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), LatestSqliteSchemaVersion());
  auto user = store_->GetUserByName("alice");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->id, owner_.id);
}

TEST_F(SqliteStore, TooNewSchemaVersionIsRefusedWithAClearMessage) {
  store_.reset();
  const int newer = LatestSqliteSchemaVersion() + 7;
  {
    RawDb raw(db_path_);
    raw.Exec("PRAGMA user_version = " + std::to_string(newer));
  }
  auto opened = OpenSqliteStore(db_path_.string());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("database schema version " + std::to_string(newer) +
                                           " is newer than this fleetwatch (" +
                                           std::to_string(LatestSqliteSchemaVersion()) + ")"),
            std::string::npos)
      << opened.status().message();
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("PRAGMA user_version"), newer);  // left as it was
}

TEST(SqliteStoreOpen, AFileThatIsNotADatabaseIsRefused) {
  TempDir dir;
  const fs::path path = dir.path() / "garbage.db";
  std::ofstream(path) << "this is not an SQLite database, just some text that is long enough "
                         "to fill the header of one and then some more bytes of nonsense.";
  auto opened = OpenSqliteStore(path.string());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInternal);
}

TEST_F(SqliteStore, DataSurvivesCloseAndReopen) {
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

TEST(SqliteStoreBootstrap, CreatesAdminMainProjectAndMembershipOnlyOnce) {
  TempDir dir;
  auto opened = OpenSqliteStore((dir.path() / "fw.db").string());
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

TEST_F(SqliteStore, BootstrapChangesNothingWhenUsersExist) {
  model::User admin = MakeUser("admin", GlobalRole::kAdmin);
  auto result = store_->Bootstrap(admin, "admin-hash", MakeProject("boot", admin));
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(*result);
  EXPECT_EQ(store_->GetUserByName("admin").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetProject("boot").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteStore, UsersAreFoundByNameAndByTokenHash) {
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

TEST_F(SqliteStore, DuplicateUserNameOrTokenHashIsAlreadyExists) {
  Status same_name = store_->CreateUser(MakeUser("alice"), "another-hash");
  EXPECT_EQ(same_name.code(), StatusCode::kAlreadyExists) << same_name.ToString();
  Status same_hash = store_->CreateUser(MakeUser("bob"), "hash-alice");
  EXPECT_EQ(same_hash.code(), StatusCode::kAlreadyExists) << same_hash.ToString();
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u);
}

TEST_F(SqliteStore, ListUsersIsOrderedByName) {
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

TEST_F(SqliteStore, ProjectOwnerBecomesAdminMemberAndDuplicateNameIsAlreadyExists) {
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

TEST_F(SqliteStore, ProjectOfUnknownOwnerIsNotFoundAndNotCreated) {
  model::User ghost = MakeUser("ghost");  // never stored
  EXPECT_EQ(store_->CreateProject(MakeProject("haunted", ghost)).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetProject("haunted").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteStore, MemberRoleCanBeSetChangedAndRemoved) {
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

TEST_F(SqliteStore, SetMemberOfUnknownUserOrProjectIsNotFound) {
  EXPECT_EQ(store_->SetMember(project_.id, NewId(), ProjectRole::kUser).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->SetMember(NewId(), owner_.id, ProjectRole::kUser).code(),
            StatusCode::kNotFound);
}

TEST_F(SqliteStore, ListProjectsOfUserListsOnlyTheirProjectsByName) {
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

TEST_F(SqliteStore, FleetWithInstancesRoundTripsIncludingGpusAndOptionalPrice) {
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

TEST_F(SqliteStore, DuplicateFleetNameIsAlreadyExistsAndWritesNothing) {
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

TEST_F(SqliteStore, FleetWhoseInstancesViolateAConstraintLeavesNoFleetRow) {
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

TEST_F(SqliteStore, ListFleetsIsOrderedByName) {
  CreateFleetWithInstance("zeta");
  CreateFleetWithInstance("alpha");
  auto fleets = store_->ListFleets(project_.id);
  ASSERT_TRUE(fleets.ok());
  ASSERT_EQ(fleets->size(), 2u);
  EXPECT_EQ((*fleets)[0].name, "alpha");
  EXPECT_EQ((*fleets)[1].name, "zeta");
}

TEST_F(SqliteStore, DeleteFleetIsBlockedByAnUnfinishedJobAndAllowedAfter) {
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

TEST_F(SqliteStore, ListInstancesOrdersByProjectFleetAndNumberAndEmptyProjectMeansAll) {
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

TEST_F(SqliteStore, UpdateInstanceWritesItsMutableFields) {
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

TEST_F(SqliteStore, InstanceTlsSettingsRoundTripAndUpdate) {
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

TEST_F(SqliteStore, RunWithJobsRoundTripsWithJobsInOrder) {
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

TEST_F(SqliteStore, RunWithADuplicateJobIsNotCreatedAtAll) {
  model::Run run = MakeRun(project_, owner_, "dup", 100, RunStatus::kSubmitted, 2);
  run.jobs[1].job_num = 0;  // (0, 0) twice
  EXPECT_EQ(store_->CreateRun(run).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetRunById(run.id).status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteStore, ListRunsIsNewestFirstFilteredByStatusAndLimited) {
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

TEST_F(SqliteStore, ListRunsWithStatusIsOldestFirstAcrossProjects) {
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

TEST_F(SqliteStore, UnfinishedRunNameIsTakenAndAFinishedOneIsReplaced) {
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

TEST_F(SqliteStore, UpdateRunWritesRunAndJobFields) {
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

TEST_F(SqliteStore, UpdateRunOfUnknownRunOrJobIsNotFoundAndChangesNothing) {
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

TEST_F(SqliteStore, DeleteRunRequiresAFinishedRunAndHidesIt) {
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

TEST_F(SqliteStore, HostileStringsRoundTripVerbatim) {
  const std::vector<std::string> hostile = {
      "'; DROP TABLE runs; --",
      R"(quote " and ' and back\slash \" \n)",
      "line one\nline two\r\n\ttabbed",
      "<script>alert('x')</script>",
      "naïve 日本語 emoji 🚀 Ünïcödé",
      std::string("embedded\0nul", 12),
      "?1 ?2 :name @x $y",
  };
  for (size_t i = 0; i < hostile.size(); ++i) {
    SCOPED_TRACE(i);
    const std::string& text = hostile[i];
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
  RawDb raw(db_path_);
  EXPECT_EQ(raw.QueryInt("SELECT COUNT(*) FROM runs"), static_cast<int64_t>(hostile.size()));
}

TEST_F(SqliteStore, AStoredValueTheModelDoesNotKnowIsInternal) {
  model::Run run = MakeRun(project_, owner_, "train", 100);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  {
    RawDb raw(db_path_);
    raw.Exec("UPDATE runs SET status = 'exploded'");
  }
  auto got = store_->GetRunById(run.id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInternal);
  EXPECT_NE(got.status().message().find("exploded"), std::string::npos);
}

TEST_F(SqliteStore, ConcurrentWritersFromEightThreadsAllSucceed) {
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

TEST_F(SqliteStore, TwoConnectionsToOneFileWaitForEachOther) {
  auto second = OpenSqliteStore(db_path_.string());
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

TEST_F(SqliteStore, AWriteLockHeldPastTheBusyTimeoutIsUnavailable) {
  RawDb raw(db_path_);
  raw.Exec("BEGIN IMMEDIATE");
  const auto start = std::chrono::steady_clock::now();
  Status status = store_->CreateUser(MakeUser("late"), "hash-late");
  const auto waited = std::chrono::steady_clock::now() - start;
  raw.Exec("ROLLBACK");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_GE(waited, std::chrono::seconds(4));  // the 5 s busy timeout, give or take
  EXPECT_TRUE(store_->CreateUser(MakeUser("late"), "hash-late").ok());
}

// --- secrets at rest ---

std::string FileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(SqliteStore, AgentTokensAreStoredOnlyEncryptedAndReadBackInClear) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  instance.agent_token = "rotated-agent-token";
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  {
    RawDb raw(db_path_);
    const std::string stored = raw.QueryText("SELECT agent_token FROM instances");
    EXPECT_TRUE(stored.starts_with("enc:v1:")) << stored;
  }
  store_.reset();  // checkpoints the WAL into the database file
  const std::string bytes = FileBytes(db_path_);
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("agent-token"), std::string::npos);
  EXPECT_EQ(bytes.find("rotated-agent-token"), std::string::npos);
  Reopen();
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ(instances->front().agent_token, "rotated-agent-token");
}

TEST_F(SqliteStore, TokensStoredInClearByAnOlderVersionAreEncryptedAtOpen) {
  CreateFleetWithInstance("gpus");
  store_.reset();
  {
    RawDb raw(db_path_);
    raw.Exec("UPDATE instances SET agent_token = 'clear-token-from-before'");
  }
  Reopen();
  {
    RawDb raw(db_path_);
    EXPECT_TRUE(raw.QueryText("SELECT agent_token FROM instances").starts_with("enc:v1:"));
  }
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  EXPECT_EQ(instances->front().agent_token, "clear-token-from-before");
  // Nothing of the clear text is left behind, in the file or its journal.
  for (const std::string suffix : {"", "-wal"}) {
    EXPECT_EQ(FileBytes(db_path_.string() + suffix).find("clear-token-from-before"),
              std::string::npos)
        << suffix;
  }
}

TEST_F(SqliteStore, AKeyThatDoesNotDecryptTheTokensIsRefusedAtOpen) {
  CreateFleetWithInstance("gpus");
  store_.reset();
  SqliteStoreOptions options;
  options.secret_key.emplace();
  options.secret_key->fill(0x42);
  auto opened = OpenSqliteStore(db_path_.string(), options);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("FLEETWATCH_ENCRYPTION_KEY"), std::string::npos)
      << opened.status().message();
  Reopen();  // the key file still works
}

TEST_F(SqliteStore, TheDatabaseItsJournalFilesAndTheKeyAreOwnerOnly) {
  CreateFleetWithInstance("gpus");
  for (const std::string suffix : {"", "-wal", "-shm"}) {
    const fs::path file = db_path_.string() + suffix;
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << file;
  }
  struct stat st {};
  ASSERT_EQ(::stat((db_path_.parent_path() / "secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A database file an older version left readable is tightened at open.
  store_.reset();
  ASSERT_EQ(::chmod(db_path_.c_str(), 0644), 0);
  Reopen();
  ASSERT_EQ(::stat(db_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// --- token lifecycle ---

TEST_F(SqliteStore, ANewTokenHashReplacesTheOldOneAtOnce) {
  ASSERT_TRUE(store_->SetUserTokenHash(owner_.id, "hash-alice-2").ok());
  EXPECT_EQ(store_->GetUserByTokenHash("hash-alice").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetUserByTokenHash("hash-alice-2").value().name, "alice");
  EXPECT_EQ(store_->SetUserTokenHash("no-such-id", "x").code(), StatusCode::kNotFound);
}

TEST_F(SqliteStore, TheLastGlobalAdminCanBeNeitherDemotedNorDeleted) {
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

TEST_F(SqliteStore, ADeletedUserLosesTokenAndMembershipsButTheirRunsStayCounted) {
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

}  // namespace
}  // namespace fleetwatch::store

namespace fleetwatch::store {
namespace {

TEST_F(SqliteStore, ListJobsByIdsFindsJobsOfAnyRunInOneQuery) {
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

TEST_F(SqliteStore, NewestMetricsOfUnfinishedJobsComeWholeInOneQuery) {
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

TEST_F(SqliteStore, EveryWriteOfRunsOrJobsRaisesTheRunsVersionAndNothingElseDoes) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  int64_t version = store_->RunsVersion();
  auto raised = [&] {
    const int64_t now = store_->RunsVersion();
    const int64_t by = now - version;
    version = now;
    return by;
  };
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 2);
  run.jobs[0].instance_id = instance.id;
  ASSERT_TRUE(store_->CreateRun(run).ok());
  EXPECT_EQ(raised(), 1);
  run.jobs[0].status = JobStatus::kRunning;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EXPECT_EQ(raised(), 1);  // exactly one per successful UpdateRun, however many jobs

  // Neither instances, points nor usage are runs.
  instance.last_seen_at = 5;
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  ASSERT_TRUE(store_->SetInstancesLastSeen({{instance.id, 6}}).ok());
  model::JobMetricsPoint point;
  point.job_id = run.jobs[0].id;
  point.timestamp_micro = 1000;
  ASSERT_TRUE(store_->AddJobMetricsPoints({point}).ok());
  ASSERT_TRUE(store_->ChargeUsage({}).ok());
  EXPECT_EQ(raised(), 0);
  EXPECT_TRUE(store_->ListRunsWithStatus({RunStatus::kRunning}).ok());
  EXPECT_EQ(raised(), 0);

  // A write that fails still counts (the number only ever says "maybe changed").
  model::Run unknown = MakeRun(project_, owner_, "ghost", 100);
  EXPECT_EQ(store_->UpdateRun(unknown).code(), StatusCode::kNotFound);
  EXPECT_GE(raised(), 1);

  run.status = RunStatus::kDone;
  for (model::Job& job : run.jobs) job.status = JobStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EXPECT_EQ(raised(), 1);
  ASSERT_TRUE(store_->DeleteRun(run.id).ok());
  EXPECT_EQ(raised(), 1);
  // Deleting the fleet takes the finished job off its instance: a change to a job.
  ASSERT_TRUE(store_->DeleteFleet(project_.id, "gpus").ok());
  EXPECT_EQ(raised(), 1);
}

TEST_F(SqliteStore, EveryWriteOfInstancesRaisesTheInstancesVersionAndNothingElseDoes) {
  int64_t version = store_->InstancesVersion();
  auto raised = [&] {
    const int64_t now = store_->InstancesVersion();
    const int64_t by = now - version;
    version = now;
    return by;
  };
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  EXPECT_EQ(raised(), 1);
  instance.status = InstanceStatus::kIdle;
  ASSERT_TRUE(store_->UpdateInstance(instance).ok());
  EXPECT_EQ(raised(), 1);
  ASSERT_TRUE(store_->SetInstancesLastSeen({{instance.id, 7}, {"no-such-instance", 8}}).ok());
  EXPECT_EQ(raised(), 1);  // one transaction, one step
  ASSERT_TRUE(store_->SetInstancesLastSeen({}).ok());
  EXPECT_EQ(raised(), 0);  // nothing to write, nothing written

  ASSERT_TRUE(store_->CreateRun(MakeRun(project_, owner_, "train", 100)).ok());
  EXPECT_TRUE(store_->ListInstances("").ok());
  EXPECT_EQ(raised(), 0);

  ASSERT_TRUE(store_->DeleteFleet(project_.id, "gpus").ok());
  EXPECT_EQ(raised(), 1);
}

TEST_F(SqliteStore, SetInstancesLastSeenWritesOnlyLastSeenAndSkipsUnknownIds) {
  auto [fleet, instance] = CreateFleetWithInstance("gpus");
  model::Fleet second = MakeFleet(project_, "more");
  model::Instance more = MakeInstance(second, 0);
  ASSERT_TRUE(store_->CreateFleet(second, {more}).ok());
  instance.status = InstanceStatus::kBusy;  // not written: only last_seen_at is
  ASSERT_TRUE(
      store_->SetInstancesLastSeen({{instance.id, 1234}, {"no-such-instance", 1}, {more.id, 99}})
          .ok());
  auto instances = store_->ListInstances(project_.id);
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 2u);
  EXPECT_EQ((*instances)[0].last_seen_at, 1234);
  EXPECT_EQ((*instances)[0].status, InstanceStatus::kIdle);
  EXPECT_EQ((*instances)[0].resources.gpus.size(), 2u);
  EXPECT_EQ((*instances)[0].agent_token, instance.agent_token);
  EXPECT_EQ((*instances)[1].last_seen_at, 99);
}

}  // namespace
}  // namespace fleetwatch::store
