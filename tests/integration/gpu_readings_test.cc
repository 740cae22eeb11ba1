// GPU readings end to end: a real agent process on the fake NVML (values set and XIDs injected
// through its control files), polled over HTTP like the server polls it, its reply read by the
// server's own parser.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "server/agent_protocol.h"
#include "support/process.h"
#include "util/clock.h"

namespace fleetwatch::testing {
namespace {

class GpuReadingsIntegrationTest : public ::testing::Test {
 protected:
  // A poll with metrics, parsed by the server's parser (which must accept it).
  server::AgentPoll Poll(const AgentProcess& agent) {
    ApiClient client("http://127.0.0.1:" + std::to_string(agent.port()), kTestAgentToken);
    ApiReply reply = client.Get("/api/poll?metrics=1");
    EXPECT_EQ(reply.status, 200) << reply.body;
    Result<server::AgentPoll> poll = server::ParseAgentPoll(reply.body);
    EXPECT_TRUE(poll.ok()) << poll.status().ToString() << "\n" << reply.body;
    if (!poll.ok()) return {};
    last_body_ = reply.body;
    return *poll;
  }

  TempDir dir_;
  std::filesystem::path xids_ = dir_.path() / "xids.txt";
  std::string last_body_;
};

TEST_F(GpuReadingsIntegrationTest, ReadingsAndXidsReachTheServersParser) {
  AgentProcessOptions options = AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY);
  options.dir = dir_.path();
  options.env["FAKE_NVML_XID_FILE"] = xids_.string();
  AgentProcess agent(options);
  ASSERT_NE(agent.port(), 0) << agent.Output();
  // The fake reads its file at every call: the agent's GPUs now report these readings.
  std::ofstream(dir_.path() / "gpus.txt", std::ios::trunc)
      << "NVIDIA H100|GPU-fake-0|85899345920|1073741824|93|power=612000|energy=5000000"
         "|temp=71|throttle=4|ecc=0,0,3,0|rows=2,0,0,0|nvlink=0,0,1,0"
         "|procs=1234:1073741824\n"
         "NVIDIA H100|GPU-fake-1|85899345920|0|0\n";

  server::AgentPoll poll = Poll(agent);
  ASSERT_TRUE(poll.gpus.has_value()) << last_body_;
  ASSERT_EQ(poll.gpus->size(), 2u);
  const model::GpuReading& a = (*poll.gpus)[0];
  EXPECT_EQ(a.uuid, "GPU-fake-0");
  EXPECT_EQ(a.util_percent, 93);
  EXPECT_EQ(a.power_mw, 612000);
  EXPECT_EQ(a.energy_mj, 5000000);
  EXPECT_EQ(a.temperature_c, 71);
  EXPECT_EQ(a.throttle_reasons, 4);
  EXPECT_EQ(a.ecc, (model::EccCounts{0, 0, 3, 0}));
  EXPECT_EQ(a.remapped_rows, (model::RemappedRows{2, 0, false, false}));
  EXPECT_FALSE(a.retired_pages.has_value());  // NOT_SUPPORTED: absent
  ASSERT_TRUE(a.nvlink.has_value());
  EXPECT_EQ(*a.nvlink, (std::vector<model::NvlinkErrors>{{0, 0, 0, 1, 0}}));
  EXPECT_EQ(a.processes, (std::vector<model::GpuProcess>{{1234, 1073741824}}));
  const model::GpuReading& b = (*poll.gpus)[1];
  EXPECT_EQ(b.util_percent, 0);
  EXPECT_FALSE(b.power_mw || b.energy_mj || b.temperature_c || b.throttle_reasons || b.ecc ||
               b.remapped_rows || b.nvlink || b.processes || b.ras);
  ASSERT_TRUE(b.xid.has_value());
  EXPECT_TRUE(b.xid->counts.empty());

  const TimeMicros before = SystemClock::Get().Now();
  std::ofstream(xids_, std::ios::app) << "1 79\n";
  ASSERT_TRUE(WaitUntil([&] {
    server::AgentPoll p = Poll(agent);
    return p.gpus && (*p.gpus)[1].xid && !(*p.gpus)[1].xid->counts.empty();
  })) << last_body_;
  const TimeMicros after = SystemClock::Get().Now();
  poll = Poll(agent);
  const model::XidEvents& xid = *(*poll.gpus)[1].xid;
  EXPECT_EQ(xid.counts, (std::vector<model::XidEvents::Count>{{79, 1}}));
  EXPECT_EQ(xid.last, 79);
  ASSERT_TRUE(xid.last_at.has_value());
  EXPECT_GE(*xid.last_at, before);
  EXPECT_LE(*xid.last_at, after);
  EXPECT_TRUE((*poll.gpus)[0].xid->counts.empty());

  // Without metrics the 1-second status poll carries no readings.
  ApiClient client("http://127.0.0.1:" + std::to_string(agent.port()), kTestAgentToken);
  Result<server::AgentPoll> plain = server::ParseAgentPoll(client.Get("/api/poll").body);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->gpus.has_value());
}

}  // namespace
}  // namespace fleetwatch::testing
