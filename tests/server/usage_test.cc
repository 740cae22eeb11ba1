// Cost and GPU-time accounting: the pure charge computation, and charging a real SQLite store
// the way two server replicas would.
#include "server/usage.h"

#include <gtest/gtest.h>

#include "store/sqlite_store.h"
#include "support/process.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kNow = 1'700'000'000 * kSecond;

store::UnaccountedJob Job(std::optional<TimeMicros> accounted_until,
                          std::optional<TimeMicros> finished_at = std::nullopt) {
  store::UnaccountedJob job;
  job.job_id = "j";
  job.project_name = "main";
  job.user_name = "admin";
  job.gpu_count = 4;
  job.price = 3.6;  // $0.001 a second
  job.started_at = kNow - 100 * kSecond;
  job.finished_at = finished_at;
  job.accounted_until = accounted_until;
  return job;
}

TEST(UsageChargesAt, ChargesFromStartOrLastAccountingUpToNow) {
  auto charges = UsageChargesAt({Job(std::nullopt), Job(kNow - 40 * kSecond)}, kNow);
  ASSERT_EQ(charges.size(), 2u);
  EXPECT_DOUBLE_EQ(charges[0].cost_dollars, 0.1);
  EXPECT_DOUBLE_EQ(charges[0].gpu_seconds, 400);
  EXPECT_EQ(charges[0].new_accounted_until, kNow);
  EXPECT_FALSE(charges[0].accounted_until.has_value());
  EXPECT_DOUBLE_EQ(charges[1].cost_dollars, 0.04);
  EXPECT_DOUBLE_EQ(charges[1].gpu_seconds, 160);
  EXPECT_EQ(charges[1].accounted_until, kNow - 40 * kSecond);
}

TEST(UsageChargesAt, AFinishedJobIsChargedUpToItsEndAndMarkedDone) {
  auto charges = UsageChargesAt({Job(kNow - 40 * kSecond, kNow - 30 * kSecond)}, kNow);
  ASSERT_EQ(charges.size(), 1u);
  EXPECT_DOUBLE_EQ(charges[0].gpu_seconds, 40);
  EXPECT_EQ(charges[0].new_accounted_until, kNow - 30 * kSecond);
  // Finished before anything was accounted beyond its end: a zero charge that closes it.
  auto closing = UsageChargesAt({Job(kNow - 20 * kSecond, kNow - 30 * kSecond)}, kNow);
  ASSERT_EQ(closing.size(), 1u);
  EXPECT_EQ(closing[0].gpu_seconds, 0);
  EXPECT_EQ(closing[0].new_accounted_until, kNow - 20 * kSecond);
}

TEST(UsageChargesAt, NoPriceCostsNothingButCountsGpuTimeAndAClockBehindChargesNothing) {
  store::UnaccountedJob free = Job(std::nullopt);
  free.price.reset();
  auto charges = UsageChargesAt({free, Job(kNow + 5 * kSecond)}, kNow);
  ASSERT_EQ(charges.size(), 1u);
  EXPECT_EQ(charges[0].cost_dollars, 0);
  EXPECT_DOUBLE_EQ(charges[0].gpu_seconds, 400);
}

class UsageStore : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
    ASSERT_TRUE(store_
                    ->Bootstrap({"u-admin", "admin", model::GlobalRole::kAdmin, 0}, "h",
                                {"p-main", "main", "u-admin", 0})
                    .ok());
    model::Fleet fleet{"f", "p-main", "main", "gpus", model::FleetStatus::kActive, "{}", 0};
    model::Instance instance;
    instance.id = "i";
    instance.project_id = "p-main";
    instance.fleet_id = "f";
    instance.name = "gpus-0";
    instance.status = model::InstanceStatus::kBusy;
    instance.backend = "remote";
    instance.hostname = "h";
    instance.agent_port = 1;
    instance.price = 7.2;
    ASSERT_TRUE(store_->CreateFleet(fleet, {instance}).ok());
    model::Run run;
    run.id = "r";
    run.project_id = "p-main";
    run.user_id = "u-admin";
    run.run_name = "train";
    run.status = model::RunStatus::kRunning;
    run.configuration_json = "{}";
    model::Job job;
    job.id = "j";
    job.job_name = "train-0-0";
    job.status = model::JobStatus::kRunning;
    job.instance_id = "i";
    job.gpu_indices = {0, 1};
    job.started_at = kNow;
    model::Job waiting = job;  // never started: never charged
    waiting.id = "w";
    waiting.job_name = "train-1-0";
    waiting.job_num = 1;
    waiting.status = model::JobStatus::kSubmitted;
    waiting.instance_id.reset();
    waiting.started_at.reset();
    run.jobs = {job, waiting};
    ASSERT_TRUE(store_->CreateRun(run).ok());
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(UsageStore, EachStretchOfAJobIsChargedOnceEvenByTwoReplicas) {
  FakeClock clock(kNow + 10 * kSecond);
  auto jobs = store_->ListUnaccountedJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ(jobs->front().gpu_count, 2);
  EXPECT_EQ(jobs->front().price, 7.2);
  // Two replicas read the same state and both try to charge it: one wins.
  auto charges = UsageChargesAt(*jobs, clock.Now());
  EXPECT_EQ(*store_->ChargeUsage(charges), 1);
  EXPECT_EQ(*store_->ChargeUsage(charges), 0);
  auto totals = store_->ListUsageTotals();
  ASSERT_TRUE(totals.ok());
  ASSERT_EQ(totals->size(), 1u);
  EXPECT_EQ(totals->front().project_name, "main");
  EXPECT_EQ(totals->front().user_name, "admin");
  EXPECT_DOUBLE_EQ(totals->front().cost_dollars, 0.02);
  EXPECT_DOUBLE_EQ(totals->front().gpu_seconds, 20);

  // The job ends; after its last stretch is charged it is no longer listed.
  UsageAccountant accountant(*store_, clock);
  clock.Advance(10 * kSecond);
  Result<model::Run> run = store_->GetRunById("r");
  ASSERT_TRUE(run.ok());
  run->jobs[0].status = model::JobStatus::kDone;
  run->jobs[0].finished_at = kNow + 15 * kSecond;
  ASSERT_TRUE(store_->UpdateRun(*run).ok());
  ASSERT_TRUE(accountant.Account().ok());
  EXPECT_TRUE(store_->ListUnaccountedJobs()->empty());
  EXPECT_DOUBLE_EQ(store_->ListUsageTotals()->front().gpu_seconds, 30);
}

}  // namespace
}  // namespace fleetwatch::server
