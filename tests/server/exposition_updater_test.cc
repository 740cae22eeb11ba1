// The server's own /metrics families (spec/METRICS.md), rendered from a real SQLite store with a
// fake clock and compared byte for byte.
#include "server/exposition_updater.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "expose/snapshot.h"
#include "model/run_spec.h"
#include "server/usage.h"
#include "store/sqlite_store.h"
#include "support/process.h"

namespace fleetwatch::server {
namespace {

using fleetwatch::testing::ReadFile;

constexpr TimeMicros kSecond = 1'000'000;
constexpr TimeMicros kNow = 1'700'000'000 * kSecond;
constexpr char kAdminId[] = "00000000-0000-0000-0000-0000000000a1";
constexpr char kAliceId[] = "00000000-0000-0000-0000-0000000000a2";
constexpr char kMainId[] = "00000000-0000-0000-0000-0000000000b1";
constexpr char kMlId[] = "00000000-0000-0000-0000-0000000000b2";

std::string Config(const std::string& yaml) {
  return model::ToJson(*model::ParseRunConfiguration(yaml, model::ConfigFormat::kYaml));
}

model::Job MakeJob(const std::string& id, const std::string& run, int job_num,
                   model::JobStatus status) {
  model::Job job;
  job.id = id;
  job.job_name = run + "-" + std::to_string(job_num) + "-0";
  job.job_num = job_num;
  job.status = status;
  job.submitted_at = kNow - 600 * kSecond;
  return job;
}

model::JobMetricsPoint Point(const std::string& job, TimeMicros t, int64_t cpu_micro,
                             std::vector<int64_t> util = {}, std::vector<int64_t> memory = {}) {
  model::JobMetricsPoint p;
  p.job_id = job;
  p.timestamp_micro = t;
  p.cpu_usage_micro = cpu_micro;
  p.memory_usage_bytes = 3 << 20;
  p.memory_working_set_bytes = 2 << 20;
  p.gpus_util_percent = std::move(util);
  p.gpus_memory_usage_bytes = std::move(memory);
  return p;
}

class ExpositionUpdaterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
    ASSERT_TRUE(store_
                    ->Bootstrap({kAdminId, "admin", model::GlobalRole::kAdmin, 0}, "h1",
                                {kMainId, "main", kAdminId, 0})
                    .ok());
    ASSERT_TRUE(store_->CreateUser({kAliceId, "alice", model::GlobalRole::kUser, 0}, "h2").ok());
    ASSERT_TRUE(store_->CreateProject({kMlId, "ml", kAliceId, 0}).ok());

    // main/gpus: gpus-0 idle with 2 GPUs, created an hour ago; gpus-1 still pending.
    model::Fleet gpus{"f-gpus", kMainId, "main", "gpus", model::FleetStatus::kActive, "{}", 0};
    model::Instance g0 = Instance("i-g0", kMainId, gpus, 0, model::InstanceStatus::kIdle);
    g0.price = 2.5;
    g0.resources = {64,
                    int64_t{512} << 30,
                    {{0, "NVIDIA A100-SXM4-80GB", "GPU-0", int64_t{80} << 30, "nvidia"},
                     {1, "NVIDIA A100-SXM4-80GB", "GPU-1", int64_t{80} << 30, "nvidia"}}};
    g0.created_at = kNow - 3600 * kSecond;
    model::Instance g1 = Instance("i-g1", kMainId, gpus, 1, model::InstanceStatus::kPending);
    ASSERT_TRUE(store_->CreateFleet(gpus, {g0, g1}).ok());
    // ml/cpu: a busy CPU host without price; name with a quote to see escaping.
    model::Fleet cpu{"f-cpu", kMlId, "ml", "cpu", model::FleetStatus::kActive, "{}", 0};
    model::Instance c0 = Instance("i-c0", kMlId, cpu, 0, model::InstanceStatus::kBusy);
    c0.resources = {8, int64_t{16} << 30, {}};
    c0.created_at = kNow - 90 * kSecond;
    c0.unreachable = true;  // its agent has been silent for longer than the grace period
    ASSERT_TRUE(store_->CreateFleet(cpu, {c0}).ok());
    for (model::Instance* i : {&g0, &g1, &c0}) {
      i->project_name = i == &c0 ? "ml" : "main";
      ASSERT_TRUE(store_->UpdateInstance(*i).ok());
    }

    // main/admin: `train` runs on gpus-0 (GPU 1 then 0) with two points and a terminating
    // second node; `prep` has a provisioning, a pulling and an aborted job; `stale` has only an
    // old point; `queued` waits; `old` is done; `gone` failed and was deleted.
    model::Run train = Run("r-train", kMainId, kAdminId, "train", model::RunStatus::kRunning,
                           "type: task\ncommands: [x]\nresources: {cpu: 4, gpu: 2}\n");
    model::Job t0 = MakeJob("j-t0", "train", 0, model::JobStatus::kRunning);
    t0.started_at = kNow - 300 * kSecond;
    t0.instance_id = "i-g0";
    t0.instance_name = "gpus-0";
    t0.gpu_indices = {1, 0};
    model::Job t1 = MakeJob("j-t1", "train", 1, model::JobStatus::kTerminating);
    train.jobs = {t0, t1};
    model::Run prep = Run("r-prep", kMainId, kAdminId, "prep", model::RunStatus::kProvisioning,
                          "type: service\nport: 80\ncommands: [x]\nresources: {memory: 1GB}\n");
    prep.jobs = {MakeJob("j-p0", "prep", 0, model::JobStatus::kProvisioning),
                 MakeJob("j-p1", "prep", 1, model::JobStatus::kPulling),
                 MakeJob("j-p2", "prep", 2, model::JobStatus::kAborted)};
    model::Run stale = Run("r-stale", kMainId, kAdminId, "stale", model::RunStatus::kRunning,
                           "type: task\ncommands: [x]\n");
    stale.jobs = {MakeJob("j-s0", "stale", 0, model::JobStatus::kRunning)};
    model::Run queued = Run("r-queued", kMainId, kAdminId, "queued", model::RunStatus::kSubmitted,
                            "type: task\ncommands: [x]\n");
    queued.jobs = {MakeJob("j-q0", "queued", 0, model::JobStatus::kSubmitted)};
    model::Run old = Run("r-old", kMainId, kAdminId, "old", model::RunStatus::kDone,
                         "type: task\ncommands: [x]\n");
    old.jobs = {MakeJob("j-o0", "old", 0, model::JobStatus::kDone)};
    model::Run gone = Run("r-gone", kMainId, kAdminId, "gone", model::RunStatus::kFailed,
                          "type: task\ncommands: [x]\n");
    gone.jobs = {MakeJob("j-g0", "gone", 0, model::JobStatus::kFailed)};
    // ml/alice: one stopped run only, so her failed and done counters are 0.0.
    model::Run stopped = Run("r-stopped", kMlId, kAliceId, "stopped", model::RunStatus::kTerminated,
                             "type: task\ncommands: [x]\n");
    stopped.jobs = {MakeJob("j-x0", "stopped", 0, model::JobStatus::kTerminated)};
    for (const model::Run* r : {&train, &prep, &stale, &queued, &old, &gone, &stopped}) {
      ASSERT_TRUE(store_->CreateRun(*r).ok()) << r->run_name;
    }
    ASSERT_TRUE(store_->DeleteRun("r-gone").ok());

    ASSERT_TRUE(store_
                    ->AddJobMetricsPoints({
                        // Older point of j-t0: must not show.
                        Point("j-t0", kNow - 12 * kSecond, 1'000'000, {10, 20},
                              {int64_t{1} << 30, int64_t{2} << 30}),
                        Point("j-t0", kNow - 2 * kSecond, 12'500'000, {80, 45},
                              {int64_t{5} << 30, int64_t{6} << 30}),
                        // 31 s old with a 10 s interval: stale.
                        Point("j-s0", kNow - 31 * kSecond, 7'000'000),
                    })
                    .ok());
    options_.stale_after = 30 * kSecond;
    options_.version = "1.2.3";
    options_.revision = "0123456789ab";
    updater_ = std::make_unique<ExpositionUpdater>(*store_, clock_, snapshot_, &replica_, options_);
  }

  static model::Instance Instance(const std::string& id, const std::string& project_id,
                                  const model::Fleet& fleet, int num,
                                  model::InstanceStatus status) {
    model::Instance i;
    i.id = id;
    i.project_id = project_id;
    i.fleet_id = fleet.id;
    i.fleet_name = fleet.name;
    i.name = fleet.name + "-" + std::to_string(num);
    i.instance_num = num;
    i.status = status;
    i.backend = "remote";
    i.hostname = "10.0.0." + std::to_string(num);
    i.agent_port = 10999;
    i.created_at = kNow;
    return i;
  }

  static model::Run Run(const std::string& id, const std::string& project_id,
                        const std::string& user_id, const std::string& name,
                        model::RunStatus status, const std::string& yaml) {
    model::Run run;
    run.id = id;
    run.project_id = project_id;
    run.user_id = user_id;
    run.run_name = name;
    run.status = status;
    run.submitted_at = kNow - 600 * kSecond;
    run.configuration_json = Config(yaml);
    Result<model::RunConfiguration> config =
        model::ParseRunConfiguration(yaml, model::ConfigFormat::kYaml);
    run.type = config->type;
    if (model::IsFinished(status)) run.finished_at = kNow - 60 * kSecond;
    return run;
  }

  std::string Scrape(uint64_t poll_errors = 0) {
    TickReport report;
    if (poll_errors > 0) report.bad_replies["i-g0"] = poll_errors;
    return Scrape(std::move(report));
  }
  // Updates from `report` with the instances and unfinished runs a tick would have read.
  Status Update(TickReport report) {
    Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    report.instances = std::move(stored->instances);
    report.runs = std::move(stored->runs);
    return updater_->Update(report);
  }
  std::string Scrape(TickReport report) {
    EXPECT_TRUE(Update(std::move(report)).ok());
    return snapshot_.Render(expose::Format::kText004, clock_.Now());
  }
  // GET /metrics/replica's body as of now.
  std::string ScrapeReplica() { return replica_.Render(expose::Format::kText004, clock_.Now()); }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  FakeClock clock_{kNow};
  ExpositionOptions options_;
  expose::ExpositionSnapshot snapshot_;
  expose::ExpositionSnapshot replica_;
  std::unique_ptr<ExpositionUpdater> updater_;
};

// dcgm-exporter's text for gpus-0: its two GPUs and one the host does not report to us (a
// hostile label value included), with an OpenMetrics-style timestamp on one sample.
DcgmReport HostDcgm(TimeMicros collected_at, std::string text = {}) {
  if (text.empty()) {
    text =
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-0\",device=\"nvidia0\","
        "modelName=\"NVIDIA A100-SXM4-80GB\",Hostname=\"node-1\"} 81\n"
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-1\",device=\"nvidia1\","
        "modelName=\"NVIDIA A100-SXM4-80GB\",Hostname=\"node-1\"} 44\n"
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"2\",UUID=\"GPU-9\",device=\"nvidia2\","
        "modelName=\"x\\\"}\\n\",Hostname=\"node-1\"} 99\n"
        "# HELP DCGM_FI_PROF_PCIE_TX_BYTES Total number of bytes transmitted through PCIe TX\n"
        "# TYPE DCGM_FI_PROF_PCIE_TX_BYTES counter\n"
        "DCGM_FI_PROF_PCIE_TX_BYTES{gpu=\"1\",UUID=\"GPU-1\",hostname=\"node-1\","
        "dstack_run_name=\"spoofed\"} 123456 1699999990000\n";
  }
  AgentDcgm dcgm;
  dcgm.collected_at = collected_at;
  dcgm.text = std::move(text);
  return DcgmReport{"i-g0", std::move(dcgm)};
}

// Inputs of a tick with everything the controller can hand over: a DCGM text, a run placed
// 42 s after submission and one left waiting.
TickReport FullInputs(uint64_t poll_errors) {
  TickReport inputs;
  if (poll_errors > 0) inputs.bad_replies["i-g0"] = poll_errors;
  inputs.dcgm.push_back(HostDcgm(kNow - 5 * kSecond));
  inputs.run_events.provisioned.push_back({"r-train", "main", model::RunType::kTask, 42.0});
  inputs.run_events.provisioned.push_back({"r-stale", "main", model::RunType::kTask, 15.0});
  inputs.run_events.provisioned.push_back({"r-prep", "main", model::RunType::kService, 4000.0});
  inputs.run_events.pending.push_back({"r-queued", "main", model::RunType::kTask});
  return inputs;
}

// Instance gpus-0 created an hour ago → 3600.0; pending gpus-1 only in dstack_instance_status;
// admin's deleted failed run still counted, alice's zeros printed as 0.0; submitted and aborted
// jobs left out, provisioning, pulling, running and terminating ones in; j-t0's newest point only
// (12.5 s of CPU, not 1.0), per GPU with dstack_gpu_num; j-s0's 31 s old point dropped; DCGM
// samples of j-t0's two GPUs only, with the job labels appended (the spoofed one overwritten in
// place); j-t0's 300 s on a $2.50/h host with 2 GPUs accounted; the provisioning histogram with
// buckets at the boundary (15 s is in le="15.0").
// UPDATE_GOLDEN=1 rewrites the file (review the diff).
TEST_F(ExpositionUpdaterTest, GoldenExposition) {
  const std::filesystem::path golden =
      std::filesystem::path(FLEETWATCH_SOURCE_DIR) / "tests/server/testdata/exposition_golden.txt";
  UsageAccountant usage(*store_, clock_);
  ASSERT_TRUE(usage.Account().ok());
  std::string scraped = Scrape(FullInputs(3));
  if (std::getenv("UPDATE_GOLDEN") != nullptr) std::ofstream(golden, std::ios::binary) << scraped;
  EXPECT_EQ(scraped, ReadFile(golden));
}

// Prometheus' own parser accepts the whole exposition; its linter finds nothing in the families
// fleetwatch introduced (dstack's `_count` gauges and DCGM's camelCase labels keep theirs).
TEST_F(ExpositionUpdaterTest, PromtoolParsesItAndLintsOnlyInheritedNames) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool"))
      << "promtool missing: scripts/install-deps.sh installs Debian's prometheus";
  UsageAccountant usage(*store_, clock_);
  ASSERT_TRUE(usage.Account().ok());
  std::string scraped = Scrape(FullInputs(3));
  testing::ProcessResult check =
      testing::RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, scraped);
  const std::string report = check.out + check.err;
  EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 3) << report;  // 3: lint findings only
  std::istringstream lines(report);
  std::string line;
  const std::set<std::string> inherited = {"dstack_instance_gpu_count", "dstack_job_gpu_count",
                                           "dstack_job_cpu_count", "DCGM_FI_DEV_GPU_UTIL",
                                           "DCGM_FI_PROF_PCIE_TX_BYTES"};
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    EXPECT_TRUE(inherited.contains(line.substr(0, line.find(' ')))) << line;
  }
}

TEST_F(ExpositionUpdaterTest, TimeMovesDurationsAndStalenessWithTheClock) {
  Scrape();
  clock_.Advance(60 * kSecond);
  std::string later = Scrape();
  EXPECT_NE(later.find("dstack_instance_name=\"gpus-0\",dstack_instance_id=\"i-g0\","
                       "dstack_instance_type=\"instance\",dstack_backend=\"remote\","
                       "dstack_gpu=\"A100\"} 3660.0\n"),
            std::string::npos)
      << later;
  // j-t0's newest point is now 62 s old: its point families are gone, the others stay.
  EXPECT_EQ(later.find("dstack_job_cpu_time_seconds_total"), std::string::npos) << later;
  EXPECT_EQ(later.find("dstack_job_gpu_usage_ratio"), std::string::npos) << later;
  EXPECT_NE(later.find("dstack_job_gpu_count{"), std::string::npos) << later;
}

TEST_F(ExpositionUpdaterTest, RunCountersSurviveDeletion) {
  const std::string total =
      "dstack_run_count_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} ";
  const std::string done =
      "dstack_run_count_done_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} ";
  std::string before = Scrape();
  EXPECT_NE(before.find(total + "6.0\n"), std::string::npos) << before;
  ASSERT_TRUE(store_->DeleteRun("r-old").ok());
  std::string after = Scrape();
  EXPECT_NE(after.find(total + "6.0\n"), std::string::npos) << after;
  EXPECT_NE(after.find(done + "1.0\n"), std::string::npos) << after;
  EXPECT_NE(after.find("dstack_runs{dstack_project_name=\"main\",status=\"done\"} 0.0\n"),
            std::string::npos)
      << after;
}

TEST_F(ExpositionUpdaterTest, AnUnchangedStateLeavesTheSnapshotVersionAlone) {
  Scrape();
  const uint64_t version = snapshot_.version();
  const uint64_t replica_version = replica_.version();
  clock_.Advance(kSecond);  // the durations move, evaluated by the scrape
  Scrape();
  EXPECT_EQ(snapshot_.version(), version);
  EXPECT_EQ(replica_.version(), replica_version);
  Scrape(1);  // only this replica's poll error counter moved
  EXPECT_EQ(snapshot_.version(), version);
  EXPECT_EQ(replica_.version(), replica_version + 1);
}

// What one process saw itself is served on /metrics/replica, never on /metrics.
TEST_F(ExpositionUpdaterTest, PollErrorsAndTheReplicaGoToTheReplicaSnapshotOnly) {
  const std::string fleet = Scrape(FullInputs(3));
  EXPECT_EQ(fleet.find("fleetwatch_agent_poll_errors_total"), std::string::npos) << fleet;
  EXPECT_EQ(fleet.find("fleetwatch_dcgm_"), std::string::npos) << fleet;
  EXPECT_EQ(fleet.find("fleetwatch_replica_info"), std::string::npos) << fleet;
  const std::string own = ScrapeReplica();
  EXPECT_NE(own.find("fleetwatch_agent_poll_errors_total{dstack_project_name=\"main\","
                     "dstack_fleet_name=\"gpus\",dstack_instance_name=\"gpus-0\"} 3.0\n"),
            std::string::npos)
      << own;
  EXPECT_NE(own.find("fleetwatch_replica_info{replica_id=\"\",version=\"1.2.3\","
                     "revision=\"0123456789ab\"} 1.0\n"),
            std::string::npos)
      << own;
  EXPECT_NE(own.find("fleetwatch_dcgm_text_errors_total 0.0\n"), std::string::npos) << own;
}

// Two replicas on one database, updated at different moments (and one of them restarted), render
// the same /metrics for the same scrape time: the durations are evaluated by the scrape from the
// stored anchors, the counters come from the database.
TEST_F(ExpositionUpdaterTest, TwoReplicasUpdatedAtDifferentMomentsRenderTheSameMetrics) {
  UsageAccountant usage(*store_, clock_);
  ASSERT_TRUE(usage.Account().ok());
  TickReport inputs = FullInputs(3);
  inputs.dcgm.clear();  // the hosts' DCGM texts reach every replica from the database (elsewhere)
  ASSERT_TRUE(Update(std::move(inputs)).ok());

  clock_.Advance(700'000);  // 0.7 s later, the other replica's tick: it saw one event too
  expose::ExpositionSnapshot other_snapshot;
  expose::ExpositionSnapshot other_replica;
  ExpositionOptions other_options = options_;
  other_options.replica_id = "replica-b";
  ExpositionUpdater other(*store_, clock_, other_snapshot, &other_replica, other_options);
  Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
  ASSERT_TRUE(stored.ok());
  stored->run_events.pending.push_back({"r-queued", "main", model::RunType::kTask});
  ASSERT_TRUE(other.Update(*stored).ok());

  for (const TimeMicros later :
       {TimeMicros{0}, TimeMicros{300000}, 5 * kSecond + 1, 3600 * kSecond}) {
    const TimeMicros at = clock_.Now() + later;
    const std::string mine = snapshot_.Render(expose::Format::kText004, at);
    EXPECT_EQ(mine, other_snapshot.Render(expose::Format::kText004, at));
    EXPECT_EQ(mine, snapshot_.Render(expose::Format::kText004, at));  // cached: the same
  }
  // The wait the other replica saw again counted once; its own figures stay its own.
  const std::string text = other_snapshot.Render(expose::Format::kText004, clock_.Now());
  EXPECT_NE(text.find("dstack_pending_runs_total{project_name=\"main\",run_type=\"task\"} 1.0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(ScrapeReplica().find("gpus-0\"} 3.0\n"), std::string::npos);
  const std::string others = other_replica.Render(expose::Format::kText004, clock_.Now());
  EXPECT_NE(others.find("gpus-0\"} 0.0\n"), std::string::npos) << others;
  EXPECT_NE(others.find("replica_id=\"replica-b\""), std::string::npos) << others;
}

// A scrape never sees a duration smaller than an earlier scrape's, whichever replica answers,
// and values move by whole time steps.
TEST_F(ExpositionUpdaterTest, DurationsNeverGoBackAcrossReplicasAndSteps) {
  Scrape();
  expose::ExpositionSnapshot other_snapshot;
  clock_.Advance(400'000);
  ExpositionUpdater other(*store_, clock_, other_snapshot, nullptr, options_);
  Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(other.Update(*stored).ok());
  const std::string job = "dstack_gpu=\"A100\"} ";
  double last = 0;
  for (TimeMicros at = kNow; at < kNow + 3 * kSecond; at += 250'000) {
    const expose::ExpositionSnapshot& answering = (at / 250'000) % 2 ? snapshot_ : other_snapshot;
    const std::string text = answering.Render(expose::Format::kText004, at);
    const size_t pos = text.find(job, text.find("dstack_job_duration_seconds_total{"));
    ASSERT_NE(pos, std::string::npos) << text;
    const double value = std::stod(text.substr(pos + job.size()));
    EXPECT_GE(value, last) << at;
    EXPECT_EQ(value, 600.0 + static_cast<double>((at - kNow) / kSecond)) << at;
    last = value;
  }
}

TEST_F(ExpositionUpdaterTest, DcgmSamplesExpireTenMinutesAfterCollection) {
  std::string fresh = Scrape(FullInputs(0));
  EXPECT_NE(fresh.find("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""), std::string::npos) << fresh;
  clock_.Advance(594 * kSecond);  // collected 599 s ago
  EXPECT_NE(Scrape().find("DCGM_FI_DEV_GPU_UTIL{"), std::string::npos);
  clock_.Advance(2 * kSecond);  // 601 s
  std::string expired = Scrape();
  EXPECT_EQ(expired.find("DCGM_"), std::string::npos) << expired;
}

TEST_F(ExpositionUpdaterTest, TextThatDoesNotParseLosesOnlyThatHostsDcgmAndIsCounted) {
  Scrape(FullInputs(0));
  TickReport bad;
  bad.dcgm.push_back(HostDcgm(kNow, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-0\" 81\n"));
  std::string after = Scrape(std::move(bad));
  EXPECT_EQ(after.find("DCGM_"), std::string::npos) << after;
  EXPECT_NE(ScrapeReplica().find("fleetwatch_dcgm_text_errors_total 1.0\n"), std::string::npos);
  // The rest of the scrape is intact.
  EXPECT_NE(after.find("dstack_job_gpu_usage_ratio{"), std::string::npos) << after;
  // The next good text brings them back.
  TickReport good;
  good.dcgm.push_back(HostDcgm(kNow));
  EXPECT_NE(Scrape(std::move(good)).find("DCGM_FI_DEV_GPU_UTIL{"), std::string::npos);
}

// A host's text may not add a family beside the server's that a strict OpenMetrics parser would
// see twice (`fleetwatch_agent_poll_errors` after `_total` is stripped), nor any non-DCGM family.
TEST_F(ExpositionUpdaterTest, DcgmFamiliesOutsideDcgmOrNamedLikeTheServersAreDroppedAndCounted) {
  Scrape(FullInputs(0));
  TickReport hostile;
  DcgmReport report = HostDcgm(kNow);
  report.dcgm.text +=
      "# TYPE fleetwatch_agent_poll_errors gauge\n"
      "fleetwatch_agent_poll_errors{UUID=\"GPU-0\"} 7\n"
      "# TYPE node_cpu_seconds_total counter\n"
      "node_cpu_seconds_total{UUID=\"GPU-0\"} 7\n";
  hostile.dcgm.push_back(std::move(report));
  ASSERT_TRUE(Update(std::move(hostile)).ok());
  const std::string text = snapshot_.Render(expose::Format::kText004, clock_.Now());
  EXPECT_EQ(text.find("fleetwatch_agent_poll_errors{"), std::string::npos) << text;
  EXPECT_EQ(text.find("node_cpu_seconds"), std::string::npos) << text;
  EXPECT_NE(text.find("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""), std::string::npos) << text;
  EXPECT_NE(ScrapeReplica().find("fleetwatch_dcgm_families_dropped_total 2.0\n"),
            std::string::npos);

  // An independent strict parser (python3-prometheus-client) reads the OpenMetrics body.
  const std::string openmetrics = snapshot_.Render(expose::Format::kOpenMetrics100, clock_.Now());
  testing::ProcessResult parsed =
      testing::RunProcess("/usr/bin/python3",
                          {(std::filesystem::path(FLEETWATCH_SOURCE_DIR) /
                            "tests/integration/tools/parse_exposition.py")
                               .string(),
                           "openmetrics"},
                          {}, openmetrics);
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err << "\n" << openmetrics;
}

TEST_F(ExpositionUpdaterTest, AnAgentErrorKeepsTheLastTextUntilItExpires) {
  Scrape(FullInputs(0));
  TickReport down;
  AgentDcgm error;
  error.error = "dcgm-exporter at 127.0.0.1:10997: connection refused";
  down.dcgm.push_back({"i-g0", error});
  std::string after = Scrape(std::move(down));
  EXPECT_NE(after.find("DCGM_FI_DEV_GPU_UTIL{"), std::string::npos) << after;
  EXPECT_NE(ScrapeReplica().find("fleetwatch_dcgm_text_errors_total 0.0\n"), std::string::npos);
}

TEST_F(ExpositionUpdaterTest, AJobThatEndsLosesItsDcgmSamples) {
  Scrape(FullInputs(0));
  Result<model::Run> train = store_->GetRunById("r-train");
  ASSERT_TRUE(train.ok());
  train->status = model::RunStatus::kDone;
  train->finished_at = kNow;
  for (model::Job& job : train->jobs) {
    job.status = model::JobStatus::kDone;
    job.finished_at = kNow;
  }
  ASSERT_TRUE(store_->UpdateRun(*train).ok());
  std::string after = Scrape();
  EXPECT_EQ(after.find("DCGM_"), std::string::npos) << after;
}

// The updater keeps what a job's DCGM samples are relabeled with (its labels, its GPUs' UUIDs,
// which jobs are on which host) between texts. After each change below, an updater that has seen
// every earlier state renders exactly what a new one renders from the same state and text.
class DcgmKeptStateTest : public ExpositionUpdaterTest {
 protected:
  // Both formats, from `updater` and from a new updater, after each took `dcgm` with the stored
  // state.
  void ExpectSameAsANewUpdater(std::vector<DcgmReport> dcgm) {
    clock_.Advance(kSecond);
    TickReport report;
    report.dcgm = dcgm;
    ASSERT_TRUE(Update(std::move(report)).ok());
    expose::ExpositionSnapshot snapshot;
    expose::ExpositionSnapshot replica;
    ExpositionUpdater fresh(*store_, clock_, snapshot, &replica, options_);
    Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
    ASSERT_TRUE(stored.ok());
    stored->dcgm = std::move(dcgm);
    ASSERT_TRUE(fresh.Update(*stored).ok());
    for (expose::Format format : {expose::Format::kText004, expose::Format::kOpenMetrics100}) {
      EXPECT_EQ(snapshot_.Render(format, clock_.Now()), snapshot.Render(format, clock_.Now()));
    }
  }
  // The DCGM lines of the scrape that carry `job_id`'s labels.
  std::string DcgmLinesOf(const std::string& job_id) {
    std::istringstream text(snapshot_.Render(expose::Format::kText004, clock_.Now()));
    std::string lines;
    for (std::string line; std::getline(text, line);) {
      if (line.starts_with("DCGM_") &&
          line.find("dstack_job_id=\"" + job_id + "\"") != std::string::npos) {
        lines += line + "\n";
      }
    }
    return lines;
  }
  void UpdateJob(const std::string& run_id, const std::string& job_id,
                 const std::function<void(model::Job&)>& change) {
    Result<model::Run> run = store_->GetRunById(run_id);
    ASSERT_TRUE(run.ok());
    for (model::Job& job : run->jobs) {
      if (job.id == job_id) change(job);
    }
    ASSERT_TRUE(store_->UpdateRun(*run).ok());
  }
  void UpdateInstance(const std::string& id, const std::function<void(model::Instance&)>& change) {
    Result<std::vector<model::Instance>> instances = store_->ListInstances("");
    ASSERT_TRUE(instances.ok());
    for (model::Instance& i : *instances) {
      if (i.id != id) continue;
      change(i);
      ASSERT_TRUE(store_->UpdateInstance(i).ok());
    }
  }
};

TEST_F(DcgmKeptStateTest, AGpuChangingOwnerMovesItsSamples) {
  Scrape(FullInputs(0));
  ASSERT_NE(DcgmLinesOf("j-t0").find("UUID=\"GPU-0\""), std::string::npos);
  // j-t0 gives GPU 0 up; prep's first job starts on it.
  UpdateJob("r-train", "j-t0", [](model::Job& job) { job.gpu_indices = {1}; });
  UpdateJob("r-prep", "j-p0", [](model::Job& job) {
    job.status = model::JobStatus::kRunning;
    job.instance_id = "i-g0";
    job.gpu_indices = {0};
  });
  ExpectSameAsANewUpdater({HostDcgm(kNow)});
  EXPECT_EQ(DcgmLinesOf("j-t0").find("UUID=\"GPU-0\""), std::string::npos);
  EXPECT_NE(DcgmLinesOf("j-t0").find("UUID=\"GPU-1\""), std::string::npos);
  EXPECT_NE(DcgmLinesOf("j-p0").find("UUID=\"GPU-0\""), std::string::npos);
}

TEST_F(DcgmKeptStateTest, AnInstanceReportingOtherGpusOrLabelsRelabelsTheNextText) {
  Scrape(FullInputs(0));
  // The host's GPU 1 (j-t0's first) is now the one the text calls GPU-9, an H100: the job's
  // dstack_gpu label changes too.
  UpdateInstance("i-g0", [](model::Instance& i) {
    i.resources.gpus[1].uuid = "GPU-9";
    i.resources.gpus[1].name = "NVIDIA H100 80GB HBM3";
  });
  ExpectSameAsANewUpdater({HostDcgm(kNow)});
  const std::string lines = DcgmLinesOf("j-t0");
  EXPECT_NE(lines.find("UUID=\"GPU-9\""), std::string::npos) << lines;
  EXPECT_EQ(lines.find("UUID=\"GPU-1\""), std::string::npos) << lines;
  EXPECT_EQ(lines.find("dstack_gpu=\"A100\""), std::string::npos) << lines;
  EXPECT_NE(lines.find("dstack_gpu=\"H100\""), std::string::npos) << lines;
}

TEST_F(DcgmKeptStateTest, AJobMovingToAnotherHostTakesTheOtherHostsSamples) {
  Scrape(FullInputs(0));
  // gpus-1 comes up with GPUs of its own; j-t0 moves there.
  UpdateInstance("i-g1", [](model::Instance& i) {
    i.status = model::InstanceStatus::kBusy;
    i.resources = {8, int64_t{64} << 30, {{0, "NVIDIA H100 80GB HBM3", "GPU-b0", 1, "nvidia"}}};
  });
  UpdateJob("r-train", "j-t0", [](model::Job& job) {
    job.instance_id = "i-g1";
    job.gpu_indices = {0};
  });
  DcgmReport other =
      HostDcgm(kNow, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-b0\",Hostname=\"node-2\"} 12\n");
  other.instance_id = "i-g1";
  ExpectSameAsANewUpdater({HostDcgm(kNow), other});
  EXPECT_EQ(DcgmLinesOf("j-t0"),
            "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-b0\",Hostname=\"node-2\","
            "dstack_project_name=\"main\",dstack_user_name=\"admin\",dstack_run_name=\"train\","
            "dstack_run_id=\"r-train\",dstack_job_name=\"train-0-0\",dstack_job_id=\"j-t0\","
            "dstack_job_num=\"0\",dstack_replica_num=\"0\",dstack_run_type=\"task\","
            "dstack_backend=\"remote\",dstack_gpu=\"H100\"} 12.0\n");
}

TEST_F(DcgmKeptStateTest, AJobNoLongerExportedLosesItsSamplesWithoutANewText) {
  Scrape(FullInputs(0));
  ASSERT_FALSE(DcgmLinesOf("j-t0").empty());
  UpdateJob("r-train", "j-t0", [](model::Job& job) { job.status = model::JobStatus::kSubmitted; });
  clock_.Advance(kSecond);
  Scrape();
  EXPECT_EQ(DcgmLinesOf("j-t0"), "");
  // Running again, it takes the next text.
  UpdateJob("r-train", "j-t0", [](model::Job& job) { job.status = model::JobStatus::kRunning; });
  ExpectSameAsANewUpdater({HostDcgm(kNow)});
  EXPECT_NE(DcgmLinesOf("j-t0"), "");
}

TEST_F(DcgmKeptStateTest, AFamilyMissingFromTheNextTextIsGone) {
  Scrape(FullInputs(0));
  ASSERT_NE(DcgmLinesOf("j-t0").find("DCGM_FI_PROF_PCIE_TX_BYTES{"), std::string::npos);
  std::string text = HostDcgm(kNow).dcgm.text;
  text.resize(text.find("# HELP DCGM_FI_PROF_PCIE_TX_BYTES"));
  ExpectSameAsANewUpdater({HostDcgm(kNow, text)});
  const std::string scrape = snapshot_.Render(expose::Format::kText004, clock_.Now());
  EXPECT_EQ(scrape.find("DCGM_FI_PROF_PCIE_TX_BYTES"), std::string::npos) << scrape;
  EXPECT_NE(DcgmLinesOf("j-t0").find("DCGM_FI_DEV_GPU_UTIL{"), std::string::npos);
}

TEST_F(DcgmKeptStateTest, AnInstanceThatGoesAndComesBackGetsItsJobsSamplesAgain) {
  Scrape(FullInputs(0));
  // A report without gpus-0 (a text from it is not applied), then with it again.
  TickReport without;
  without.dcgm.push_back(HostDcgm(kNow));
  Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
  ASSERT_TRUE(stored.ok());
  std::vector<model::Instance> instances = stored->instances.get();
  std::erase_if(instances, [](const model::Instance& i) { return i.id == "i-g0"; });
  without.instances = std::move(instances);
  without.runs = stored->runs;
  clock_.Advance(kSecond);
  ASSERT_TRUE(updater_->Update(without).ok());
  ExpectSameAsANewUpdater({HostDcgm(kNow)});
  EXPECT_NE(DcgmLinesOf("j-t0"), "");
}

TEST_F(ExpositionUpdaterTest, ProjectCostAndGpuTimeGrowAndSurviveTheRunsDeletion) {
  const std::string cost =
      "dstack_project_cost_dollars_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} ";
  const std::string gpu =
      "dstack_project_gpu_seconds_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"} ";
  UsageAccountant usage(*store_, clock_);
  ASSERT_TRUE(usage.Account().ok());
  std::string first = Scrape();
  EXPECT_NE(first.find(gpu + "600.0\n"), std::string::npos) << first;
  clock_.Advance(3600 * kSecond);
  ASSERT_TRUE(usage.Account().ok());
  ASSERT_TRUE(usage.Account().ok());  // nothing more at the same instant
  std::string later = Scrape();
  EXPECT_NE(later.find(cost + "2.7083333333333335\n"), std::string::npos) << later;
  EXPECT_NE(later.find(gpu + "7800.0\n"), std::string::npos) << later;

  // The run ends 10 s later and is deleted: its last 10 s count, then nothing moves.
  Result<model::Run> train = store_->GetRunById("r-train");
  ASSERT_TRUE(train.ok());
  train->status = model::RunStatus::kDone;
  train->finished_at = kNow + 3610 * kSecond;
  for (model::Job& job : train->jobs) {
    job.status = model::JobStatus::kDone;
    job.finished_at = kNow + 3610 * kSecond;
  }
  ASSERT_TRUE(store_->UpdateRun(*train).ok());
  ASSERT_TRUE(store_->DeleteRun("r-train").ok());
  clock_.Advance(7200 * kSecond);
  ASSERT_TRUE(usage.Account().ok());
  ASSERT_TRUE(usage.Account().ok());
  std::string after = Scrape();
  EXPECT_NE(after.find(gpu + "7820.0\n"), std::string::npos) << after;
}

// What the whole-state renderer makes of the store's state: the reference the incremental
// updates must match byte for byte (no DCGM, events or poll errors in these updates).
std::string FullRender(store::Store& store, TimeMicros now, const ExpositionOptions& options) {
  ExpositionState state;
  Result<TickReport> stored = StoredStateReport(store, now);
  EXPECT_TRUE(stored.ok());
  state.instances = stored->instances;
  state.unfinished_runs = stored->runs;
  Result<std::vector<model::JobMetricsPoint>> points = store.ListNewestMetricsOfUnfinishedJobs();
  EXPECT_TRUE(points.ok());
  for (model::JobMetricsPoint& p : *points) state.newest_points[p.job_id] = std::move(p);
  state.run_counts = *store.CountRuns();
  state.usage = *store.ListUsageTotals();
  state.run_events = *store.ListRunEventTotals();
  std::map<std::string, std::string> texts = RenderServerFamilies(state, now, options);
  expose::ExpositionSnapshot snapshot;
  for (const ServerFamily& f : ServerFamilies()) {
    Result<expose::FamilyId> id = snapshot.RegisterFamily(f.section, f.name, f.type, f.help);
    EXPECT_TRUE(id.ok());
    snapshot.SetFragment(*id, "all", expose::Fragment{texts[f.name], {}});
  }
  return snapshot.Render(expose::Format::kText004, now);
}

TEST_F(ExpositionUpdaterTest, AStoredPointChangesItsJobsSamplesOnTheNextUpdate) {
  std::string before = Scrape();
  EXPECT_NE(before.find("dstack_job_cpu_time_seconds_total{dstack_project_name=\"main\","
                        "dstack_user_name=\"admin\",dstack_run_name=\"train\""),
            std::string::npos)
      << before;
  EXPECT_NE(before.find("} 12.5\n"), std::string::npos) << before;
  // The controller stores j-t0's next point and j-p1's first; the report says so.
  clock_.Advance(10 * kSecond);
  const model::JobMetricsPoint t0 =
      Point("j-t0", kNow + 8 * kSecond, 20'250'000, {90, 50}, {int64_t{7} << 30, 0});
  const model::JobMetricsPoint p1 = Point("j-p1", kNow + 9 * kSecond, 1'000'000);
  ASSERT_TRUE(store_->AddJobMetricsPoints({t0, p1}).ok());
  TickReport report;
  report.stored_points = {t0, p1};
  std::string after = Scrape(std::move(report));
  EXPECT_EQ(after.find("} 12.5\n"), std::string::npos) << after;
  EXPECT_NE(
      after.find("dstack_job_name=\"train-0-0\",dstack_job_id=\"j-t0\",dstack_job_num=\"0\","
                 "dstack_replica_num=\"0\",dstack_run_type=\"task\",dstack_backend=\"remote\","
                 "dstack_gpu=\"A100\"} 20.25\n"),
      std::string::npos)
      << after;
  EXPECT_NE(after.find("dstack_job_id=\"j-p1\",dstack_job_num=\"1\",dstack_replica_num=\"0\","
                       "dstack_run_type=\"service\",dstack_backend=\"\",dstack_gpu=\"\"} 1.0\n"),
            std::string::npos)
      << after;
  EXPECT_EQ(after, FullRender(*store_, clock_.Now(), options_));
}

TEST_F(ExpositionUpdaterTest, ARunFinishedThroughTheApiLosesItsSamples) {
  TickReport with_dcgm;
  with_dcgm.dcgm.push_back(HostDcgm(kNow - 5 * kSecond));
  EXPECT_NE(Scrape(std::move(with_dcgm)).find("DCGM_FI_DEV_GPU_UTIL{"), std::string::npos);
  Result<model::Run> train = store_->GetRunById("r-train");
  ASSERT_TRUE(train.ok());
  train->status = model::RunStatus::kTerminated;
  train->finished_at = kNow;
  for (model::Job& job : train->jobs) {
    job.status = model::JobStatus::kTerminated;
    job.finished_at = kNow;
  }
  ASSERT_TRUE(store_->UpdateRun(*train).ok());
  clock_.Advance(kSecond);
  std::string after = Scrape();
  EXPECT_EQ(after.find("dstack_run_name=\"train\""), std::string::npos) << after;
  EXPECT_EQ(after.find("DCGM_"), std::string::npos) << after;
  EXPECT_NE(after.find("dstack_run_name=\"prep\""), std::string::npos) << after;
  EXPECT_EQ(after, FullRender(*store_, clock_.Now(), options_));
}

TEST_F(ExpositionUpdaterTest, DurationsAdvanceWithTheScrapesClockWithoutUpdates) {
  Scrape();
  const uint64_t version = snapshot_.version();
  clock_.Advance(kSecond);
  std::string later = snapshot_.Render(expose::Format::kText004, clock_.Now());
  EXPECT_EQ(snapshot_.version(), version);
  EXPECT_NE(
      later.find("dstack_job_duration_seconds_total{dstack_project_name=\"main\","
                 "dstack_user_name=\"admin\",dstack_run_name=\"train\",dstack_run_id=\"r-train\","
                 "dstack_job_name=\"train-0-0\""),
      std::string::npos)
      << later;
  EXPECT_NE(later.find("dstack_gpu=\"A100\"} 601.0\n"), std::string::npos) << later;
  EXPECT_NE(later.find("dstack_instance_type=\"instance\",dstack_backend=\"remote\","
                       "dstack_gpu=\"A100\"} 3601.0\n"),
            std::string::npos)
      << later;
  EXPECT_EQ(later, FullRender(*store_, clock_.Now(), options_));
}

TEST_F(ExpositionUpdaterTest, ARestartReloadsTheNewestPointsFromTheStore) {
  Scrape();
  const model::JobMetricsPoint t0 = Point("j-t0", kNow + kSecond, 30'000'000, {1, 2}, {3, 4});
  ASSERT_TRUE(store_->AddJobMetricsPoints({t0}).ok());
  TickReport report;
  report.stored_points = {t0};
  Scrape(std::move(report));
  // A new server on the same store: its first update reads the points back.
  expose::ExpositionSnapshot snapshot;
  ExpositionUpdater restarted(*store_, clock_, snapshot, nullptr, options_);
  Result<TickReport> stored = StoredStateReport(*store_, clock_.Now());
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(restarted.Update(*stored).ok());
  const std::string text = snapshot.Render(expose::Format::kText004, clock_.Now());
  EXPECT_NE(text.find("dstack_gpu=\"A100\"} 30.0\n"), std::string::npos) << text;
  EXPECT_EQ(text, snapshot_.Render(expose::Format::kText004, clock_.Now()));
  EXPECT_EQ(text, FullRender(*store_, clock_.Now(), options_));
}

// Changes of every kind, one update each, always rendered as the whole-state renderer would.
TEST_F(ExpositionUpdaterTest, IncrementalUpdatesMatchAWholeRender) {
  EXPECT_EQ(Scrape(), FullRender(*store_, clock_.Now(), options_));
  // An instance's price (its jobs' price too) and reachability.
  Result<std::vector<model::Instance>> instances = store_->ListInstances("");
  ASSERT_TRUE(instances.ok());
  for (model::Instance& i : *instances) {
    if (i.id != "i-g0") continue;
    i.price = 3.0;
    i.unreachable = true;
    ASSERT_TRUE(store_->UpdateInstance(i).ok());
  }
  clock_.Advance(kSecond);
  EXPECT_EQ(Scrape(), FullRender(*store_, clock_.Now(), options_));
  // A job placed and running; another ends.
  Result<model::Run> prep = store_->GetRunById("r-prep");
  ASSERT_TRUE(prep.ok());
  prep->jobs[0].status = model::JobStatus::kRunning;
  prep->jobs[0].instance_id = "i-g0";
  prep->jobs[0].gpu_indices = {0};
  prep->jobs[1].status = model::JobStatus::kFailed;
  prep->jobs[1].finished_at = clock_.Now();
  ASSERT_TRUE(store_->UpdateRun(*prep).ok());
  const model::JobMetricsPoint p0 = Point("j-p0", clock_.Now(), 5'000'000, {7}, {int64_t{1} << 20});
  ASSERT_TRUE(store_->AddJobMetricsPoints({p0}).ok());
  TickReport report;
  report.stored_points = {p0};
  clock_.Advance(kSecond);
  EXPECT_EQ(Scrape(std::move(report)), FullRender(*store_, clock_.Now(), options_));
  // Points turn stale with time alone.
  clock_.Advance(29 * kSecond);
  EXPECT_EQ(Scrape(), FullRender(*store_, clock_.Now(), options_));
  clock_.Advance(2 * kSecond);
  const std::string stale = Scrape();
  EXPECT_EQ(stale.find("dstack_job_cpu_time_seconds_total"), std::string::npos) << stale;
  EXPECT_EQ(stale, FullRender(*store_, clock_.Now(), options_));
  // A new run with its job placed at once; a run deleted.
  model::Run fresh = Run("r-new", kMainId, kAdminId, "new", model::RunStatus::kRunning,
                         "type: task\ncommands: [x]\nresources: {cpu: 2}\n");
  fresh.jobs = {MakeJob("j-n0", "new", 0, model::JobStatus::kPulling)};
  fresh.jobs[0].instance_id = "i-c0";
  ASSERT_TRUE(store_->CreateRun(fresh).ok());
  ASSERT_TRUE(store_->DeleteRun("r-old").ok());
  EXPECT_EQ(Scrape(), FullRender(*store_, clock_.Now(), options_));
}

}  // namespace
}  // namespace fleetwatch::server
