#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>

#include "cli/account_views.h"
#include "cli/fleet_views.h"
#include "cli/run_views.h"
#include "cli/waste_views.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

const TimeMicros kNow = *ParseTimestamp("2026-11-30T12:00:00Z");

boost::json::array Items(std::string_view json) {
  return boost::json::parse(json).as_object().at("items").as_array();
}

TEST(RunsTable, OneRowPerRunWithRelativeTimesAndDurations) {
  boost::json::array runs = Items(R"({"items": [
    {"run_name": "train", "user_name": "alice", "run_type": "task", "status": "running",
     "submitted_at": "2026-11-30T11:58:00.000000Z", "finished_at": null,
     "gpu_idle_ratio": 0.25, "idle_cost": 1.5,
     "configuration": {"type": "task", "resources": {"gpu": {"name": "A100", "count": 2}}},
     "jobs": [{"job_num": 0, "replica_num": 0, "status": "running", "instance_name": "gpu-0"}]},
    {"run_name": "old", "user_name": "bob", "run_type": "task", "status": "done",
     "submitted_at": "2026-11-30T09:00:00Z", "finished_at": "2026-11-30T10:30:00Z",
     "configuration": {"type": "task", "resources": {"gpu": 0}}, "jobs": []}
  ]})");
  EXPECT_EQ(
      RenderTable(RunsTable(runs, kNow), 200),
      "RUN    USER   TYPE  STATUS   INSTANCE  GPU     SUBMITTED    DURATION  IDLE  IDLE COST\n"
      "train  alice  task  running  gpu-0     A100:2  2 min ago    2m 0s     25%   $1.50\n"
      "old    bob    task  done               -       3 hours ago  1h 30m    -     -\n");
}

TEST(RunsTable, ListsWithoutConfigurationTakeTheGpuFromResources) {
  // Run lists leave "configuration" out unless asked for (docs/api.md).
  boost::json::array runs = Items(R"({"items": [
    {"run_name": "train", "user_name": "alice", "run_type": "task", "status": "done",
     "submitted_at": "2026-11-30T11:58:00Z", "finished_at": "2026-11-30T11:59:00Z",
     "resources": {"cpu": 1, "gpu": {"name": "H100", "count": 8}}, "jobs": []}
  ]})");
  EXPECT_EQ(RenderTable(RunsTable(runs, kNow), 200),
            "RUN    USER   TYPE  STATUS  INSTANCE  GPU     SUBMITTED  DURATION  IDLE  IDLE COST\n"
            "train  alice  task  done              H100:8  2 min ago  1m 0s     -     -\n");
}

TEST(RunsTable, MultiJobRunsGetOneIndentedRowPerJob) {
  boost::json::array runs = Items(R"({"items": [
    {"run_name": "dist", "user_name": "alice", "run_type": "task", "status": "terminating",
     "submitted_at": "2026-11-30T11:00:00Z",
     "configuration": {"type": "task", "nodes": 2},
     "jobs": [
       {"job_num": 0, "replica_num": 0, "status": "terminating", "instance_name": "h-0",
        "submitted_at": "2026-11-30T11:00:00Z"},
       {"job_num": 1, "replica_num": 0, "status": "terminated", "instance_name": null,
        "submitted_at": "2026-11-30T11:00:00Z", "finished_at": "2026-11-30T11:00:05Z"}]}
  ]})");
  EXPECT_EQ(
      RenderTable(RunsTable(runs, kNow), 200),
      "RUN                USER   TYPE  STATUS       INSTANCE  GPU  SUBMITTED   DURATION  IDLE  "
      "IDLE COST\n"
      "dist               alice  task  terminating            -    1 hour ago  1h 0m     -     -\n"
      "  job=0 replica=0               terminating  h-0            1 hour ago  1h 0m\n"
      "  job=1 replica=0               terminated   -              1 hour ago  5s\n");
}

TEST(RunsTable, UntrustedTextCannotEscapeItsCell) {
  boost::json::array runs = Items(R"({"items": [
    {"run_name": "r", "user_name": "u\u001b[31m", "status": "running\nfake row",
     "configuration": {"resources": {"gpu": "H100\r"}}, "jobs": []}]})");
  std::string out = RenderTable(RunsTable(runs, kNow), 200);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_NE(out.find("u?[31m"), std::string::npos);
  EXPECT_NE(out.find("running?fake row"), std::string::npos);
}

TEST(WasteTable, NameColumnsOfTheGroupingFiguresAndATotalLine) {
  boost::json::value report = boost::json::parse(R"({"by": "run", "items": [
    {"project_name": "main", "user_name": "alice", "run_name": "train", "run_id": "r1",
     "held_seconds": 7200, "idle_seconds": 1800, "idle_ratio": 0.25, "idle_cost": 1.5},
    {"project_name": "main", "user_name": "b\u001b[31m", "run_name": "x\ny", "run_id": "r2",
     "held_seconds": 0, "idle_seconds": 0, "idle_ratio": null, "idle_cost": 0}],
    "total": {"held_seconds": 7200, "idle_seconds": 1800, "idle_ratio": 0.25, "idle_cost": 1.5}})");
  EXPECT_EQ(RenderTable(WasteTable(report), 200),
            "PROJECT  USER    RUN    GPU HOURS  IDLE HOURS  IDLE %  IDLE COST\n"
            "main     alice   train  2.00       0.50        25%     $1.50\n"
            "main     b?[31m  x?y    0.00       0.00        -       $0.00\n"
            "total                   2.00       0.50        25%     $1.50\n");
  boost::json::value by_project = boost::json::parse(R"({"by": "project", "items": [],
    "total": {"held_seconds": 0, "idle_seconds": 0, "idle_ratio": null, "idle_cost": 0}})");
  EXPECT_EQ(RenderTable(WasteTable(by_project), 200),
            "PROJECT  GPU HOURS  IDLE HOURS  IDLE %  IDLE COST\n"
            "total    0.00       0.00        -       $0.00\n");
}

TEST(RenderWasteNotes, OneRowPerNoteSomeJobGotWithItsFigures) {
  boost::json::value report = boost::json::parse(R"({"by": "project", "items": [], "notes": [
    {"project_name": "lab", "jobs": 1, "items": [
      {"rule": "unused_gpus", "jobs": 0, "runs": 0, "held_seconds": 0, "cost": 0,
       "example_runs": []}]},
    {"project_name": "main", "jobs": 7, "items": [
      {"rule": "unused_gpus", "jobs": 3, "runs": 2, "held_seconds": 36000, "cost": 12.5,
       "example_runs": ["train", "e\u001b[2Jval"]},
      {"rule": "cpu_bound", "jobs": 1, "runs": 1, "held_seconds": 1800, "cost": null,
       "example_runs": ["prep"]},
      {"rule": "memory_near_limit", "jobs": 0, "runs": 0, "held_seconds": 0, "cost": 0,
       "example_runs": []}]}]})");
  EXPECT_EQ(RenderWasteNotes(report, 200),
            "\nright-sizing notes of the 8 jobs that ended in the window:\n"
            "PROJECT  NOTE         JOBS  RUNS  GPU HOURS  COST    EXAMPLE RUNS\n"
            "main     unused_gpus  3     2     10.00      $12.50  train, e?[2Jval\n"
            "main     cpu_bound    1     1     0.50       -       prep\n");
  // Jobs ended, none with a note; no job ended; an older server without the section.
  EXPECT_EQ(RenderWasteNotes(boost::json::parse(R"({"notes": [{"project_name": "main", "jobs": 1,
    "items": [{"rule": "cpu_bound", "jobs": 0}]}]})"),
                             200),
            "\nno right-sizing notes on the 1 job that ended in the window\n");
  EXPECT_EQ(RenderWasteNotes(boost::json::parse(R"({"notes": []})"), 200),
            "\nno right-sizing notes on the 0 jobs that ended in the window\n");
  EXPECT_EQ(RenderWasteNotes(boost::json::parse(R"({"items": []})"), 200), "");
}

TEST(FormatGpuRequest, UnderstandsEveryForm) {
  auto gpu = [](std::string_view json) {
    boost::json::value v = boost::json::parse(json);
    return FormatGpuRequest(&v);
  };
  EXPECT_EQ(FormatGpuRequest(nullptr), "-");
  EXPECT_EQ(gpu("null"), "-");
  EXPECT_EQ(gpu("0"), "-");
  EXPECT_EQ(gpu("2"), "2");
  EXPECT_EQ(gpu(R"("A100:2")"), "A100:2");
  EXPECT_EQ(gpu(R"({"count": 0})"), "-");
  EXPECT_EQ(gpu(R"({"name": "A100", "count": 2, "memory_bytes": 85899345920})"), "A100:80GB:2");
  EXPECT_EQ(gpu(R"({"name": null, "count": 1, "memory": "24GB"})"), "24GB:1");
}

TEST(FleetsTable, OneRowPerInstanceOrPerEmptyFleet) {
  boost::json::array fleets = Items(R"({"items": [
    {"name": "lab", "status": "active", "created_at": "2026-11-30T11:59:30Z",
     "instances": [
       {"name": "lab-0", "status": "pending", "backend": "remote", "hostname": "127.0.0.1",
        "port": 10998, "price": 1.5, "resources": null, "created_at": "2026-11-30T11:59:30Z"},
       {"name": "lab-1", "status": "idle", "backend": "remote", "hostname": "10.0.0.2",
        "port": 10999, "price": null, "created_at": "2026-11-30T11:59:30Z",
        "resources": {"cpus": 8, "memory_bytes": 1, "gpus": [
          {"index": 0, "name": "H100", "memory_bytes": 85899345920},
          {"index": 1, "name": "H100", "memory_bytes": 85899345920},
          {"index": 2, "name": "L4", "memory_bytes": 25769803776}]},
        "health": {"status": "healthy", "reason": null, "last_event": null,
                   "last_event_at": null, "gpus": []}}]},
    {"name": "empty", "status": "submitted", "created_at": "2026-11-30T11:00:00Z",
     "instances": []}
  ]})");
  EXPECT_EQ(RenderTable(FleetsTable(fleets, kNow), 200),
            "FLEET  INSTANCE  BACKEND  HOST             GPU                         PRICE  "
            "STATUS     HEALTH   CREATED\n"
            "lab    lab-0     remote   127.0.0.1:10998  -                           $1.5   "
            "pending    -        30 sec ago\n"
            "lab    lab-1     remote   10.0.0.2:10999   2xH100 (80GB), 1xL4 (24GB)  -      "
            "idle       healthy  30 sec ago\n"
            "empty  -         -        -                -                           -      "
            "submitted  -        1 hour ago\n");
}

TEST(FleetsTable, AnInstanceTheServerCannotUseSaysWhy) {
  boost::json::array fleets = Items(R"({"items": [
    {"name": "lab", "status": "active", "created_at": "2026-11-30T11:59:30Z",
     "instances": [
       {"name": "lab-0", "status": "idle", "backend": "remote", "hostname": "10.0.0.1",
        "port": 10998, "price": null, "resources": null, "created_at": "2026-11-30T11:59:30Z",
        "unreachable": true, "error": "certificate fingerprint does not match the pinned one"},
       {"name": "lab-1", "status": "idle", "backend": "remote", "hostname": "10.0.0.2",
        "port": 10998, "price": null, "resources": null, "created_at": "2026-11-30T11:59:30Z",
        "unreachable": false, "error": "the agent answered HTTP 500"}]}]})");
  const std::string table = RenderTable(FleetsTable(fleets, kNow), 200);
  EXPECT_NE(table.find("unreachable: certificate fingerprint does not match the pinned one"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("idle: the agent answered HTTP 500"), std::string::npos) << table;
}

TEST(FleetsTable, GpuHealthShowsItsReasonAndHostileTextStaysText) {
  boost::json::array fleets = Items(R"({"items": [
    {"name": "lab", "status": "active", "created_at": "2026-11-30T11:59:30Z",
     "instances": [
       {"name": "lab-0", "status": "idle", "backend": "remote", "hostname": "10.0.0.1",
        "port": 10998, "price": null, "resources": null, "created_at": "2026-11-30T11:59:30Z",
        "health": {"status": "unhealthy",
                   "reason": "GPU 1: cannot be read: \u001b[2J\u001b]0;owned\u0007lost",
                   "gpus": []}}]}]})");
  const std::string table = RenderTable(FleetsTable(fleets, kNow), 300);
  EXPECT_NE(table.find("unhealthy: GPU 1: cannot be read: "), std::string::npos) << table;
  EXPECT_EQ(table.find('\x1b'), std::string::npos) << table;
  EXPECT_EQ(table.find('\x07'), std::string::npos) << table;
}

TEST(ProjectsTable, ListsMembersWithRoles) {
  boost::json::array projects = Items(R"({"items": [
    {"name": "main", "owner": "admin", "created_at": "2026-11-30T11:59:00Z",
     "members": [{"user_name": "admin", "project_role": "admin"},
                 {"user_name": "bob", "project_role": "user"}]}]})");
  EXPECT_EQ(RenderTable(ProjectsTable(projects, kNow), 100),
            "NAME  OWNER  MEMBERS                    CREATED\n"
            "main  admin  admin (admin), bob (user)  1 min ago\n");
}

TEST(UsersTable, ListsNamesAndRoles) {
  boost::json::array users = Items(R"({"items": [
    {"name": "admin", "global_role": "admin", "created_at": "2026-11-28T12:00:00Z"}]})");
  EXPECT_EQ(RenderTable(UsersTable(users, kNow), 100),
            "NAME   ROLE   CREATED\n"
            "admin  admin  2 days ago\n");
}

}  // namespace
}  // namespace fleetwatch::cli
