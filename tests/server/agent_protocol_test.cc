// Agent replies are untrusted input: every malformed shape is an error, never a crash.
#include "server/agent_protocol.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace fleetwatch::server {
namespace {

namespace json = boost::json;

TEST(AgentProtocol, ParsesAPoll) {
  auto poll = ParseAgentPoll(
      R"({"agent_id":"a1","now":5,"jobs":[{"job_id":"j1","state":"running","pid":7,)"
      R"("exit_code":null,"signal":null,"stop_requested":false,"started_at":3,"finished_at":null,)"
      R"("error":null},{"job_id":"j2","state":"exited","exit_code":null,"signal":9,)"
      R"("started_at":1,"finished_at":4}]})");
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  EXPECT_EQ(poll->agent_id, "a1");
  ASSERT_EQ(poll->jobs.size(), 2u);
  EXPECT_EQ(poll->jobs[0].state, AgentJobState::kRunning);
  EXPECT_EQ(poll->jobs[1].signal, 9);
  EXPECT_FALSE(poll->jobs[1].exit_code.has_value());
}

TEST(AgentProtocol, ParsesALostJobAndValidatesItLikeAnyOther) {
  const std::string head = R"({"agent_id":"a1","now":5,"jobs":[{"job_id":"j1","state":)";
  auto lost =
      ParseAgentPoll(head + R"("lost","pid":0,"exit_code":null,"signal":null,"started_at":3,)"
                            R"("finished_at":4,"error":"the agent restarted"}]})");
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  ASSERT_EQ(lost->jobs.size(), 1u);
  EXPECT_EQ(lost->jobs[0].state, AgentJobState::kLost);
  EXPECT_EQ(lost->jobs[0].error, "the agent restarted");
  EXPECT_EQ(lost->jobs[0].finished_at, 4);
  for (const std::string& bad : {std::string(R"("LOST"}]})"), std::string(R"("lost","error":7}]})"),
                                 std::string(R"("lost","finished_at":-1}]})"),
                                 R"("lost","error":")" + std::string(5000, 'x') + R"("}]})"}) {
    EXPECT_FALSE(ParseAgentPoll(head + bad).ok()) << bad;
  }
}

TEST(AgentProtocol, DcgmTextRidesInThePollAndABadDcgmFieldFailsOnlyThatPart) {
  const std::string head = R"({"agent_id":"a1","now":5,"jobs":[])";
  auto none = ParseAgentPoll(head + "}");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->dcgm.has_value());
  auto null = ParseAgentPoll(head + R"(,"dcgm":null})");
  ASSERT_TRUE(null.ok());
  EXPECT_FALSE(null->dcgm.has_value());

  auto text = ParseAgentPoll(head + R"(,"dcgm":{"collected_at":4,"text":"A 1\n"}})");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  ASSERT_TRUE(text->dcgm.has_value());
  EXPECT_EQ(text->dcgm->collected_at, 4);
  EXPECT_EQ(text->dcgm->text, "A 1\n");
  EXPECT_EQ(text->dcgm->error, "");

  auto down = ParseAgentPoll(head + R"(,"dcgm":{"collected_at":null,"error":"starting"}})");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->dcgm->error, "starting");
  EXPECT_EQ(down->dcgm->text, "");

  for (const char* bad : {R"("x")", R"({"collected_at":"4","text":"A 1"})", R"({"text":"A 1"})",
                          R"({"collected_at":4,"text":7})", R"({"collected_at":-1,"text":""})"}) {
    auto poll = ParseAgentPoll(head + R"(,"dcgm":)" + bad + "}");
    ASSERT_TRUE(poll.ok()) << bad;  // the jobs still count
    ASSERT_TRUE(poll->dcgm.has_value()) << bad;
    EXPECT_NE(poll->dcgm->error, "") << bad;
    EXPECT_EQ(poll->dcgm->text, "") << bad;
  }
}

TEST(AgentProtocol, ParsesAnInventoryWithHostileGpuNames) {
  auto inv = ParseAgentInventory(
      R"({"agent_id":"a","hostname":"h","cpus":8,"memory_bytes":1024,"cgroup":"v1",)"
      R"("gpus":[{"index":0,"name":"<img src=x onerror=alert(1)>\"\n}","uuid":"GPU-1",)"
      R"("memory_bytes":10,"vendor":"nvidia"}]})");
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  EXPECT_EQ(inv->gpus[0].name, "<img src=x onerror=alert(1)>\"\n}");
}

TEST(AgentProtocol, RefusesMalformedReplies) {
  const char* bad_polls[] = {
      "",
      "garbage",
      R"({"agent_id":"a","now":1,"jobs":[{"job_id":"j","state":"running")",  // truncated
      "[]",
      R"({"agent_id":1,"now":1,"jobs":[]})",
      R"({"agent_id":"a","now":-1,"jobs":[]})",
      R"({"agent_id":"a","now":1,"jobs":{}})",
      R"({"agent_id":"a","now":1,"jobs":[7]})",
      R"({"agent_id":"a","now":1,"jobs":[{"job_id":"j","state":"dancing"}]})",
      R"({"agent_id":"a","now":1,"jobs":[{"job_id":"j","state":"exited","exit_code":"0"}]})",
      R"({"agent_id":"a","now":1,"jobs":[{"job_id":"j","state":"exited","exit_code":1e99}]})",
      R"({"agent_id":"a","now":1,"jobs":[{"job_id":"j","state":"running","stop_requested":1}]})",
      R"({"agent_id":"a","now":99999999999999999999999,"jobs":[]})",
  };
  for (const char* body : bad_polls) {
    auto poll = ParseAgentPoll(body);
    EXPECT_FALSE(poll.ok()) << body;
    EXPECT_EQ(poll.status().code(), StatusCode::kInvalidArgument);
  }
  std::string deep(100000, '[');
  EXPECT_FALSE(ParseAgentPoll(deep).ok());
  const char* bad_inventories[] = {
      R"({"agent_id":"a","hostname":"h","cpus":0,"memory_bytes":1,"gpus":[]})",
      R"({"agent_id":"a","hostname":"h","cpus":2,"memory_bytes":1,"gpus":null})",
      R"({"agent_id":"a","hostname":"h","cpus":2,"memory_bytes":1,"gpus":[{"index":0}]})",
      R"({"agent_id":"a","hostname":"h","cpus":2,"memory_bytes":1,"gpus":[)"
      R"({"index":0,"name":"x","uuid":"u","memory_bytes":1,"vendor":"nvidia"},)"
      R"({"index":0,"name":"x","uuid":"u","memory_bytes":1,"vendor":"nvidia"}]})",
  };
  for (const char* body : bad_inventories) EXPECT_FALSE(ParseAgentInventory(body).ok()) << body;
}

TEST(AgentProtocol, JobIdsAndAgentIdsFollowTheAgentsOwnRule) {
  auto poll_with = [](const std::string& agent_id, const std::string& job_id) {
    json::object job{{"job_id", job_id}, {"state", "exited"}, {"exit_code", 0}};
    return ParseAgentPoll(json::serialize(
        json::object{{"agent_id", agent_id}, {"now", 1}, {"jobs", json::array{job}}}));
  };
  EXPECT_TRUE(poll_with("a-1", "0b9e2c1a-5f3d-4c8e-9a7b-1234567890ab").ok());
  EXPECT_TRUE(poll_with(std::string(64, 'A'), std::string(64, 'z')).ok());
  for (const std::string& bad :
       std::vector<std::string>{"../../x", "/abs/path/x", "", std::string(65, 'a'), "a b", "a_b",
                                "a.log", "x\n", "caf\xc3\xa9", std::string("a\0b", 3)}) {
    auto poll = poll_with("a-1", bad);
    EXPECT_FALSE(poll.ok()) << bad;  // the whole reply is bad: the host loses that tick
    EXPECT_EQ(poll.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(poll_with(bad, "j1").ok()) << bad;
    EXPECT_FALSE(
        ParseAgentJob(json::serialize(json::object{{"job_id", bad}, {"state", "running"}})).ok())
        << bad;
    EXPECT_FALSE(ParseAgentInventory(json::serialize(json::object{{"agent_id", bad},
                                                                  {"hostname", "h"},
                                                                  {"cpus", 1},
                                                                  {"memory_bytes", 1},
                                                                  {"gpus", json::array()}}))
                     .ok())
        << bad;
  }
}

TEST(AgentProtocol, CountsAreCappedAndAJobIsListedOnce) {
  auto poll_of = [](int jobs, bool twice) {
    json::array list;
    for (int k = 0; k < jobs; ++k) {
      list.push_back(
          json::object{{"job_id", "j" + std::to_string(twice ? 0 : k)}, {"state", "running"}});
    }
    return ParseAgentPoll(
        json::serialize(json::object{{"agent_id", "a"}, {"now", 1}, {"jobs", std::move(list)}}));
  };
  EXPECT_TRUE(poll_of(10'000, false).ok());
  EXPECT_FALSE(poll_of(10'001, false).ok());
  EXPECT_FALSE(poll_of(2, true).ok());
}

TEST(AgentProtocol, LogChunksAreCheckedAgainstWhatWasAsked) {
  auto chunk = ParseAgentLogChunk("abc", "10", 5, 3);
  ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
  EXPECT_EQ(chunk->data, "abc");
  EXPECT_EQ(chunk->size, 10);
  EXPECT_TRUE(ParseAgentLogChunk("", "0", 0, 100).ok());
  EXPECT_FALSE(ParseAgentLogChunk("abcd", "10", 0, 3).ok());  // more than asked for
  EXPECT_FALSE(ParseAgentLogChunk("abc", "", 0, 3).ok());     // no size
  EXPECT_FALSE(ParseAgentLogChunk("abc", "-1", 0, 3).ok());
  EXPECT_FALSE(ParseAgentLogChunk("abc", "1e3", 0, 3).ok());
  EXPECT_FALSE(ParseAgentLogChunk("abc", "7", 5, 3).ok());  // smaller than what was served
  EXPECT_FALSE(ParseAgentLogChunk("abc", "99999999999999999999", 0, 3).ok());
}

TEST(AgentProtocol, StartRequestCarriesEverythingTheAgentNeeds) {
  StartJobRequest r;
  r.job_id = "j1";
  r.job_name = "train-0-0";
  r.run_name = "train";
  r.commands = {"echo \"hi\""};
  r.env = {{"A", "1"}};
  r.gpu_indices = {0, 1};
  r.cpus = 2;
  r.cluster = {2, 1, "10.0.0.1", {"10.0.0.1", "10.0.0.2"}, 2};
  boost::json::value v = boost::json::parse(StartJobRequestToJson(r));
  EXPECT_EQ(v.at("commands").at(0).as_string(), "echo \"hi\"");
  EXPECT_EQ(v.at("env").at("A").as_string(), "1");
  EXPECT_TRUE(v.at("memory_bytes").is_null());
  EXPECT_EQ(v.at("cluster").at("node_rank").as_int64(), 1);
  EXPECT_EQ(v.at("cluster").at("nodes_ips").as_array().size(), 2u);
}

}  // namespace
}  // namespace fleetwatch::server
