#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::agent {

struct DcgmExporterOptions {
  // Where the host's DCGM text comes from. A non-empty `url` selects external mode: scrape that
  // URL (one without a path means /metrics) and start nothing. Otherwise managed mode: run
  // `executable` (see FindExecutable) and scrape it on 127.0.0.1:`port`.
  std::string url;
  std::filesystem::path executable;
  // Managed mode: dcgm-counters.csv, dcgm-exporter.log (the previous one kept as .log.1) and
  // dcgm-exporter.pid live here.
  std::filesystem::path data_dir;
  uint16_t port = 10997;
  std::chrono::milliseconds interval{5000};  // collection (-c) and scrape interval
  std::map<std::string, std::string> env;    // the managed exporter's whole environment
  // A managed exporter that exits is started again after a delay that starts at the minimum and
  // doubles up to the maximum; it falls back to the minimum once a run has lasted reset_after.
  std::chrono::milliseconds restart_delay_min{1000};
  std::chrono::milliseconds restart_delay_max{30000};
  std::chrono::milliseconds restart_delay_reset_after{60000};
  std::chrono::milliseconds stop_grace{5000};  // SIGTERM to SIGKILL at Stop()
  size_t max_text_bytes = 4 << 20;             // a bigger scrape is an error
};

// What GET /api/poll?dcgm=1 reports (docs/agent-api.md).
struct DcgmReport {
  std::optional<TimeMicros> collected_at;   // the newest successful scrape, if any
  std::shared_ptr<const std::string> text;  // its text while at most 3 intervals old; else null
  std::string error;                        // why there is no text (set exactly when text is null)
};

// The host's dcgm-exporter: started and kept running by the agent (managed mode) or run by
// someone else (external mode), scraped once per interval by a background thread. Only the newest
// successful scrape (HTTP 200, within the size cap; the text is passed on unparsed: the server
// parses it) and the newest error are kept.
//
// Managed mode runs `<executable> -f <data_dir>/dcgm-counters.csv -a 127.0.0.1:<port>
// -c <interval ms>` through LaunchJobProcess (own process group, the given environment,
// stdout+stderr appended to dcgm-exporter.log), restarts it with backoff when it exits, and
// records its pid in dcgm-exporter.pid so that the exporter of an agent that died without
// stopping it (SIGKILL) is killed by the next Start() with the same data_dir.
//
// Thread-safe: Report() and the accessors may run on any thread at any time; Start() is called
// once by the owner, Stop() from any thread after that. `clock` (read for collected_at and
// freshness; waits and backoff use steady_clock) must outlive it.
class DcgmExporter {
 public:
  // InvalidArgument when `url` is not an http URL the http::Client accepts, when neither `url`
  // nor `executable` is given, when managed mode has no data_dir, or when interval is below
  // 1 ms. Starts nothing.
  static Result<std::unique_ptr<DcgmExporter>> Create(DcgmExporterOptions options,
                                                      const Clock& clock);
  ~DcgmExporter();  // Stop()
  DcgmExporter(const DcgmExporter&) = delete;
  DcgmExporter& operator=(const DcgmExporter&) = delete;

  // Starts the background thread; in managed mode first kills a leftover exporter (see above)
  // and keeps the previous log. Call once. Never fails: whatever goes wrong later (the counters
  // file cannot be written, the exporter does not start or answer) shows in Report() and the log.
  void Start() FW_EXCLUDES(mu_);

  // Stops the thread and, in managed mode, the exporter: SIGTERM to its process group, SIGKILL
  // when it is still alive after stop_grace, then reaped. Blocks until done (at most about
  // stop_grace plus one scrape's timeout). Idempotent.
  void Stop() FW_EXCLUDES(stop_mu_, mu_);

  // The newest scrape, or why there is none: "starting" before the first attempt, the newest
  // error after it, or how old the newest scrape is when it is stale but nothing failed since.
  DcgmReport Report() const FW_EXCLUDES(mu_);

  const std::string& scrape_url() const { return scrape_url_; }
  bool managed() const { return options_.url.empty(); }
  int64_t restarts() const { return restarts_.load(); }  // exporter starts after the first
  int64_t scrape_errors() const { return scrape_errors_.load(); }
  pid_t exporter_pid() const { return child_pid_.load(); }  // 0 when none runs

 private:
  DcgmExporter(DcgmExporterOptions options, std::string scrape_url, const Clock& clock);

  using SteadyTime = std::chrono::steady_clock::time_point;
  void Run() FW_EXCLUDES(mu_);
  // One GET of scrape_url_, validated; the error names the URL. Takes no lock.
  Result<std::string> Fetch() const;
  // The loop thread's, with mu_ held.
  void CheckChild(SteadyTime now) FW_REQUIRES(mu_);
  void SpawnChild(SteadyTime now) FW_REQUIRES(mu_);
  void RecordError(std::string error) FW_REQUIRES(mu_);
  void KillLeftover() const;
  void StopChild();  // after the loop thread ended

  const DcgmExporterOptions options_;
  const std::string scrape_url_;
  const Clock& clock_;

  Mutex stop_mu_;  // one Stop() at a time
  mutable Mutex mu_;
  CondVar cv_;
  bool started_ FW_GUARDED_BY(mu_) = false;
  bool stopping_ FW_GUARDED_BY(mu_) = false;
  // The newest successful scrape.
  std::shared_ptr<const std::string> text_ FW_GUARDED_BY(mu_);
  std::optional<TimeMicros> collected_at_ FW_GUARDED_BY(mu_);
  std::string error_ FW_GUARDED_BY(mu_);  // the newest error
  // error_ came after the newest successful scrape.
  bool error_is_newest_ FW_GUARDED_BY(mu_) = false;
  // The newest attempt failed: warn once per run of failures.
  bool failing_ FW_GUARDED_BY(mu_) = false;

  // The loop thread's; Stop() reads them after joining it.
  SteadyTime child_started_at_{};
  SteadyTime restart_at_{};
  std::chrono::milliseconds restart_delay_{0};
  bool spawned_once_ = false;

  std::atomic<pid_t> child_pid_{0};
  std::atomic<int64_t> restarts_{0};
  std::atomic<int64_t> scrape_errors_{0};
  std::thread thread_;
};

// The file `name` would run as: `name` itself when it holds a '/', else the first regular
// executable file `dir/name` for the directories of `search_path` (colon-separated, like $PATH; an
// empty entry is the current directory). nullopt when there is none. Thread-safe.
std::optional<std::filesystem::path> FindExecutable(std::string_view name,
                                                    std::string_view search_path);

}  // namespace fleetwatch::agent
