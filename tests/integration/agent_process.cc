#include "integration/agent_process.h"

#include <fstream>
#include <map>
#include <regex>
#include <vector>

namespace fleetwatch::testing {

AgentProcess::AgentProcess(AgentProcessOptions options) {
  if (options.dir.empty()) {
    dir_ = own_dir_.emplace().path();
  } else {
    dir_ = options.dir;
  }
  std::map<std::string, std::string> env = options.env;
  env["FLEETWATCH_AGENT_TOKEN"] = kTestAgentToken;
  if (options.fake_gpus > 0) {
    std::ofstream gpus(dir_ / "gpus.txt");
    for (int i = 0; i < options.fake_gpus; ++i) {
      gpus << "NVIDIA A100-SXM4-80GB|GPU-fake-" << i << "|85899345920|1073741824|" << 10 * (i + 1)
           << "\n";
    }
    env["FLEETWATCH_NVML_LIBRARY"] = options.fake_nvml_library;
    env["FAKE_NVML_FILE"] = (dir_ / "gpus.txt").string();
  } else {
    env["FLEETWATCH_NVML_LIBRARY"] = (dir_ / "no-such-libnvidia-ml.so").string();
  }
  child_ = std::make_unique<ChildProcess>(
      FLEETWATCH_BINARY,
      std::vector<std::string>{"agent", "--host", "127.0.0.1", "--port",
                               std::to_string(options.port), "--no-tls", "--data-dir",
                               (dir_ / "data").string()},
      env);
  if (child_->WaitForOutput("listening on http://127.0.0.1:", 60)) {
    child_->WaitForOutput("\n", 5);
    std::smatch m;
    std::string out = child_->Output();
    static const std::regex kListening("listening on http://127\\.0\\.0\\.1:(\\d+)");
    if (std::regex_search(out, m, kListening)) port_ = std::stoi(m[1]);
  }
}

}  // namespace fleetwatch::testing
