// The store contract on run events (store.h "run events"): each (run, kind) counts once, whoever
// records it, into totals that survive reopening; run on every implementation with the rest of
// the contract.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

RunEvent Pending(const model::Run& run, const std::string& project = "main") {
  return RunEvent{run.id, kRunEventPending, project, "task", 0, 0};
}

RunEvent Provisioned(const model::Run& run, int bucket, double seconds) {
  return RunEvent{run.id, kRunEventProvisioned, "main", "task", bucket, seconds};
}

TEST_P(StoreContract, EachRunEventCountsOnceIntoPersistedTotals) {
  model::Run a = MakeRun(project_, owner_, "a", 100);
  model::Run b = MakeRun(project_, owner_, "b", 100);
  ASSERT_TRUE(store_->CreateRun(a).ok());
  ASSERT_TRUE(store_->CreateRun(b).ok());
  EXPECT_TRUE(store_->ListRunEventTotals().value().empty());

  EXPECT_EQ(store_->RecordRunEvents({Pending(a), Pending(b), Provisioned(a, 1, 20.5)}).value(), 3);
  // Seen again (by this server or another): nothing more counts; a's second wait is the same one.
  EXPECT_EQ(store_->RecordRunEvents({Pending(a), Provisioned(a, 1, 20.5)}).value(), 0);
  EXPECT_EQ(store_->RecordRunEvents({Provisioned(b, 4, 75)}).value(), 1);
  EXPECT_EQ(store_->RecordRunEvents({}).value(), 0);

  Reopen();
  std::vector<RunEventTotal> totals = store_->ListRunEventTotals().value();
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_EQ(totals[0].kind, kRunEventPending);
  EXPECT_EQ(totals[0].project_name, "main");
  EXPECT_EQ(totals[0].run_type, "task");
  EXPECT_EQ(totals[0].count, 2);
  EXPECT_EQ(totals[1].kind, kRunEventProvisioned);
  EXPECT_EQ(totals[1].bucket, 1);
  EXPECT_EQ(totals[1].count, 1);
  EXPECT_DOUBLE_EQ(totals[1].seconds, 20.5);
  EXPECT_EQ(totals[2].bucket, 4);
  EXPECT_DOUBLE_EQ(totals[2].seconds, 75);

  // A run's deletion takes nothing away.
  a.status = RunStatus::kDone;
  ASSERT_TRUE(store_->UpdateRun(a).ok());
  ASSERT_TRUE(store_->DeleteRun(a.id).ok());
  EXPECT_EQ(store_->ListRunEventTotals().value().size(), 3u);
  EXPECT_EQ(store_->ListRunEventTotals().value()[0].count, 2);
}

TEST_P(StoreContract, MalformedOrUnknownRunEventsAreRefusedAndChangeNothing) {
  model::Run a = MakeRun(project_, owner_, "a", 100);
  ASSERT_TRUE(store_->CreateRun(a).ok());
  RunEvent no_kind = Pending(a);
  no_kind.kind = "started";
  RunEvent negative = Provisioned(a, 0, -1);
  RunEvent no_project = Pending(a, "");
  RunEvent bad_bucket = Provisioned(a, -1, 3);
  for (const RunEvent& bad : {no_kind, negative, no_project, bad_bucket}) {
    Result<int> r = store_->RecordRunEvents({Pending(a), bad});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad.kind;
  }
  model::Run unknown = MakeRun(project_, owner_, "never-created", 100);
  EXPECT_EQ(store_->RecordRunEvents({Pending(a), Pending(unknown)}).status().code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListRunEventTotals().value().empty());
  // Nothing of the refused batches was recorded: a's wait still counts.
  EXPECT_EQ(store_->RecordRunEvents({Pending(a)}).value(), 1);
}

// Two servers that both see a run wait record it at once: it counts once.
TEST_P(StoreContract, TwoStoresRecordingOneEventAtOnceCountItOnce) {
  std::vector<model::Run> runs;
  for (int i = 0; i < 20; ++i) {
    runs.push_back(MakeRun(project_, owner_, "r" + std::to_string(i), 100));
    ASSERT_TRUE(store_->CreateRun(runs.back()).ok());
  }
  std::vector<RunEvent> events;
  for (const model::Run& run : runs) events.push_back(Pending(run));
  auto other = factory_->Open();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  int counted[2] = {0, 0};
  std::thread second([&] {
    Result<int> r = (*other)->RecordRunEvents(events);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    counted[1] = r.ok() ? *r : 0;
  });
  Result<int> r = store_->RecordRunEvents(events);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  counted[0] = r.ok() ? *r : 0;
  second.join();
  EXPECT_EQ(counted[0] + counted[1], 20);
  std::vector<RunEventTotal> totals = store_->ListRunEventTotals().value();
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(totals[0].count, 20);
}

}  // namespace
}  // namespace fleetwatch::store
