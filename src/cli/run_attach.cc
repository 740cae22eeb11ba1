#include "cli/run_attach.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include "cli/json_fields.h"
#include "cli/logs_command.h"
#include "cli/status_message.h"
#include "cli/terminal_text.h"
#include "model/status.h"

namespace fleetwatch::cli {
namespace {

constexpr std::chrono::seconds kRunPollInterval{1};

// The Ctrl-C message, made before the handler is installed: a signal handler may only write().
char g_detach_message[512];
size_t g_detach_message_size = 0;

void DetachOnInterrupt(int /*signal*/) {
  ssize_t written = ::write(STDERR_FILENO, g_detach_message, g_detach_message_size);
  (void)written;
  ::_exit(0);
}

bool RunFinished(const boost::json::value& run) {
  const std::optional<model::RunStatus> status =
      model::Parse<model::RunStatus>(StringField(run, "status"));
  return status.has_value() && model::IsFinished(*status);
}

}  // namespace

int RunExitCode(const boost::json::value& run) {
  const std::string status = StringField(run, "status");
  if (status == "done") return 0;
  if (status == "failed") {
    const boost::json::array& jobs = ArrayField(run, "jobs");
    for (auto job = jobs.rbegin(); job != jobs.rend(); ++job) {
      if (StringField(*job, "status") != "failed") continue;
      const std::optional<int64_t> code = IntField(*job, "exit_code");
      if (code && *code >= 1 && *code <= 255) return static_cast<int>(*code);
    }
  }
  return 1;
}

Result<int> AttachToRun(ApiClient& api, const std::string& run_name) {
  const std::string message = "\nDetached from run " + SanitizeForTerminal(run_name) +
                              ": it keeps running. Follow it with `fleetwatch logs -f " +
                              SanitizeForTerminal(run_name) + "`, stop it with `fleetwatch stop " +
                              SanitizeForTerminal(run_name) + "`.\n";
  g_detach_message_size = std::min(message.size(), sizeof(g_detach_message));
  std::memcpy(g_detach_message, message.data(), g_detach_message_size);
  struct sigaction on_interrupt {};
  on_interrupt.sa_handler = DetachOnInterrupt;
  sigemptyset(&on_interrupt.sa_mask);
  struct sigaction previous {};
  ::sigaction(SIGINT, &on_interrupt, &previous);

  Result<int> result = [&]() -> Result<int> {
    FW_RETURN_IF_ERROR(StreamJobLogToStdout(api, run_name, 0, 0, /*follow=*/true));
    // The job has ended; the run follows within a tick or two.
    const std::string path = api.ProjectPath("/runs/" + PathSegment(run_name));
    while (true) {
      FW_ASSIGN_OR_RETURN(boost::json::value run, api.Get(path));
      if (RunFinished(run)) {
        if (StringField(run, "status") != "done") {
          std::cerr << SanitizeForTerminal("Run " + run_name + " " + RunStatusMessage(run))
                    << std::endl;
        }
        return RunExitCode(run);
      }
      std::this_thread::sleep_for(kRunPollInterval);
    }
  }();
  ::sigaction(SIGINT, &previous, nullptr);
  return result;
}

}  // namespace fleetwatch::cli
