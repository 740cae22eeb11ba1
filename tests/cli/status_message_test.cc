#include "cli/status_message.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "cli/run_views.h"
#include "cli/table.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

boost::json::value Json(std::string_view text) { return boost::json::parse(text); }

TEST(StatusMessage, TheServersMessageIsShownAsSent) {
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "failed", "termination_reason": "job_failed",
      "status_message": "failed (no capacity: no instance of project ml has a GPU named banana)",
      "jobs": [{"status": "failed", "exit_code": 3}]})j")),
            "failed (no capacity: no instance of project ml has a GPU named banana)");
  EXPECT_EQ(JobStatusMessage(Json(R"j({"status": "submitted",
      "status_message": "submitted (waiting: 0 of 1 CPUs free on local)"
  })j")),
            "submitted (waiting: 0 of 1 CPUs free on local)");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "terminated",
      "status_message": "terminated (max duration 20s)"
  })j")),
            "terminated (max duration 20s)");
}

TEST(StatusMessage, OlderServersGetTheSameShapeComposed) {
  // A failed job's exit code.
  EXPECT_EQ(JobStatusMessage(Json(R"j({"status": "failed",
      "termination_reason": "container_exited_with_error", "exit_code": 3})j")),
            "failed (exit 3)");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "failed", "termination_reason": "job_failed",
      "status_message": null, "jobs": [{"status": "failed",
      "termination_reason": "container_exited_with_error", "exit_code": 3}]})j")),
            "failed (exit 3)");
  // No capacity.
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "failed", "termination_reason": "job_failed",
      "jobs": [{"status": "failed", "exit_code": null,
      "termination_reason": "failed_to_start_due_to_no_capacity"}]})j")),
            "failed (no capacity)");
  // Limits and users.
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "terminated",
      "termination_reason": "stopped_by_user", "jobs": [{"status": "terminated",
      "termination_reason": "max_duration_exceeded"}]})j")),
            "terminated (max duration)");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "terminated",
      "termination_reason": "stopped_by_user", "jobs": []})j")),
            "terminated (stopped by user)");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "terminated",
      "termination_reason": "aborted_by_user"})j")),
            "terminated (aborted by user)");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "failed", "termination_reason": "server_error",
      "jobs": [{"status": "terminated", "termination_reason": "terminated_by_server"}]})j")),
            "failed (server error)");
  EXPECT_EQ(JobStatusMessage(Json(R"j({"status": "terminated",
      "termination_reason": "terminated_by_server"})j")),
            "terminated (terminated by server)");
  // Nothing more to say.
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "done", "termination_reason": "all_jobs_done",
      "jobs": [{"status": "done", "termination_reason": "done_by_runner", "exit_code": 0}]})j")),
            "done");
  EXPECT_EQ(JobStatusMessage(Json(R"j({"status": "done", "termination_reason": "done_by_runner",
      "exit_code": 0})j")),
            "done");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status": "running", "termination_reason": null})j")),
            "running");
  EXPECT_EQ(RunStatusMessage(Json(R"j({"status_message": ""})j")), "?");
}

TEST(StatusMessage, TablesCutLongMessagesWithAnEllipsis) {
  const TimeMicros now = *ParseTimestamp("2026-11-30T12:00:00Z");
  boost::json::array runs = Json(R"j([
    {"run_name": "bananas", "user_name": "alice", "run_type": "task", "status": "failed",
     "status_message": "failed (no capacity: no instance of project ml has a GPU named banana)",
     "submitted_at": "2026-11-30T11:58:00Z", "finished_at": "2026-11-30T11:58:01Z",
     "resources": {"gpu": "banana"}, "jobs": []
  },
    {"run_name": "exit3", "user_name": "alice", "run_type": "task", "status": "failed",
     "termination_reason": "job_failed", "submitted_at": "2026-11-30T11:59:00Z",
     "finished_at": "2026-11-30T11:59:30Z", "resources": {"gpu": null},
     "jobs": [{"status": "failed", "termination_reason": "container_exited_with_error",
               "exit_code": 3, "instance_name": "local"}]}
  ])j")
                                .as_array();
  EXPECT_EQ(RenderTable(RunsTable(runs, now), 200),
            "RUN      USER   TYPE  STATUS                                    INSTANCE  GPU     "
            "SUBMITTED  DURATION  IDLE  IDLE COST\n"
            "bananas  alice  task  failed (no capacity: no instance of pro…            banana  "
            "2 min ago  1s        -     -\n"
            "exit3    alice  task  failed (exit 3)                           local     -       "
            "1 min ago  30s       -     -\n");
  // Whole, for ps -v.
  const std::string whole = RenderTable(RunsTable(runs, now, std::string::npos), 1000);
  EXPECT_NE(whole.find("failed (no capacity: no instance of project ml has a GPU named banana)  "),
            std::string::npos)
      << whole;
}

}  // namespace
}  // namespace fleetwatch::cli
