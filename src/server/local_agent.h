#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "http/async_client.h"
#include "server/agent_protocol.h"
#include "server/periodic_task.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

struct LocalAgentOptions {
  std::string data_dir;  // the server's: the agent lives in <data_dir>/local-agent
  std::string binary;    // the fleetwatch executable
  bool dcgm = true;      // false (Prometheus metrics off): a started agent runs no dcgm-exporter
};

// The agent for the server's own machine (fleet `local`, backend `local`), run as a separate
// `fleetwatch agent` process on 127.0.0.1 so that jobs outlive a server crash exactly like on any
// other host. It serves HTTPS with the self-signed certificate it makes in its own directory; the
// server pins the fingerprint the agent wrote into its ready file. Its address, token and
// fingerprint are kept in <data_dir>/local-agent.json; a restarted server finds a still-running
// agent there and keeps using it. The agent holds the lock on its own directory
// (util/data_dir_lock.h), so two agents never share it.
// Thread-safe; `store`, `clock` and `client` must outlive it.
class LocalAgent {
 public:
  LocalAgent(LocalAgentOptions options, store::Store& store, const Clock& clock,
             http::AsyncClient& client);
  ~LocalAgent();  // stops supervising; leaves the agent running
  LocalAgent(const LocalAgent&) = delete;
  LocalAgent& operator=(const LocalAgent&) = delete;

  // Reuses the agent recorded in the data dir when it is alive and answers with its token, else
  // starts `binary agent ...` detached (its own session, so it survives the server) and waits
  // until it is listening. Then makes sure project `main` has fleet `local` with one instance
  // pointing at it. Errors: Unavailable when the agent does not start within 30 s (its log is
  // named), or when another process holds the agent's directory but does not answer (it is left
  // alone); the store's errors.
  Status Ensure() FW_EXCLUDES(mu_);

  // From now on checks every `interval` that the agent is alive, and starts it again when it is
  // not (it died, or Ensure failed), each time with a line in the server log, waiting 1 s, then
  // 2 s, 4 s... up to 60 s between tries while it keeps dying or failing to start.
  void Supervise(std::chrono::milliseconds interval = std::chrono::seconds(1)) FW_EXCLUDES(mu_);

  // The agent's pid; 0 when none is known.
  int pid() const FW_EXCLUDES(mu_);

  // Stops supervising. An agent this server started gets SIGTERM (it stops its jobs), then
  // SIGKILL after 20 s; one it found running (an earlier server's) is left running with its jobs.
  // Idempotent.
  void Stop() FW_EXCLUDES(mu_);

 private:
  Status EnsureLocked() FW_REQUIRES(mu_);
  void SuperviseOnce() FW_EXCLUDES(mu_);

  const LocalAgentOptions options_;
  store::Store& store_;
  const Clock& clock_;
  http::AsyncClient& client_;
  mutable Mutex mu_;  // held while starting an agent
  AgentAddress address_ FW_GUARDED_BY(mu_);
  int pid_ FW_GUARDED_BY(mu_) = 0;
  bool started_here_ FW_GUARDED_BY(mu_) = false;  // this server started the agent `pid_`
  // Deaths and failed starts in a row, for the backoff.
  int failures_ FW_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point next_try_ FW_GUARDED_BY(mu_){};
  std::chrono::steady_clock::time_point up_since_ FW_GUARDED_BY(mu_){};
  std::unique_ptr<PeriodicTask> supervisor_ FW_GUARDED_BY(mu_);
};

}  // namespace fleetwatch::server
