#include "server/status_message.h"

#include <gtest/gtest.h>

#include "server/placement_reasons.h"

namespace fleetwatch::server {
namespace {

using model::JobStatus;
using model::JobTerminationReason;
using model::RunStatus;

model::Job MakeJob(JobStatus status, std::optional<JobTerminationReason> reason = std::nullopt,
                   std::optional<std::string> detail = std::nullopt) {
  model::Job job;
  job.status = status;
  job.termination_reason = reason;
  job.status_detail = std::move(detail);
  return job;
}

TEST(JobStatusMessage, SaysTheStatusThenWhyInTheServersWords) {
  EXPECT_EQ(JobStatusMessage(MakeJob(JobStatus::kRunning)), "running");
  EXPECT_EQ(JobStatusMessage(MakeJob(JobStatus::kDone, JobTerminationReason::kDoneByRunner)),
            "done");
  EXPECT_EQ(JobStatusMessage(MakeJob(JobStatus::kSubmitted)), "submitted");
  EXPECT_EQ(
      JobStatusMessage(MakeJob(JobStatus::kSubmitted, std::nullopt, "0 of 1 CPUs free on local")),
      "submitted (waiting: 0 of 1 CPUs free on local)");
  model::Job exited = MakeJob(JobStatus::kFailed, JobTerminationReason::kContainerExitedWithError);
  exited.exit_code = 3;
  EXPECT_EQ(JobStatusMessage(exited), "failed (exit 3)");
  EXPECT_EQ(JobStatusMessage(MakeJob(JobStatus::kFailed,
                                     JobTerminationReason::kFailedToStartDueToNoCapacity,
                                     "no instance of project ml has a GPU named banana")),
            "failed (no capacity: no instance of project ml has a GPU named banana)");
  EXPECT_EQ(
      JobStatusMessage(MakeJob(JobStatus::kTerminated, JobTerminationReason::kMaxDurationExceeded,
                               "max duration 20s")),
      "terminated (max duration 20s)");
  EXPECT_EQ(JobStatusMessage(MakeJob(JobStatus::kTerminating,
                                     JobTerminationReason::kTerminatedByUser, "stopped by admin")),
            "terminating (stopped by admin)");
  // Without the server's words, the reason's.
  EXPECT_EQ(
      JobStatusMessage(MakeJob(JobStatus::kTerminated, JobTerminationReason::kTerminatedByServer)),
      "terminated (terminated by server)");
}

TEST(RunStatusMessage, TakesTheWordsOfTheJobThatExplainsTheRun) {
  model::Run run;
  run.status = RunStatus::kFailed;
  run.termination_reason = model::RunTerminationReason::kJobFailed;
  model::Job failed = MakeJob(JobStatus::kFailed, JobTerminationReason::kContainerExitedWithError);
  failed.exit_code = 3;
  run.jobs = {MakeJob(JobStatus::kTerminated, JobTerminationReason::kTerminatedByServer), failed};
  EXPECT_EQ(RunStatusMessage(run), "failed (exit 3)");

  run.status = RunStatus::kTerminated;
  run.termination_reason = model::RunTerminationReason::kStoppedByUser;
  run.jobs = {
      MakeJob(JobStatus::kDone, JobTerminationReason::kDoneByRunner),
      MakeJob(JobStatus::kTerminated, JobTerminationReason::kTerminatedByUser, "stopped by admin")};
  EXPECT_EQ(RunStatusMessage(run), "terminated (stopped by admin)");

  run.status = RunStatus::kSubmitted;
  run.jobs = {MakeJob(JobStatus::kSubmitted, std::nullopt, "0 of 1 CPUs free on local")};
  EXPECT_EQ(RunStatusMessage(run), "submitted (waiting: 0 of 1 CPUs free on local)");

  run.status = RunStatus::kRunning;
  EXPECT_EQ(RunStatusMessage(run), "running");
  run.status = RunStatus::kDone;
  run.jobs = {MakeJob(JobStatus::kDone, JobTerminationReason::kDoneByRunner)};
  EXPECT_EQ(RunStatusMessage(run), "done");

  // A run that failed before any job had words says its own reason.
  run.status = RunStatus::kFailed;
  run.termination_reason = model::RunTerminationReason::kServerError;
  run.jobs = {MakeJob(JobStatus::kTerminated)};
  EXPECT_EQ(RunStatusMessage(run), "failed (server error)");
}

TEST(DurationWords, LeavesOutZeroUnits) {
  EXPECT_EQ(DurationWords(20), "20s");
  EXPECT_EQ(DurationWords(60), "1m");
  EXPECT_EQ(DurationWords(90), "1m 30s");
  EXPECT_EQ(DurationWords(7200), "2h");
  EXPECT_EQ(DurationWords(93'600), "1d 2h");
  EXPECT_EQ(DurationWords(0), "0s");
}

TEST(FormatMemory, SpeaksInGigabytesLikeConfigurations) {
  EXPECT_EQ(FormatMemory(int64_t{64} << 30), "64GB");
  EXPECT_EQ(FormatMemory(int64_t{3} << 29), "1.5GB");
  EXPECT_EQ(FormatMemory(int64_t{512} << 20), "512MB");
}

model::Instance MakeInstance(const std::string& name, const std::string& fleet, int cpus,
                             int gpus) {
  model::Instance i;
  i.id = "id-" + name;
  i.name = name;
  i.fleet_id = fleet;
  i.fleet_name = fleet;
  i.status = model::InstanceStatus::kIdle;
  i.resources.cpus = cpus;
  i.resources.memory_bytes = int64_t{64} << 30;
  for (int g = 0; g < gpus; ++g) {
    i.resources.gpus.push_back({g, "NVIDIA A100-SXM4-80GB", "GPU", int64_t{80} << 30, "nvidia"});
  }
  return i;
}

model::ResourcesRequest Request(int cpus, std::optional<int64_t> memory = std::nullopt,
                                int gpus = 0, std::optional<std::string> gpu_name = std::nullopt,
                                std::optional<int64_t> gpu_memory = std::nullopt) {
  model::ResourcesRequest req;
  req.cpus = cpus;
  req.memory_bytes = memory;
  req.gpu.count = gpus;
  req.gpu.name = std::move(gpu_name);
  req.gpu.memory_bytes = gpu_memory;
  return req;
}

TEST(NoCapacityReason, NamesTheFirstNeedNoInstanceMeets) {
  const std::vector<model::Instance> ml = {MakeInstance("a-0", "a", 8, 2),
                                           MakeInstance("b-0", "b", 32, 0)};
  EXPECT_EQ(NoCapacityReason("ml", {}, Request(1), 1), "project ml has no instances");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(1, {}, 1, "banana"), 1),
            "no instance of project ml has a GPU named banana");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(1, {}, 1, "A100", int64_t{100} << 30), 1),
            "no instance of project ml has a GPU named A100 with 100GB of memory");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(1, {}, 4, "A100"), 1),
            "no instance of project ml has 4 GPUs named A100");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(64), 1), "no instance of project ml has 64 CPUs");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(1, int64_t{512} << 30), 1),
            "no instance of project ml has 512GB of memory");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(16, {}, 1), 1),
            "no instance of project ml has 16 CPUs and a GPU at once");
  EXPECT_EQ(NoCapacityReason("ml", ml, Request(1), 2),
            "no fleet of project ml has 2 instances that fit");
}

TEST(WaitReason, NamesWhatIsShortOnTheInstanceClosestToFitting) {
  model::Instance local = MakeInstance("local-0", "local", 4, 0);
  model::Instance gpu0 = MakeInstance("gpus-0", "gpus", 8, 2);
  model::Instance gpu1 = MakeInstance("gpus-1", "gpus", 8, 2);
  EXPECT_EQ(WaitReason({{&local, 1, true, 0, int64_t{64} << 30, {}}}, Request(1), 1),
            "0 of 4 CPUs free on local");
  EXPECT_EQ(
      WaitReason({{&gpu0, 2, true, 8, int64_t{12} << 30, {}}}, Request(1, int64_t{32} << 30), 1),
      "12GB of 64GB memory free on gpus-0");
  EXPECT_EQ(WaitReason({{&gpu0, 2, true, 8, int64_t{64} << 30, {1}},
                        {&gpu1, 2, true, 6, int64_t{64} << 30, {}}},
                       Request(1, {}, 2, "A100"), 1),
            "1 of 2 GPUs named A100 free on gpus-0");
  EXPECT_EQ(WaitReason({{&gpu0, 2, true, 8, int64_t{64} << 30, {0, 1}},
                        {&gpu1, 2, true, 0, int64_t{64} << 30, {}}},
                       Request(1), 2),
            "1 of 2 instances free in fleet gpus");
  model::Instance lost = gpu0;
  lost.unreachable = true;
  EXPECT_EQ(WaitReason({{&lost, 1, false, 8, 0, {}}}, Request(1), 1),
            "instance gpus-0 is unreachable");
  model::Instance fresh = gpu0;
  fresh.resources = {};
  EXPECT_EQ(WaitReason({{&fresh, 1, false, 0, 0, {}}}, Request(1), 1),
            "waiting for the agent of gpus-0 to answer");
}

TEST(WaitReason, NamesTheExcludedGpusAJobWouldNeedAndWhy) {
  model::Instance gpu0 = MakeInstance("gpus-0", "gpus", 8, 2);
  const std::map<int, std::string> excluded = {
      {1, "GPU 1 of gpus-0 is unhealthy: XID 79 (GPU has fallen off the bus; action reboot)"}};
  InstanceFree free{&gpu0, 2, true, 8, int64_t{64} << 30, {0}, &excluded};
  EXPECT_EQ(WaitReason({free}, Request(1, {}, 2), 1),
            "1 of 2 GPUs free on gpus-0 (GPU 1 of gpus-0 is unhealthy: XID 79 (GPU has fallen off "
            "the bus; action reboot))");
  // With a named request: the excluded GPU matches it, so it is named.
  EXPECT_EQ(WaitReason({free}, Request(1, {}, 2, "A100", int64_t{80} << 30), 1),
            "1 of 2 GPUs named A100 free on gpus-0 (GPU 1 of gpus-0 is unhealthy: XID 79 (GPU has "
            "fallen off the bus; action reboot))");
}

}  // namespace
}  // namespace fleetwatch::server
