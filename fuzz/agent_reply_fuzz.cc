// The server's parsers of agent replies (server/agent_protocol.h) on arbitrary bodies: agents
// are remote hosts, their replies untrusted. The first byte picks the parser: poll, inventory
// or job (its value modulo 3). A poll is parsed as JSON only and again as a reply whose last
// bytes are raw DCGM text (server/dcgm_poll_reply.h), their count (16 x the first byte / 3) in
// the header.
//
// Oracle: no crash or sanitizer report; an error is InvalidArgument; a reply that parses keeps
// the documented promises: valid ids, no job listed twice, at most 10,000 jobs, error texts of
// at most 4096 bytes, DCGM text empty when an error is given; a raw text is the body's tail.

#include <set>
#include <string>

#include "fuzz_support.h"
#include "model/names.h"
#include "server/agent_protocol.h"
#include "server/dcgm_poll_reply.h"

namespace fleetwatch::server {
namespace {

void CheckJob(const AgentJob& job) {
  FW_CHECK(model::IsValidJobId(job.job_id), "an invalid job id");
  FW_CHECK(job.error.size() <= 4096, "an error text over 4096 bytes");
}

template <typename T>
void CheckError(const Result<T>& result) {
  if (!result.ok()) {
    FW_CHECK(result.status().code() == StatusCode::kInvalidArgument, "not InvalidArgument");
  }
}

void CheckPoll(const Result<AgentPoll>& poll) {
  CheckError(poll);
  if (!poll.ok()) return;
  FW_CHECK(model::IsValidAgentId(poll->agent_id), "an invalid agent id");
  FW_CHECK(poll->jobs.size() <= 10'000, "over 10,000 jobs");
  std::set<std::string> ids;
  for (const AgentJob& job : poll->jobs) {
    CheckJob(job);
    FW_CHECK(ids.insert(job.job_id).second, "a job listed twice");
  }
  if (poll->dcgm && !poll->dcgm->error.empty()) {
    FW_CHECK(poll->dcgm->text.empty(), "DCGM text beside an error");
  }
}

}  // namespace
}  // namespace fleetwatch::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetwatch;
  using namespace fleetwatch::server;
  if (size == 0) return 0;
  const std::string_view body = fuzz::AsText(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      CheckPoll(ParseAgentPoll(body));
      const size_t text_bytes = static_cast<size_t>(data[0] / 3) * 16;
      http::Response reply;
      reply.body = std::string(body);
      reply.headers.emplace_back("fleetwatch-dcgm-text-bytes", std::to_string(text_bytes));
      Result<AgentPoll> raw = ParsePollReply(reply);
      CheckPoll(raw);
      if (raw.ok()) {
        FW_CHECK(text_bytes <= body.size(), "a text longer than the body");
        FW_CHECK(raw->dcgm.has_value(), "a raw text without a dcgm field");
        if (raw->dcgm->error.empty()) {
          FW_CHECK(raw->dcgm->text == body.substr(body.size() - text_bytes),
                   "a raw text that is not the body's tail");
        }
      }
      break;
    }
    case 1: {
      Result<AgentInventory> inventory = ParseAgentInventory(body);
      CheckError(inventory);
      if (!inventory.ok()) return 0;
      FW_CHECK(model::IsValidAgentId(inventory->agent_id), "an invalid agent id");
      FW_CHECK(inventory->cpus >= 0 && inventory->memory_bytes >= 0, "negative resources");
      break;
    }
    default: {
      Result<AgentJob> job = ParseAgentJob(body);
      CheckError(job);
      if (job.ok()) CheckJob(*job);
      break;
    }
  }
  return 0;
}
