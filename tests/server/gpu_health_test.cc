// GPU health: the catalogue, the classification of canned readings, the monitor's counters and
// exclusions, and the exposition of the health families.
#include "server/gpu_health.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "expose/snapshot.h"
#include "expose/text_format.h"
#include "server/agent_protocol.h"
#include "server/gpu_health_catalogue.h"
#include "server/gpu_health_families.h"
#include "server/placement_reasons.h"
#include "server/scheduler.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kNow = 1'800'000'000'000'000;
constexpr TimeMicros kSecond = 1'000'000;

model::GpuReading Reading(int index) {
  model::GpuReading r;
  r.index = index;
  r.uuid = "GPU-" + std::to_string(index);
  r.util_percent = 50;
  r.power_mw = 300'000;
  r.temperature_c = 60;
  r.throttle_reasons = 0;
  r.xid = model::XidEvents{};
  return r;
}

model::Instance Host(const std::string& name, int gpus) {
  model::Instance i;
  i.id = "id-" + name;
  i.project_name = "main";
  i.fleet_name = "gpus";
  i.name = name;
  i.status = model::InstanceStatus::kIdle;
  i.resources.cpus = 8;
  for (int g = 0; g < gpus; ++g) i.resources.gpus.push_back({g, "NVIDIA H100", "u", 1, "nvidia"});
  return i;
}

InstanceObservation Poll(std::vector<model::GpuReading> gpus, const std::string& agent = "a1") {
  InstanceObservation o;
  o.reached = true;
  o.poll.agent_id = agent;
  o.poll.gpus = std::move(gpus);
  return o;
}

TEST(XidCatalogue, AscendingUniqueAndCoversTheCommonXids) {
  std::set<int64_t> seen;
  int64_t previous = 0;
  for (const XidEntry& e : XidCatalogue()) {
    EXPECT_GT(e.xid, previous);
    previous = e.xid;
    EXPECT_FALSE(std::string(e.meaning).empty()) << e.xid;
    seen.insert(e.xid);
  }
  for (int64_t xid :
       {13, 31, 32, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 119, 120}) {
    EXPECT_TRUE(seen.count(xid)) << xid;
  }
}

TEST(XidCatalogue, ActionsAndHealthOfKnownAndUnknownXids) {
  struct Row {
    int64_t xid;
    XidAction action;
    GpuHealthStatus health;
  };
  const Row rows[] = {
      {13, XidAction::kRestartJob, GpuHealthStatus::kHealthy},
      {31, XidAction::kRestartJob, GpuHealthStatus::kHealthy},
      {43, XidAction::kNone, GpuHealthStatus::kHealthy},
      {48, XidAction::kResetGpu, GpuHealthStatus::kUnhealthy},
      {63, XidAction::kResetGpu, GpuHealthStatus::kDegraded},
      {64, XidAction::kResetGpu, GpuHealthStatus::kUnhealthy},
      {74, XidAction::kResetGpu, GpuHealthStatus::kUnhealthy},
      {79, XidAction::kReboot, GpuHealthStatus::kUnhealthy},
      {92, XidAction::kNone, GpuHealthStatus::kDegraded},
      {94, XidAction::kRestartJob, GpuHealthStatus::kDegraded},
      {95, XidAction::kResetGpu, GpuHealthStatus::kUnhealthy},
      {119, XidAction::kResetGpu, GpuHealthStatus::kUnhealthy},
      {12345, XidAction::kNone, GpuHealthStatus::kDegraded},  // not in the catalogue
  };
  for (const Row& row : rows) {
    const XidEntry e = LookUpXid(row.xid);
    EXPECT_EQ(e.xid, row.xid);
    EXPECT_EQ(e.action, row.action) << row.xid;
    EXPECT_EQ(e.health, row.health) << row.xid;
  }
  EXPECT_STREQ(LookUpXid(79).meaning, "GPU has fallen off the bus");
  EXPECT_STREQ(LookUpXid(12345).meaning, "XID not in the catalogue");
  EXPECT_EQ(ToString(XidAction::kRestartJob), "restart_job");
  EXPECT_EQ(ToString(XidAction::kResetGpu), "reset_gpu");
  EXPECT_EQ(ToString(XidAction::kReplace), "replace");
  EXPECT_EQ(ToString(GpuHealthStatus::kDegraded), "degraded");
}

TEST(ClassifyGpu, CannedReadings) {
  struct Case {
    const char* name;
    model::GpuReading reading;
    GpuHealthStatus status;
    std::string reason;
  };
  std::vector<Case> cases;
  cases.push_back({"plain", Reading(0), GpuHealthStatus::kHealthy, ""});
  {
    model::GpuReading r = Reading(1);
    r.xid->counts = {{13, 4}, {79, 1}};
    r.xid->last = 79;
    r.xid->last_at = kNow;
    cases.push_back({"xid 79 beats an application fault", r, GpuHealthStatus::kUnhealthy,
                     "XID 79 (GPU has fallen off the bus; action reboot)"});
  }
  {
    model::GpuReading r = Reading(0);
    r.xid->counts = {{13, 4}};
    cases.push_back({"application fault only", r, GpuHealthStatus::kHealthy, ""});
  }
  {
    model::GpuReading r = Reading(0);
    r.remapped_rows = model::RemappedRows{0, 0, true, false};
    cases.push_back({"remap pending", r, GpuHealthStatus::kUnhealthy,
                     "row remapping pending (action reset_gpu)"});
  }
  {
    model::GpuReading r = Reading(0);
    r.remapped_rows = model::RemappedRows{3, 9, false, true};
    cases.push_back(
        {"remap failed", r, GpuHealthStatus::kUnhealthy, "row remapping failed (action replace)"});
  }
  {
    model::GpuReading r = Reading(0);
    r.ecc = model::EccCounts{5, 2, 100, 2};
    cases.push_back({"uncorrectable ECC", r, GpuHealthStatus::kDegraded,
                     "2 uncorrectable ECC errors since the driver loaded"});
  }
  {
    model::GpuReading r = Reading(0);
    r.retired_pages = model::RetiredPages{40, 25, false};
    cases.push_back({"retired pages over the RMA line", r, GpuHealthStatus::kUnhealthy,
                     "65 pages retired (action replace)"});
  }
  {
    model::GpuReading r = Reading(0);
    r.nvlink = std::vector<model::NvlinkErrors>{{0, 0, 0, 1, 0}, {3, 0, 2, 0, 0}};
    cases.push_back({"NVLink recoveries", r, GpuHealthStatus::kDegraded, "NVLink 3: 2 recoveries"});
  }
  {
    model::GpuReading r = Reading(0);
    r.throttle_reasons = (1 << 0) | (1 << 2) | (1 << 6);  // idle, power cap, hw thermal
    cases.push_back(
        {"hardware throttle", r, GpuHealthStatus::kDegraded, "throttled: hw_thermal_slowdown"});
  }
  {
    model::GpuReading r;
    r.index = 2;
    r.error = "GPU is lost";
    cases.push_back({"unreadable", r, GpuHealthStatus::kUnhealthy, "cannot be read: GPU is lost"});
  }
  {
    model::GpuReading r = Reading(0);
    r.ras = std::vector<model::RasErrors>{{"umc", 4, 1}};
    cases.push_back({"AMD RAS", r, GpuHealthStatus::kUnhealthy, "RAS umc: 1 uncorrectable error"});
  }
  for (const Case& c : cases) {
    GpuHealth h = ClassifyGpu(c.reading);
    EXPECT_EQ(h.status, c.status) << c.name;
    EXPECT_EQ(h.reason, c.reason) << c.name;
    EXPECT_EQ(h.index, c.reading.index) << c.name;
  }
}

// The reading the agent makes of its AMD RAS fixture (tests/agent/testdata/amd_ras, checked by
// the agent's AmdRasFixtureGivesTheSharedReading), parsed as a poll: the GPU is unhealthy.
TEST(ClassifyGpu, TheAgentsAmdRasReadingIsUnhealthy) {
  std::ifstream in(std::string(FLEETWATCH_SOURCE_DIR) +
                   "/tests/agent/testdata/amd_ras/reading.json");
  std::string reading;
  std::getline(in, reading);
  ASSERT_FALSE(reading.empty());
  Result<AgentPoll> poll =
      ParseAgentPoll(R"({"agent_id":"a1","now":5,"jobs":[],"gpus":[)" + reading + "]}");
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  ASSERT_EQ(poll->gpus->size(), 1u);
  GpuHealth health = ClassifyGpu((*poll->gpus)[0]);
  EXPECT_EQ(health.status, GpuHealthStatus::kUnhealthy);
  EXPECT_EQ(health.reason, "RAS umc: 3 uncorrectable errors");
}

TEST(ClassifyGpu, LongAgentTextIsCutAtACharacterBoundary) {
  model::GpuReading r;
  r.error = std::string(199, 'x') + "\xc3\xa9" + std::string(50, 'y');  // é across byte 200
  GpuHealth h = ClassifyGpu(r);
  EXPECT_EQ(h.reason, "cannot be read: " + std::string(199, 'x') + "...");
}

TEST(ClassifyGpu, AbsentReadingsCountAsNothingWrong) {
  model::GpuReading r;
  r.index = 0;
  EXPECT_EQ(ClassifyGpu(r).status, GpuHealthStatus::kHealthy);
}

TEST(DegradedGpuPolicy, ParsesUseAndAvoidOnly) {
  EXPECT_EQ(*ParseDegradedGpuPolicy("use"), DegradedGpuPolicy::kUse);
  EXPECT_EQ(*ParseDegradedGpuPolicy("avoid"), DegradedGpuPolicy::kAvoid);
  Result<DegradedGpuPolicy> bad = ParseDegradedGpuPolicy("sometimes");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "degraded GPUs policy must be use or avoid");
}

TEST(GpuHealthMonitor, InstanceHealthIsTheWorstGpuAndTheQueryAnswersPerGpu) {
  GpuHealthMonitor monitor;
  model::Instance host = Host("gpus-0", 2);
  model::GpuReading bad = Reading(1);
  bad.xid->counts = {{79, 1}};
  bad.xid->last = 79;
  bad.xid->last_at = kNow - kSecond;
  EXPECT_FALSE(monitor.HealthOf(host.id).has_value());  // nothing known yet
  monitor.Observe({host}, {{host.id, Poll({Reading(0), bad})}}, kNow);
  std::optional<InstanceHealth> health = monitor.HealthOf(host.id);
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, GpuHealthStatus::kUnhealthy);
  EXPECT_EQ(health->reason, "GPU 1: XID 79 (GPU has fallen off the bus; action reboot)");
  EXPECT_EQ(health->last_event, "XID 79 on GPU 1: GPU has fallen off the bus");
  EXPECT_EQ(health->last_event_at, kNow - kSecond);
  EXPECT_FALSE(monitor.IsGpuUnhealthy(host.id, 0));
  EXPECT_TRUE(monitor.IsGpuUnhealthy(host.id, 1));
  EXPECT_FALSE(monitor.IsGpuUnhealthy("other", 1));
  ExcludedGpus excluded = monitor.Excluded();
  ASSERT_EQ(excluded.size(), 1u);
  EXPECT_EQ(excluded[host.id],
            (std::map<int, std::string>{
                {1,
                 "GPU 1 of gpus-0 is unhealthy: XID 79 (GPU has fallen off the bus; action "
                 "reboot)"}}));
}

// XID 79 on GPU 3 of a 4-GPU host, from the monitor to placement: the counter rises, GPU 3 and
// the instance are unhealthy, a run asking for 4 GPUs waits with a reason naming GPU 3, and one
// asking for 3 is placed on GPUs 0-2.
TEST(GpuHealthMonitor, Xid79OnGpu3KeepsFourGpusWaitingAndPlacesThreeOnGpus0To2) {
  GpuHealthMonitor monitor;
  model::Instance host = Host("gpus-0", 4);
  host.resources.memory_bytes = int64_t{64} << 30;
  monitor.Observe({host}, {{host.id, Poll({Reading(0), Reading(1), Reading(2), Reading(3)})}},
                  kNow);
  EXPECT_EQ(monitor.HealthOf(host.id)->status, GpuHealthStatus::kHealthy);
  EXPECT_TRUE(monitor.Excluded().empty());
  model::GpuReading fallen = Reading(3);
  fallen.xid->counts = {{79, 1}};
  fallen.xid->last = 79;
  fallen.xid->last_at = kNow + 5 * kSecond;
  monitor.Observe({host}, {{host.id, Poll({Reading(0), Reading(1), Reading(2), fallen})}},
                  kNow + 10 * kSecond);

  const std::map<std::string, InstanceExport> exported = monitor.Export();
  ASSERT_EQ(exported.at(host.id).gpus.size(), 4u);
  EXPECT_EQ(exported.at(host.id).gpus[3].counters.xid_totals,
            (std::map<int64_t, int64_t>{{79, 1}}));
  for (int g = 0; g < 3; ++g) {
    EXPECT_TRUE(exported.at(host.id).gpus[g].counters.xid_totals.empty()) << g;
    EXPECT_FALSE(monitor.IsGpuUnhealthy(host.id, g)) << g;
  }
  EXPECT_TRUE(monitor.IsGpuUnhealthy(host.id, 3));
  EXPECT_EQ(monitor.HealthOf(host.id)->status, GpuHealthStatus::kUnhealthy);
  EXPECT_EQ(monitor.HealthOf(host.id)->reason,
            "GPU 3: XID 79 (GPU has fallen off the bus; action reboot)");

  const ExcludedGpus excluded = monitor.Excluded();
  auto place = [&](int gpus) {
    model::ResourcesRequest req;
    req.gpu.count = gpus;
    CapacityMap capacity = FreeCapacity({{host.id, host}}, {});
    ExcludeGpus(capacity, excluded);
    GroupPlacement placement =
        PlaceGroup(req, 1, {&host}, capacity, [](const model::Instance&) { return true; });
    const Capacity& left = capacity.at(host.id);
    InstanceFree free{
        &host, 1, true, left.cpus, left.memory_bytes, left.free_gpus, &excluded.at(host.id)};
    return std::pair{placement, WaitReason({free}, req, 1)};
  };
  auto [four, why] = place(4);
  EXPECT_EQ(four.outcome, GroupPlacement::Outcome::kNoCapacity);
  EXPECT_NE(why.find("GPU 3 of gpus-0 is unhealthy: XID 79"), std::string::npos) << why;
  auto [three, unused] = place(3);
  ASSERT_EQ(three.outcome, GroupPlacement::Outcome::kPlaced);
  ASSERT_EQ(three.chosen.size(), 1u);
  EXPECT_EQ(three.chosen[0].second, (std::vector<int>{0, 1, 2}));
}

TEST(GpuHealthMonitor, DegradedGpusAreExcludedOnlyUnderAvoid) {
  model::Instance host = Host("gpus-0", 1);
  model::GpuReading hot = Reading(0);
  hot.throttle_reasons = 1 << 6;
  for (DegradedGpuPolicy policy : {DegradedGpuPolicy::kUse, DegradedGpuPolicy::kAvoid}) {
    GpuHealthMonitor monitor(GpuHealthOptions{.degraded = policy});
    monitor.Observe({host}, {{host.id, Poll({hot})}}, kNow);
    EXPECT_EQ(monitor.HealthOf(host.id)->status, GpuHealthStatus::kDegraded);
    EXPECT_EQ(monitor.Excluded().size(), policy == DegradedGpuPolicy::kAvoid ? 1u : 0u);
  }
}

TEST(GpuHealthMonitor, AHostWithGpusAndNoReadingsIsDegradedOnceOverdue) {
  GpuHealthMonitor monitor(GpuHealthOptions{.no_readings_after = 30 * kSecond});
  model::Instance host = Host("gpus-0", 2);
  model::Instance cpu_only = Host("cpu-0", 0);
  InstanceObservation plain;  // a reached poll without readings
  plain.reached = true;
  plain.poll.agent_id = "a1";
  monitor.Observe({host, cpu_only}, {{host.id, plain}, {cpu_only.id, plain}}, kNow);
  EXPECT_FALSE(monitor.HealthOf(host.id).has_value());
  monitor.Observe({host, cpu_only}, {{host.id, plain}, {cpu_only.id, plain}}, kNow + 30 * kSecond);
  std::optional<InstanceHealth> health = monitor.HealthOf(host.id);
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, GpuHealthStatus::kDegraded);
  EXPECT_EQ(health->reason, "agent reports no readings");
  EXPECT_FALSE(monitor.HealthOf(cpu_only.id).has_value());  // no GPUs: nothing to report
  // Readings arrive: healthy again.
  monitor.Observe({host}, {{host.id, Poll({Reading(0), Reading(1)})}}, kNow + 31 * kSecond);
  EXPECT_EQ(monitor.HealthOf(host.id)->status, GpuHealthStatus::kHealthy);
}

TEST(GpuHealthMonitor, XidCountersNeverGoBackwardsWhenTheAgentRestarts) {
  GpuHealthMonitor monitor;
  model::Instance host = Host("gpus-0", 1);
  auto with_xids = [](std::vector<model::XidEvents::Count> counts) {
    model::GpuReading r = Reading(0);
    r.xid->counts = std::move(counts);
    r.ecc = model::EccCounts{0, 0, 10, 1};
    return r;
  };
  auto totals = [&] { return monitor.Export().at(host.id).gpus.at(0).counters; };
  monitor.Observe({host}, {{host.id, Poll({with_xids({{13, 3}})}, "a1")}}, kNow);
  EXPECT_EQ(totals().xid_totals, (std::map<int64_t, int64_t>{{13, 3}}));
  monitor.Observe({host}, {{host.id, Poll({with_xids({{13, 5}})}, "a1")}}, kNow + kSecond);
  EXPECT_EQ(totals().xid_totals, (std::map<int64_t, int64_t>{{13, 5}}));
  // The agent restarted: it counts from zero, and here even saw more of them than before.
  monitor.Observe({host}, {{host.id, Poll({with_xids({{13, 6}, {31, 1}})}, "a2")}},
                  kNow + 2 * kSecond);
  EXPECT_EQ(totals().xid_totals, (std::map<int64_t, int64_t>{{13, 11}, {31, 1}}));
  // A lower count from the same agent id (its state was lost) is a restart too.
  monitor.Observe({host}, {{host.id, Poll({with_xids({})}, "a2")}}, kNow + 3 * kSecond);
  EXPECT_EQ(totals().xid_totals, (std::map<int64_t, int64_t>{{13, 11}, {31, 1}}));
  EXPECT_EQ(totals().ecc_corrected_total, 10);
  EXPECT_EQ(totals().ecc_uncorrected_total, 1);
}

TEST(GpuHealthFamilies, SamplesOfOneHostAndHostileNamesEscaped) {
  InstanceExport e;
  e.instance = Host("gpus-0", 1);
  e.instance.fleet_name = "evil\"}\nfake_metric 1";
  e.health.status = GpuHealthStatus::kUnhealthy;
  GpuExport g;
  g.index = 0;
  g.health.status = GpuHealthStatus::kUnhealthy;
  g.counters.xid_totals = {{79, 2}};
  g.counters.ecc_uncorrected_total = 3;
  g.remapped_rows = model::RemappedRows{1, 2, false, false};
  g.power_mw = 612'500;
  g.temperature_c = 71;
  g.throttle_reasons = 1 << 6;
  e.gpus.push_back(g);
  std::array<std::string, kGpuHealthFamilies> texts;
  std::array<std::string*, kGpuHealthFamilies> out;
  for (size_t k = 0; k < kGpuHealthFamilies; ++k) out[k] = &texts[k];
  AppendGpuHealthSamples(e, out);
  const std::string labels =
      R"(dstack_project_name="main",dstack_fleet_name="evil\"}\nfake_metric 1",)"
      R"(dstack_instance_name="gpus-0")";
  EXPECT_EQ(texts[0], "fleetwatch_instance_health{" + labels +
                          R"(,status="healthy"} 0.0)"
                          "\n" +
                          "fleetwatch_instance_health{" + labels + R"(,status="degraded"} 0.0)" +
                          "\n" + "fleetwatch_instance_health{" + labels +
                          R"(,status="unhealthy"} 1.0)"
                          "\n");
  EXPECT_NE(texts[1].find(R"(,gpu="0",status="unhealthy"} 1.0)"), std::string::npos) << texts[1];
  EXPECT_EQ(texts[2], "fleetwatch_gpu_xid_errors_total{" + labels +
                          R"(,gpu="0",xid="79",action="reboot"} 2.0)"
                          "\n");
  EXPECT_EQ(texts[3], "fleetwatch_gpu_ecc_errors_total{" + labels +
                          R"(,gpu="0",type="uncorrected"} 3.0)"
                          "\n");
  EXPECT_NE(texts[4].find(R"(,gpu="0",kind="uncorrectable"} 2.0)"), std::string::npos);
  EXPECT_EQ(texts[5], "fleetwatch_gpu_power_watts{" + labels +
                          R"(,gpu="0"} 612.5)"
                          "\n");
  EXPECT_EQ(texts[6], "fleetwatch_gpu_temperature_celsius{" + labels +
                          R"(,gpu="0"} 71.0)"
                          "\n");
  EXPECT_EQ(texts[7], "fleetwatch_gpu_throttle{" + labels +
                          R"(,gpu="0",reason="hw_thermal_slowdown"} 1.0)"
                          "\n");
  // Every line is one sample: the hostile name did not break out of its label.
  for (const std::string& text : texts) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      std::string line = text.substr(start, end - start);
      EXPECT_EQ(line.rfind("fleetwatch_", 0), 0u) << line;
      start = end + 1;
    }
  }
}

TEST(GpuHealthExposition, RendersTheMonitorsStateIntoTheSnapshotAndDropsGoneInstances) {
  GpuHealthMonitor monitor;
  expose::ExpositionSnapshot snapshot;
  GpuHealthExposition exposition(monitor, snapshot);
  model::Instance host = Host("gpus-0", 1);
  model::GpuReading r = Reading(0);
  r.xid->counts = {{48, 1}};
  monitor.Observe({host}, {{host.id, Poll({r})}}, kNow);
  exposition.Update();
  std::string body = snapshot.Render(expose::Format::kText004, kNow);
  EXPECT_NE(body.find("# TYPE fleetwatch_gpu_xid_errors_total counter"), std::string::npos);
  EXPECT_NE(body.find(R"(xid="48",action="reset_gpu"} 1.0)"), std::string::npos) << body;
  EXPECT_NE(
      body.find(
          R"(fleetwatch_gpu_health{dstack_project_name="main",dstack_fleet_name="gpus",dstack_instance_name="gpus-0",gpu="0",status="unhealthy"} 1.0)"),
      std::string::npos)
      << body;
  monitor.Observe({}, {}, kNow + kSecond);
  exposition.Update();
  EXPECT_EQ(snapshot.Render(expose::Format::kText004, kNow).find("fleetwatch_gpu"),
            std::string::npos);
}

}  // namespace
}  // namespace fleetwatch::server
