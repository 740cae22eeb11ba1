// The GPU state ledger: classifying a GPU's interval, the charges of a tick (gap cap, holders,
// cost share), and charging a real SQLite store across a restart, with the families rendered.
#include "server/gpu_ledger.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>

#include "expose/snapshot.h"
#include "server/gpu_ledger_families.h"
#include "server/gpu_waste.h"
#include "store/sqlite_store.h"
#include "support/process.h"
#include "util/clock.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kNow = 1'700'000'000 * kSecond;
constexpr double kThreshold = 5;

model::GpuReading Reading(int index, std::optional<int64_t> util, int64_t memory_used) {
  model::GpuReading r;
  r.index = index;
  r.uuid = "GPU-" + std::to_string(index);
  r.util_percent = util;
  r.memory_used_bytes = memory_used;
  return r;
}

TEST(ClassifyGpu, EachReadingIsInExactlyOneState) {
  EXPECT_EQ(ClassifyGpu(Reading(0, 90, 1 << 30), true, false, kThreshold), GpuState::kBusy);
  EXPECT_EQ(ClassifyGpu(Reading(0, 5, 1 << 30), true, false, kThreshold), GpuState::kBusy);
  EXPECT_EQ(ClassifyGpu(Reading(0, 4, 1 << 30), true, false, kThreshold), GpuState::kIdleHeld);
  EXPECT_EQ(ClassifyGpu(Reading(0, 0, 0), true, false, kThreshold), GpuState::kReservedIdle);
  EXPECT_EQ(ClassifyGpu(Reading(0, 90, 1 << 30), false, false, kThreshold), GpuState::kFree);
  EXPECT_EQ(ClassifyGpu(Reading(0, 0, 0), false, false, kThreshold), GpuState::kFree);
  // Unhealthy wins over everything: an error in the reading, or another component's verdict.
  model::GpuReading broken;
  broken.error = "GPU is lost";
  EXPECT_EQ(ClassifyGpu(broken, true, false, kThreshold), GpuState::kUnhealthy);
  EXPECT_EQ(ClassifyGpu(broken, false, false, kThreshold), GpuState::kUnhealthy);
  EXPECT_EQ(ClassifyGpu(Reading(0, 90, 1), true, true, kThreshold), GpuState::kUnhealthy);
  // No utilization reading: nothing says it is idle.
  EXPECT_EQ(ClassifyGpu(Reading(0, std::nullopt, 0), true, false, kThreshold), GpuState::kBusy);
  // A process list decides whether memory is in use (the driver's own reservation is not).
  model::GpuReading no_process = Reading(0, 0, 500 << 20);
  no_process.processes.emplace();
  EXPECT_EQ(ClassifyGpu(no_process, true, false, kThreshold), GpuState::kReservedIdle);
  no_process.processes->push_back({.pid = 42, .used_memory_bytes = 1 << 20});
  EXPECT_EQ(ClassifyGpu(no_process, true, false, kThreshold), GpuState::kIdleHeld);
  // The threshold is configurable.
  EXPECT_EQ(ClassifyGpu(Reading(0, 30, 1), true, false, 50), GpuState::kIdleHeld);
}

TEST(GpuStateName, NamesTheLabelValues) {
  std::vector<std::string_view> names;
  for (GpuState s : kAllGpuStates) names.push_back(GpuStateName(s));
  EXPECT_EQ(names, (std::vector<std::string_view>{"busy", "idle_held", "reserved_idle", "free",
                                                  "unhealthy"}));
}

// One instance "i" (4 GPUs, $7.2/h) of project main; a run "train" of alice whose job holds GPUs
// 0 and 1 and started at kNow - 100 s.
TickReport Report(TimeMicros now, std::vector<model::GpuReading> readings) {
  TickReport report;
  report.started_at = now;
  model::Instance instance;
  instance.id = "i";
  instance.project_name = "main";
  instance.fleet_name = "gpus";
  instance.name = "gpus-0";
  instance.status = model::InstanceStatus::kBusy;
  instance.price = 7.2;
  for (int g = 0; g < 4; ++g) {
    instance.resources.gpus.push_back({.index = g,
                                       .name = "NVIDIA H100 80GB HBM3",
                                       .uuid = "GPU-" + std::to_string(g),
                                       .memory_bytes = 80LL << 30,
                                       .vendor = "nvidia"});
  }
  report.instances = std::vector<model::Instance>{instance};
  model::Run run;
  run.id = "r";
  run.project_name = "main";
  run.user_name = "alice";
  run.run_name = "train";
  run.status = model::RunStatus::kRunning;
  model::Job job;
  job.id = "j";
  job.run_id = "r";
  job.status = model::JobStatus::kRunning;
  job.instance_id = "i";
  job.gpu_indices = {0, 1};
  job.started_at = kNow - 100 * kSecond;
  run.jobs = {job};
  report.runs = std::vector<model::Run>{run};
  InstanceObservation observation;
  observation.reached = true;
  observation.poll.gpus = std::move(readings);
  report.observations["i"] = observation;
  return report;
}

const GpuLedgerOptions kOptions{.idle_threshold_percent = 5, .metrics_interval = 10 * kSecond};

TEST(GpuLedgerCharges, AFirstReadingStartsTheLedgerWithoutTime) {
  auto charges = GpuLedgerCharges(Report(kNow, {Reading(0, 90, 1)}), kNow, {}, kOptions, {});
  ASSERT_EQ(charges.size(), 1u);
  EXPECT_FALSE(charges[0].accounted_until.has_value());
  EXPECT_EQ(charges[0].new_accounted_until, kNow);
  EXPECT_EQ(charges[0].seconds, 0);
}

TEST(GpuLedgerCharges, TheIntervalSinceTheLastReadingGoesToTheReadingsState) {
  const std::map<std::pair<std::string, int>, TimeMicros> marks = {{{"i", 0}, kNow - 10 * kSecond},
                                                                   {{"i", 1}, kNow - 10 * kSecond},
                                                                   {{"i", 2}, kNow - 10 * kSecond}};
  auto charges =
      GpuLedgerCharges(Report(kNow, {Reading(0, 90, 1), Reading(1, 0, 1 << 30), Reading(2, 0, 0)}),
                       kNow, marks, kOptions, {});
  ASSERT_EQ(charges.size(), 3u);
  EXPECT_EQ(charges[0].state, static_cast<int>(GpuState::kBusy));
  EXPECT_EQ(charges[1].state, static_cast<int>(GpuState::kIdleHeld));
  EXPECT_EQ(charges[2].state, static_cast<int>(GpuState::kFree));  // no job holds GPU 2
  for (const auto& c : charges) {
    EXPECT_EQ(c.accounted_until, kNow - 10 * kSecond);
    EXPECT_DOUBLE_EQ(c.seconds, 10);
  }
  ASSERT_TRUE(charges[1].holder.has_value());
  EXPECT_EQ(charges[1].holder->run_id, "r");
  EXPECT_EQ(charges[1].holder->user_name, "alice");
  EXPECT_TRUE(charges[1].holder->idle);
  EXPECT_FALSE(charges[0].holder->idle);
  // $7.2/h is $0.002/s for the job, shared by its two GPUs: 10 s of one GPU is $0.01.
  EXPECT_DOUBLE_EQ(charges[1].holder->cost_dollars, 0.01);
  EXPECT_FALSE(charges[2].holder.has_value());
}

TEST(GpuLedgerCharges, AGapCountsAtMostTwoIntervalsAndTimeBeforeTheMarkNever) {
  const std::map<std::pair<std::string, int>, TimeMicros> marks = {
      {{"i", 0}, kNow - 300 * kSecond}, {{"i", 1}, kNow}, {{"i", 2}, kNow + kSecond}};
  auto charges =
      GpuLedgerCharges(Report(kNow, {Reading(0, 0, 0), Reading(1, 0, 0), Reading(2, 0, 0)}), kNow,
                       marks, kOptions, {});
  ASSERT_EQ(charges.size(), 1u);  // GPUs 1 and 2 are accounted up to now (or later) already
  EXPECT_DOUBLE_EQ(charges[0].seconds, 20);
  EXPECT_EQ(charges[0].accounted_until, kNow - 300 * kSecond);
  EXPECT_EQ(charges[0].new_accounted_until, kNow);
}

TEST(GpuLedgerCharges, UnreachedHostsAndPollsWithoutReadingsChargeNothing) {
  TickReport unreached = Report(kNow, {Reading(0, 0, 0)});
  unreached.observations["i"].reached = false;
  EXPECT_TRUE(GpuLedgerCharges(unreached, kNow, {}, kOptions, {}).empty());
  TickReport plain = Report(kNow, {});
  plain.observations["i"].poll.gpus.reset();
  EXPECT_TRUE(GpuLedgerCharges(plain, kNow, {}, kOptions, {}).empty());
}

TEST(GpuLedgerCharges, TheUnhealthyHookMarksAGpuAndAJobNotStartedCostsNothing) {
  TickReport report = Report(kNow, {Reading(0, 90, 1), Reading(1, 0, 0)});
  std::vector<model::Run> runs = report.runs;
  runs[0].jobs[0].started_at.reset();
  runs[0].jobs[0].status = model::JobStatus::kPulling;
  report.runs = std::move(runs);
  const std::map<std::pair<std::string, int>, TimeMicros> marks = {{{"i", 0}, kNow - 10 * kSecond},
                                                                   {{"i", 1}, kNow - 10 * kSecond}};
  auto charges = GpuLedgerCharges(report, kNow, marks, kOptions,
                                  [](std::string_view instance, const model::GpuReading& r) {
                                    return instance == "i" && r.index == 0;
                                  });
  ASSERT_EQ(charges.size(), 2u);
  EXPECT_EQ(charges[0].state, static_cast<int>(GpuState::kUnhealthy));
  EXPECT_EQ(charges[1].state, static_cast<int>(GpuState::kReservedIdle));
  EXPECT_EQ(charges[1].holder->cost_dollars, 0);
}

class GpuLedgerStore : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
  }
  double StateSeconds(int gpu, GpuState state) {
    const std::vector<store::GpuLedgerEntry> ledger = store_->ListGpuLedger().value();
    for (const auto& e : ledger) {
      if (e.instance_id == "i" && e.gpu == gpu) return e.state_seconds[static_cast<int>(state)];
    }
    return -1;
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(GpuLedgerStore, ARestartNeverCountsAnIntervalTwice) {
  auto readings = [] { return std::vector{Reading(0, 90, 1), Reading(1, 1, 1 << 30)}; };
  {
    GpuLedger ledger(*store_, nullptr, kOptions);
    ASSERT_TRUE(ledger.Account(Report(kNow, readings())).ok());
    ASSERT_TRUE(ledger.Account(Report(kNow + 10 * kSecond, readings())).ok());
  }
  EXPECT_DOUBLE_EQ(StateSeconds(0, GpuState::kBusy), 10);
  EXPECT_DOUBLE_EQ(StateSeconds(1, GpuState::kIdleHeld), 10);
  // A new server on the same database: the same tick again counts nothing; the next one counts
  // its interval only, and a long silence at most two intervals.
  GpuLedger restarted(*store_, nullptr, kOptions);
  ASSERT_TRUE(restarted.Account(Report(kNow + 10 * kSecond, readings())).ok());
  EXPECT_DOUBLE_EQ(StateSeconds(0, GpuState::kBusy), 10);
  ASSERT_TRUE(restarted.Account(Report(kNow + 20 * kSecond, readings())).ok());
  EXPECT_DOUBLE_EQ(StateSeconds(0, GpuState::kBusy), 20);
  ASSERT_TRUE(restarted.Account(Report(kNow + 620 * kSecond, readings())).ok());
  EXPECT_DOUBLE_EQ(StateSeconds(0, GpuState::kBusy), 40);
  EXPECT_DOUBLE_EQ(StateSeconds(1, GpuState::kIdleHeld), 40);

  // GPU 1 was idle for 40 of the run's 80 held GPU seconds; 40 GPU-s at $0.001/GPU-s is $0.04.
  auto idle = store_->ListGpuIdleTotals().value();
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0].project_name, "main");
  EXPECT_EQ(idle[0].user_name, "alice");
  EXPECT_DOUBLE_EQ(idle[0].idle_seconds, 40);
  EXPECT_NEAR(idle[0].idle_cost_dollars, 0.04, 1e-12);
  auto runs = store_->ListRunGpuTime({"r", "other"}).value();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_DOUBLE_EQ(runs[0].held_seconds, 80);
  EXPECT_DOUBLE_EQ(runs[0].idle_seconds, 40);
}

TEST_F(GpuLedgerStore, TheFamiliesAreRenderedFromThePersistedTotals) {
  expose::ExpositionSnapshot snapshot;
  GpuLedger ledger(*store_, &snapshot, kOptions);
  auto readings = [] { return std::vector{Reading(0, 90, 1), Reading(1, 1, 0)}; };
  ASSERT_TRUE(ledger.Account(Report(kNow, readings())).ok());
  ASSERT_TRUE(ledger.Account(Report(kNow + 10 * kSecond, readings())).ok());
  ASSERT_TRUE(ledger.Refresh(Report(kNow + 10 * kSecond, {}), /*moved=*/false).ok());
  const std::string text = snapshot.Render(expose::Format::kText004, kNow);
  const std::string gpu1 =
      R"(dstack_project_name="main",dstack_fleet_name="gpus",dstack_instance_name="gpus-0",)"
      R"(dstack_gpu="H100",gpu="1")";
  EXPECT_NE(text.find("# TYPE fleetwatch_gpu_state_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(
      text.find("fleetwatch_gpu_state_seconds_total{" + gpu1 + R"(,state="reserved_idle"} 10.0)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("fleetwatch_gpu_state_seconds_total{" + gpu1 + R"(,state="busy"} 0.0)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(fleetwatch_run_gpu_idle_ratio{dstack_project_name="main",)"
                      R"(dstack_user_name="alice",dstack_run_name="train",dstack_run_id="r",)"
                      R"(dstack_run_type="task"} 0.5)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(fleetwatch_project_gpu_idle_seconds_total{dstack_project_name="main",)"
                      R"(dstack_user_name="alice"} 10.0)"),
            std::string::npos);
  EXPECT_NE(text.find("fleetwatch_project_idle_cost_dollars_total{"), std::string::npos);
  // A finished run leaves the run gauge at the next refresh, readings or not.
  TickReport ended = Report(kNow + 11 * kSecond, {});
  ended.runs = std::vector<model::Run>{};
  ASSERT_TRUE(ledger.Refresh(ended, /*moved=*/false).ok());
  EXPECT_EQ(snapshot.Render(expose::Format::kText004, kNow).find("fleetwatch_run_gpu_idle_ratio{"),
            std::string::npos);
}

// What another writer (a second replica's ledger on the same store) charged shows at the first
// refresh told so, not only after a metrics interval; untold, nothing is read.
TEST_F(GpuLedgerStore, AnotherWritersChargesShowWhenTheRefreshIsToldTheyMoved) {
  expose::ExpositionSnapshot snapshot;
  GpuLedger shown(*store_, &snapshot, kOptions);
  GpuLedger other(*store_, nullptr, kOptions);
  auto readings = [] { return std::vector{Reading(0, 90, 1), Reading(1, 1, 0)}; };
  ASSERT_TRUE(shown.Refresh(Report(kNow, {}), false).ok());
  ASSERT_TRUE(other.Account(Report(kNow, readings())).ok());
  ASSERT_TRUE(other.Account(Report(kNow + 5 * kSecond, readings())).ok());
  const std::string busy =
      R"(fleetwatch_gpu_state_seconds_total{dstack_project_name="main",dstack_fleet_name="gpus",)"
      R"(dstack_instance_name="gpus-0",dstack_gpu="H100",gpu="0",state="busy"} )";
  ASSERT_TRUE(shown.Refresh(Report(kNow + 1 * kSecond, {}), false).ok());
  EXPECT_EQ(snapshot.Render(expose::Format::kText004, kNow).find(busy + "5.0"), std::string::npos);
  ASSERT_TRUE(shown.Refresh(Report(kNow + 2 * kSecond, {}), true).ok());
  const std::string text = snapshot.Render(expose::Format::kText004, kNow);
  EXPECT_NE(text.find(busy + "5.0"), std::string::npos) << text;
}

// 600 simulated seconds at the metrics interval on a fake clock, the server restarted halfway (a
// new store and ledger on the same SQLite file). The instance ($7.2/h, 4 GPUs) holds one job on
// GPUs 0, 1 and 3: GPU 0 busy throughout, GPU 1 idle_held (memory in use) for the first half and
// reserved_idle (no memory in use) for the second, GPU 2 free (held by no job), GPU 3 unhealthy
// through the ledger's unhealthy hook. Price rule (GpuLedgerCharges): the job pays the
// instance's price while it runs, shared equally by the GPUs it holds, so a held GPU here costs
// $7.2/h / 3 = $2.4/h.
TEST(GpuLedgerSimulation, SixHundredSecondsOfFourGpusInEveryStateAcrossARestart) {
  constexpr TimeMicros kInterval = 10 * kSecond;
  constexpr double kWall = 600;
  constexpr int kGpus = 4;
  constexpr double kGpuPricePerHour = 7.2 / 3;
  testing::TempDir dir;
  const std::string path = (dir.path() / "db").string();
  FakeClock clock(kNow);
  auto tick = [&](TimeMicros now) {
    const bool first_half = now - kNow <= 300 * kSecond;
    TickReport report =
        Report(now, {Reading(0, 90, 1 << 30), Reading(1, 1, first_half ? 1 << 30 : 0),
                     Reading(2, 0, 0), Reading(3, 90, 1 << 30)});
    model::Run run = report.runs[0];
    run.jobs[0].gpu_indices = {0, 1, 3};
    report.runs = std::vector<model::Run>{run};
    return report;
  };
  auto unhealthy = [](std::string_view, const model::GpuReading& r) { return r.index == 3; };
  // Every state's total over all GPUs, and the idle dollars, as the store has them.
  struct Totals {
    std::array<double, store::kGpuStateCount> seconds{};
    double idle_seconds = 0;
    double idle_dollars = 0;
  };
  auto read = [](store::Store& s) {
    Totals t;
    const std::vector<store::GpuLedgerEntry> ledger = s.ListGpuLedger().value();
    for (const store::GpuLedgerEntry& e : ledger) {
      for (size_t k = 0; k < t.seconds.size(); ++k) t.seconds[k] += e.state_seconds[k];
    }
    const auto idle = s.ListGpuIdleTotals().value();
    for (const auto& i : idle) {
      t.idle_seconds += i.idle_seconds;
      t.idle_dollars += i.idle_cost_dollars;
    }
    return t;
  };
  auto expect_no_decrease = [](const Totals& before, const Totals& after, TimeMicros at) {
    for (size_t k = 0; k < before.seconds.size(); ++k) {
      EXPECT_GE(after.seconds[k], before.seconds[k]) << "state " << k << " at " << at;
    }
    EXPECT_GE(after.idle_seconds, before.idle_seconds) << at;
    EXPECT_GE(after.idle_dollars, before.idle_dollars) << at;
  };

  Totals last;
  for (int life = 0; life < 2; ++life) {
    std::unique_ptr<store::Store> store = std::move(store::OpenSqliteStore(path)).value();
    GpuLedger ledger(*store, nullptr, kOptions);
    ledger.SetUnhealthyCheck(unhealthy);
    const Totals reopened = read(*store);
    expect_no_decrease(last, reopened, clock.Now());
    // The first life runs 0..300 s; the second repeats the tick at 300 s (counted once) and goes
    // on to 600 s.
    if (life == 1) clock.Set(kNow + 300 * kSecond);
    const TimeMicros end = kNow + (life == 0 ? 300 : 600) * kSecond;
    for (; clock.Now() <= end; clock.Advance(kInterval)) {
      ASSERT_TRUE(ledger.Account(tick(clock.Now())).ok());
      const Totals now = read(*store);
      expect_no_decrease(last, now, clock.Now());
      last = now;
    }
  }

  const std::array<double, store::kGpuStateCount> share = {
      kWall,      // busy: GPU 0
      kWall / 2,  // idle_held: GPU 1, first half
      kWall / 2,  // reserved_idle: GPU 1, second half
      kWall,      // free: GPU 2
      kWall};     // unhealthy: GPU 3
  double sum = 0;
  for (GpuState s : kAllGpuStates) {
    const double got = last.seconds[static_cast<int>(s)];
    std::printf("%s: %.1f s\n", std::string(GpuStateName(s)).c_str(), got);
    EXPECT_NEAR(got, share[static_cast<int>(s)], 0.01 * share[static_cast<int>(s)])
        << GpuStateName(s);
    sum += got;
  }
  EXPECT_NEAR(sum, kGpus * kWall, 0.005 * kGpus * kWall);
  EXPECT_NEAR(last.idle_seconds, kWall, 0.01 * kWall);
  const double expected_dollars = last.idle_seconds * kGpuPricePerHour / 3600;
  EXPECT_NEAR(last.idle_dollars, expected_dollars, 0.005 * expected_dollars);
  EXPECT_NEAR(last.idle_dollars, 0.4, 0.005 * 0.4);  // 600 idle GPU-s at $2.4/h
}

TEST(WasteQuery, BadSinceAndByAreRefusedClearly) {
  EXPECT_EQ(ParseWasteSince("7d").value(), 7 * 86'400 * kSecond);
  EXPECT_EQ(ParseWasteSince("36h").value(), 36 * 3600 * kSecond);
  EXPECT_EQ(ParseWasteSince("2w").value(), 14 * 86'400 * kSecond);
  for (const char* bad : {"", "d", "7", "-7d", "0d", "7x", "7 d", "garbage", "99999999999999w"}) {
    Result<TimeMicros> parsed = ParseWasteSince(bad);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseWasteSince("x").status().message().find("'since'"), std::string::npos);
  EXPECT_EQ(ParseWasteGrouping("user").value(), WasteGrouping::kUser);
  EXPECT_EQ(ParseWasteGrouping("garbage").status().code(), StatusCode::kInvalidArgument);
}

TEST(GroupWaste, SumsRunsPerGroupInNameOrder) {
  std::vector<store::RunGpuTime> runs = {{"r1", "main", "bob", "a", 100, 50, 1},
                                         {"r2", "main", "alice", "b", 100, 10, 2},
                                         {"r3", "main", "bob", "c", 100, 0, 0},
                                         {"r4", "ml", "bob", "d", 10, 10, 4}};
  auto by_project = GroupWaste(runs, WasteGrouping::kProject);
  ASSERT_EQ(by_project.size(), 2u);
  EXPECT_EQ(by_project[0].project_name, "main");
  EXPECT_DOUBLE_EQ(by_project[0].held_seconds, 300);
  EXPECT_DOUBLE_EQ(by_project[0].idle_seconds, 60);
  EXPECT_DOUBLE_EQ(by_project[0].idle_cost_dollars, 3);
  EXPECT_EQ(by_project[0].user_name, "");
  auto by_user = GroupWaste(runs, WasteGrouping::kUser);
  ASSERT_EQ(by_user.size(), 3u);
  EXPECT_EQ(by_user[0].user_name, "alice");
  EXPECT_DOUBLE_EQ(by_user[1].held_seconds, 200);
  EXPECT_EQ(GroupWaste(runs, WasteGrouping::kRun).size(), 4u);
}

}  // namespace
}  // namespace fleetwatch::server
