#pragma once

#include <string>

#include "http/async_client.h"
#include "server/agent_lanes.h"
#include "server/log_copies.h"

namespace fleetwatch::server {

// The acknowledgement of an ended job of the server: its log is copied from the agent
// (GET /api/jobs/{id}/logs, piece by piece, under LogCopies' rules and caps), then the agent is
// told to forget the job (DELETE /api/jobs/{id}). `job_id` is the server's own id (Reconcile
// acknowledges only jobs it placed on that instance), so the copy's path is built from the
// server's id. `request` gives the agent's address, token, TLS settings and per-request timeout;
// its method, target and body are set per request. The operation ends with the DELETE's reply,
// or with the error that ended the copy: the job then stays on the agent and a later tick copies
// again. Every request is asynchronous; the copy's file is written on the thread its reply
// arrives on.
AgentOperation CopyLogThenAcknowledge(LogCopies copies, http::AsyncRequest request,
                                      std::string job_id);

}  // namespace fleetwatch::server
