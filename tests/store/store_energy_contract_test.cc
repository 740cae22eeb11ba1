// The store contract on job aggregates, summaries and energy totals (store.h "energy and job
// summaries"), run on every implementation with the rest of the contract.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

JobAggregateUpdate Update(const std::string& job_id, int64_t revision, std::string state,
                          double joules) {
  JobAggregateUpdate u;
  u.job_id = job_id;
  u.revision = revision;
  u.state_json = std::move(state);
  u.project_name = "main";
  u.user_name = "alice";
  u.energy_joules = joules;
  u.busy_gpu_seconds = joules / 10;
  u.carbon_grams = joules / 100;
  return u;
}

std::optional<JobAggregate> AggregateOf(Store& store, const std::string& job_id) {
  std::vector<JobAggregate> rows = store.ListJobAggregates({job_id}).value();
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

TEST_P(StoreContract, JobAggregatesApplyOnlyFromTheRevisionTheyWereMadeFrom) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 2);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string job = run.jobs[0].id;
  EXPECT_TRUE(store_->ListJobAggregates({job}).value().empty());

  EXPECT_EQ(store_->UpdateJobAggregates({Update(job, 0, "{\"a\":1}", 100)}).value(),
            std::vector<bool>{true});
  // A second writer that read "none stored" too loses, and adds nothing.
  EXPECT_EQ(store_->UpdateJobAggregates({Update(job, 0, "{\"b\":1}", 100)}).value(),
            std::vector<bool>{false});
  std::optional<JobAggregate> row = AggregateOf(*store_, job);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->revision, 1);
  EXPECT_EQ(row->state_json, "{\"a\":1}");
  EXPECT_FALSE(row->summary_json);

  // One update per revision; a stale one (and only it) is skipped in the same batch.
  EXPECT_EQ(
      store_
          ->UpdateJobAggregates({Update(job, 1, "{\"a\":2}", 50), Update(job, 1, "{\"a\":3}", 50),
                                 Update(run.jobs[1].id, 0, "{}", 25)})
          .value(),
      (std::vector<bool>{true, false, true}));
  EXPECT_EQ(AggregateOf(*store_, job)->state_json, "{\"a\":2}");

  std::vector<EnergyTotal> totals = store_->ListEnergyTotals().value();
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(totals[0].project_name, "main");
  EXPECT_EQ(totals[0].user_name, "alice");
  EXPECT_DOUBLE_EQ(totals[0].energy_joules, 175);
  EXPECT_DOUBLE_EQ(totals[0].busy_gpu_seconds, 17.5);
  EXPECT_DOUBLE_EQ(totals[0].carbon_grams, 1.75);
}

TEST_P(StoreContract, RunEnergyIsTheSumOfItsJobsEnergyAsLastStored) {
  model::Run train = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 2);
  model::Run eval = MakeRun(project_, owner_, "eval", 200, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(train).ok());
  ASSERT_TRUE(store_->CreateRun(eval).ok());
  EXPECT_TRUE(store_->ListRunEnergy({train.id, eval.id}).value().empty());
  EXPECT_TRUE(store_->ListRunEnergy({}).value().empty());

  JobAggregateUpdate first = Update(train.jobs[0].id, 0, "{}", 100);
  first.job_energy_joules = 100;
  JobAggregateUpdate second = Update(train.jobs[1].id, 0, "{}", 30);
  second.job_energy_joules = 30;
  ASSERT_EQ(store_->UpdateJobAggregates({first, second}).value(), (std::vector<bool>{true, true}));
  // The job's whole energy replaces what was stored; a stale update changes nothing.
  JobAggregateUpdate later = Update(train.jobs[0].id, 1, "{}", 50);
  later.job_energy_joules = 150;
  JobAggregateUpdate stale = Update(train.jobs[0].id, 1, "{}", 999);
  stale.job_energy_joules = 999;
  ASSERT_EQ(store_->UpdateJobAggregates({later, stale}).value(), (std::vector<bool>{true, false}));

  std::vector<RunEnergyTotal> runs =
      store_->ListRunEnergy({train.id, eval.id, "no-such-run"}).value();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].run_id, train.id);
  EXPECT_DOUBLE_EQ(runs[0].energy_joules, 180);
  EXPECT_TRUE(store_->ListRunEnergy({eval.id}).value().empty());
}

TEST_P(StoreContract, AnUpdateOfAnUnknownJobIsNotFoundAndChangesNothing) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  Result<std::vector<bool>> r = store_->UpdateJobAggregates(
      {Update(run.jobs[0].id, 0, "{}", 10), Update("no-such-job", 0, "{}", 10)});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListJobAggregates({run.jobs[0].id}).value().empty());
  EXPECT_TRUE(store_->ListEnergyTotals().value().empty());
}

TEST_P(StoreContract, ASummaryIsStoredOnceAndOutlivesMetricsRetentionAndReopening) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 1);
  run.jobs[0].status = JobStatus::kRunning;
  run.jobs[0].started_at = 100;
  ASSERT_TRUE(store_->CreateRun(run).ok());
  const std::string job = run.jobs[0].id;
  ASSERT_TRUE(store_->UpdateJobAggregates({Update(job, 0, "{\"s\":1}", 1)}).ok());
  EXPECT_EQ(store_->ListOpenJobAggregates().value().size(), 1u);

  JobAggregateUpdate final_update = Update(job, 1, "{\"s\":2}", 1);
  final_update.summary_json = "{\"final\":true}";
  EXPECT_EQ(store_->UpdateJobAggregates({final_update}).value(), std::vector<bool>{true});
  // A later update keeps the summary.
  JobAggregateUpdate late = Update(job, 2, "{\"s\":3}", 0);
  late.summary_json = "{\"final\":\"other\"}";
  EXPECT_EQ(store_->UpdateJobAggregates({late}).value(), std::vector<bool>{true});
  EXPECT_TRUE(store_->ListOpenJobAggregates().value().empty());

  model::JobMetricsPoint point;
  point.job_id = job;
  point.timestamp_micro = 200;
  ASSERT_TRUE(store_->AddJobMetricsPoints({point}).ok());
  run.status = RunStatus::kDone;
  run.finished_at = 300;
  run.jobs[0].status = JobStatus::kDone;
  run.jobs[0].finished_at = 300;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EXPECT_EQ(store_->DeleteJobMetricsPoints(1'000'000, 1'000'000).value(), 1);
  Reopen();
  std::optional<JobAggregate> row = AggregateOf(*store_, job);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->summary_json, "{\"final\":true}");
  EXPECT_EQ(row->revision, 3);
  ASSERT_EQ(store_->ListEnergyTotals().value().size(), 1u);
  EXPECT_DOUBLE_EQ(store_->ListEnergyTotals().value()[0].energy_joules, 2);
}

TEST_P(StoreContract, TwoStoresUpdatingOneJobFromOneRevisionApplyOnce) {
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 1);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  constexpr int kRounds = 10;
  int64_t revision = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    const JobAggregateUpdate u = Update(run.jobs[0].id, revision, "{}", 3);
    std::optional<Result<std::vector<bool>>> first;
    std::optional<Result<std::vector<bool>>> other;
    std::thread a([&] { first.emplace(store_->UpdateJobAggregates({u})); });
    std::thread b([&] { other.emplace((*second)->UpdateJobAggregates({u})); });
    a.join();
    b.join();
    ASSERT_TRUE(first->ok()) << first->status().ToString();
    ASSERT_TRUE(other->ok()) << other->status().ToString();
    EXPECT_NE((**first)[0], (**other)[0]);
    ++revision;
  }
  EXPECT_DOUBLE_EQ(store_->ListEnergyTotals().value()[0].energy_joules, 3.0 * kRounds);
}

// A run of `project` whose jobs ended at `finished_at` (none: still running), each with its
// aggregates stored and, when ended, a summary naming the job.
model::Run RunWithSummaries(Store& store, const model::Project& project, const model::User& user,
                            const std::string& name, std::optional<TimeMicros> finished_at,
                            int jobs = 1) {
  model::Run run = MakeRun(project, user, name, 100, RunStatus::kRunning, jobs);
  for (model::Job& job : run.jobs) {
    job.status = JobStatus::kRunning;
    job.started_at = 100;
  }
  EXPECT_TRUE(store.CreateRun(run).ok());
  if (finished_at) {
    run.status = RunStatus::kDone;
    run.finished_at = finished_at;
    for (model::Job& job : run.jobs) {
      job.status = JobStatus::kDone;
      job.finished_at = finished_at;
    }
    EXPECT_TRUE(store.UpdateRun(run).ok());
  }
  for (const model::Job& job : run.jobs) {
    JobAggregateUpdate u = Update(job.id, 0, "{}", 1);
    if (finished_at) u.summary_json = "{\"job\":\"" + job.job_name + "\"}";
    EXPECT_EQ(store.UpdateJobAggregates({u}).value(), std::vector<bool>{true});
  }
  return run;
}

TEST_P(StoreContract, JobSummariesSinceAreTheEndedJobsOfTheWindowNewestFirst) {
  model::User bob = MakeUser("bob");
  ASSERT_TRUE(store_->CreateUser(bob, "hash-bob").ok());
  model::Project lab = MakeProject("lab", bob);
  ASSERT_TRUE(store_->CreateProject(lab).ok());
  RunWithSummaries(*store_, project_, owner_, "old", 1'000);
  model::Run train = RunWithSummaries(*store_, project_, owner_, "train", 5'000, 2);
  model::Run eval = RunWithSummaries(*store_, project_, owner_, "eval", 7'000);
  model::Run other = RunWithSummaries(*store_, lab, bob, "sweep", 6'000);
  RunWithSummaries(*store_, project_, owner_, "running", std::nullopt);
  // An ended job whose summary is not stored yet is left out.
  model::Run unsummed = MakeRun(project_, owner_, "unsummed", 100, RunStatus::kDone, 1);
  unsummed.finished_at = 8'000;
  unsummed.jobs[0].status = JobStatus::kDone;
  unsummed.jobs[0].finished_at = 8'000;
  ASSERT_TRUE(store_->CreateRun(unsummed).ok());

  std::vector<StoredJobSummary> all = store_->ListJobSummariesSince(5'000, std::nullopt).value();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].run_name, "eval");
  EXPECT_EQ(all[0].job_id, eval.jobs[0].id);
  EXPECT_EQ(all[0].run_id, eval.id);
  EXPECT_EQ(all[0].project_name, "main");
  EXPECT_EQ(all[0].user_name, "alice");
  EXPECT_EQ(all[0].finished_at, 7'000);
  EXPECT_EQ(all[0].summary_json, "{\"job\":\"eval-0-0\"}");
  EXPECT_EQ(all[1].run_id, other.id);
  EXPECT_EQ(all[1].project_name, "lab");
  EXPECT_EQ(all[1].user_name, "bob");
  // Ties on the finish time by job id.
  EXPECT_EQ(all[2].run_id, train.id);
  EXPECT_EQ(all[3].run_id, train.id);
  EXPECT_LT(all[2].job_id, all[3].job_id);

  std::vector<StoredJobSummary> main_only =
      store_->ListJobSummariesSince(0, std::string("main")).value();
  ASSERT_EQ(main_only.size(), 4u);
  for (const StoredJobSummary& s : main_only) EXPECT_EQ(s.project_name, "main");
  EXPECT_EQ(main_only.back().run_name, "old");
  EXPECT_TRUE(store_->ListJobSummariesSince(0, std::string("nobody")).value().empty());
  EXPECT_TRUE(store_->ListJobSummariesSince(7'001, std::nullopt).value().empty());

  // A deleted run's jobs still count: their GPU time was spent.
  ASSERT_TRUE(store_->DeleteRun(eval.id).ok());
  EXPECT_EQ(store_->ListJobSummariesSince(7'000, std::nullopt).value().size(), 1u);
}

}  // namespace
}  // namespace fleetwatch::store
