#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace fleetwatch::testing {

// A private PostgreSQL cluster for tests: `initdb` in a temp dir, `postgres` listening on
// 127.0.0.1 at a free port (no Unix socket, fsync off, trust authentication for the loopback
// user `fleetwatch`). PostgreSQL refuses to run as root, so when the tests run as root the
// cluster runs as the unprivileged `postgres` account (or `nobody` when there is none).
//
// Lifetime: under ctest, one cluster serves the whole run: the `postgres` fixture's setup test
// starts it detached (StartDetached) and writes its port and directory to the file named by
// FLEETWATCH_TEST_POSTGRES (kEnvironmentVariable); Shared() attaches to it, and each test still
// gets databases of its own, dropped when the test process exits; the cleanup test stops it.
// Run by hand (no such file), Shared() starts one cluster per test process on first use; it is
// stopped and its directory removed at process exit. Should the test process die instead, the
// kernel sends the postmaster SIGQUIT (parent-death signal) so no server outlives it.
//
// Thread safety: Shared() and CreateDatabase() may be called from any thread, but the first
// Shared() belongs on the main thread: the parent-death signal follows the thread that started
// the server. Stop()/Start() are for one thread at a time, on a cluster of the process' own.
class PostgresCluster {
 public:
  // The variable naming the file that describes a cluster started by the ctest fixture.
  static constexpr const char* kEnvironmentVariable = "FLEETWATCH_TEST_POSTGRES";

  // The directory of the newest installed PostgreSQL's binaries (/usr/lib/postgresql/<v>/bin),
  // or empty when initdb/postgres are not installed.
  static std::string FindBinDir();

  // The process' cluster: the fixture's when FLEETWATCH_TEST_POSTGRES names a readable file,
  // else one started on first call. nullptr when it cannot start; `error` (when not null) then
  // says why, with the server's log.
  static PostgresCluster* Shared(std::string* error = nullptr);

  // A cluster of the caller's own, stopped and removed on destruction: for tests that stop and
  // restart the server, which must not disturb the other tests on the shared one.
  static std::unique_ptr<PostgresCluster> StartPrivate(std::string* error);

  // For the ctest fixture: starts a cluster that outlives this process and writes its port,
  // directory and postmaster pid to `file` (stopping first a cluster an earlier run left there).
  // StopDetached(file) stops it (fast shutdown) and removes its directory and `file`; a missing
  // file is no error. Both return false with `error` set on failure.
  static bool StartDetached(const std::string& file, std::string* error);
  static bool StopDetached(const std::string& file, std::string* error);

  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  uint16_t port() const { return port_; }
  // A new, empty database; returns its connection URL
  // ("postgresql://fleetwatch@127.0.0.1:PORT/NAME"), or empty with `error` set on failure.
  std::string CreateDatabase(std::string* error = nullptr);
  // The server's log (its stderr): errors, and what a connection asks to be logged (e.g. plans
  // through auto_explain).
  std::string LogPath() const { return (dir_ / "postgres.log").string(); }
  // The connection URL of the cluster's maintenance database `postgres`.
  std::string AdminUrl() const;
  // Sends the postmaster `signal` (SIGINT: fast shutdown) and waits for it to exit; Start()
  // brings it back on the same port and data. For tests of reconnects, on a cluster of the
  // process' own (StartPrivate): on the fixture's, Stop does nothing and Start fails.
  void Stop(int signal);
  bool Start(std::string* error);

 private:
  PostgresCluster() = default;
  // Creates the directory, runs initdb and starts the server.
  static std::unique_ptr<PostgresCluster> Create(bool detached, std::string* error);
  // The cluster described by a fixture file; nullptr when the file cannot be read.
  static std::unique_ptr<PostgresCluster> Attach(const std::string& file);

  std::string bin_dir_;
  std::filesystem::path dir_;
  bool owned_ = true;      // false: the fixture's, attached to; never stopped or removed here
  bool detached_ = false;  // started for the fixture: no parent-death signal
  std::vector<std::string> databases_;  // created here on an attached cluster, dropped at exit
  uid_t uid_ = 0;  // the account the server runs as (the process' own when not root)
  gid_t gid_ = 0;
  bool switch_user_ = false;
  uint16_t port_ = 0;
  pid_t postmaster_ = -1;
  int next_database_ = 0;
};

}  // namespace fleetwatch::testing
