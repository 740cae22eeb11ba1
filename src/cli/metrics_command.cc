// `fleetwatch metrics RUN [-w] [--replica N] [--job N] [--json]`: sparklines of a run's jobs'
// CPU, memory and GPU use over the last hour (see metrics_view.h for the tables); -w redraws them
// under a line naming the run and the span shown, until the run ends.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/command_groups.h"
#include "cli/command_support.h"
#include "cli/json_fields.h"
#include "cli/metrics_view.h"
#include "cli/status_message.h"
#include "cli/terminal_text.h"
#include "http/message.h"
#include "model/json_text.h"
#include "model/status.h"
#include "util/clock.h"
#include "util/time_format.h"

namespace fleetwatch::cli {
namespace {

namespace json = boost::json;

// Points are collected every 10 s, so an hour is 360 samples, which need 361 points. The server
// reads limit + 1 points; the request stays well under what it should ever be asked for.
constexpr int kSamplesPerHour = 361;
constexpr int kMaxLimit = 400;
static_assert(kSamplesPerHour <= kMaxLimit);
constexpr std::chrono::seconds kRedrawInterval{10};
// Without a terminal (or COLUMNS) to ask, the tables assume the classic 80 columns.
constexpr size_t kDefaultWidth = 80;
constexpr std::string_view kClearScreen = "\x1b[H\x1b[2J";

struct MetricsArgs {
  ClientFlags flags;
  std::string run;
  std::optional<int> job;
  std::optional<int> replica;
  bool watch = false;
  bool json = false;
};

// The width to draw for: COLUMNS or the terminal's width when either is known, else 80.
size_t OutputWidth() {
  const char* columns = std::getenv("COLUMNS");
  if ((columns != nullptr && *columns != '\0') || isatty(STDOUT_FILENO) == 1) {
    return TerminalWidth();
  }
  return kDefaultWidth;
}

// Frames are written straight to the file descriptor in one piece, so that Ctrl-C (which exits
// at once) never leaves half a frame in a buffer.
Status WriteToStdout(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(std::string("cannot write to stdout: ") + std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Ctrl-C is the normal way to end -w: exit 0 at once, even in the middle of a request.
void ExitOnInterrupt(int /*signal*/) { ::_exit(0); }

// The run's jobs that the flags select, each with its metrics of the last hour before `now`;
// `ended` becomes the run's status message when it has finished, else "".
Result<std::vector<JobMetrics>> FetchMetrics(ApiClient& api, const MetricsArgs& args,
                                             TimeMicros now, std::string& ended) {
  FW_ASSIGN_OR_RETURN(json::value run, api.Get(api.ProjectPath("/runs/" + PathSegment(args.run))));
  const std::optional<model::RunStatus> run_status =
      model::Parse<model::RunStatus>(StringField(run, "status"));
  ended = run_status && model::IsFinished(*run_status) ? RunStatusMessage(run) : "";
  std::vector<JobMetrics> jobs;
  for (const boost::json::value& job : ArrayField(run, "jobs")) {
    const std::optional<int64_t> job_num = IntField(job, "job_num");
    const std::optional<int64_t> replica_num = IntField(job, "replica_num");
    if (!job_num || !replica_num) continue;
    if (args.job && *job_num != *args.job) continue;
    if (args.replica && *replica_num != *args.replica) continue;
    // A resubmitted job may be listed more than once; the last entry is the current one.
    auto same = std::find_if(jobs.begin(), jobs.end(), [&](const JobMetrics& j) {
      return j.job_num == *job_num && j.replica_num == *replica_num;
    });
    JobMetrics entry{StringField(run, "run_name", args.run), *job_num, *replica_num,
                     JobStatusMessage(job), nullptr};
    if (same != jobs.end()) {
      *same = std::move(entry);
    } else {
      jobs.push_back(std::move(entry));
    }
  }
  if (jobs.empty()) {
    std::string which = "run " + args.run + " has no job";
    if (args.job) which += " " + std::to_string(*args.job);
    if (args.replica) which += " with replica " + std::to_string(*args.replica);
    return NotFound(which);
  }
  std::sort(jobs.begin(), jobs.end(), [](const JobMetrics& a, const JobMetrics& b) {
    return std::pair(a.replica_num, a.job_num) < std::pair(b.replica_num, b.job_num);
  });
  const std::string after = http::UrlEncode(FormatTimestampSeconds(now - kMetricsWindow));
  for (JobMetrics& job : jobs) {
    FW_ASSIGN_OR_RETURN(job.metrics,
                        api.Get(api.ProjectPath("/metrics/job/" + PathSegment(args.run)) +
                                "?job_num=" + std::to_string(job.job_num) +
                                "&replica_num=" + std::to_string(job.replica_num) +
                                "&limit=" + std::to_string(kSamplesPerHour) + "&after=" + after));
  }
  return jobs;
}

// One frame: the tables (with -w under WatchHeader's line), or with --json the document on one
// line. `ended` as in FetchMetrics.
Result<std::string> Frame(ApiClient& api, const MetricsArgs& args, std::string& ended) {
  const TimeMicros now = SystemClock::Get().Now();
  FW_ASSIGN_OR_RETURN(std::vector<JobMetrics> jobs, FetchMetrics(api, args, now, ended));
  // Re-serialized rather than echoed: well-formed JSON, control characters escaped.
  if (args.json) return model::SerializeJson(MetricsJson(jobs)) + "\n";
  const size_t width = OutputWidth();
  std::string header = args.watch ? WatchHeader(args.run, now, ended, width) + "\n\n" : "";
  return header + RenderMetrics(jobs, now, width);
}

Status ShowMetrics(const MetricsArgs& args) {
  FW_ASSIGN_OR_RETURN(ApiClient api, Connect(args.flags));
  std::string ended;
  if (!args.watch) {
    FW_ASSIGN_OR_RETURN(std::string frame, Frame(api, args, ended));
    return WriteToStdout(frame);
  }
  struct sigaction on_interrupt {};
  on_interrupt.sa_handler = ExitOnInterrupt;
  sigemptyset(&on_interrupt.sa_mask);
  struct sigaction previous {};
  ::sigaction(SIGINT, &on_interrupt, &previous);
  // Only a terminal is cleared: a file or pipe gets every frame in turn (tables separated by a
  // blank line, JSON documents one per line).
  const bool clear = !args.json && isatty(STDOUT_FILENO) == 1;
  Status status = Status::Ok();
  for (bool first = true;; first = false) {
    Result<std::string> frame = Frame(api, args, ended);
    if (!frame.ok()) {
      status = frame.status();
      break;
    }
    std::string text =
        clear ? std::string(kClearScreen) + *frame : (first || args.json ? "" : "\n") + *frame;
    status = WriteToStdout(text);
    // A run that has ended gets no new points: the frame just drawn, with the run's final
    // status, is the last one.
    if (!status.ok() || !ended.empty()) break;
    std::this_thread::sleep_for(kRedrawInterval);
  }
  ::sigaction(SIGINT, &previous, nullptr);
  return status;
}

}  // namespace

void AddMetricsCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<MetricsArgs>();
  CLI::App* metrics = app.add_subcommand(
      "metrics", "Show a run's CPU, memory and GPU use over the last hour (-w: keep redrawing)");
  metrics->add_option("run", args->run, "Run name")->required();
  metrics->add_option("--job", args->job, "Only this job number")->check(CLI::NonNegativeNumber);
  metrics->add_option("--replica", args->replica, "Only this replica number")
      ->check(CLI::NonNegativeNumber);
  metrics->add_flag("-w,--watch", args->watch,
                    "Redraw every 10 seconds until the run ends (Ctrl-C stops)");
  metrics->add_flag("--json", args->json,
                    "Print {\"jobs\": [{\"job_num\", \"replica_num\", \"metrics\"}]} as JSON");
  AddClientFlags(*metrics, args->flags);
  OnRun(*metrics, exit_code, [args] { return ShowMetrics(*args); });
}

}  // namespace fleetwatch::cli
