#pragma once

#include <string>
#include <string_view>

#include "http/message.h"
#include "server/agent_protocol.h"
#include "util/status.h"

namespace fleetwatch::server {

// A poll reply that carries the host's DCGM text raw, after its JSON (asked for with
// `dcgm_raw=1`, docs/agent-api.md "DCGM text"), says so with this response header: the text's
// length in bytes, the body's last bytes.
inline constexpr std::string_view kDcgmTextBytesHeader = "Fleetwatch-Dcgm-Text-Bytes";

// Parses a successful reply of GET /api/poll in either form: JSON only (the DCGM text, if any, in
// the `dcgm` field, as an older agent sends it), or with the header above, the JSON (whose `dcgm`
// field is {"collected_at": T, "text": ""}) followed by that many bytes of DCGM text, which
// become the poll's `dcgm.text` without being copied: `reply.body` is consumed (left empty or
// unspecified).
//
// Errors (InvalidArgument, "bad agent reply: ..."), the whole reply lost: those of
// ParseAgentPoll; a malformed header (not a decimal, longer than the body); text after a JSON
// whose `dcgm` field is absent, null or an error, or whose text is not empty. A text over the
// DCGM cap (4 MiB) fails only the DCGM part, like an over-long `text` field: `dcgm.error` says
// so and the rest of the poll stands. Thread-safe (pure function).
Result<AgentPoll> ParsePollReply(http::Response& reply);
// The same, with the JSON part parsed by `parser` (one per agent: a plain poll like the agent's
// last one is not parsed again; agent_protocol.h AgentPollParser). Not thread-safe for `parser`.
Result<AgentPoll> ParsePollReply(http::Response& reply, AgentPollParser& parser);

}  // namespace fleetwatch::server
