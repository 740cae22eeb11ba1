#pragma once

#include <memory>
#include <string>

#include "http/async_client.h"
#include "server/agent_protocol.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/status.h"

namespace fleetwatch::server {

// The agent for the server's own machine (fleet `local`, backend `local`), run as a separate
// `fleetwatch agent` process on 127.0.0.1 so that jobs outlive a server crash exactly like on any
// other host. It serves HTTPS with the self-signed certificate it makes in its own directory; the
// server pins the fingerprint the agent wrote into its ready file. Its address, token and
// fingerprint are kept in <data_dir>/local-agent.json; a restarted server finds a still-running
// agent there and keeps using it. Not thread-safe (owned by ServerApp).
class LocalAgent {
 public:
  // Reuses the agent recorded in `data_dir` when it answers with its token, else starts
  // `binary agent ...` detached (its own session, so it survives the server) and waits until it
  // is listening. Then makes sure project `main` has fleet `local` with one instance pointing at
  // it. Without `dcgm` (Prometheus metrics off) a started agent runs no dcgm-exporter.
  static Result<std::unique_ptr<LocalAgent>> Ensure(const std::string& data_dir,
                                                    const std::string& binary, store::Store& store,
                                                    const Clock& clock, http::AsyncClient& client,
                                                    bool dcgm = true);

  const AgentAddress& address() const { return address_; }
  int pid() const { return pid_; }

  // SIGTERM (the agent stops its jobs), waits up to 20 s, then SIGKILL; forgets the address.
  void Stop();

 private:
  LocalAgent(std::string state_file, AgentAddress address, int pid)
      : state_file_(std::move(state_file)), address_(std::move(address)), pid_(pid) {}

  std::string state_file_;
  AgentAddress address_;
  int pid_ = 0;
};

}  // namespace fleetwatch::server
