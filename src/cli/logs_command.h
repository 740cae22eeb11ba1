#pragma once

// `fleetwatch logs RUN [--job N] [--replica N] [-f]`: the loop that reads a job's log, kept apart
// from the network (fetch, write and sleep are injected) so that it can be tested without a
// server, and the same loop on stdout for `run`/`apply` as they follow their run.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cli/api_client.h"
#include "http/message.h"
#include "util/status.h"

namespace fleetwatch::cli {

// One reply of GET /api/project/{p}/runs/{run}/logs?job_num=N&replica_num=M&offset=K.
struct LogReply {
  std::string bytes;                      // the job's output from the requested offset
  std::optional<uint64_t> log_size;       // X-Log-Size: total bytes so far; nullopt: not sent
  std::optional<std::string> job_status;  // X-Job-Status, e.g. "running"; nullopt: not sent
};

// Fetches the log from byte `offset`; an error ends the loop with that error.
using LogFetch = std::function<Result<LogReply>(uint64_t offset)>;
// Writes log bytes exactly as received; an error ends the loop with that error.
using LogWrite = std::function<Status(std::string_view bytes)>;
// Waits before the next poll; false stops following (the loop then returns Ok).
using LogSleep = std::function<bool(std::chrono::milliseconds)>;

// Told once, with the job's status, when the loop starts waiting for a job that has not started.
using LogWaiting = std::function<void(std::string_view job_status)>;

struct LogStreamOptions {
  bool follow = false;
  std::chrono::milliseconds poll_interval{1000};
  LogWaiting on_waiting;  // may be empty
};

// Reads the log from offset 0 and writes it, fetching again at once while a reply is non-empty
// and the offset is below X-Log-Size. A missing X-Log-Size means the reply is all there is.
// While nothing has been read and the job has not started yet (X-Job-Status submitted,
// provisioning or pulling), it polls every `poll_interval`, with or without `follow`, until the
// job starts or ends (a run that ends before its job starts ends the job too); `on_waiting` is
// called before the first such sleep. Without `follow`, a caught-up reply of a started job is the
// end. With `follow` it keeps polling from the last offset, sleeping
// `poll_interval` whenever it has caught up, until a caught-up reply says the job is finished
// (done, failed, terminated, aborted; a missing X-Job-Status counts as finished, so that a
// server without the header ends the loop) or `sleep` returns false. The server is expected to
// take the job status before measuring the log, so that a finished reply's X-Log-Size is final;
// an empty reply from a finished job ends the loop even below X-Log-Size. Sleeps only through
// `sleep`. Returns the first error of `fetch` or `write`.
Status StreamLog(const LogFetch& fetch, const LogWrite& write, const LogSleep& sleep,
                 const LogStreamOptions& options);

// True for the job statuses that never change again (dstack's: done, failed, terminated,
// aborted). Unknown text is not finished.
bool IsFinishedJobStatus(std::string_view status);

// True for the job statuses before a job runs: submitted, provisioning, pulling.
bool IsWaitingJobStatus(std::string_view status);

// Streams the log of job `job_num`, replica `replica_num` of run `run` to stdout, unbuffered
// (StreamLog with `follow`, polling every second; while the job waits to start, a terminal on
// stderr is told so once). Errors as in StreamLog, a connection failure worded by ConnectionError.
// Installs no signal handler; main thread only.
Status StreamJobLogToStdout(ApiClient& api, std::string_view run, int job_num, int replica_num,
                            bool follow);

// The LogReply in a logs response (headers named in lowercase, as http::Client gives them).
// A non-2xx status gives ErrorFromReply's Status; an X-Log-Size that is not a decimal number
// gives Internal. Pure.
Result<LogReply> LogReplyFromResponse(const http::Response& response);

}  // namespace fleetwatch::cli
