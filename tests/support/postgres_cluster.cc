#include "support/postgres_cluster.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;

// The version number of /usr/lib/postgresql/<v>, 0 when <v> is not a number.
int VersionOf(const fs::path& dir) {
  try {
    return std::stoi(dir.filename().string());
  } catch (...) {
    return 0;
  }
}

bool IsExecutable(const fs::path& path) { return ::access(path.c_str(), X_OK) == 0; }

// Runs argv[0] with `argv` in `cwd`, its output appended to `log`, as uid/gid when `switch_user`.
// With `die_with_parent`, the kernel sends the child SIGQUIT (PostgreSQL's immediate shutdown)
// when this thread exits. Returns the child's pid, or -1.
pid_t Spawn(const std::vector<std::string>& args, const std::string& cwd, const std::string& log,
            bool switch_user, uid_t uid, gid_t gid, bool die_with_parent) {
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    if (log_fd >= 0) ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return -1;
  }
  if (switch_user && ::fchown(log_fd, uid, gid) != 0) {
    ::close(log_fd);
    ::close(null_fd);
    return -1;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) ::_exit(126);
    if (switch_user) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
    }
    // Set after the user switch, which clears it.
    if (die_with_parent) {
      if (::prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0 || ::getppid() != parent) ::_exit(126);
    }
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    // Nothing else of the parent's (e.g. ctest's output pipe, which a detached server would
    // otherwise hold open).
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  return pid;
}

// Waits for `pid` and returns its exit status (128 + signal when killed), -1 on failure.
int WaitFor(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string Url(uint16_t port, const std::string& database) {
  return "postgresql://fleetwatch@127.0.0.1:" + std::to_string(port) + "/" + database +
         "?connect_timeout=10";
}

std::mutex& SharedMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

std::string PostgresCluster::FindBinDir() {
  std::error_code ec;
  fs::path best;
  for (const fs::directory_entry& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    if (VersionOf(entry.path()) == 0 || !IsExecutable(bin / "initdb") ||
        !IsExecutable(bin / "postgres")) {
      continue;
    }
    if (best.empty() || VersionOf(entry.path()) > VersionOf(best.parent_path())) best = bin;
  }
  return best.string();
}

std::unique_ptr<PostgresCluster> PostgresCluster::Create(bool detached, std::string* error) {
  std::unique_ptr<PostgresCluster> made(new PostgresCluster());
  made->detached_ = detached;
  std::string failure;
  {
    std::string pattern = (fs::temp_directory_path() /
                           ("fleetwatch-postgres-" + std::to_string(::getpid()) + "-XXXXXX"))
                              .string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      failure = "cannot create a directory for PostgreSQL: " + std::string(std::strerror(errno));
    }
    made->dir_ = pattern;
  }
  made->bin_dir_ = FindBinDir();
  if (!failure.empty()) {
    made->owned_ = false;  // nothing to remove
  } else if (made->bin_dir_.empty()) {
    failure = "no PostgreSQL binaries under /usr/lib/postgresql/*/bin";
  } else {
    made->uid_ = ::getuid();
    made->gid_ = ::getgid();
    if (::geteuid() == 0) {
      const passwd* account = ::getpwnam("postgres");
      if (account == nullptr) account = ::getpwnam("nobody");
      if (account == nullptr) {
        failure = "running as root and there is no postgres or nobody account to run PostgreSQL";
      } else {
        made->switch_user_ = true;
        made->uid_ = account->pw_uid;
        made->gid_ = account->pw_gid;
        if (::chown(made->dir_.c_str(), made->uid_, made->gid_) != 0) {
          failure = "cannot hand " + made->dir_.string() +
                    " to the PostgreSQL account: " + std::strerror(errno);
        }
      }
    }
  }
  if (failure.empty()) {
    const std::string log = (made->dir_ / "initdb.log").string();
    const pid_t pid =
        Spawn({made->bin_dir_ + "/initdb", "-D", (made->dir_ / "data").string(), "-U", "fleetwatch",
               "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
              made->dir_.string(), log, made->switch_user_, made->uid_, made->gid_,
              /*die_with_parent=*/false);
    if (pid < 0 || WaitFor(pid) != 0) failure = "initdb failed:\n" + ReadFile(log);
  }
  if (failure.empty()) made->Start(&failure);
  if (!failure.empty()) {
    if (error != nullptr) *error = failure;
    return nullptr;
  }
  return made;
}

std::unique_ptr<PostgresCluster> PostgresCluster::Attach(const std::string& file) {
  const std::string text = ReadFile(file);
  std::unique_ptr<PostgresCluster> attached(new PostgresCluster());
  attached->owned_ = false;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "port") attached->port_ = static_cast<uint16_t>(std::atoi(value.c_str()));
    if (key == "dir") attached->dir_ = value;
  }
  if (attached->port_ == 0 || attached->dir_.empty()) return nullptr;
  return attached;
}

PostgresCluster* PostgresCluster::Shared(std::string* error) {
  std::lock_guard<std::mutex> lock(SharedMutex());
  static std::unique_ptr<PostgresCluster> cluster;
  static std::string failure;
  if (cluster != nullptr) return cluster.get();
  if (!failure.empty()) {
    if (error != nullptr) *error = failure;
    return nullptr;
  }
  if (const char* file = std::getenv(kEnvironmentVariable); file != nullptr && *file != '\0') {
    cluster = Attach(file);
    if (cluster != nullptr) return cluster.get();
    // The fixture did not run (or found no PostgreSQL): as when run by hand.
  }
  cluster = Create(/*detached=*/false, &failure);
  if (cluster == nullptr && error != nullptr) *error = failure;
  return cluster.get();
}

std::unique_ptr<PostgresCluster> PostgresCluster::StartPrivate(std::string* error) {
  return Create(/*detached=*/false, error);
}

bool PostgresCluster::StartDetached(const std::string& file, std::string* error) {
  if (!StopDetached(file, error)) return false;
  std::unique_ptr<PostgresCluster> cluster = Create(/*detached=*/true, error);
  if (cluster == nullptr) return false;
  WriteFile(file, "port=" + std::to_string(cluster->port_) + "\ndir=" + cluster->dir_.string() +
                      "\npid=" + std::to_string(cluster->postmaster_) + "\n");
  // Left running for the tests: the cleanup test stops it.
  cluster->owned_ = false;
  cluster->postmaster_ = -1;
  return true;
}

bool PostgresCluster::StopDetached(const std::string& file, std::string* error) {
  std::unique_ptr<PostgresCluster> cluster = Attach(file);
  std::error_code ec;
  if (cluster == nullptr) {
    fs::remove(file, ec);
    return true;
  }
  pid_t pid = -1;
  {
    std::istringstream lines(ReadFile(file));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.starts_with("pid=")) pid = static_cast<pid_t>(std::atoi(line.c_str() + 4));
    }
  }
  // The postmaster removes postmaster.pid as it finishes its shutdown. It is not this process'
  // child, so that file (not waitpid) tells when it is gone.
  const fs::path pid_file = cluster->dir_ / "data" / "postmaster.pid";
  if (pid > 0 && fs::exists(pid_file)) {
    ::kill(pid, SIGINT);
    if (!WaitUntil([&] { return !fs::exists(pid_file); })) {
      ::kill(pid, SIGQUIT);
      if (!WaitUntil([&] { return !fs::exists(pid_file); })) {
        if (error != nullptr) *error = "PostgreSQL (pid " + std::to_string(pid) + ") did not stop";
        return false;
      }
    }
  }
  fs::remove_all(cluster->dir_, ec);
  fs::remove(file, ec);
  return true;
}

bool PostgresCluster::Start(std::string* error) {
  if (!owned_) {
    if (error != nullptr) *error = "the shared test cluster is not restarted by a test";
    return false;
  }
  const std::string log = LogPath();
  // A free port can be taken between the pick and the bind: a few tries.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint16_t port = port_ != 0 && attempt == 0 ? port_ : FreePort();
    postmaster_ = Spawn(
        {bin_dir_ + "/postgres", "-D", (dir_ / "data").string(), "-p", std::to_string(port), "-c",
         "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off", "-c",
         "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"},
        dir_.string(), log, switch_user_, uid_, gid_, /*die_with_parent=*/!detached_);
    if (postmaster_ < 0) break;
    const std::string url = Url(port, "postgres");
    bool exited = false;
    const bool up = WaitUntil([&] {
      int status = 0;
      if (::waitpid(postmaster_, &status, WNOHANG) == postmaster_) {
        exited = true;
        return true;
      }
      return PQping(url.c_str()) == PQPING_OK;
    });
    if (up && !exited) {
      port_ = port;
      return true;
    }
    if (!exited) {
      ::kill(postmaster_, SIGQUIT);
      WaitFor(postmaster_);
    }
    postmaster_ = -1;
  }
  if (error != nullptr) *error = "PostgreSQL did not start:\n" + ReadFile(log);
  return false;
}

void PostgresCluster::Stop(int signal) {
  if (postmaster_ < 0) return;
  ::kill(postmaster_, signal);
  WaitFor(postmaster_);
  postmaster_ = -1;
}

PostgresCluster::~PostgresCluster() {
  if (!databases_.empty()) {
    // The test's sessions are closed by now; FORCE ends any that is not.
    PGconn* conn = PQconnectdb(AdminUrl().c_str());
    if (PQstatus(conn) == CONNECTION_OK) {
      for (const std::string& name : databases_) {
        PQclear(PQexec(conn, ("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").c_str()));
      }
    }
    PQfinish(conn);
  }
  Stop(SIGINT);
  if (owned_ && !dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PostgresCluster::AdminUrl() const { return Url(port_, "postgres"); }

std::string PostgresCluster::CreateDatabase(std::string* error) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(SharedMutex());
    // The pid keeps the names of test processes sharing the fixture's cluster apart.
    name = "fleetwatch_test_" + std::to_string(::getpid()) + "_" + std::to_string(next_database_++);
  }
  PGconn* conn = PQconnectdb(AdminUrl().c_str());
  std::string failure;
  if (PQstatus(conn) != CONNECTION_OK) {
    failure = std::string("cannot connect: ") + PQerrorMessage(conn);
  } else {
    // The name is this function's own, never input: no quoting needed.
    PGresult* result = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      failure = std::string("CREATE DATABASE failed: ") + PQerrorMessage(conn);
    }
    PQclear(result);
  }
  PQfinish(conn);
  if (!failure.empty()) {
    if (error != nullptr) *error = failure;
    return {};
  }
  if (!owned_) {
    std::lock_guard<std::mutex> lock(SharedMutex());
    databases_.push_back(name);
  }
  return Url(port_, name);
}

}  // namespace fleetwatch::testing
