#pragma once

// The contract every Store implementation passes (store_contract_test.cc), over a factory of fresh
// databases, and the entities its tests build. An implementation's test file instantiates the
// suite with INSTANTIATE_TEST_SUITE_P(<Name>, StoreContract, Values(StoreKind{...}), KindName).

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "model/status.h"
#include "store/schema_steps.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/status.h"

namespace fleetwatch::store {

// One fresh, empty database of one implementation, removed (with everything in it) on
// destruction. Not thread-safe; the stores it opens are as thread-safe as store.h says.
class StoreFactory {
 public:
  virtual ~StoreFactory() = default;
  // Empty when the implementation can run here; otherwise why not (its tests then skip).
  virtual std::string Unavailable() const { return {}; }
  // Whether text values may hold any bytes (a NUL, bytes that are not UTF-8). When not, such
  // values are refused with InvalidArgument and nothing is stored.
  virtual bool StoresAnyBytes() const { return true; }
  // A new store (a connection of its own) on this factory's database, its schema up to date.
  virtual Result<std::unique_ptr<Store>> Open() = 0;
  // Raw SQL on the database, past the Store interface, for what the interface cannot show or do.
  // Failures are reported as test failures.
  virtual void Exec(const std::string& sql) = 0;
  // The first column of the first row as an integer.
  virtual int64_t QueryInt(const std::string& sql) = 0;
};

// The parameter of the suite: a name for the test names and a maker of fresh databases.
struct StoreKind {
  std::string name;
  std::function<std::unique_ptr<StoreFactory>()> make;
};

inline void PrintTo(const StoreKind& kind, std::ostream* os) { *os << kind.name; }

inline std::string KindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param.name;
}

// A step a newer fleetwatch might add, in SQL both databases accept: a new table, new columns
// with a default or nullable, an index. Additive by the rule of schema_steps.h.
inline constexpr const char* kFutureStepSql = R"sql(
CREATE TABLE future_run_notes (
  run_id TEXT PRIMARY KEY REFERENCES runs (id),
  note   TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN future_priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN future_hint TEXT;
CREATE INDEX runs_by_future_priority ON runs (future_priority);
)sql";

// A newer binary's list of steps: `steps` and the future step, marked as `additive` says.
inline std::vector<SchemaStep> WithFutureStep(std::span<const SchemaStep> steps, bool additive) {
  std::vector<SchemaStep> newer(steps.begin(), steps.end());
  newer.push_back(SchemaStep{kFutureStepSql, additive});
  return newer;
}

using model::FleetStatus;
using model::GlobalRole;
using model::InstanceStatus;
using model::JobStatus;
using model::ProjectRole;
using model::RunStatus;

inline model::User MakeUser(const std::string& name, GlobalRole role = GlobalRole::kUser) {
  model::User user;
  user.id = NewId();
  user.name = name;
  user.global_role = role;
  user.created_at = 1'700'000'000'000'000;
  return user;
}

inline model::Project MakeProject(const std::string& name, const model::User& owner) {
  model::Project project;
  project.id = NewId();
  project.name = name;
  project.owner_id = owner.id;
  project.created_at = 1'700'000'000'000'001;
  return project;
}

inline model::Fleet MakeFleet(const model::Project& project, const std::string& name) {
  model::Fleet fleet;
  fleet.id = NewId();
  fleet.project_id = project.id;
  fleet.name = name;
  fleet.status = FleetStatus::kActive;
  fleet.configuration_json = R"({"type":"fleet","name":")" + name + R"("})";
  fleet.created_at = 1'700'000'000'000'002;
  return fleet;
}

inline model::Instance MakeInstance(const model::Fleet& fleet, int num) {
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

inline model::Gpu MakeGpu(int index) {
  model::Gpu gpu;
  gpu.index = index;
  gpu.name = "NVIDIA H100 80GB HBM3";
  gpu.uuid = "GPU-" + std::to_string(index) + "-0b6d";
  gpu.memory_bytes = 85'899'345'920;
  gpu.vendor = "nvidia";
  return gpu;
}

inline model::Job MakeJob(const model::Run& run, int job_num, int replica_num) {
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

inline model::Run MakeRun(const model::Project& project, const model::User& user,
                          const std::string& name, TimeMicros submitted_at,
                          RunStatus status = RunStatus::kSubmitted, int job_count = 1) {
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

inline RunFilter Filter(const std::string& project_id) {
  RunFilter filter;
  filter.project_id = project_id;
  return filter;
}

inline std::vector<std::string> RunNames(const std::vector<model::Run>& runs) {
  std::vector<std::string> names;
  for (const model::Run& run : runs) names.push_back(run.run_name);
  return names;
}

// Every test gets its own database file, under a directory that does not exist yet.
// A fleet with one instance (two GPUs), created in `project`.
inline std::pair<model::Fleet, model::Instance> CreateFleetWithInstance(
    Store& store, const model::Project& project, const std::string& name) {
  model::Fleet fleet = MakeFleet(project, name);
  model::Instance instance = MakeInstance(fleet, 0);
  instance.resources = {.cpus = 32, .memory_bytes = 256LL << 30, .gpus = {MakeGpu(0), MakeGpu(1)}};
  EXPECT_TRUE(store.CreateFleet(fleet, {instance}).ok());
  return {fleet, instance};
}

// Every test gets a database of its own, with user alice owning project main.
class StoreContract : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    factory_ = GetParam().make();
    if (const std::string why = factory_->Unavailable(); !why.empty()) GTEST_SKIP() << why;
    Reopen();
    owner_ = MakeUser("alice");
    ASSERT_TRUE(store_->CreateUser(owner_, "hash-alice").ok());
    project_ = MakeProject("main", owner_);
    ASSERT_TRUE(store_->CreateProject(project_).ok());
  }
  void TearDown() override { store_.reset(); }

  void Reopen() {
    store_.reset();
    auto opened = factory_->Open();
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  std::pair<model::Fleet, model::Instance> CreateFleetWithInstance(const std::string& name) {
    return store::CreateFleetWithInstance(*store_, project_, name);
  }

  std::unique_ptr<StoreFactory> factory_;
  std::unique_ptr<Store> store_;
  model::User owner_;
  model::Project project_;
};

}  // namespace fleetwatch::store
