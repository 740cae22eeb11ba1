// Placement with excluded GPUs: the scheduler's pure functions.
#include "server/scheduler.h"

#include <gtest/gtest.h>

namespace fleetwatch::server {
namespace {

model::Instance Host(const std::string& name, int gpus) {
  model::Instance i;
  i.id = "id-" + name;
  i.name = name;
  i.fleet_id = "f";
  i.fleet_name = "f";
  i.status = model::InstanceStatus::kIdle;
  i.resources.cpus = 8;
  i.resources.memory_bytes = int64_t{64} << 30;
  for (int g = 0; g < gpus; ++g) {
    i.resources.gpus.push_back({g, "NVIDIA H100", "GPU", int64_t{80} << 30, "nvidia"});
  }
  return i;
}

model::ResourcesRequest Gpus(int count) {
  model::ResourcesRequest req;
  req.gpu.count = count;
  return req;
}

GroupPlacement Place(const model::ResourcesRequest& req, std::vector<model::Instance*> hosts,
                     const ExcludedGpus& excluded, size_t jobs = 1) {
  std::map<std::string, model::Instance> by_id;
  for (model::Instance* h : hosts) by_id[h->id] = *h;
  CapacityMap capacity = FreeCapacity(by_id, {});
  ExcludeGpus(capacity, excluded);
  return PlaceGroup(req, jobs, hosts, capacity, [](const model::Instance&) { return true; });
}

TEST(ExcludeGpus, TakesOnlyTheNamedGpusOutOfTheFreeOnes) {
  model::Instance a = Host("a", 4);
  std::map<std::string, model::Instance> by_id = {{a.id, a}};
  CapacityMap capacity = FreeCapacity(by_id, {});
  ExcludeGpus(capacity, {{a.id, {{1, "why"}, {3, "why"}}}, {"unknown-instance", {{0, "why"}}}});
  EXPECT_EQ(capacity.at(a.id).free_gpus, (std::set<int>{0, 2}));
  EXPECT_EQ(capacity.at(a.id).cpus, 8);
}

TEST(PlaceGroup, NeverOnAnExcludedGpu) {
  model::Instance a = Host("a", 2);
  GroupPlacement p = Place(Gpus(1), {&a}, {{a.id, {{0, "GPU 0 of a is unhealthy: ..."}}}});
  ASSERT_EQ(p.outcome, GroupPlacement::Outcome::kPlaced);
  EXPECT_EQ(p.chosen.at(0).second, std::vector<int>{1});
}

TEST(PlaceGroup, AJobThatNeedsAnExcludedGpuWaitsRatherThanFails) {
  model::Instance a = Host("a", 2);
  GroupPlacement p = Place(Gpus(2), {&a}, {{a.id, {{0, "GPU 0 of a is unhealthy: ..."}}}});
  EXPECT_EQ(p.outcome, GroupPlacement::Outcome::kNoCapacity);
  // Another instance with two usable GPUs takes it.
  model::Instance b = Host("b", 2);
  p = Place(Gpus(2), {&a, &b}, {{a.id, {{0, "GPU 0 of a is unhealthy: ..."}}}});
  ASSERT_EQ(p.outcome, GroupPlacement::Outcome::kPlaced);
  EXPECT_EQ(p.chosen.at(0).first->id, b.id);
  // A request no instance could ever hold still never fits.
  EXPECT_EQ(Place(Gpus(3), {&a}, {}).outcome, GroupPlacement::Outcome::kNeverFits);
}

}  // namespace
}  // namespace fleetwatch::server
