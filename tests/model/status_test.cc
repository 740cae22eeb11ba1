#include "model/status.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

namespace fleetwatch::model {
namespace {

// Every value of an enum with `count` values has a distinct, non-empty text form that parses
// back to it; parsing is case-sensitive and refuses anything else.
template <typename Enum>
void ExpectTextRoundTrip(int count) {
  std::set<std::string> seen;
  for (int i = 0; i < count; ++i) {
    auto value = static_cast<Enum>(i);
    std::string text(ToString(value));
    EXPECT_FALSE(text.empty()) << i;
    EXPECT_TRUE(seen.insert(text).second) << "duplicate text " << text;
    EXPECT_EQ(Parse<Enum>(text), value) << text;
    std::string upper = text;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(Parse<Enum>(upper), std::nullopt) << upper;
    EXPECT_EQ(Parse<Enum>(text + " "), std::nullopt) << text;
  }
  EXPECT_EQ(Parse<Enum>(""), std::nullopt);
  EXPECT_EQ(Parse<Enum>("unknown"), std::nullopt);
}

TEST(StatusText, EveryValueRoundTrips) {
  ExpectTextRoundTrip<InstanceStatus>(6);
  ExpectTextRoundTrip<FleetStatus>(5);
  ExpectTextRoundTrip<RunStatus>(8);
  ExpectTextRoundTrip<JobStatus>(9);
  ExpectTextRoundTrip<RunTerminationReason>(6);
  ExpectTextRoundTrip<JobTerminationReason>(13);
  ExpectTextRoundTrip<RunType>(3);
  ExpectTextRoundTrip<GlobalRole>(2);
  ExpectTextRoundTrip<ProjectRole>(3);
}

TEST(StatusText, UsesDstackSpellings) {
  EXPECT_EQ(ToString(RunType::kDevEnvironment), "dev-environment");
  EXPECT_EQ(ToString(RunStatus::kProvisioning), "provisioning");
  EXPECT_EQ(ToString(JobStatus::kPulling), "pulling");
  EXPECT_EQ(ToString(JobTerminationReason::kTerminatedDueToUtilizationPolicy),
            "terminated_due_to_utilization_policy");
  EXPECT_EQ(ToString(JobTerminationReason::kFailedToStartDueToNoCapacity),
            "failed_to_start_due_to_no_capacity");
  EXPECT_EQ(ToString(RunTerminationReason::kAllJobsDone), "all_jobs_done");
  EXPECT_EQ(ToString(InstanceStatus::kIdle), "idle");
}

TEST(RunStatusIsFinished, OnlyTerminatedFailedAndDone) {
  for (int i = 0; i < 8; ++i) {
    auto s = static_cast<RunStatus>(i);
    bool expected = s == RunStatus::kTerminated || s == RunStatus::kFailed || s == RunStatus::kDone;
    EXPECT_EQ(IsFinished(s), expected) << ToString(s);
  }
}

TEST(JobStatusIsFinished, OnlyTerminatedAbortedFailedAndDone) {
  for (int i = 0; i < 9; ++i) {
    auto s = static_cast<JobStatus>(i);
    bool expected = s == JobStatus::kTerminated || s == JobStatus::kAborted ||
                    s == JobStatus::kFailed || s == JobStatus::kDone;
    EXPECT_EQ(IsFinished(s), expected) << ToString(s);
  }
}

TEST(FinalStatusFor, JobReasonsEndInDstackStatuses) {
  using R = JobTerminationReason;
  EXPECT_EQ(FinalStatusFor(R::kFailedToStartDueToNoCapacity), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kInterruptedByNoCapacity), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kInstanceUnreachable), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kWaitingInstanceLimitExceeded), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kContainerExitedWithError), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kExecutorError), JobStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kTerminatedByUser), JobStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kTerminatedByServer), JobStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kMaxDurationExceeded), JobStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kTerminatedDueToUtilizationPolicy), JobStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kScaledDown), JobStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kDoneByRunner), JobStatus::kDone);
  EXPECT_EQ(FinalStatusFor(R::kAbortedByUser), JobStatus::kAborted);
  for (int i = 0; i < 13; ++i) EXPECT_TRUE(IsFinished(FinalStatusFor(static_cast<R>(i))));
}

TEST(FinalStatusFor, RunReasonsEndInDstackStatuses) {
  using R = RunTerminationReason;
  EXPECT_EQ(FinalStatusFor(R::kAllJobsDone), RunStatus::kDone);
  EXPECT_EQ(FinalStatusFor(R::kJobFailed), RunStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kRetryLimitExceeded), RunStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kServerError), RunStatus::kFailed);
  EXPECT_EQ(FinalStatusFor(R::kStoppedByUser), RunStatus::kTerminated);
  EXPECT_EQ(FinalStatusFor(R::kAbortedByUser), RunStatus::kTerminated);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(IsFinished(FinalStatusFor(static_cast<R>(i))));
}

}  // namespace
}  // namespace fleetwatch::model
