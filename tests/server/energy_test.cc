// GPU energy, carbon and job summaries: the pure energy step, and the accountant driven tick by
// tick with a fake clock over a real SQLite store, the way the control loop drives it, with the
// energy families rendered from that store.
#include "server/energy.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "expose/snapshot.h"
#include "server/energy_accountant.h"
#include "server/energy_families.h"
#include "server/job_summary.h"
#include "server/job_summary_service.h"
#include "store/sqlite_store.h"
#include "support/process.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kStart = 1'700'000'000 * kSecond;
constexpr int64_t kGb = 1'000'000'000;

TEST(EnergyBetween, CountsTheCounterIncreaseAndAResetAsCountedFromZero) {
  const EnergySample first{kStart, 5'000'000, 700'000};
  EXPECT_EQ(EnergyBetween(std::nullopt, first, 60 * kSecond).joules, 0);  // a baseline only
  EnergyStep up = EnergyBetween(first, {kStart + 10 * kSecond, 12'000'000, 1}, 60 * kSecond);
  EXPECT_DOUBLE_EQ(up.joules, 7000);
  EXPECT_FALSE(up.estimated);
  EnergyStep reset = EnergyBetween(first, {kStart + 10 * kSecond, 2'500'000, 1}, 60 * kSecond);
  EXPECT_TRUE(reset.reset);
  EXPECT_DOUBLE_EQ(reset.joules, 2500);
  // Not after the previous reading: nothing.
  EXPECT_EQ(EnergyBetween(first, {kStart, 9'000'000, 1}, 60 * kSecond).joules, 0);
}

TEST(EnergyBetween, WithoutACounterEstimatesPowerTimesTimeUpToTheGap) {
  const EnergySample first{kStart, std::nullopt, 700'000};
  EnergyStep step =
      EnergyBetween(first, {kStart + 10 * kSecond, std::nullopt, 700'000}, 60 * kSecond);
  EXPECT_DOUBLE_EQ(step.joules, 7000);
  EXPECT_TRUE(step.estimated);
  // A host out of reach for an hour is charged one gap at most.
  EXPECT_DOUBLE_EQ(
      EnergyBetween(first, {kStart + 3600 * kSecond, std::nullopt, 700'000}, 60 * kSecond).joules,
      700 * 60);
  EXPECT_EQ(EnergyBetween(first, {kStart + kSecond, std::nullopt, std::nullopt}, kSecond).joules,
            0);
}

TEST(CarbonGrams, IsEnergyInKilowattHoursTimesTheIntensity) {
  EXPECT_NEAR(CarbonGrams(2.52e6, 400), 280, 280 * 0.005);
}

TEST(ParseCarbonIntensity, TakesANumberFromZeroTo10000AndRefusesTheRest) {
  EXPECT_EQ(ParseCarbonIntensity("400").value(), 400);
  EXPECT_EQ(ParseCarbonIntensity("0").value(), 0);
  EXPECT_EQ(ParseCarbonIntensity("12.5").value(), 12.5);
  for (const char* bad : {"", "-1", "10001", "abc", "400g", "nan", "inf", "1e3"}) {
    Result<double> r = ParseCarbonIntensity(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("grams of CO2e per kWh"), std::string::npos);
  }
}

// One host with two 80 GB GPUs in a fleet whose grid emits 400 g/kWh, and a run of two jobs,
// each holding one of them.
class EnergyAccounting : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
    ASSERT_TRUE(store_
                    ->Bootstrap({"u-admin", "admin", model::GlobalRole::kAdmin, 0}, "h",
                                {"p-main", "main", "u-admin", 0})
                    .ok());
    model::Fleet fleet{"f",
                       "p-main",
                       "main",
                       "gpus",
                       model::FleetStatus::kActive,
                       R"({"name":"gpus","carbon_intensity":400,"hosts":[]})",
                       0};
    model::Instance instance;
    instance.id = "i";
    instance.project_id = "p-main";
    instance.project_name = "main";
    instance.fleet_id = "f";
    instance.fleet_name = "gpus";
    instance.name = "gpus-0";
    instance.status = model::InstanceStatus::kBusy;
    instance.backend = "remote";
    instance.hostname = "h";
    instance.agent_port = 1;
    instance.price = 3.6;
    instance.resources.cpus = 16;
    instance.resources.memory_bytes = 64 * kGb;
    for (int i = 0; i < 2; ++i) {
      instance.resources.gpus.push_back(
          {i, "NVIDIA H100 80GB HBM3", "GPU-" + std::to_string(i), 80 * kGb, "nvidia"});
    }
    ASSERT_TRUE(store_->CreateFleet(fleet, {instance}).ok());
    ASSERT_TRUE(store_->UpdateInstance(instance).ok());
    model::Run run;
    run.id = "r";
    run.project_id = "p-main";
    run.user_id = "u-admin";
    run.run_name = "train";
    run.status = model::RunStatus::kRunning;
    run.submitted_at = kStart;
    run.configuration_json = "{}";
    for (int n = 0; n < 2; ++n) {
      model::Job job;
      job.id = "j" + std::to_string(n);
      job.run_id = "r";
      job.job_name = "train-" + std::to_string(n) + "-0";
      job.job_num = n;
      job.status = model::JobStatus::kRunning;
      job.instance_id = "i";
      job.gpu_indices = {n};
      job.submitted_at = kStart;
      job.started_at = kStart;
      run.jobs.push_back(job);
    }
    ASSERT_TRUE(store_->CreateRun(run).ok());
  }

  TickReport Report(std::vector<model::GpuReading> readings,
                    std::vector<model::JobMetricsPoint> points = {}) {
    TickReport report;
    report.started_at = clock_.Now();
    report.instances = store_->ListInstances("").value();
    report.runs =
        store_
            ->ListRunsWithStatus({model::RunStatus::kSubmitted, model::RunStatus::kProvisioning,
                                  model::RunStatus::kRunning, model::RunStatus::kTerminating})
            .value();
    if (!readings.empty()) {
      InstanceObservation& o = report.observations["i"];
      o.reached = true;
      o.poll.now = clock_.Now();
      o.poll.gpus = std::move(readings);
    }
    if (!points.empty()) {
      EXPECT_TRUE(store_->AddJobMetricsPoints(points).ok());
      report.stored_points = std::move(points);
    }
    return report;
  }

  static model::GpuReading Reading(int index, std::optional<int64_t> energy_mj, int64_t power_mw) {
    model::GpuReading r;
    r.index = index;
    r.uuid = "GPU-" + std::to_string(index);
    r.energy_mj = energy_mj;
    r.power_mw = power_mw;
    r.util_percent = 90;
    return r;
  }

  void Finish(const std::string& job_id) {
    model::Run run = store_->GetRunById("r").value();
    for (model::Job& job : run.jobs) {
      if (job.id != job_id) continue;
      job.status = model::JobStatus::kDone;
      job.termination_reason = model::JobTerminationReason::kDoneByRunner;
      job.finished_at = clock_.Now();
    }
    ASSERT_TRUE(store_->UpdateRun(run).ok());
  }

  std::optional<store::JobAggregate> Stored(const std::string& job_id) {
    std::vector<store::JobAggregate> rows = store_->ListJobAggregates({job_id}).value();
    if (rows.empty()) return std::nullopt;
    return rows.front();
  }

  store::EnergyTotal Totals() {
    std::vector<store::EnergyTotal> totals = store_->ListEnergyTotals().value();
    EXPECT_EQ(totals.size(), 1u);
    return totals.empty() ? store::EnergyTotal{} : totals.front();
  }

  // Changes the stored run "r" (its jobs) as `change` says.
  void ChangeRun(const std::function<void(model::Run&)>& change) {
    model::Run run = store_->GetRunById("r").value();
    change(run);
    ASSERT_TRUE(store_->UpdateRun(run).ok());
  }

  JobAggregates AggregatesOf(const std::string& job_id) {
    return JobAggregatesFromJson(Stored(job_id)->state_json).value();
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  FakeClock clock_{kStart};
};

TEST_F(EnergyAccounting, SevenHundredWattsForAnHourIs252MegajoulesAnd280GramsForItsJobOnly) {
  EnergyAccountant accountant(*store_, clock_, {});
  // GPU 0 draws 700 W, GPU 1 100 W; readings every 10 s for an hour.
  for (int tick = 0; tick <= 360; ++tick) {
    const int64_t seconds = tick * 10;
    ASSERT_TRUE(accountant
                    .Update(Report({Reading(0, 1'000'000 + seconds * 700'000, 700'000),
                                    Reading(1, 9'000'000 + seconds * 100'000, 100'000)}))
                    .ok());
    clock_.Advance(10 * kSecond);
  }
  const JobAggregates a = AggregatesOf("j0");
  const JobAggregates b = AggregatesOf("j1");
  std::printf("job on 700 W GPU: %.0f J, %.2f g; job on 100 W GPU: %.0f J\n", a.energy_joules,
              a.carbon_grams, b.energy_joules);
  EXPECT_NEAR(a.energy_joules, 2.52e6, 2.52e6 * 0.005);
  EXPECT_NEAR(a.carbon_grams, 280, 280 * 0.005);
  EXPECT_NEAR(b.energy_joules, 0.36e6, 0.36e6 * 0.005);
  EXPECT_FALSE(a.gpus[0].energy_estimated);
  const store::EnergyTotal total = Totals();
  EXPECT_NEAR(total.energy_joules, 2.88e6, 2.88e6 * 0.005);
  EXPECT_NEAR(total.carbon_grams, 320, 320 * 0.005);
}

TEST_F(EnergyAccounting, WithoutACounterPowerTimesTimeIsChargedAndMarkedEstimated) {
  EnergyAccountant accountant(*store_, clock_, {});
  for (int tick = 0; tick <= 360; ++tick) {
    ASSERT_TRUE(accountant.Update(Report({Reading(0, std::nullopt, 700'000)})).ok());
    clock_.Advance(10 * kSecond);
  }
  const JobAggregates a = AggregatesOf("j0");
  EXPECT_NEAR(a.energy_joules, 2.52e6, 2.52e6 * 0.005);
  EXPECT_TRUE(a.gpus[0].energy_estimated);
}

TEST_F(EnergyAccounting, ACounterResetMidJobIsNeitherNegativeNorCountedTwice) {
  EnergyAccountant accountant(*store_, clock_, {});
  int64_t counter = 50'000'000;
  double last_total = 0;
  for (int tick = 0; tick <= 360; ++tick) {
    if (tick > 0) counter += 7'000'000;    // 700 W for 10 s
    if (tick == 180) counter = 3'500'000;  // driver reloaded 5 s ago: counting from zero since
    ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
    const double total = AggregatesOf("j0").energy_joules;
    EXPECT_GE(total, last_total) << tick;  // never goes down
    last_total = total;
    clock_.Advance(10 * kSecond);
  }
  // 359 whole intervals and the 5 s counted after the reset.
  EXPECT_DOUBLE_EQ(last_total, 359 * 7000.0 + 3500.0);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, last_total);
}

// A job that starts between two readings of its GPU is charged, at its first reading, the part
// of the counter's increase after its start; the reading before it was nobody's.
TEST_F(EnergyAccounting, AFirstReadingChargesTheCounterSinceTheJobsStartSharedByTime) {
  ChangeRun([](model::Run& run) { run.jobs[0].started_at.reset(); });
  EnergyAccountant accountant(*store_, clock_, {});
  int64_t counter = 40'000'000;
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());  // GPU 0 free
  clock_.Advance(4 * kSecond);
  ChangeRun([&](model::Run& run) { run.jobs[0].started_at = clock_.Now(); });
  clock_.Advance(6 * kSecond);
  counter += 7'000'000;  // 7 kJ over the 10 s, 6 s of them the job's
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
  clock_.Advance(10 * kSecond);
  counter += 7'000'000;
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
  const JobAggregates a = AggregatesOf("j0");
  EXPECT_DOUBLE_EQ(a.energy_joules, 4200.0 + 7000.0);
  EXPECT_FALSE(a.gpus[0].energy_estimated);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, 4200.0 + 7000.0);
}

// Without an earlier reading of the GPU (a server that just started), the first reading's power
// × the time since the job's start is charged, marked estimated, at most the longest charged gap.
TEST_F(EnergyAccounting, AFirstReadingWithoutAnEarlierOneChargesPowerTimesTimeEstimated) {
  ChangeRun([](model::Run& run) {
    run.jobs[0].started_at = kStart - 4 * kSecond;
    run.jobs[1].started_at = kStart - 3600 * kSecond;
  });
  EnergyAccountant accountant(*store_, clock_, {});
  ASSERT_TRUE(
      accountant.Update(Report({Reading(0, 1'000'000, 700'000), Reading(1, 5'000'000, 100'000)}))
          .ok());
  clock_.Advance(10 * kSecond);
  ASSERT_TRUE(
      accountant.Update(Report({Reading(0, 8'000'000, 700'000), Reading(1, 6'000'000, 100'000)}))
          .ok());
  const JobAggregates a = AggregatesOf("j0");
  const JobAggregates b = AggregatesOf("j1");
  EXPECT_DOUBLE_EQ(a.energy_joules, 700.0 * 4 + 7000.0);
  EXPECT_TRUE(a.gpus[0].energy_estimated);
  EXPECT_DOUBLE_EQ(b.energy_joules, 100.0 * static_cast<double>(kMaxChargedGap / kSecond) + 1000.0);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, a.energy_joules + b.energy_joules);
}

// A GPU handed from one job to the next: the interval between the first job's last reading and
// the next one's first is shared: the first job gets its tail up to its end (power × time), the
// next one the counter's increase after its start, the time between nobody; nothing twice.
TEST_F(EnergyAccounting, AGpuHandedOverChargesTheIntervalOnceAndOnlyAfterTheNextJobsStart) {
  ChangeRun([](model::Run& run) {
    run.jobs[1].started_at.reset();
    run.jobs[1].gpu_indices = {0};
  });
  EnergyAccountant accountant(*store_, clock_, {});
  int64_t counter = 0;
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
  clock_.Advance(10 * kSecond);
  counter += 7'000'000;
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
  clock_.Advance(2 * kSecond);
  Finish("j0");
  clock_.Advance(4 * kSecond);
  ChangeRun([&](model::Run& run) { run.jobs[1].started_at = clock_.Now(); });
  clock_.Advance(4 * kSecond);
  counter += 7'000'000;  // 10 s since j0's last reading: j1 ran the last 4 of them
  ASSERT_TRUE(accountant.Update(Report({Reading(0, counter, 700'000)})).ok());
  std::optional<store::JobAggregate> first = Stored("j0");
  ASSERT_TRUE(first && first->summary_json);
  EXPECT_DOUBLE_EQ(JobSummaryFromJson(*first->summary_json).value().energy_joules, 7000.0 + 1400.0);
  EXPECT_DOUBLE_EQ(AggregatesOf("j1").energy_joules, 2800.0);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, 7000.0 + 1400.0 + 2800.0);
}

TEST_F(EnergyAccounting, AJobsEndChargesWhatItsGpuDrewAfterItsLastReadingOnce) {
  EnergyAccountant accountant(*store_, clock_, {});
  // 700 W, read every 10 s from the job's start to 60 s; the job ends 5 s after the last reading.
  for (int tick = 0; tick <= 6; ++tick) {
    ASSERT_TRUE(accountant.Update(Report({Reading(0, tick * 7'000'000, 700'000)})).ok());
    if (tick < 6) clock_.Advance(10 * kSecond);
  }
  EXPECT_DOUBLE_EQ(AggregatesOf("j0").energy_joules, 6 * 7000.0);
  clock_.Advance(5 * kSecond);
  Finish("j0");
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  const std::optional<store::JobAggregate> stored = Stored("j0");
  ASSERT_TRUE(stored && stored->summary_json);
  const JobAggregates a = AggregatesOf("j0");
  EXPECT_DOUBLE_EQ(a.energy_joules, 6 * 7000.0 + 5 * 700.0);
  EXPECT_TRUE(a.gpus[0].energy_estimated);
  // The next reading of the GPU is nobody's: the job is summed up, and nothing is charged twice.
  clock_.Advance(5 * kSecond);
  ASSERT_TRUE(accountant.Update(Report({Reading(0, 7 * 7'000'000, 700'000)})).ok());
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  EXPECT_DOUBLE_EQ(AggregatesOf("j0").energy_joules, 6 * 7000.0 + 5 * 700.0);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, 6 * 7000.0 + 5 * 700.0);
}

TEST_F(EnergyAccounting, ARestartedServerGoesOnFromTheStoredAggregates) {
  int64_t counter = 0;
  {
    EnergyAccountant first(*store_, clock_, {});
    for (int tick = 0; tick <= 10; ++tick) {
      counter = tick * 7'000'000;
      ASSERT_TRUE(first.Update(Report({Reading(0, counter, 700'000)})).ok());
      clock_.Advance(10 * kSecond);
    }
  }
  // Down for a minute; the counter kept counting.
  clock_.Advance(60 * kSecond);
  counter += 7 * 7'000'000;
  EnergyAccountant second(*store_, clock_, {});
  ASSERT_TRUE(second.Update(Report({Reading(0, counter, 700'000)})).ok());
  EXPECT_DOUBLE_EQ(AggregatesOf("j0").energy_joules, 17 * 7000.0);
  EXPECT_DOUBLE_EQ(Totals().energy_joules, 17 * 7000.0);
}

TEST_F(EnergyAccounting, ASummaryIsWrittenAtTheTickAfterTheEndAndOutlivesRetention) {
  EnergyAccountant accountant(*store_, clock_, {});
  for (int tick = 0; tick <= 30; ++tick) {
    model::JobMetricsPoint p;
    p.job_id = "j0";
    p.timestamp_micro = clock_.Now();
    p.cpu_usage_micro = tick * 10 * kSecond;  // one core busy
    p.memory_usage_bytes = 2 * kGb + tick;
    p.gpus_util_percent = {tick % 2 == 0 ? 20 : 2};
    p.gpus_memory_usage_bytes = {9 * kGb};
    ASSERT_TRUE(accountant.Update(Report({Reading(0, tick * 7'000'000, 700'000)}, {p})).ok());
    clock_.Advance(10 * kSecond);
  }
  EXPECT_FALSE(Stored("j0")->summary_json);
  Finish("j0");
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  std::optional<store::JobAggregate> row = Stored("j0");
  ASSERT_TRUE(row->summary_json) << "no summary one tick after the job's end";
  const JobSummary summary = JobSummaryFromJson(*row->summary_json).value();
  EXPECT_TRUE(summary.final);
  EXPECT_EQ(summary.status, "done");
  EXPECT_DOUBLE_EQ(summary.duration_seconds, 310);
  EXPECT_NEAR(summary.cpu_mean_cores, 1.0, 1e-9);
  EXPECT_EQ(summary.memory_peak_bytes, 2 * kGb + 30);
  ASSERT_EQ(summary.gpus.size(), 1u);
  EXPECT_EQ(summary.gpus[0].memory_peak_bytes, 9 * kGb);
  EXPECT_EQ(summary.gpus[0].util_max, 20);
  // Time-weighted: 15 of the 30 intervals were idle (the first point covers none).
  EXPECT_NEAR(summary.gpus[0].idle_share, 15.0 / 30.0, 1e-9);
  EXPECT_NEAR(summary.gpus[0].util_mean, (15 * 20 + 15 * 2) / 30.0, 1e-9);
  // 30 intervals between readings, and the 10 s from the last reading to the job's end.
  EXPECT_DOUBLE_EQ(summary.energy_joules, 31 * 7000.0);
  EXPECT_NEAR(summary.cost_dollars, 3.6 * 310 / 3600, 1e-9);
  EXPECT_NEAR(summary.carbon_grams, CarbonGrams(31 * 7000.0, 400), 1e-9);
  std::vector<std::string> rules;
  for (const SummaryNote& n : summary.notes) rules.push_back(n.rule);
  EXPECT_EQ(rules, (std::vector<std::string>{"gpu_memory_oversized", "cpu_bound"}));

  // Eight days later retention deletes the points; the summary stays as it was.
  clock_.Advance(8 * 86'400 * kSecond);
  const TimeMicros now = clock_.Now();
  EXPECT_EQ(
      store_->DeleteJobMetricsPoints(now - 3600 * kSecond, now - 7 * 86'400 * kSecond).value(), 31);
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  EXPECT_EQ(Stored("j0")->summary_json, row->summary_json);
  JobSummaryService service(*store_, clock_);
  ProjectAccess access;
  access.project = store_->GetProject("main").value();
  RunSummary run = service.Get(access, "train").value();
  ASSERT_EQ(run.jobs.size(), 2u);
  EXPECT_TRUE(run.jobs[0].final);
  EXPECT_EQ(run.jobs[0].notes, summary.notes);
  EXPECT_DOUBLE_EQ(run.jobs[0].energy_joules, summary.energy_joules);
  EXPECT_NEAR(run.jobs[0].carbon_grams, summary.carbon_grams, 1e-9);
  EXPECT_DOUBLE_EQ(run.energy_joules, summary.energy_joules);
  EXPECT_FALSE(run.jobs[1].final);  // still running: its summary so far
  EXPECT_EQ(service.Get(access, "nope").status().code(), StatusCode::kNotFound);
}

// Quiet ticks hand over the very same runs (the same TickReport::state_generation): their points
// and readings still count, and the job's end is still seen at the next tick of another state.
TEST_F(EnergyAccounting, TicksOfTheSameRunsStillCountTheirPointsAndReadingsAndSeeTheEnd) {
  EnergyAccountant accountant(*store_, clock_, {});
  for (int tick = 0; tick <= 6; ++tick) {
    model::JobMetricsPoint p;
    p.job_id = "j0";
    p.timestamp_micro = clock_.Now();
    p.cpu_usage_micro = tick * 10 * kSecond;
    p.memory_usage_bytes = 2 * kGb;
    p.gpus_util_percent = {50};
    p.gpus_memory_usage_bytes = {9 * kGb};
    std::vector<model::GpuReading> readings;
    if (tick % 2 == 0) readings.push_back(Reading(0, tick * 7'000'000, 700'000));
    TickReport report = Report(std::move(readings), {p});
    report.state_generation = 7;
    ASSERT_TRUE(accountant.Update(report).ok()) << tick;
    clock_.Advance(10 * kSecond);
  }
  const JobAggregates stored = AggregatesOf("j0");
  EXPECT_EQ(stored.points, 7);
  EXPECT_DOUBLE_EQ(stored.energy_joules, 6 * 7000.0);
  EXPECT_FALSE(Stored("j0")->summary_json);
  TickReport same = Report({});
  same.state_generation = 7;
  ASSERT_TRUE(accountant.Update(same).ok());
  Finish("j0");
  TickReport next = Report({});
  next.state_generation = 8;
  ASSERT_TRUE(accountant.Update(next).ok());
  std::optional<store::JobAggregate> row = Stored("j0");
  ASSERT_TRUE(row->summary_json) << "no summary one tick after the job's end";
  EXPECT_EQ(JobSummaryFromJson(*row->summary_json).value().status, "done");
  EXPECT_FALSE(Stored("j1")->summary_json);
}

// A job that starts and ends between two ticks is never seen running: it still gets its
// summary, once, whether its run goes on or ended in the same tick.
TEST_F(EnergyAccounting, AJobShorterThanATickStillGetsItsSummaryOnce) {
  EnergyAccountant accountant(*store_, clock_, {});
  clock_.Advance(5 * kSecond);
  Finish("j0");  // ran 5 s; its run goes on with j1
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  std::optional<store::JobAggregate> row = Stored("j0");
  ASSERT_TRUE(row && row->summary_json) << "no summary for a job that ended within a tick";
  const JobSummary summary = JobSummaryFromJson(*row->summary_json).value();
  EXPECT_TRUE(summary.final);
  EXPECT_EQ(summary.status, "done");
  EXPECT_DOUBLE_EQ(summary.duration_seconds, 5);
  // Listed again while its run goes on, it is summed up once.
  ASSERT_TRUE(accountant.Update(Report({})).ok());
  EXPECT_EQ(Stored("j0")->revision, row->revision);
  EXPECT_EQ(Stored("j0")->summary_json, row->summary_json);
}

TEST_F(EnergyAccounting, TheJobsOfARunThatEndedWithinATickGetTheirSummaries) {
  clock_.Advance(3 * kSecond);
  Finish("j0");
  Finish("j1");
  model::Run run = store_->GetRunById("r").value();
  run.status = model::RunStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  EnergyAccountant accountant(*store_, clock_, {});
  TickReport report = Report({});
  EXPECT_TRUE(report.runs.empty());  // a finished run is no longer listed with the others
  report.finished_runs = {store_->GetRunById("r").value()};
  ASSERT_TRUE(accountant.Update(report).ok());
  for (const char* job : {"j0", "j1"}) {
    std::optional<store::JobAggregate> row = Stored(job);
    ASSERT_TRUE(row && row->summary_json) << job;
    EXPECT_DOUBLE_EQ(JobSummaryFromJson(*row->summary_json).value().duration_seconds, 3) << job;
  }
}

// Runs `promtool check metrics` on `exposition`; its output, or nullopt without promtool.
std::optional<std::string> Promtool(const std::string& exposition, const testing::TempDir& dir) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string file = (dir.path() / "metrics.txt").string();
  std::ofstream(file, std::ios::binary) << exposition;
  std::string output;
  FILE* pipe = ::popen(("promtool check metrics < '" + file + "' 2>&1").c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) output += "\n(promtool failed)";
  return output;
}

// The energy families as the server renders them: from what the accountant stored
// (StoredEnergyFamilies), refreshed every metrics interval and when the unfinished runs change.
TEST_F(EnergyAccounting, TheEnergyFamiliesShowTheRunAndTheProjectTotalsLintClean) {
  expose::ExpositionSnapshot snapshot;
  EnergyAccountant accountant(*store_, clock_, {});  // stores every 10 s
  StoredEnergyFamilies families(*store_, snapshot, 10 * kSecond);
  // One tick as the control loop runs it: the accountant's stage, then the families'.
  auto tick = [&](const TickReport& report) {
    ASSERT_TRUE(accountant.Update(report).ok());
    ASSERT_TRUE(families.Refresh(report, /*moved=*/false).ok());
  };
  for (int n = 0; n <= 2; ++n) {
    tick(Report({Reading(0, n * 7'000'000, 700'000)}));
    if (HasFatalFailure()) return;
    clock_.Advance(10 * kSecond);
  }
  const std::string text = snapshot.Render(expose::Format::kText004, clock_.Now());
  std::printf("%s", text.c_str());
  // Each family typed, with the run's and the project's samples.
  const std::string project = "{dstack_project_name=\"main\",dstack_user_name=\"admin\"} ";
  for (const std::string& expected : {
           std::string("# TYPE fleetwatch_run_gpu_energy_joules gauge\n"),
           std::string("fleetwatch_run_gpu_energy_joules{dstack_project_name=\"main\","
                       "dstack_user_name=\"admin\",dstack_run_name=\"train\",dstack_run_id=\"r\","
                       "dstack_run_type=\"task\"} 14000.0\n"),
           std::string("# TYPE fleetwatch_project_gpu_energy_joules_total counter\n"),
           "fleetwatch_project_gpu_energy_joules_total" + project + "14000.0\n",
           std::string("# TYPE fleetwatch_project_carbon_grams_total counter\n"),
           "fleetwatch_project_carbon_grams_total" + project,
           std::string("# TYPE fleetwatch_project_gpu_busy_seconds_total counter\n"),
           "fleetwatch_project_gpu_busy_seconds_total" + project,
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected;
  }
  // The run ends: its gauge goes, the counters stay, with what the GPU drew from its last
  // reading to the jobs' end (700 W for 10 s).
  Finish("j0");
  Finish("j1");
  model::Run run = store_->GetRunById("r").value();
  run.status = model::RunStatus::kDone;
  run.finished_at = clock_.Now();
  ASSERT_TRUE(store_->UpdateRun(run).ok());
  tick(Report({}));
  if (HasFatalFailure()) return;
  const std::string after = snapshot.Render(expose::Format::kText004, clock_.Now());
  EXPECT_EQ(after.find("fleetwatch_run_gpu_energy_joules{"), std::string::npos) << after;
  EXPECT_NE(after.find("fleetwatch_project_gpu_energy_joules_total" + project + "21000.0\n"),
            std::string::npos)
      << after;
  if (std::optional<std::string> lint = Promtool(text, dir_)) {
    EXPECT_EQ(*lint, "") << text;
  }
}

}  // namespace
}  // namespace fleetwatch::server
