#pragma once

// Two controllers as two replicas ("a" and "b", FleetControllerOptions::replica_id) on one store,
// each through a store connection of its own (and, where the store has them, a change listener of
// its own), with a fake clock and agents on loopback (counting_agent_test_support.h): the fixture
// of the controller's replica tests. Not thread-safe: the test's thread. A failed step of a set-up
// helper is a fatal test failure.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "http/async_client.h"
#include "server/auth.h"
#include "server/counting_agent_test_support.h"
#include "server/fleet_controller.h"
#include "server/runs.h"
#include "server/users.h"
#include "store/change_listener.h"
#include "store/store.h"
#include "support/process.h"
#include "util/clock.h"
#include "util/ids.h"
#include "util/status.h"

namespace fleetwatch::server::testing_agents {

// One replica: its own store connection, change listener (null: none), run service and
// controller. Members are destroyed controller first, store last.
struct Replica {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::ChangeListener> listener;
  std::unique_ptr<RunService> runs;
  std::unique_ptr<FleetController> controller;
};

class TwoControllersTest : public ::testing::Test {
 protected:
  static constexpr TimeMicros kStart = kAgentNow;
  static constexpr TimeMicros kSecond = 1'000'000;
  static constexpr TimeMicros kLease = 10 * kSecond;
  static constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

  // Opens one store connection.
  using OpenStore = std::function<Result<std::unique_ptr<store::Store>>()>;
  // Changes a replica's controller options and may give it a change listener (Replica::listener,
  // handed to the controller), before its controller is made.
  using Configure = std::function<void(Replica&, FleetControllerOptions&)>;

  // Makes the replicas "a" and "b" (in that order in replicas_), each registered with the store,
  // and bootstraps the admin and its project "main" through a's store.
  void StartReplicas(const OpenStore& open, const Configure& configure = {}) {
    for (const char* id : {"a", "b"}) {
      Result<std::unique_ptr<store::Store>> opened = open();
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      Replica r;
      r.store = std::move(opened).value();
      r.runs = std::make_unique<RunService>(*r.store, clock_);
      FleetControllerOptions options;
      options.tick_budget = std::chrono::milliseconds(10'000);  // every poll is used at once
      options.metrics_interval = std::chrono::hours(1);
      options.log_dir = (dir_.path() / "logs").string();
      options.replica_id = id;
      options.lease_time = std::chrono::milliseconds(kLease / 1000);
      if (configure) configure(r, options);
      if (HasFatalFailure()) return;
      r.controller = std::make_unique<FleetController>(*r.store, clock_, r.runs->mutex(), client_,
                                                       std::move(options));
      if (r.listener) r.controller->SetChangeListener(r.listener.get());
      ASSERT_TRUE(r.store->RegisterReplica({id, kStart, "test"}).ok());
      replicas_.push_back(std::move(r));
    }
    store::Store& store = *replicas_[0].store;
    AuthService auth(store);
    ASSERT_TRUE(UserService(store, clock_).Bootstrap(std::string(kAdminToken)).ok());
    admin_ = *auth.Authenticate(std::string("Bearer ") + kAdminToken);
    access_ = *auth.AccessProject(admin_, "main");
  }

  // A fleet with one instance per agent, written through replica a's store.
  void AddFleet(const std::vector<CountingAgent*>& agents) {
    model::Fleet fleet{NewId(), access_.project.id, "main", "pool", model::FleetStatus::kActive,
                       "{}",    clock_.Now()};
    std::vector<model::Instance> instances;
    for (size_t i = 0; i < agents.size(); ++i) {
      model::Instance instance;
      instance.id = NewId();
      instance.project_id = access_.project.id;
      instance.fleet_id = fleet.id;
      instance.name = "pool-" + std::to_string(i);
      instance.instance_num = static_cast<int>(i);
      instance.backend = "remote";
      instance.hostname = "127.0.0.1";
      instance.agent_port = agents[i]->port();
      instance.agent_token = kAgentToken;
      instance.created_at = clock_.Now();
      instances.push_back(instance);
    }
    ASSERT_TRUE(replicas_[0].store->CreateFleet(fleet, instances).ok());
  }

  // One tick of replica `replica` (0: a, 1: b); a failed tick fails the test and reports nothing.
  TickReport Tick(size_t replica) {
    Result<TickReport> report = replicas_[replica].controller->Tick();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? std::move(report).value() : TickReport{};
  }

  // Submits a one-job task named `name` through `replica`; its job's id ("" when refused).
  std::string Submit(size_t replica, const std::string& name) {
    auto submitted = replicas_[replica].runs->Submit(
        access_, admin_, "type: task\nname: " + name + "\ncommands: [sleep 1000]\n",
        model::ConfigFormat::kYaml);
    EXPECT_TRUE(submitted.ok()) << submitted.status().ToString();
    return submitted.ok() ? submitted->jobs.at(0).id : "";
  }

  // The run `name` as stored, read through replica a.
  model::Run Stored(const std::string& name) {
    auto run = replicas_[0].runs->Get(access_, name);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : model::Run{};
  }

  testing::TempDir dir_;
  FakeClock clock_{kStart};
  http::AsyncClient client_{1};
  std::vector<Replica> replicas_;
  model::User admin_;
  ProjectAccess access_;
};

}  // namespace fleetwatch::server::testing_agents
