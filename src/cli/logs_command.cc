// `fleetwatch logs RUN [--job N] [--replica N] [-f]`.
#include "cli/logs_command.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/api_error.h"
#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/terminal_text.h"
#include "http/client.h"
#include "model/status.h"

namespace fleetwatch::cli {
namespace {

struct LogsArgs {
  ClientFlags flags;
  std::string run;
  int job = 0;
  int replica = 0;
  bool follow = false;
};

std::string_view HeaderValue(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return {};
}

bool HasHeader(const http::Response& response, std::string_view name) {
  return std::any_of(response.headers.begin(), response.headers.end(),
                     [&](const auto& header) { return header.first == name; });
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Log bytes are the job's own output, passed through untouched (like `docker logs`), and written
// unbuffered so that nothing is lost when Ctrl-C ends a follow at once.
Status WriteToStdout(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(std::string("cannot write to stdout: ") + std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Ctrl-C while following is the normal way to stop: exit 0 at once, even in the middle of a
// request. Everything written so far went straight to the file descriptor.
void ExitOnInterrupt(int /*signal*/) { ::_exit(0); }

Status ShowLogs(const LogsArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  struct sigaction previous {};
  if (args.follow) {
    struct sigaction on_interrupt {};
    on_interrupt.sa_handler = ExitOnInterrupt;
    sigemptyset(&on_interrupt.sa_mask);
    ::sigaction(SIGINT, &on_interrupt, &previous);
  }
  Status status = StreamJobLogToStdout(api, args.run, args.job, args.replica, args.follow);
  if (args.follow) ::sigaction(SIGINT, &previous, nullptr);
  return status;
}

}  // namespace

Status StreamJobLogToStdout(ApiClient& api, std::string_view run, int job_num, int replica_num,
                            bool follow) {
  FW_ASSIGN_OR_RETURN(http::Client client,
                      http::Client::Create(api.settings().url, HttpClientOptions(api.settings())));
  const std::string path =
      api.ProjectPath("/runs/" + PathSegment(run) + "/logs?job_num=" + std::to_string(job_num) +
                      "&replica_num=" + std::to_string(replica_num));
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", "Bearer " + api.settings().token},
      {"Accept", "text/plain"},
  };
  const std::string url = api.settings().url;
  LogFetch fetch = [&](uint64_t offset) -> Result<LogReply> {
    Result<http::Response> reply =
        client.Send("GET", path + "&offset=" + std::to_string(offset), {}, headers);
    if (!reply.ok()) {
      Status cause = reply.status();
      if (cause.code() == StatusCode::kUnavailable) return ConnectionError(url, cause);
      return cause;
    }
    return LogReplyFromResponse(*reply);
  };
  LogSleep sleep = [](std::chrono::milliseconds interval) {
    std::this_thread::sleep_for(interval);
    return true;
  };
  // Only a person watching is told why nothing shows yet; a pipe or file gets the log alone.
  LogWaiting waiting;
  if (isatty(STDERR_FILENO) == 1) {
    waiting = [run = std::string(run), job_num](std::string_view status) {
      std::cerr << SanitizeForTerminal("Waiting for job " + std::to_string(job_num) + " of run " +
                                       run + " to start (" + std::string(status) + ")...")
                << std::endl;
    };
  }
  return StreamLog(fetch, WriteToStdout, sleep, {.follow = follow, .on_waiting = waiting});
}

bool IsWaitingJobStatus(std::string_view status) {
  return status == "submitted" || status == "provisioning" || status == "pulling";
}

bool IsFinishedJobStatus(std::string_view status) {
  const std::optional<model::JobStatus> parsed = model::Parse<model::JobStatus>(status);
  return parsed.has_value() && model::IsFinished(*parsed);
}

Result<LogReply> LogReplyFromResponse(const http::Response& response) {
  if (response.status < 200 || response.status >= 300) {
    return ErrorFromReply(response.status, response.body);
  }
  LogReply reply;
  reply.bytes = response.body;
  if (HasHeader(response, "x-log-size")) {
    const std::string_view text = Trim(HeaderValue(response, "x-log-size"));
    uint64_t size = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), size);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      return Internal("the server sent an invalid X-Log-Size header: \"" + std::string(text) +
                      "\"");
    }
    reply.log_size = size;
  }
  if (HasHeader(response, "x-job-status")) {
    reply.job_status = std::string(Trim(HeaderValue(response, "x-job-status")));
  }
  return reply;
}

Status StreamLog(const LogFetch& fetch, const LogWrite& write, const LogSleep& sleep,
                 const LogStreamOptions& options) {
  uint64_t offset = 0;
  bool told_waiting = false;
  while (true) {
    FW_ASSIGN_OR_RETURN(LogReply reply, fetch(offset));
    if (!reply.bytes.empty()) {
      FW_RETURN_IF_ERROR(write(reply.bytes));
      offset += reply.bytes.size();
    }
    // Without X-Log-Size the reply is everything there is for now.
    const uint64_t log_size = reply.log_size.value_or(offset);
    // An empty reply counts as caught up whatever X-Log-Size says: asking again at once could
    // spin forever on a server that has nothing more to give.
    if (!reply.bytes.empty() && offset < log_size) continue;
    if (offset == 0 && reply.job_status.has_value() && IsWaitingJobStatus(*reply.job_status)) {
      if (!told_waiting && options.on_waiting) options.on_waiting(*reply.job_status);
      told_waiting = true;
      if (!sleep(options.poll_interval)) return Status::Ok();
      continue;
    }
    if (!options.follow) return Status::Ok();
    if (!reply.job_status.has_value() || IsFinishedJobStatus(*reply.job_status)) {
      return Status::Ok();
    }
    if (!sleep(options.poll_interval)) return Status::Ok();
  }
}

void AddLogsCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<LogsArgs>();
  CLI::App* logs = app.add_subcommand(
      "logs", "Print a job's output, once it has started (-f: follow until it ends)");
  logs->add_option("run", args->run, "Run name")->required();
  logs->add_option("--job", args->job, "Job number (default 0)")->check(CLI::NonNegativeNumber);
  logs->add_option("--replica", args->replica, "Replica number (default 0)")
      ->check(CLI::NonNegativeNumber);
  logs->add_flag("-f,--follow", args->follow,
                 "Keep printing new output every second until the job finishes (Ctrl-C stops)");
  AddClientFlags(*logs, args->flags);
  OnRun(*logs, exit_code, [args] { return ShowLogs(*args); });
}

}  // namespace fleetwatch::cli
