#include "cli/run_attach.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace fleetwatch::cli {
namespace {

int ExitCodeOf(std::string_view run) { return RunExitCode(boost::json::parse(run)); }

TEST(RunExitCode, IsTheRunsOutcome) {
  EXPECT_EQ(ExitCodeOf(R"({"status": "done", "jobs": [{"status": "done", "exit_code": 0}]})"), 0);
  // A failed run exits with its failed job's code.
  EXPECT_EQ(ExitCodeOf(R"({"status": "failed", "jobs": [{"status": "failed", "exit_code": 3}]})"),
            3);
  EXPECT_EQ(ExitCodeOf(R"({"status": "failed", "jobs": [
      {"status": "done", "exit_code": 0}, {"status": "failed", "exit_code": 42}]})"),
            42);
  // ... or 1 when it has none that fits an exit status.
  EXPECT_EQ(ExitCodeOf(R"({"status": "failed", "jobs": [{"status": "failed",
      "termination_reason": "failed_to_start_due_to_no_capacity", "exit_code": null}]})"),
            1);
  EXPECT_EQ(ExitCodeOf(R"({"status": "failed", "jobs": [{"status": "failed", "exit_code": 300}]})"),
            1);
  EXPECT_EQ(ExitCodeOf(R"({"status": "failed"})"), 1);
  // Stopped, aborted or ended by a limit: never success.
  EXPECT_EQ(ExitCodeOf(R"({"status": "terminated", "jobs": [{"status": "terminated",
      "termination_reason": "max_duration_exceeded", "exit_code": null}]})"),
            1);
  EXPECT_EQ(ExitCodeOf(R"({"status": "terminated", "jobs": [{"status": "terminated",
      "exit_code": 0}]})"),
            1);
}

}  // namespace
}  // namespace fleetwatch::cli
