#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fleetwatch::testing {

// A directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The whole file as bytes; empty when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);
// Writes `text` to `path` through a temporary file renamed into place, so a reader (an agent
// re-reading its fake GPUs, a Prometheus re-reading its config) never sees half of it.
void WriteFile(const std::filesystem::path& path, const std::string& text);

// The permission bits of `path` (mode & 07777, as stat() reports them); 0 when it cannot be
// stat'ed.
unsigned ModeOf(const std::filesystem::path& path);

// Polls `done` every 50 ms until it holds or `timeout` passes; true as soon as it holds. For
// waits on other processes: generous, as the machines running the tests are shared and noisy.
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A loopback port nothing listens on right now (the kernel's pick for port 0, released again),
// for programs that cannot be told port 0; 0 when none could be had.
uint16_t FreePort();

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs `binary args...` with the current environment plus `env` (a value of "\x01unset" removes a
// variable), feeding `input` to stdin; waits at most `timeout_seconds` (then SIGKILL, exit -1).
ProcessResult RunProcess(const std::string& binary, const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env,
                         const std::string& input = {}, int timeout_seconds = 60);

// A long-running child process whose stdout+stderr are collected by a reader thread.
class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env);
  ~ChildProcess();  // SIGKILLs the process if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until the output contains `needle`; false on timeout or when the process exits first.
  bool WaitForOutput(const std::string& needle, int timeout_seconds = 30);
  std::string Output() const;
  // Sends `signal`, then waits for exit (SIGKILL after timeout). Returns the exit code
  // (128 + signal when killed by one).
  int Stop(int signal, int timeout_seconds = 30);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;
  bool eof_ = false;
  int exit_code_ = -1;
  bool reaped_ = false;
};

// `fleetwatch server` on 127.0.0.1, port 0, with its own data dir and HOME.
class ServerProcess {
 public:
  // Starts the server and waits until it says it is listening. `admin_token` is used on first
  // start via FLEETWATCH_SERVER_ADMIN_TOKEN.
  ServerProcess(const std::string& data_dir, const std::string& home_dir,
                const std::string& admin_token, std::vector<std::string> extra_args = {},
                std::map<std::string, std::string> extra_env = {});
  // Stops the server gracefully (SIGTERM) when still running; a graceful stop also stops its
  // local agent.
  ~ServerProcess();
  // Stops the local agent recorded in the data dir, if one is running: after a SIGKILLed server
  // it survives by design, so a test that ends that way calls this to leak no process.
  void StopLeftoverLocalAgent();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool started() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  pid_t pid() const { return child_->pid(); }
  // "http://127.0.0.1:PORT", or https:// when the server said so (--tls-cert).
  std::string url() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  std::string Output() const { return child_->Output(); }
  int Stop(int signal = 15) { return child_->Stop(signal); }

 private:
  std::unique_ptr<ChildProcess> child_;
  std::string data_dir_;
  std::string scheme_ = "http";
  uint16_t port_ = 0;
};

}  // namespace fleetwatch::testing
