// The store contract for replicas and instance leases (store.h "replicas and instance leases"):
// part of the suite every Store implementation passes (store_contract.h), instantiated with it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/entities.h"
#include "store/store.h"
#include "store/store_contract.h"

namespace fleetwatch::store {
namespace {

constexpr TimeMicros kT0 = 1'700'000'100'000'000;
constexpr TimeMicros kLease = 10'000'000;

LeaseRequest Take(const std::string& owner, TimeMicros now) {
  return LeaseRequest{.owner = owner, .now = now, .lease_micros = kLease, .slack = 1};
}

std::set<std::string> Ids(const LeaseState& state) {
  std::set<std::string> ids;
  for (const InstanceLease& lease : state.held) ids.insert(lease.instance_id);
  return ids;
}

// A fleet `pool` of `n` instances in `project`.
std::vector<model::Instance> CreatePool(Store& store, const model::Project& project, int n) {
  model::Fleet fleet = MakeFleet(project, "pool");
  std::vector<model::Instance> instances;
  for (int i = 0; i < n; ++i) instances.push_back(MakeInstance(fleet, i));
  EXPECT_TRUE(store.CreateFleet(fleet, instances).ok());
  return instances;
}

void Register(Store& store, const std::string& id, TimeMicros at) {
  ASSERT_TRUE(store.RegisterReplica({.id = id, .started_at = at, .version = "test"}).ok());
}

// Who holds each instance, by instance id.
std::map<std::string, std::string> Holders(Store& store) {
  auto leases = store.ListLeases();
  EXPECT_TRUE(leases.ok()) << leases.status().ToString();
  std::map<std::string, std::string> out;
  if (!leases.ok()) return out;
  for (const auto& [owner, lease] : *leases) out[lease.instance_id] = owner;
  return out;
}

TEST_P(StoreContract, TwoReplicasSplitTheInstancesInDisjointHalves) {
  const std::vector<model::Instance> instances = CreatePool(*store_, project_, 10);
  Register(*store_, "a", kT0);
  Register(*store_, "b", kT0);
  auto a = store_->TakeLeases(Take("a", kT0));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = store_->TakeLeases(Take("b", kT0 + 1));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->live_replicas, 2);
  EXPECT_EQ(a->instances, 10);
  EXPECT_EQ(a->held.size(), 5u);
  EXPECT_EQ(b->held.size(), 5u);
  EXPECT_EQ(a->taken, 5);
  std::set<std::string> both = Ids(*a);
  for (const std::string& id : Ids(*b)) EXPECT_TRUE(both.insert(id).second) << id;
  EXPECT_EQ(both.size(), 10u);
  for (const InstanceLease& lease : a->held) {
    EXPECT_FALSE(lease.token.empty());
    EXPECT_EQ(lease.expires_at, kT0 + kLease);
  }
  std::map<std::string, std::string> holders = Holders(*store_);
  EXPECT_EQ(holders.size(), 10u);
  auto live = store_->CountLiveReplicas(kT0 + 1, kLease);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, 2);
}

TEST_P(StoreContract, RenewalKeepsTheTokenAndAnExpiredReplicasInstancesAreTakenOver) {
  const std::vector<model::Instance> instances = CreatePool(*store_, project_, 4);
  Register(*store_, "a", kT0);
  Register(*store_, "b", kT0);
  auto a = store_->TakeLeases(Take("a", kT0));
  auto b = store_->TakeLeases(Take("b", kT0));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->held.size(), 2u);
  // Past half the lease: renewed, same tokens, later expiry; nothing new taken.
  auto renewed = store_->TakeLeases(Take("a", kT0 + kLease * 6 / 10));
  ASSERT_TRUE(renewed.ok());
  ASSERT_EQ(renewed->held.size(), 2u);
  EXPECT_EQ(renewed->taken, 0);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(renewed->held[i].token, a->held[i].token);
    EXPECT_EQ(renewed->held[i].expires_at, kT0 + kLease * 16 / 10);
  }
  // b stops (SIGKILL: no release). Once its heartbeat and leases are older than the lease time,
  // a is the only live replica and takes b's instances with new tokens.
  const TimeMicros later = kT0 + kLease + 1;
  auto took = store_->TakeLeases(Take("a", later));
  ASSERT_TRUE(took.ok());
  EXPECT_EQ(took->live_replicas, 1);
  EXPECT_EQ(took->held.size(), 4u);
  EXPECT_EQ(took->taken, 2);
  for (const InstanceLease& old : b->held) {
    auto it = std::find_if(took->held.begin(), took->held.end(), [&](const InstanceLease& l) {
      return l.instance_id == old.instance_id;
    });
    ASSERT_NE(it, took->held.end());
    EXPECT_NE(it->token, old.token);
  }
  // b comes back (it was only paused): what it decided on its old leases is refused.
  model::Instance changed = instances[0];
  for (const InstanceLease& old : b->held) {
    auto it = std::find_if(instances.begin(), instances.end(),
                           [&](const model::Instance& i) { return i.id == old.instance_id; });
    changed = *it;
    changed.unreachable = true;
    Status stale = store_->UpdateInstanceIfLeased(changed, old.token);
    EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition) << stale.ToString();
  }
  auto listed = store_->ListInstances(project_.id);
  ASSERT_TRUE(listed.ok());
  for (const model::Instance& i : *listed) EXPECT_FALSE(i.unreachable) << i.name;
  // The holder's write applies.
  for (const InstanceLease& lease : took->held) {
    if (lease.instance_id != changed.id) continue;
    EXPECT_TRUE(store_->UpdateInstanceIfLeased(changed, lease.token).ok());
  }
  listed = store_->ListInstances(project_.id);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(std::count_if(listed->begin(), listed->end(),
                          [](const model::Instance& i) { return i.unreachable; }),
            1);
}

TEST_P(StoreContract, AReplicaAboveItsShareGivesUpTheSurplusToANewcomer) {
  CreatePool(*store_, project_, 10);
  Register(*store_, "a", kT0);
  auto alone = store_->TakeLeases(Take("a", kT0));
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->held.size(), 10u);
  Register(*store_, "b", kT0 + 1);
  auto b_first = store_->TakeLeases(Take("b", kT0 + 2));
  ASSERT_TRUE(b_first.ok());
  EXPECT_TRUE(b_first->held.empty());  // nothing free yet
  auto shed = store_->TakeLeases(Take("a", kT0 + 3));
  ASSERT_TRUE(shed.ok());
  EXPECT_EQ(shed->released, 5);
  EXPECT_EQ(shed->held.size(), 5u);
  auto b = store_->TakeLeases(Take("b", kT0 + 4));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->held.size(), 5u);
  // Steady from then on: within the share plus slack, nobody gives anything up.
  auto again = store_->TakeLeases(Take("a", kT0 + 5));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->released, 0);
  EXPECT_EQ(again->held.size(), 5u);
}

TEST_P(StoreContract, RemovingAReplicaReleasesItsLeasesAtOnce) {
  CreatePool(*store_, project_, 3);
  Register(*store_, "a", kT0);
  Register(*store_, "b", kT0);
  ASSERT_TRUE(store_->TakeLeases(Take("a", kT0)).ok());
  ASSERT_TRUE(store_->RemoveReplica("a").ok());
  EXPECT_TRUE(Holders(*store_).empty());
  auto live = store_->CountLiveReplicas(kT0, kLease);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, 1);
  auto b = store_->TakeLeases(Take("b", kT0 + 1));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->held.size(), 3u);
  EXPECT_TRUE(store_->RemoveReplica("never-registered").ok());
}

TEST_P(StoreContract, BadLeaseRequestsAreRefusedAndChangeNothing) {
  CreatePool(*store_, project_, 2);
  auto no_owner = store_->TakeLeases(Take("", kT0));
  EXPECT_EQ(no_owner.status().code(), StatusCode::kInvalidArgument);
  LeaseRequest no_time = Take("a", kT0);
  no_time.lease_micros = 0;
  EXPECT_EQ(store_->TakeLeases(no_time).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->RegisterReplica(ReplicaInfo{}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Holders(*store_).empty());
  auto live = store_->CountLiveReplicas(kT0, kLease);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, 0);
}

TEST_P(StoreContract, ConditionalRunWritesApplyOnceOnTheVersionTheyRead) {
  const std::vector<model::Instance> instances = CreatePool(*store_, project_, 1);
  model::Run run = MakeRun(project_, owner_, "train", kT0);
  ASSERT_TRUE(store_->CreateRun(run).ok());
  auto stored = store_->GetRunById(run.id);
  ASSERT_TRUE(stored.ok());
  const int64_t v0 = stored->row_version;
  Register(*store_, "a", kT0);
  auto a = store_->TakeLeases(Take("a", kT0));
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->held.size(), 1u);
  const std::vector<std::pair<std::string, std::string>> lease = {
      {a->held[0].instance_id, a->held[0].token}};

  // Two replicas decide on the same read: the first write applies, the second is refused.
  model::Run first = *stored;
  first.jobs[0].status = JobStatus::kProvisioning;
  first.jobs[0].instance_id = instances[0].id;
  first.jobs[0].instance_name = instances[0].name;
  ASSERT_TRUE(store_->UpdateRunIfCurrent(first, lease).ok());
  model::Run second = *stored;
  second.jobs[0].status = JobStatus::kTerminated;
  Status refused = store_->UpdateRunIfCurrent(second, {});
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  auto after = store_->GetRunById(run.id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->row_version, v0 + 1);
  EXPECT_EQ(after->jobs[0].status, JobStatus::kProvisioning);

  // A write that needs a lease its writer lost is refused even on the current version.
  model::Run stale = *after;
  stale.jobs[0].status = JobStatus::kRunning;
  Status lost = store_->UpdateRunIfCurrent(stale, {{instances[0].id, "not-the-token"}});
  EXPECT_EQ(lost.code(), StatusCode::kFailedPrecondition) << lost.ToString();
  // An unconditional write (the API's) raises the version too.
  ASSERT_TRUE(store_->UpdateRun(*after).ok());
  EXPECT_EQ(store_->UpdateRunIfCurrent(stale, lease).code(), StatusCode::kFailedPrecondition);
  auto last = store_->GetRunById(run.id);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->row_version, v0 + 2);
  EXPECT_EQ(last->jobs[0].status, JobStatus::kProvisioning);
  model::Run gone = *last;
  gone.id = "no-such-run";
  EXPECT_EQ(store_->UpdateRunIfCurrent(gone, {}).code(), StatusCode::kNotFound);
}

TEST_P(StoreContract, TheRunsChangeMarkMovesWithEveryRunWriteOfAnyConnection) {
  auto other = factory_->Open();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto mark = [&] {
    auto m = store_->RunsChangeMark();
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : std::pair<int64_t, int64_t>{-1, -1};
  };
  const auto empty = mark();
  model::Run run = MakeRun(project_, owner_, "train", kT0);
  ASSERT_TRUE((*other)->CreateRun(run).ok());
  const auto created = mark();
  EXPECT_NE(created, empty);
  // Reads and usage charges leave it.
  ASSERT_TRUE(store_->ListRunsWithStatus({RunStatus::kSubmitted}).ok());
  EXPECT_EQ(mark(), created);
  auto stored = (*other)->GetRunById(run.id);
  ASSERT_TRUE(stored.ok());
  stored->jobs[0].status = JobStatus::kTerminated;
  stored->status = RunStatus::kTerminated;
  ASSERT_TRUE((*other)->UpdateRunIfCurrent(*stored, {}).ok());
  const auto updated = mark();
  EXPECT_NE(updated, created);
  ASSERT_TRUE((*other)->DeleteRun(run.id).ok());
  EXPECT_NE(mark(), updated);
}

TEST_P(StoreContract, ReplicasTakingAtOnceOnTheirOwnConnectionsNeverShareAnInstance) {
  CreatePool(*store_, project_, 40);
  constexpr int kReplicas = 4;
  std::vector<std::unique_ptr<Store>> stores;
  for (int r = 0; r < kReplicas; ++r) {
    auto opened = factory_->Open();
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    stores.push_back(std::move(opened).value());
    ASSERT_TRUE(
        stores.back()
            ->RegisterReplica({.id = "r" + std::to_string(r), .started_at = kT0, .version = "test"})
            .ok());
  }
  std::vector<Result<LeaseState>> results(kReplicas, Internal("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back(
        [&, r] { results[r] = stores[r]->TakeLeases(Take("r" + std::to_string(r), kT0 + 1)); });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> seen;
  size_t total = 0;
  for (int r = 0; r < kReplicas; ++r) {
    ASSERT_TRUE(results[r].ok()) << results[r].status().ToString();
    EXPECT_LE(results[r]->held.size(), 10u);
    total += results[r]->held.size();
    for (const std::string& id : Ids(*results[r])) EXPECT_TRUE(seen.insert(id).second) << id;
  }
  EXPECT_EQ(total, 40u);
  EXPECT_EQ(Holders(*store_).size(), 40u);
}

}  // namespace
}  // namespace fleetwatch::store
