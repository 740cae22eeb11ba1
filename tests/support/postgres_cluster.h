#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "support/process.h"

namespace fleetwatch::testing {

// A private PostgreSQL cluster for tests: `initdb` in a temp dir, `postgres` listening on
// 127.0.0.1 at a free port (no Unix socket, fsync off, trust authentication for the loopback
// user `fleetwatch`). PostgreSQL refuses to run as root, so when the tests run as root the
// cluster runs as the unprivileged `postgres` account (or `nobody` when there is none).
//
// Lifetime: Shared() starts one cluster per test process on first use; it is stopped and its
// directory removed at process exit. Should the test process die instead, the kernel sends the
// postmaster SIGQUIT (parent-death signal) so no server outlives it.
//
// Thread safety: Shared() and CreateDatabase() may be called from any thread, but the first
// Shared() belongs on the main thread: the parent-death signal follows the thread that started
// the server. Stop()/Start() are for one thread at a time.
class PostgresCluster {
 public:
  // The directory of the newest installed PostgreSQL's binaries (/usr/lib/postgresql/<v>/bin),
  // or empty when initdb/postgres are not installed.
  static std::string FindBinDir();

  // The process' cluster, started on first call. nullptr when it cannot start; `error` (when
  // not null) then says why, with the server's log.
  static PostgresCluster* Shared(std::string* error = nullptr);

  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  uint16_t port() const { return port_; }
  // A new, empty database; returns its connection URL
  // ("postgresql://fleetwatch@127.0.0.1:PORT/NAME"), or empty with `error` set on failure.
  std::string CreateDatabase(std::string* error = nullptr);
  // The server's log (its stderr): errors, and what a connection asks to be logged (e.g. plans
  // through auto_explain).
  std::string LogPath() const { return (dir_.path() / "postgres.log").string(); }
  // The connection URL of the cluster's maintenance database `postgres`.
  std::string AdminUrl() const;
  // Sends the postmaster `signal` (SIGINT: fast shutdown) and waits for it to exit; Start()
  // brings it back on the same port and data. For tests of reconnects.
  void Stop(int signal);
  bool Start(std::string* error);

 private:
  PostgresCluster() = default;

  std::string bin_dir_;
  TempDir dir_;
  uid_t uid_ = 0;  // the account the server runs as (the process' own when not root)
  gid_t gid_ = 0;
  bool switch_user_ = false;
  uint16_t port_ = 0;
  pid_t postmaster_ = -1;
  int next_database_ = 0;
};

}  // namespace fleetwatch::testing
