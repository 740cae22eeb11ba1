// The GPU state ledger's part of the store contract (store.h "GPU state ledger"), on every
// implementation (the suite is instantiated by sqlite_store_test.cc and postgres_store_test.cc).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

constexpr TimeMicros kHour = 3'600'000'000;
constexpr TimeMicros kT0 = 1'700'000'000'000'000 - 1'700'000'000'000'000 % kHour;  // an hour start

GpuLedgerCharge Charge(std::string instance, int gpu, std::optional<TimeMicros> from, TimeMicros to,
                       int state, double seconds, std::optional<GpuHolder> holder = std::nullopt) {
  return GpuLedgerCharge{std::move(instance), gpu, from, to, state, seconds, std::move(holder)};
}

GpuHolder Holder(std::string run_id, std::string run_name, bool idle, double cost,
                 std::string user = "alice") {
  return GpuHolder{"main", std::move(user), std::move(run_id), std::move(run_name), idle, cost};
}

TEST_P(StoreContract, GpuLedgerAccumulatesPerStateAndAppliesEachIntervalOnce) {
  // Starts the ledgers of two GPUs.
  ASSERT_EQ(store_
                ->ChargeGpuLedger({Charge("i", 0, std::nullopt, kT0, 0, 0),
                                   Charge("i", 1, std::nullopt, kT0, 3, 0)})
                .value(),
            2);
  // A second start of the same GPU, or a charge from a time that is not its mark, is skipped.
  EXPECT_EQ(store_->ChargeGpuLedger({Charge("i", 0, std::nullopt, kT0 + 5, 0, 5)}).value(), 0);
  EXPECT_EQ(store_->ChargeGpuLedger({Charge("i", 0, kT0 - 1, kT0 + 5, 0, 5)}).value(), 0);
  ASSERT_EQ(store_
                ->ChargeGpuLedger(
                    {Charge("i", 0, kT0, kT0 + 10, 0, 10), Charge("i", 1, kT0, kT0 + 10, 3, 10)})
                .value(),
            2);
  ASSERT_EQ(store_->ChargeGpuLedger({Charge("i", 0, kT0 + 10, kT0 + 20, 2, 10)}).value(), 1);
  Reopen();  // persisted
  auto ledger = store_->ListGpuLedger();
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ASSERT_EQ(ledger->size(), 2u);
  EXPECT_EQ((*ledger)[0].instance_id, "i");
  EXPECT_EQ((*ledger)[0].gpu, 0);
  EXPECT_EQ((*ledger)[0].accounted_until, kT0 + 20);
  EXPECT_EQ((*ledger)[0].state_seconds, (std::array<double, kGpuStateCount>{10, 0, 10, 0, 0}));
  EXPECT_EQ((*ledger)[1].gpu, 1);
  EXPECT_EQ((*ledger)[1].accounted_until, kT0 + 10);
  EXPECT_EQ((*ledger)[1].state_seconds, (std::array<double, kGpuStateCount>{0, 0, 0, 10, 0}));
}

TEST_P(StoreContract, GpuLedgerKeepsIdleTotalsAndHourlyRunTimes) {
  ASSERT_EQ(store_
                ->ChargeGpuLedger({Charge("i", 0, std::nullopt, kT0, 0, 0),
                                   Charge("i", 1, std::nullopt, kT0, 0, 0),
                                   Charge("j", 0, std::nullopt, kT0, 0, 0)})
                .value(),
            3);
  // Hour 0: run a busy on GPU 0, idle on GPU 1; run b (bob) idle. Hour 1: run a idle on GPU 0.
  ASSERT_EQ(store_
                ->ChargeGpuLedger(
                    {Charge("i", 0, kT0, kT0 + 10, 0, 10, Holder("ra", "a", false, 0.5)),
                     Charge("i", 1, kT0, kT0 + 10, 1, 10, Holder("ra", "a", true, 0.5)),
                     Charge("j", 0, kT0, kT0 + 10, 2, 10, Holder("rb", "b", true, 1, "bob"))})
                .value(),
            3);
  ASSERT_EQ(store_
                ->ChargeGpuLedger(
                    {Charge("i", 0, kT0 + 10, kT0 + kHour, 1, 20, Holder("ra", "a", true, 1.0))})
                .value(),
            1);

  auto idle = store_->ListGpuIdleTotals();
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  ASSERT_EQ(idle->size(), 2u);
  EXPECT_EQ((*idle)[0].user_name, "alice");
  EXPECT_DOUBLE_EQ((*idle)[0].idle_seconds, 30);
  EXPECT_DOUBLE_EQ((*idle)[0].idle_cost_dollars, 1.5);
  EXPECT_EQ((*idle)[1].user_name, "bob");
  EXPECT_DOUBLE_EQ((*idle)[1].idle_seconds, 10);

  auto runs = store_->ListRunGpuTime({"rb", "ra", "nothing"});
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].run_id, "ra");
  EXPECT_EQ((*runs)[0].run_name, "a");
  EXPECT_DOUBLE_EQ((*runs)[0].held_seconds, 40);
  EXPECT_DOUBLE_EQ((*runs)[0].idle_seconds, 30);
  EXPECT_DOUBLE_EQ((*runs)[0].idle_cost_dollars, 1.5);
  EXPECT_EQ((*runs)[1].run_id, "rb");
  EXPECT_TRUE(store_->ListRunGpuTime({}).value().empty());

  // Since a time in the second hour: only that hour (whole); since the first: both.
  auto recent = store_->ListGpuTimeSince(kT0 + kHour + 5);
  ASSERT_TRUE(recent.ok()) << recent.status().ToString();
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].run_id, "ra");
  EXPECT_DOUBLE_EQ((*recent)[0].held_seconds, 20);
  auto all = store_->ListGpuTimeSince(kT0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].user_name, "alice");  // ordered by project, user, run name
  EXPECT_DOUBLE_EQ((*all)[0].held_seconds, 40);
  EXPECT_EQ((*all)[1].user_name, "bob");
  EXPECT_TRUE(store_->ListGpuTimeSince(kT0 + 2 * kHour).value().empty());
}

TEST_P(StoreContract, GpuLedgerRefusesMalformedChargesAndChangesNothing) {
  for (GpuLedgerCharge bad :
       {Charge("i", 0, std::nullopt, kT0, 5, 0), Charge("i", 0, std::nullopt, kT0, -1, 0),
        Charge("i", 0, std::nullopt, kT0, 0, -1),
        Charge("i", 0, std::nullopt, kT0, 0, 1, Holder("r", "r", true, -1))}) {
    auto applied = store_->ChargeGpuLedger({Charge("k", 0, std::nullopt, kT0, 0, 0), bad});
    EXPECT_EQ(applied.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(store_->ListGpuLedger().value().empty());
  EXPECT_EQ(store_->ChargeGpuLedger({}).value(), 0);
}

TEST_P(StoreContract, TwoStoresChargingOneGpuAtOnceChargeItOnce) {
  auto second = factory_->Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_EQ(store_->ChargeGpuLedger({Charge("i", 0, std::nullopt, kT0, 0, 0)}).value(), 1);
  constexpr int kRounds = 10;
  TimeMicros mark = kT0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    const GpuLedgerCharge charge =
        Charge("i", 0, mark, mark + 10, 1, 10, Holder("r", "r", true, 0.25));
    std::optional<Result<int>> first;
    std::optional<Result<int>> other;
    std::thread a([&] { first.emplace(store_->ChargeGpuLedger({charge})); });
    std::thread b([&] { other.emplace((*second)->ChargeGpuLedger({charge})); });
    a.join();
    b.join();
    ASSERT_TRUE(first->ok()) << first->status().ToString();
    ASSERT_TRUE(other->ok()) << other->status().ToString();
    EXPECT_EQ(**first + **other, 1);
    mark += 10;
  }
  EXPECT_DOUBLE_EQ(store_->ListGpuLedger().value()[0].state_seconds[1], 10.0 * kRounds);
  EXPECT_DOUBLE_EQ(store_->ListGpuIdleTotals().value()[0].idle_cost_dollars, 0.25 * kRounds);
}

}  // namespace
}  // namespace fleetwatch::store
