#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "support/process.h"

namespace fleetwatch::testing {

// The bearer token of the agents integration tests start.
inline constexpr char kTestAgentToken[] = "agent-token-for-tests";

struct AgentProcessOptions {
  int fake_gpus = 0;              // > 0: that many fake NVIDIA GPUs, through fake_nvml_library
  std::string fake_nvml_library;  // the fake NVML's path (FAKE_NVML_LIBRARY of the test target)
  std::filesystem::path dir;      // its files (data dir under it); empty: a TempDir of its own
  int port = 0;                   // 0: the kernel's pick
  std::map<std::string, std::string> env;  // more environment (e.g. the fake NVML's controls)

  static AgentProcessOptions FakeGpus(int count, std::string nvml_library) {
    AgentProcessOptions options;
    options.fake_gpus = count;
    options.fake_nvml_library = std::move(nvml_library);
    return options;
  }
  // An agent on the files of `dir` (perhaps an earlier agent's), on `port`.
  static AgentProcessOptions InDir(std::filesystem::path dir, int port = 0) {
    AgentProcessOptions options;
    options.dir = std::move(dir);
    options.port = port;
    return options;
  }
};

// A `fleetwatch agent` the test starts on 127.0.0.1 over plain HTTP (--no-tls), token
// kTestAgentToken, data dir `<dir>/data`. Started at construction (port() is 0 when it did not
// come up), SIGKILLed at destruction when still running. Not thread-safe.
class AgentProcess {
 public:
  explicit AgentProcess(AgentProcessOptions options = {});

  int port() const { return port_; }
  pid_t pid() const { return child_->pid(); }
  const std::filesystem::path& dir() const { return dir_; }
  int Stop(int signal) { return child_->Stop(signal); }
  std::string Output() const { return child_->Output(); }

 private:
  std::optional<TempDir> own_dir_;
  std::filesystem::path dir_;
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
};

}  // namespace fleetwatch::testing
