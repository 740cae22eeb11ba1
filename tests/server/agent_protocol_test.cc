// Agent replies are untrusted input: every malformed shape is an error, never a crash.
#include "server/agent_protocol.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

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

// A poll whose "gpus" list holds `gpus` (the text of its entries).
Result<AgentPoll> PollWithGpus(const std::string& gpus) {
  return ParseAgentPoll(R"({"agent_id":"a1","now":5,"jobs":[],"gpus":[)" + gpus + "]}");
}

TEST(AgentProtocol, GpuReadingsAreParsedWithEveryField) {
  auto poll = PollWithGpus(
      R"({"index":0,"uuid":"GPU-a","util_percent":55,"memory_used_bytes":100,)"
      R"("power_mw":251234,"energy_mj":987654321,"temperature_c":67,)"
      R"("throttle_reasons":{"mask":68,"names":["sw_power_cap","hw_thermal_slowdown"]},)"
      R"("ecc":{"corrected_volatile":1,"uncorrected_volatile":2,"corrected_aggregate":30,)"
      R"("uncorrected_aggregate":40},)"
      R"("remapped_rows":{"correctable":5,"uncorrectable":1,"pending":true,"failure":false},)"
      R"("retired_pages":{"single_bit_ecc":3,"double_bit_ecc":2,"pending":true},)"
      R"("nvlink":[{"link":0,"replay":1,"recovery":2,"crc_flit":3,"crc_data":4},{"link":2}],)"
      R"("xid":{"counts":[{"xid":13,"count":1},{"xid":79,"count":2}],"last":79,"last_at":9},)"
      R"("processes":[{"pid":4242,"used_memory_bytes":1048576},{"pid":4343}],)"
      R"("ras":[{"block":"umc","correctable":17,"uncorrectable":2},{"block":"sdma"}]},)"
      R"({"index":1,"uuid":"GPU-b","error":"NVML cannot open GPU 1"})");
  ASSERT_TRUE(poll.ok()) << poll.status().ToString();
  ASSERT_TRUE(poll->gpus.has_value());
  ASSERT_EQ(poll->gpus->size(), 2u);
  const model::GpuReading& a = (*poll->gpus)[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.uuid, "GPU-a");
  EXPECT_EQ(a.util_percent, 55);
  EXPECT_EQ(a.memory_used_bytes, 100);
  EXPECT_EQ(a.power_mw, 251234);
  EXPECT_EQ(a.energy_mj, 987654321);
  EXPECT_EQ(a.temperature_c, 67);
  EXPECT_EQ(a.throttle_reasons, 68);
  EXPECT_EQ(a.ecc, (model::EccCounts{1, 2, 30, 40}));
  EXPECT_EQ(a.remapped_rows, (model::RemappedRows{5, 1, true, false}));
  EXPECT_EQ(a.retired_pages, (model::RetiredPages{3, 2, true}));
  ASSERT_TRUE(a.nvlink.has_value());
  EXPECT_EQ(*a.nvlink, (std::vector<model::NvlinkErrors>{{0, 1, 2, 3, 4}, {2, {}, {}, {}, {}}}));
  ASSERT_TRUE(a.xid.has_value());
  EXPECT_EQ(a.xid->counts, (std::vector<model::XidEvents::Count>{{13, 1}, {79, 2}}));
  EXPECT_EQ(a.xid->last, 79);
  EXPECT_EQ(a.xid->last_at, 9);
  EXPECT_EQ(a.processes, (std::vector<model::GpuProcess>{{4242, 1048576}, {4343, std::nullopt}}));
  EXPECT_EQ(a.ras, (std::vector<model::RasErrors>{{"umc", 17, 2}, {"sdma", {}, {}}}));
  const model::GpuReading& b = (*poll->gpus)[1];
  EXPECT_EQ(b.error, "NVML cannot open GPU 1");
  model::GpuReading failed;
  failed.index = 1;
  failed.uuid = "GPU-b";
  failed.error = "NVML cannot open GPU 1";
  EXPECT_EQ(b, failed);
}

TEST(AgentProtocol, MissingOrNullGpuReadingsAreNotAvailable) {
  const std::string head = R"({"agent_id":"a1","now":5,"jobs":[])";
  auto none = ParseAgentPoll(head + "}");  // an agent that reads no GPUs, or an older one
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->gpus.has_value());
  auto null = ParseAgentPoll(head + R"(,"gpus":null})");
  ASSERT_TRUE(null.ok());
  EXPECT_FALSE(null->gpus.has_value());
  auto empty = ParseAgentPoll(head + R"(,"gpus":[]})");
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(empty->gpus.has_value());
  EXPECT_TRUE(empty->gpus->empty());

  auto bare = PollWithGpus(R"({"index":3})");
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  model::GpuReading only_index;
  only_index.index = 3;
  EXPECT_EQ((*bare->gpus)[0], only_index);
  auto nulls = PollWithGpus(
      R"({"index":0,"uuid":null,"power_mw":null,"energy_mj":null,"temperature_c":null,)"
      R"("throttle_reasons":null,"ecc":{},"remapped_rows":null,"retired_pages":{},)"
      R"("nvlink":null,"xid":null,"processes":null,"ras":null,"util_percent":null})");
  ASSERT_TRUE(nulls.ok()) << nulls.status().ToString();
  const model::GpuReading& r = (*nulls->gpus)[0];
  EXPECT_FALSE(r.power_mw || r.energy_mj || r.temperature_c || r.throttle_reasons ||
               r.remapped_rows || r.nvlink || r.xid || r.processes || r.ras || r.util_percent);
  EXPECT_EQ(r.ecc, model::EccCounts{});  // present, each count not available
  EXPECT_EQ(r.retired_pages, model::RetiredPages{});
}

TEST(AgentProtocol, BadGpuReadingsRejectThePollWithAClearError) {
  struct Case {
    std::string gpus;     // the entries of "gpus"
    std::string message;  // what the error must say
  };
  const std::vector<Case> cases = {
      {R"("x")", "each entry of 'gpus' must be an object"},
      {R"({})", "gpus[0]: 'index' must be an integer"},
      {R"({"index":0},{"index":0})", "GPU 0 is listed twice in 'gpus'"},
      {R"({"index":1024})", "gpus[0]: 'index' is out of range"},
      {R"({"index":0},{"index":1,"power_mw":"250"})", "gpus[1]: 'power_mw' must be an integer"},
      {R"({"index":0,"power_mw":-1})", "gpus[0]: 'power_mw' is out of range"},
      {R"({"index":0,"power_mw":2.5})", "gpus[0]: 'power_mw' must be an integer"},
      {R"({"index":0,"energy_mj":-5})", "gpus[0]: 'energy_mj' is out of range"},
      {R"({"index":0,"temperature_c":5000})", "gpus[0]: 'temperature_c' is out of range"},
      {R"({"index":0,"util_percent":101})", "gpus[0]: 'util_percent' is out of range"},
      {R"({"index":0,"memory_used_bytes":true})",
       "gpus[0]: 'memory_used_bytes' must be an integer"},
      {R"({"index":0,"uuid":7})", "gpus[0]: 'uuid' must be a string"},
      {R"({"index":0,"throttle_reasons":68})", "gpus[0]: 'throttle_reasons' must be an object"},
      {R"({"index":0,"throttle_reasons":{"names":[]}})", "gpus[0]: 'mask' must be an integer"},
      {R"({"index":0,"throttle_reasons":{"mask":1,"names":[1]}})",
       "gpus[0]: 'throttle_reasons.names' must be a list of short strings"},
      {R"({"index":0,"ecc":[]})", "gpus[0]: 'ecc' must be an object"},
      {R"({"index":0,"ecc":{"corrected_volatile":"1"}})",
       "gpus[0]: 'corrected_volatile' must be an integer"},
      {R"({"index":0,"remapped_rows":{"correctable":1,"uncorrectable":0,"pending":1,)"
       R"("failure":false}})",
       "gpus[0]: 'pending' must be a boolean"},
      {R"({"index":0,"remapped_rows":{"correctable":1,"pending":false,"failure":false}})",
       "gpus[0]: 'uncorrectable' must be an integer"},
      {R"({"index":0,"retired_pages":{"pending":"no"}})", "gpus[0]: 'pending' must be a boolean"},
      {R"({"index":0,"nvlink":{}})", "gpus[0]: 'nvlink' must be a list"},
      {R"({"index":0,"nvlink":[{"link":64}]})", "gpus[0]: 'link' is out of range"},
      {R"({"index":0,"nvlink":[{"link":1},{"link":1}]})", "gpus[0]: NVLink link 1 is listed twice"},
      {R"({"index":0,"nvlink":[{"link":0,"replay":-1}]})", "gpus[0]: 'replay' is out of range"},
      {R"({"index":0,"xid":{}})", "gpus[0]: 'xid.counts' must be a list"},
      {R"({"index":0,"xid":{"counts":[{"xid":79,"count":0}]}})",
       "gpus[0]: 'count' is out of range"},
      {R"({"index":0,"xid":{"counts":[{"xid":79,"count":1},{"xid":79,"count":1}]}})",
       "gpus[0]: XID 79 is listed twice"},
      {R"({"index":0,"xid":{"counts":[{"xid":79,"count":1}],"last":79}})",
       "gpus[0]: 'xid.last' and 'xid.last_at' must name a counted XID together"},
      {R"({"index":0,"xid":{"counts":[{"xid":79,"count":1}],"last":13,"last_at":5}})",
       "gpus[0]: 'xid.last' and 'xid.last_at' must name a counted XID together"},
      {R"({"index":0,"xid":{"counts":[],"last":"x","last_at":5}})",
       "gpus[0]: 'last' must be an integer"},
      {R"({"index":0,"processes":[7]})", "gpus[0]: each entry of 'processes' must be an object"},
      {R"({"index":0,"processes":[{"pid":-1}]})", "gpus[0]: 'pid' is out of range"},
      {R"({"index":0,"processes":[{"pid":1,"used_memory_bytes":"lots"}]})",
       "gpus[0]: 'used_memory_bytes' must be an integer"},
      {R"({"index":0,"ras":[{"block":"umc/../x"}]})",
       "gpus[0]: 'block' must be 1 to 64 of [A-Za-z0-9_]"},
      {R"({"index":0,"ras":[{"block":"umc","uncorrectable":-2}]})",
       "gpus[0]: 'uncorrectable' is out of range"},
  };
  for (const Case& c : cases) {
    auto poll = PollWithGpus(c.gpus);
    ASSERT_FALSE(poll.ok()) << c.gpus;
    EXPECT_EQ(poll.status().code(), StatusCode::kInvalidArgument) << c.gpus;
    EXPECT_EQ(poll.status().message(), "bad agent reply: " + c.message) << c.gpus;
  }
  // Not a list at all; too many entries.
  const std::string head = R"({"agent_id":"a1","now":5,"jobs":[])";
  auto object = ParseAgentPoll(head + R"(,"gpus":{}})");
  ASSERT_FALSE(object.ok());
  EXPECT_EQ(object.status().message(), "bad agent reply: 'gpus' must be a list");
  std::string many;
  for (int i = 0; i < 1025; ++i) many += (i ? "," : "") + std::string("{\"index\":0}");
  auto flood = PollWithGpus(many);
  ASSERT_FALSE(flood.ok());
  EXPECT_EQ(flood.status().message(), "bad agent reply: 'gpus' is too long");
}

}  // namespace
}  // namespace fleetwatch::server

namespace fleetwatch::server {
namespace {

// What AgentPollParser makes of a reply is what ParseAgentPoll makes of it.
void ExpectSameAsFullParse(const Result<AgentPoll>& got, std::string_view body) {
  Result<AgentPoll> want = ParseAgentPoll(body);
  ASSERT_EQ(got.ok(), want.ok()) << body;
  if (!want.ok()) {
    EXPECT_EQ(got.status().message(), want.status().message());
    return;
  }
  EXPECT_EQ(got->agent_id, want->agent_id);
  EXPECT_EQ(got->now, want->now);
  ASSERT_EQ(got->jobs.size(), want->jobs.size());
  for (size_t i = 0; i < want->jobs.size(); ++i) {
    EXPECT_EQ(got->jobs[i].job_id, want->jobs[i].job_id);
    EXPECT_EQ(got->jobs[i].state, want->jobs[i].state);
    EXPECT_EQ(got->jobs[i].exit_code, want->jobs[i].exit_code);
    EXPECT_EQ(got->jobs[i].signal, want->jobs[i].signal);
    EXPECT_EQ(got->jobs[i].stop_requested, want->jobs[i].stop_requested);
    EXPECT_EQ(got->jobs[i].started_at, want->jobs[i].started_at);
    EXPECT_EQ(got->jobs[i].finished_at, want->jobs[i].finished_at);
    EXPECT_EQ(got->jobs[i].error, want->jobs[i].error);
    EXPECT_EQ(got->jobs[i].metrics.has_value(), want->jobs[i].metrics.has_value());
  }
  EXPECT_EQ(got->dcgm.has_value(), want->dcgm.has_value());
  EXPECT_EQ(got->gpus.has_value(), want->gpus.has_value());
}

std::string Poll(std::string_view now, std::string_view state = "running") {
  return std::string(R"({"agent_id":"a1","now":)") + std::string(now) +
         R"(,"jobs":[{"job_id":"j1","state":")" + std::string(state) +
         R"(","started_at":3,"finished_at":null}]})";
}

TEST(AgentPollParser, AReplyThatDiffersOnlyInNowIsTheLastPollWithTheNewNow) {
  AgentPollParser parser;
  for (std::string_view now : {"5", "5", "6", "1000", "7", "0"}) {
    const std::string body = Poll(now);
    ExpectSameAsFullParse(parser.Parse(body), body);
  }
  EXPECT_TRUE(parser.last_reused());
  // A changed job after identical replies is parsed, and is what counts from then on.
  const std::string exited = Poll("8", "exited");
  Result<AgentPoll> changed = parser.Parse(exited);
  EXPECT_FALSE(parser.last_reused());
  ExpectSameAsFullParse(changed, exited);
  EXPECT_EQ(changed->jobs.at(0).state, AgentJobState::kExited);
  const std::string again = Poll("9", "exited");
  ExpectSameAsFullParse(parser.Parse(again), again);
  EXPECT_TRUE(parser.last_reused());
}

TEST(AgentPollParser, ANowThatIsNotAValidIntegerFailsAsAFullParseWould) {
  AgentPollParser parser;
  ASSERT_TRUE(parser.Parse(Poll("5")).ok());
  // Leading zeros, out of range, not a number, negative, fractional, empty.
  for (std::string_view now :
       {"05", "00", "99999999999999999999", "4611686018427387904", "-5", "5.5", "5e3", ""}) {
    const std::string body = Poll(now);
    ExpectSameAsFullParse(parser.Parse(body), body);
    EXPECT_FALSE(parser.last_reused()) << now;
  }
  // The remembered reply survives the failures.
  ASSERT_TRUE(parser.Parse(Poll("6")).ok());
  EXPECT_TRUE(parser.last_reused());
}

TEST(AgentPollParser, RepliesWhoseNowCannotBeFoundByItsTextAreAlwaysParsed) {
  // A second "now" key (nested, or a duplicate), an escaped key, a backslash anywhere, a space
  // before the colon: parsed in full every time, whatever changes.
  const std::vector<std::string> bodies = {
      R"({"agent_id":"a1","now":NOW,"jobs":[{"job_id":"j1","state":"running","x":{"now":1}}]})",
      R"({"agent_id":"a1","x":{"now":NOW},"now":5,"jobs":[]})",
      R"({"agent_id":"a1","\u006eow":5,"x":{"now":NOW},"jobs":[]})",
      R"({"agent_id":"a1","now":NOW,"jobs":[{"job_id":"j1","state":"lost","error":"a\"b"}]})",
      R"({"agent_id":"a1","now" :NOW,"jobs":[]})",
  };
  for (const std::string& pattern : bodies) {
    AgentPollParser parser;
    for (std::string_view now : {"5", "5", "6"}) {
      std::string body = pattern;
      body.replace(body.find("NOW"), 3, now);
      ExpectSameAsFullParse(parser.Parse(body), body);
      EXPECT_FALSE(parser.last_reused()) << body;
    }
  }
}

TEST(AgentPollParser, PollsWithMetricsAreParsedAndKeepThePlainReplyRemembered) {
  AgentPollParser parser;
  ASSERT_TRUE(parser.Parse(Poll("5")).ok());
  const std::string with_metrics =
      R"({"agent_id":"a1","now":6,"jobs":[{"job_id":"j1","state":"running","started_at":3,)"
      R"("metrics":{"timestamp_micro":6,"cpu_usage_micro":1,"memory_usage_bytes":2,)"
      R"("memory_working_set_bytes":3,"gpus":[]}}]})";
  for (int i = 0; i < 2; ++i) {
    ExpectSameAsFullParse(parser.Parse(with_metrics), with_metrics);
    EXPECT_FALSE(parser.last_reused());
  }
  const std::string plain = Poll("7");
  ExpectSameAsFullParse(parser.Parse(plain), plain);
  EXPECT_TRUE(parser.last_reused());
}

}  // namespace
}  // namespace fleetwatch::server
