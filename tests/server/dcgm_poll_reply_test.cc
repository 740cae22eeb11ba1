// A poll reply's DCGM text in either form: in the JSON (an older agent) or raw after it. The
// framing is untrusted input like the JSON: a wrong length or a JSON that does not announce the
// text loses the reply, a text over the cap loses only the DCGM part.
#include "server/dcgm_poll_reply.h"

#include <gtest/gtest.h>

#include <string>

namespace fleetwatch::server {
namespace {

const std::string kJobs = R"({"agent_id":"a1","now":5,"jobs":[{"job_id":"j1","state":"running",)"
                          R"("started_at":3}])";
const std::string kText = "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 7\n";

http::Response Reply(std::string body, std::optional<std::string> text_bytes = std::nullopt) {
  http::Response reply;
  reply.body = std::move(body);
  if (text_bytes) reply.headers.emplace_back("fleetwatch-dcgm-text-bytes", *text_bytes);
  return reply;
}

TEST(DcgmPollReply, TakesTheRawTextAfterTheJsonAsThePollsText) {
  http::Response reply = Reply(kJobs + R"(,"dcgm":{"collected_at":4,"text":""}})" + kText,
                               std::to_string(kText.size()));
  Result<AgentPoll> poll = ParsePollReply(reply);
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  ASSERT_EQ(poll->jobs.size(), 1u);
  ASSERT_TRUE(poll->dcgm.has_value());
  EXPECT_EQ(poll->dcgm->collected_at, 4);
  EXPECT_EQ(poll->dcgm->text, kText);
  EXPECT_EQ(poll->dcgm->error, "");

  // A text of no bytes is an empty text.
  reply = Reply(kJobs + R"(,"dcgm":{"collected_at":4,"text":""}})", "0");
  poll = ParsePollReply(reply);
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  EXPECT_EQ(poll->dcgm->text, "");
  EXPECT_EQ(poll->dcgm->error, "");
}

TEST(DcgmPollReply, AcceptsTheTextInTheJsonAsAnOlderAgentSendsIt) {
  http::Response reply = Reply(kJobs + R"(,"dcgm":{"collected_at":4,"text":"A 1\n"}})");
  Result<AgentPoll> poll = ParsePollReply(reply);
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  EXPECT_EQ(poll->dcgm->text, "A 1\n");
  // And an agent whose exporter is down says why, with or without the raw form asked for.
  reply = Reply(kJobs + R"(,"dcgm":{"collected_at":null,"error":"starting"}})");
  poll = ParsePollReply(reply);
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  EXPECT_EQ(poll->dcgm->error, "starting");
  EXPECT_EQ(poll->dcgm->text, "");
}

TEST(DcgmPollReply, AMalformedFramingLosesTheReply) {
  const std::string announced = kJobs + R"(,"dcgm":{"collected_at":4,"text":""}})";
  struct Case {
    std::string body;
    std::string text_bytes;
  };
  const Case cases[] = {
      {announced + kText, ""},                                  // no length
      {announced + kText, "x"},                                 // not a number
      {announced + kText, "-1"},                                // not a length
      {announced + kText, " 5"},                                // blanks
      {announced + kText, std::to_string(kText.size()) + "0"},  // past the body
      {announced + kText, "99999999999999999999999"},           // out of range
      {announced + kText, std::to_string(kText.size() - 1)},    // cuts the JSON short
      {announced + kText, std::to_string(kText.size() + 1)},    // eats into the JSON
      {kJobs + "}" + kText, std::to_string(kText.size())},      // no dcgm field
      {kJobs + R"(,"dcgm":null})" + kText, std::to_string(kText.size())},
      {kJobs + R"(,"dcgm":{"collected_at":4,"text":"A 1\n"}})" + kText,
       std::to_string(kText.size())},  // two texts
      {kJobs + R"(,"dcgm":{"collected_at":null,"error":"starting"}})" + kText,
       std::to_string(kText.size())},
      {kJobs + R"(,"dcgm":{"text":""}})" + kText, std::to_string(kText.size())},  // no time
  };
  for (const Case& c : cases) {
    http::Response reply = Reply(c.body, c.text_bytes);
    Result<AgentPoll> poll = ParsePollReply(reply);
    ASSERT_FALSE(poll.ok()) << c.text_bytes << " " << c.body;
    EXPECT_EQ(poll.status().message().rfind("bad agent reply: ", 0), 0u) << poll.status().message();
  }
}

TEST(DcgmPollReply, ATextOverTheCapFailsOnlyTheDcgmPart) {
  const std::string text((4 << 20) + 1, 'x');
  http::Response reply =
      Reply(kJobs + R"(,"dcgm":{"collected_at":4,"text":""}})" + text, std::to_string(text.size()));
  Result<AgentPoll> poll = ParsePollReply(reply);
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  EXPECT_EQ(poll->jobs.size(), 1u);
  ASSERT_TRUE(poll->dcgm.has_value());
  EXPECT_EQ(poll->dcgm->text, "");
  EXPECT_NE(poll->dcgm->error.find("too long"), std::string::npos) << poll->dcgm->error;
}

}  // namespace
}  // namespace fleetwatch::server
