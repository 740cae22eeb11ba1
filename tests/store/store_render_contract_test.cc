// The store contract on the shared render state (store.h "shared render state"): hosts' DCGM
// texts with their versions, and the newest point of chosen jobs. Run on every implementation with
// the rest of the contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

HostDcgm Text(const std::string& instance_id, TimeMicros collected_at, std::string text) {
  return HostDcgm{.instance_id = instance_id,
                  .collected_at = collected_at,
                  .text = std::move(text),
                  .error = {},
                  .received_at = collected_at + 5};
}

using Versions = std::vector<std::pair<std::string, int64_t>>;

TEST_P(StoreContract, HostDcgmTextsAreReplacedAndEachWriteRaisesTheirVersion) {
  auto [fleet, a] = CreateFleetWithInstance("a");
  auto [fleet_b, b] = CreateFleetWithInstance("b");
  EXPECT_TRUE(store_->ListHostDcgmVersions().value().empty());
  EXPECT_TRUE(store_->ListHostDcgm({a.id, b.id}).value().empty());

  Result<Versions> written = store_->WriteHostDcgm({Text(a.id, 100, "DCGM_FI_DEV_GPU_UTIL 1\n")});
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, (Versions{{a.id, 1}}));

  // A second write replaces the text and raises the version; a host with an error has no text.
  HostDcgm failed = Text(b.id, 0, "");
  failed.collected_at.reset();
  failed.error = "the exporter is down";
  written = store_->WriteHostDcgm({Text(a.id, 200, "DCGM_FI_DEV_GPU_UTIL 2\n"), failed});
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, (Versions{{a.id, 2}, {b.id, 1}}));

  Versions versions = store_->ListHostDcgmVersions().value();
  Versions expected{{a.id, 2}, {b.id, 1}};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(versions, expected);

  std::vector<HostDcgm> texts = store_->ListHostDcgm({a.id, b.id, "no-such-instance"}).value();
  ASSERT_EQ(texts.size(), 2u);
  if (texts[0].instance_id != a.id) std::swap(texts[0], texts[1]);
  EXPECT_EQ(texts[0].instance_id, a.id);
  EXPECT_EQ(texts[0].version, 2);
  EXPECT_EQ(texts[0].collected_at, 200);
  EXPECT_EQ(texts[0].text, "DCGM_FI_DEV_GPU_UTIL 2\n");
  EXPECT_EQ(texts[0].error, "");
  EXPECT_EQ(texts[0].received_at, 205);
  EXPECT_EQ(texts[1].instance_id, b.id);
  EXPECT_FALSE(texts[1].collected_at);
  EXPECT_EQ(texts[1].text, "");
  EXPECT_EQ(texts[1].error, "the exporter is down");

  // Another store object on the database (a replica) sees the same rows.
  Result<std::unique_ptr<Store>> other = factory_->Open();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ((*other)->ListHostDcgmVersions().value(), expected);
}

TEST_P(StoreContract, HostDcgmOfUnknownInstancesIsSkippedAndGoesWithItsFleet) {
  auto [fleet, a] = CreateFleetWithInstance("a");
  Result<Versions> written =
      store_->WriteHostDcgm({Text("no-such-instance", 100, "x 1\n"), Text(a.id, 100, "x 1\n")});
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, (Versions{{a.id, 1}}));
  EXPECT_EQ(store_->ListHostDcgmVersions().value(), (Versions{{a.id, 1}}));

  ASSERT_TRUE(store_->DeleteFleet(project_.id, "a").ok());
  EXPECT_TRUE(store_->ListHostDcgmVersions().value().empty());
  EXPECT_TRUE(store_->ListHostDcgm({a.id}).value().empty());
}

TEST_P(StoreContract, BadHostDcgmWritesAreRefusedAndChangeNothing) {
  auto [fleet, a] = CreateFleetWithInstance("a");
  ASSERT_TRUE(store_->WriteHostDcgm({Text(a.id, 100, "x 1\n")}).ok());

  Result<Versions> empty_id = store_->WriteHostDcgm({Text(a.id, 200, "x 2\n"), Text("", 200, "")});
  EXPECT_EQ(empty_id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty_id.status().message().find("needs an instance id"), std::string::npos)
      << empty_id.status().ToString();
  Result<Versions> twice = store_->WriteHostDcgm({Text(a.id, 200, "x 2\n"), Text(a.id, 300, "")});
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("two DCGM texts"), std::string::npos)
      << twice.status().ToString();

  std::vector<HostDcgm> texts = store_->ListHostDcgm({a.id}).value();
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].version, 1);
  EXPECT_EQ(texts[0].text, "x 1\n");
  EXPECT_TRUE(store_->WriteHostDcgm({}).value().empty());
}

TEST_P(StoreContract, NewestMetricsOfJobsGivesEachNamedJobsNewestPoint) {
  model::Run run = MakeRun(project_, owner_, "train", 100, RunStatus::kRunning, 3);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  auto point = [](const std::string& job_id, TimeMicros at, int64_t cpu) {
    model::JobMetricsPoint p;
    p.job_id = job_id;
    p.timestamp_micro = at;
    p.cpu_usage_micro = cpu;
    p.memory_usage_bytes = 1 << 20;
    p.memory_working_set_bytes = 1 << 19;
    p.gpus_memory_usage_bytes = {1, 2};
    p.gpus_util_percent = {50, 60};
    return p;
  };
  const std::string j0 = run.jobs[0].id, j1 = run.jobs[1].id, j2 = run.jobs[2].id;
  ASSERT_TRUE(store_
                  ->AddJobMetricsPoints({point(j0, 1000, 1), point(j0, 3000, 3), point(j0, 2000, 2),
                                         point(j1, 500, 5), point(j2, 700, 7)})
                  .ok());
  std::vector<model::JobMetricsPoint> newest =
      store_->ListNewestMetricsOfJobs({j0, j1, j0, "no-such-job"}).value();
  std::sort(newest.begin(), newest.end(),
            [](const auto& x, const auto& y) { return x.timestamp_micro > y.timestamp_micro; });
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].job_id, j0);
  EXPECT_EQ(newest[0].timestamp_micro, 3000);
  EXPECT_EQ(newest[0].cpu_usage_micro, 3);
  EXPECT_EQ(newest[0].gpus_util_percent, (std::vector<int64_t>{50, 60}));
  EXPECT_EQ(newest[1].job_id, j1);
  EXPECT_EQ(newest[1].timestamp_micro, 500);
  EXPECT_TRUE(store_->ListNewestMetricsOfJobs({}).value().empty());
}

}  // namespace
}  // namespace fleetwatch::store
