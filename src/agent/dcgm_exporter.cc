#include "agent/dcgm_exporter.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/dcgm_counters.h"
#include "agent/file_modes.h"
#include "agent/process_launch.h"
#include "agent/sys_files.h"
#include "http/client.h"
#include "util/private_file.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// How often a running managed exporter is checked for having exited.
constexpr milliseconds kChildCheckInterval{200};
// The first scrape after a start: the exporter needs a moment to listen.
constexpr milliseconds kFirstScrapeDelay{500};
constexpr milliseconds kStopPollInterval{20};

constexpr char kCountersFile[] = "dcgm-counters.csv";
constexpr char kLogFile[] = "dcgm-exporter.log";
constexpr char kPidFile[] = "dcgm-exporter.pid";

// One word for sh -c: single-quoted, each ' written as '\''.
std::string ShellQuote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The URL to GET: `url` itself, or with /metrics when it has no path.
std::string MetricsUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path != std::string::npos && url.substr(path) != "/") return url;
  return url.substr(0, path) + "/metrics";
}

// "250 ms" below a second, "1.5 s" from there.
std::string Duration(SteadyClock::duration d) {
  auto ms = std::chrono::duration_cast<milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms) / 1000);
  return text;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           sigdescr_np(WTERMSIG(status)) + ")";
  }
  return "ended";
}

// True when `pid` no longer runs: no such process, or a zombie nobody reaped yet (an orphan's
// parent may be a pid 1 that does not reap).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::optional<std::string> stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

// The arguments of a running process, from /proc/<pid>/cmdline.
std::vector<std::string> CommandLine(pid_t pid) {
  std::vector<std::string> args;
  std::optional<std::string> cmdline = ReadSmallFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return args;
  size_t pos = 0;
  while (pos < cmdline->size()) {
    size_t end = cmdline->find('\0', pos);
    if (end == std::string::npos) end = cmdline->size();
    args.push_back(cmdline->substr(pos, end - pos));
    pos = end + 1;
  }
  return args;
}

}  // namespace

Result<std::unique_ptr<DcgmExporter>> DcgmExporter::Create(DcgmExporterOptions options,
                                                           const Clock& clock) {
  if (options.interval < milliseconds(1)) {
    return InvalidArgument("the DCGM interval must be at least 1 ms");
  }
  std::string scrape_url;
  if (!options.url.empty()) {
    scrape_url = MetricsUrl(options.url);
  } else if (!options.executable.empty()) {
    if (options.data_dir.empty()) return InvalidArgument("a managed dcgm-exporter needs data_dir");
    scrape_url = "http://127.0.0.1:" + std::to_string(options.port) + "/metrics";
  } else {
    return InvalidArgument("neither a dcgm-exporter URL nor an executable is given");
  }
  Result<http::Client> client = http::Client::Create(scrape_url);
  if (!client.ok()) return InvalidArgument("dcgm-exporter: " + client.status().message());
  // The exporter is local (or on a trusted network next to the host) and plain HTTP, as
  // dcgm-exporter serves by default; no CA or pin could be configured for it here.
  if (client->https()) {
    return InvalidArgument("dcgm-exporter: " + scrape_url + ": https is not supported");
  }
  return std::unique_ptr<DcgmExporter>(
      new DcgmExporter(std::move(options), std::move(scrape_url), clock));
}

DcgmExporter::DcgmExporter(DcgmExporterOptions options, std::string scrape_url, const Clock& clock)
    : options_(std::move(options)),
      scrape_url_(std::move(scrape_url)),
      clock_(clock),
      restart_delay_(options_.restart_delay_min) {}

DcgmExporter::~DcgmExporter() { Stop(); }

void DcgmExporter::Start() {
  {
    MutexLock lock(mu_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  if (managed()) {
    KillLeftover();
    fs::path log = options_.data_dir / kLogFile;
    std::error_code ec;
    if (fs::exists(log, ec)) fs::rename(log, fs::path(log) += ".1", ec);
    spdlog::info("dcgm-exporter: managed, scraping {} every {} ms", scrape_url_,
                 options_.interval.count());
  } else {
    spdlog::info("dcgm-exporter: scraping {} every {} ms", scrape_url_, options_.interval.count());
  }
  thread_ = std::thread([this] { Run(); });
}

void DcgmExporter::Stop() {
  MutexLock stop_lock(stop_mu_);
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  StopChild();
}

DcgmReport DcgmExporter::Report() const {
  const TimeMicros max_age =
      3 * std::chrono::duration_cast<std::chrono::microseconds>(options_.interval).count();
  MutexLock lock(mu_);
  DcgmReport report;
  report.collected_at = collected_at_;
  TimeMicros age = collected_at_ ? clock_.Now() - *collected_at_ : 0;
  if (text_ && age <= max_age) {
    report.text = text_;
  } else if (error_is_newest_) {
    report.error = error_;
  } else if (collected_at_) {
    report.error =
        "dcgm-exporter: the newest scrape is " + std::to_string(age / 1'000'000) + " s old";
  } else {
    report.error = "starting";
  }
  return report;
}

void DcgmExporter::Run() {
  MutexLock lock(mu_);
  SteadyClock::time_point next_scrape = SteadyClock::now();
  while (!stopping_) {
    SteadyClock::time_point now = SteadyClock::now();
    if (managed()) {
      if (child_pid_ > 0) CheckChild(now);
      if (child_pid_ == 0 && now >= restart_at_) {
        SpawnChild(now);
        next_scrape = now + std::min(options_.interval, kFirstScrapeDelay);
      }
    }
    bool source_up = !managed() || child_pid_ > 0;
    if (source_up && now >= next_scrape) {
      lock.Unlock();
      Result<std::string> text = Fetch();
      TimeMicros at = clock_.Now();
      lock.Lock();
      if (text.ok()) {
        text_ = std::make_shared<const std::string>(std::move(text).value());
        collected_at_ = at;
        error_is_newest_ = false;
        if (failing_) spdlog::info("dcgm-exporter: {} answers again", scrape_url_);
        failing_ = false;
      } else {
        ++scrape_errors_;
        RecordError(text.status().message());
      }
      next_scrape = SteadyClock::now() + options_.interval;
      continue;
    }
    SteadyClock::time_point wake = next_scrape;
    if (managed()) wake = child_pid_ > 0 ? std::min(wake, now + kChildCheckInterval) : restart_at_;
    while (!stopping_ && cv_.WaitUntil(mu_, wake)) {
    }
  }
}

Result<std::string> DcgmExporter::Fetch() const {
  http::ClientOptions client_options;
  client_options.timeout =
      std::clamp<milliseconds>(options_.interval, milliseconds(1000), milliseconds(5000));
  client_options.max_response_bytes = options_.max_text_bytes;
  Result<http::Client> client = http::Client::Create(scrape_url_, client_options);
  if (!client.ok()) return Unavailable("dcgm-exporter: " + client.status().message());
  Result<http::Response> response = client->Send("GET", "");
  if (!response.ok()) return Unavailable("dcgm-exporter: " + response.status().message());
  if (response->status != 200) {
    return Unavailable("dcgm-exporter: GET " + scrape_url_ + " answered HTTP " +
                       std::to_string(response->status));
  }
  // The text is passed on as it is: the server, which must treat it as untrusted anyway,
  // parses it once, counts what does not parse and drops only this host's samples.
  return std::move(response->body);
}

void DcgmExporter::RecordError(std::string error) {
  if (failing_ && error == error_) {
    spdlog::debug("{}", error);
  } else {
    spdlog::warn("{}", error);
  }
  failing_ = true;
  error_ = std::move(error);
  error_is_newest_ = true;
}

void DcgmExporter::CheckChild(SteadyClock::time_point now) {
  const pid_t pid = child_pid_;
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == 0 || (r < 0 && errno != ECHILD)) return;
  ::kill(-pid, SIGKILL);  // whatever it left in its process group
  child_pid_ = 0;
  std::error_code ec;
  fs::remove(options_.data_dir / kPidFile, ec);
  if (now - child_started_at_ >= options_.restart_delay_reset_after) {
    restart_delay_ = options_.restart_delay_min;
  }
  restart_at_ = now + restart_delay_;
  std::string why = r == pid ? DescribeExit(status) : "was reaped elsewhere";
  RecordError("dcgm-exporter (pid " + std::to_string(pid) + ") " + why + " after " +
              Duration(now - child_started_at_) + "; restarting in " + Duration(restart_delay_) +
              " (output in " + (options_.data_dir / kLogFile).string() + ")");
  restart_delay_ = std::min(restart_delay_ * 2, options_.restart_delay_max);
}

void DcgmExporter::SpawnChild(SteadyClock::time_point now) {
  const fs::path counters = options_.data_dir / kCountersFile;
  LaunchSpec launch;
  launch.script = "exec " + ShellQuote(options_.executable.string()) + " -f " +
                  ShellQuote(counters.string()) + " -a 127.0.0.1:" + std::to_string(options_.port) +
                  " -c " + std::to_string(options_.interval.count());
  launch.env = options_.env;
  launch.log_file = options_.data_dir / kLogFile;
  Status written = WriteDcgmCountersFile(counters);
  Result<pid_t> pid = written.ok() ? LaunchJobProcess(launch) : Result<pid_t>(written);
  if (!pid.ok()) {
    restart_at_ = now + restart_delay_;
    RecordError("dcgm-exporter: cannot start " + options_.executable.string() + ": " +
                pid.status().message() + "; trying again in " + Duration(restart_delay_));
    restart_delay_ = std::min(restart_delay_ * 2, options_.restart_delay_max);
    return;
  }
  child_pid_ = *pid;
  child_started_at_ = now;
  if (spawned_once_) ++restarts_;
  spawned_once_ = true;
  if (Status s =
          WritePrivateFileAtomically(options_.data_dir / kPidFile, std::to_string(*pid) + "\n");
      !s.ok()) {
    spdlog::warn("dcgm-exporter: {}", s.message());
  }
  spdlog::info("dcgm-exporter started, pid {}: {}", *pid, launch.script.substr(5));
}

void DcgmExporter::KillLeftover() const {
  const fs::path pid_file = options_.data_dir / kPidFile;
  std::optional<std::string> text = ReadSmallFile(pid_file);
  std::error_code ec;
  fs::remove(pid_file, ec);
  std::optional<int64_t> pid = text ? ParseInteger(*text) : std::nullopt;
  if (!pid || *pid <= 1 || *pid > INT32_MAX) return;
  const auto leftover = static_cast<pid_t>(*pid);
  // Only an exporter with this data dir's counters file: the pid may have been reused.
  const std::string counters = (options_.data_dir / kCountersFile).string();
  std::vector<std::string> args = CommandLine(leftover);
  if (std::find(args.begin(), args.end(), counters) == args.end()) return;
  spdlog::warn("dcgm-exporter: killing pid {}, left running by an earlier agent", leftover);
  ::kill(-leftover, SIGKILL);
  ::kill(leftover, SIGKILL);
  SteadyClock::time_point deadline = SteadyClock::now() + options_.stop_grace;
  while (!ProcessGone(leftover) && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(kStopPollInterval);
  }
}

void DcgmExporter::StopChild() {
  const pid_t pid = child_pid_;
  if (pid <= 0) return;
  ::kill(-pid, SIGTERM);
  SteadyClock::time_point deadline = SteadyClock::now() + options_.stop_grace;
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(kStopPollInterval);
  }
  if (r == 0) {
    spdlog::warn("dcgm-exporter (pid {}) still runs {} after SIGTERM, SIGKILL", pid,
                 Duration(options_.stop_grace));
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  ::kill(-pid, SIGKILL);  // anything it left in its process group
  child_pid_ = 0;
  std::error_code ec;
  fs::remove(options_.data_dir / kPidFile, ec);
  spdlog::info("dcgm-exporter (pid {}) stopped", pid);
}

std::optional<fs::path> FindExecutable(std::string_view name, std::string_view search_path) {
  auto runnable = [](const fs::path& file) {
    struct stat st = {};
    return ::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(file.c_str(), X_OK) == 0;
  };
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string_view::npos) {
    return runnable(fs::path(name)) ? std::optional<fs::path>(fs::path(name)) : std::nullopt;
  }
  size_t pos = 0;
  while (pos <= search_path.size()) {
    size_t colon = search_path.find(':', pos);
    if (colon == std::string_view::npos) colon = search_path.size();
    std::string_view dir = search_path.substr(pos, colon - pos);
    fs::path file = fs::path(dir.empty() ? "." : std::string(dir)) / std::string(name);
    if (runnable(file)) return file;
    pos = colon + 1;
  }
  return std::nullopt;
}

}  // namespace fleetwatch::agent
