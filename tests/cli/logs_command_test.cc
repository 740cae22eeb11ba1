#include "cli/logs_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace fleetwatch::cli {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

LogReply Reply(std::string bytes, std::optional<uint64_t> log_size,
               std::optional<std::string> job_status) {
  return LogReply{std::move(bytes), log_size, std::move(job_status)};
}

// A scripted server: answers fetches with the given replies in order and records the offsets
// asked for; a fetch past the script fails, so a runaway loop ends the test instead of hanging.
class FakeLog {
 public:
  explicit FakeLog(std::vector<Result<LogReply>> replies) : replies_(std::move(replies)) {}

  Status Stream(bool follow) {
    return StreamLog(
        [this](uint64_t offset) -> Result<LogReply> {
          offsets.push_back(offset);
          if (next_ >= replies_.size()) return Internal("fetched past the script");
          return replies_[next_++];
        },
        [this](std::string_view bytes) {
          if (fail_writes) return Unavailable("stdout closed");
          output.append(bytes);
          return Status::Ok();
        },
        [this](std::chrono::milliseconds interval) {
          sleeps.push_back(interval);
          return sleeps.size() <= sleeps_before_interrupt;
        },
        {.follow = follow, .poll_interval = 1000ms, .on_waiting = [this](std::string_view status) {
           waiting.emplace_back(status);
         }});
  }

  std::vector<uint64_t> offsets;
  std::vector<std::chrono::milliseconds> sleeps;
  std::string output;
  std::vector<std::string> waiting;  // the statuses on_waiting was told
  size_t sleeps_before_interrupt = 1000;
  bool fail_writes = false;

 private:
  std::vector<Result<LogReply>> replies_;
  size_t next_ = 0;
};

TEST(StreamLog, PrintsAWholeLogFromOneReply) {
  FakeLog log({Reply("hello\n", 6, "running")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, "hello\n");
  EXPECT_THAT(log.offsets, ElementsAre(0u));
  EXPECT_TRUE(log.sleeps.empty());
}

TEST(StreamLog, FetchesFromTheNextOffsetUntilTheLogSize) {
  FakeLog log({Reply("abc", 9, "done"), Reply("def", 9, "done"), Reply("ghi", 9, "done")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, "abcdefghi");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 3u, 6u));
  EXPECT_TRUE(log.sleeps.empty());
}

TEST(StreamLog, WithoutFollowStopsAtAnEmptyReplyEvenBelowTheLogSize) {
  FakeLog log({Reply("abc", 10, "running"), Reply("", 10, "running")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, "abc");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 3u));
}

TEST(StreamLog, WithoutFollowAnEmptyLogOfARunningJobPrintsNothing) {
  FakeLog log({Reply("", 0, "running")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, "");
  EXPECT_THAT(log.offsets, ElementsAre(0u));
  EXPECT_TRUE(log.sleeps.empty());
}

TEST(StreamLog, AJobThatHasNotStartedIsWaitedForWithOrWithoutFollow) {
  for (bool follow : {false, true}) {
    FakeLog log({Reply("", 0, "submitted"), Reply("", 0, "provisioning"), Reply("", 0, "pulling"),
                 Reply("hi\n", 3, "running"), Reply("", 3, "done")});
    ASSERT_TRUE(log.Stream(follow).ok()) << follow;
    EXPECT_EQ(log.output, "hi\n") << follow;
    EXPECT_EQ(log.waiting, (std::vector<std::string>{"submitted"})) << follow;
    // Without follow the log ends once the started job is caught up with.
    EXPECT_EQ(log.offsets.size(), follow ? 5u : 4u) << follow;
    EXPECT_EQ(log.sleeps.size(), follow ? 4u : 3u) << follow;
  }
}

TEST(StreamLog, AJobThatEndsBeforeStartingEndsTheWait) {
  FakeLog log({Reply("", 0, "submitted"), Reply("", 0, "terminated")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, "");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 0u));
  EXPECT_EQ(log.sleeps.size(), 1u);
}

TEST(StreamLog, AnInterruptedWaitEndsTheLoop) {
  FakeLog log({Reply("", 0, "submitted"), Reply("", 0, "submitted")});
  log.sleeps_before_interrupt = 1;
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.sleeps.size(), 2u);
}

TEST(StreamLog, MissingHeadersMeanTheBodyIsEverythingAndTheJobIsFinished) {
  for (bool follow : {false, true}) {
    FakeLog log({Reply("all of it\n", std::nullopt, std::nullopt)});
    ASSERT_TRUE(log.Stream(follow).ok()) << follow;
    EXPECT_EQ(log.output, "all of it\n") << follow;
    EXPECT_THAT(log.offsets, ElementsAre(0u)) << follow;
    EXPECT_TRUE(log.sleeps.empty()) << follow;
  }
}

TEST(StreamLog, FollowPollsFromTheLastOffsetUntilTheJobIsFinished) {
  FakeLog log({Reply("a", 1, "running"), Reply("", 1, "running"), Reply("bc", 3, "running"),
               Reply("", 3, "done")});
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "abc");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 1u, 1u, 3u));
  EXPECT_THAT(log.sleeps, ElementsAre(1000ms, 1000ms, 1000ms));
}

TEST(StreamLog, FollowReadsTheRestOfAFinishedJobWithoutSleeping) {
  FakeLog log({Reply("ab", 5, "failed"), Reply("cde", 5, "failed")});
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "abcde");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 2u));
  EXPECT_TRUE(log.sleeps.empty());
}

TEST(StreamLog, FollowCatchesUpBeforeSleeping) {
  FakeLog log({Reply("ab", 4, "running"), Reply("cd", 4, "running"), Reply("e", 5, "terminated")});
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "abcde");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 2u, 4u));
  EXPECT_THAT(log.sleeps, ElementsAre(1000ms));
}

TEST(StreamLog, FollowKeepsPollingThroughStatusesThatAreNotFinal) {
  FakeLog log({Reply("", 0, "submitted"), Reply("", 0, "provisioning"), Reply("x", 1, "running"),
               Reply("", 1, "terminating"), Reply("", 1, "aborted")});
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "x");
  EXPECT_EQ(log.sleeps.size(), 4u);
}

TEST(StreamLog, FollowEndsWhenTheSleepIsInterrupted) {
  FakeLog log({Reply("a", 1, "running"), Reply("b", 2, "running"), Reply("c", 3, "running")});
  log.sleeps_before_interrupt = 1;
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "ab");
  EXPECT_THAT(log.offsets, ElementsAre(0u, 1u));
  EXPECT_EQ(log.sleeps.size(), 2u);
}

TEST(StreamLog, FollowEndsOnAnEmptyReplyFromAFinishedJobBelowTheLogSize) {
  FakeLog log({Reply("ab", 10, "done"), Reply("", 10, "done")});
  ASSERT_TRUE(log.Stream(true).ok());
  EXPECT_EQ(log.output, "ab");
  EXPECT_TRUE(log.sleeps.empty());
}

TEST(StreamLog, WritesTheJobsBytesUntouched) {
  const std::string raw("\x1b[31mred\x1b[0m\r\n\0tab\there \xff\xfe\n", 27);
  FakeLog log({Reply(raw, raw.size(), "done")});
  ASSERT_TRUE(log.Stream(false).ok());
  EXPECT_EQ(log.output, raw);
}

TEST(StreamLog, ReturnsTheFetchError) {
  FakeLog log({Reply("abc", 6, "running"), NotFound("run x not found")});
  Status status = log.Stream(false);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "run x not found");
  EXPECT_EQ(log.output, "abc");
}

TEST(StreamLog, ReturnsTheWriteError) {
  FakeLog log({Reply("abc", 6, "running"), Reply("def", 6, "running")});
  log.fail_writes = true;
  Status status = log.Stream(true);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(log.offsets, ElementsAre(0u));
}

TEST(IsFinishedJobStatus, OnlyFinalStatusesAreFinished) {
  for (const char* status : {"done", "failed", "terminated", "aborted"}) {
    EXPECT_TRUE(IsFinishedJobStatus(status)) << status;
  }
  for (const char* status :
       {"submitted", "provisioning", "pulling", "running", "terminating", "", "DONE", "gone"}) {
    EXPECT_FALSE(IsFinishedJobStatus(status)) << status;
  }
}

TEST(LogReplyFromResponse, ReadsBodySizeAndStatus) {
  http::Response response;
  response.content_type = "text/plain";
  response.body = "line\n";
  response.headers = {{"x-log-size", " 42 "}, {"x-job-status", "running"}};
  Result<LogReply> reply = LogReplyFromResponse(response);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->bytes, "line\n");
  EXPECT_EQ(reply->log_size, 42u);
  EXPECT_EQ(reply->job_status, "running");
}

TEST(LogReplyFromResponse, MissingHeadersAreNullopt) {
  http::Response response;
  response.body = "x";
  Result<LogReply> reply = LogReplyFromResponse(response);
  ASSERT_TRUE(reply.ok());
  EXPECT_FALSE(reply->log_size.has_value());
  EXPECT_FALSE(reply->job_status.has_value());
}

TEST(LogReplyFromResponse, RefusesALogSizeThatIsNotANumber) {
  for (const char* size : {"", "-1", "12abc", "1e3", "99999999999999999999999"}) {
    http::Response response;
    response.headers = {{"x-log-size", size}};
    Result<LogReply> reply = LogReplyFromResponse(response);
    ASSERT_FALSE(reply.ok()) << size;
    EXPECT_EQ(reply.status().code(), StatusCode::kInternal) << size;
  }
}

TEST(LogReplyFromResponse, ErrorRepliesBecomeTheServersError) {
  http::Response response;
  response.status = 404;
  response.body = R"({"error": {"code": "not_found", "message": "run x not found"}})";
  Result<LogReply> reply = LogReplyFromResponse(response);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reply.status().message(), "run x not found");
}

}  // namespace
}  // namespace fleetwatch::cli
