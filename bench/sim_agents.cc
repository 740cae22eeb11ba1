// fleetwatch-sim-agents: many fake fleetwatch agents on loopback, served by one process.
//
// Each fake host listens on its own port of 127.0.0.1 and answers the agent API of
// docs/agent-api.md (healthcheck, inventory, poll with and without metrics, start, stop, logs,
// acknowledge) with the bearer-token check, from memory: no processes, no cgroups, no GPUs. It
// is the far side of the collector benchmark (collector_bench.cc), so that a real
// FleetController can poll 1,000 hosts on a 2-core machine.
//
// All hosts share one io_context run by a few threads (not one http::Server per port, which
// would be thousands of threads): one acceptor per port, one short session per connection.
//
// Protocol with the parent: when every port listens, the ports are written to --ports-file, one
// per line, host 0 first (written to FILE.tmp and renamed, so a reader never sees half a file).
// Host i is named "sim-<i>"; with --preload-jobs N it already runs jobs "sim-<i>-job-<k>",
// k = 0..N-1, job k on GPUs [k*G, k*G+G) for G = --gpus-per-job. With --dcgm a poll that asks
// for dcgm=1 carries the host's dcgm-exporter text (dcgm_text.h: 49 fields x 8 GPUs, new values
// every 10 s), after the JSON with dcgm_raw=1 as the agent sends it. With --job-seconds S a job
// started through the API exits by itself (code 0) S seconds after its start. With --record FILE
// it appends a line per start it accepted ("start <host> <job id> <micros>") and per poll it
// answered ("poll <host> <micros begun> <micros answered> <User-Agent>"), for a test to check
// who polled each host when and that no job was started twice. SIGTERM or SIGINT stops it.

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dcgm_text.h"
#include "http/message.h"
#include "http/router.h"
#include "util/ids.h"

namespace fleetwatch::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

constexpr int kGpusPerHost = 8;
constexpr int64_t kGpuMemoryBytes = 85'899'345'920;  // 80 GiB
constexpr int64_t kHostMemoryBytes = int64_t{512} << 30;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A small deterministic hash, so every job gets its own but reproducible load shape.
uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb93e653b6ca9ULL;
  x ^= x >> 33;
  return x;
}

uint64_t HashText(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return Mix(h);
}

bool IsValidJobId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

void AppendInt(std::string& out, int64_t n) { out += std::to_string(n); }

struct SimJob {
  std::string job_id;
  std::vector<int> gpu_indices;
  int64_t pid = 0;
  int64_t started_at = 0;
  bool exited = false;
  bool exited_by_itself = false;  // --job-seconds: exit code 0, no signal
  bool preloaded = false;         // --preload-jobs: runs until stopped
  bool stop_requested = false;
  int64_t finished_at = 0;
  // The load shape: mean busy cores, a slow wobble around it, a resident set.
  double cores = 1;
  double wobble_period_s = 60;
  int64_t memory_base = 0;
  uint64_t seed = 0;
};

// --record: appends lines to a file, each whole. Thread-safe.
class Recorder {
 public:
  explicit Recorder(const std::string& path) : file_(std::fopen(path.c_str(), "a")) {}
  ~Recorder() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;
  bool ok() const { return file_ != nullptr; }
  void Line(const std::string& line) {
    std::lock_guard lock(mu_);
    std::fputs(line.c_str(), file_);
    std::fputc('\n', file_);
    std::fflush(file_);
  }

 private:
  std::mutex mu_;
  std::FILE* file_;
};

// One fake agent. Thread-safe: its connections may be served on any I/O thread at once.
class SimHost {
 public:
  // `recorder` (null: none) must outlive it.
  SimHost(int index, std::string token, bool dcgm, int64_t job_micros, Recorder* recorder)
      : index_(index),
        token_(std::move(token)),
        dcgm_(dcgm),
        job_micros_(job_micros),
        recorder_(recorder) {
    hostname_ = "sim-" + std::to_string(index);
    agent_id_ = NewId();
    started_at_ = NowMicros();
    router_.Add("GET", "/api/healthcheck", [this](http::Request&) { return Healthcheck(); });
    router_.Add("GET", "/api/inventory", [this](http::Request&) { return Inventory(); });
    router_.Add("GET", "/api/poll", [this](http::Request& r) { return Poll(r); });
    router_.Add("POST", "/api/jobs", [this](http::Request& r) { return Start(r); });
    router_.Add("POST", "/api/jobs/{job_id}/stop", [this](http::Request& r) { return Stop(r); });
    router_.Add("GET", "/api/jobs/{job_id}/logs", [this](http::Request& r) { return Logs(r); });
    router_.Add("DELETE", "/api/jobs/{job_id}",
                [this](http::Request& r) { return Acknowledge(r); });
  }

  const std::string& hostname() const { return hostname_; }

  // A job already running when the simulation starts (started a while ago).
  void Preload(const std::string& job_id, std::vector<int> gpu_indices) {
    std::lock_guard lock(mu_);
    SimJob& job = NewJob(job_id, std::move(gpu_indices));
    job.preloaded = true;
    job.started_at -= static_cast<int64_t>(Mix(job.seed) % 3'600'000'000ULL);
  }

  http::Response Handle(http::Request& request) {
    constexpr std::string_view kBearer = "Bearer ";
    std::string_view header = request.Header("authorization");
    bool authorized = header.size() > kBearer.size() &&
                      header.substr(0, kBearer.size()) == kBearer &&
                      ConstantTimeEquals(header.substr(kBearer.size()), token_);
    if (!authorized) {
      http::Response response =
          http::JsonError(401, "unauthenticated", "missing or wrong agent token");
      response.headers.emplace_back("WWW-Authenticate", "Bearer");
      return response;
    }
    if (recorder_ != nullptr && request.path == "/api/poll") {
      const int64_t begun = NowMicros();
      http::Response response = router_.Dispatch(request);
      std::string user_agent(request.Header("user-agent"));
      for (char& c : user_agent) {
        if (c == '\n' || c == '\r') c = ' ';
      }
      recorder_->Line("poll " + hostname_ + " " + std::to_string(begun) + " " +
                      std::to_string(NowMicros()) + " " + user_agent);
      return response;
    }
    return router_.Dispatch(request);
  }

 private:
  static http::Response Json(int status, std::string body) {
    http::Response response;
    response.status = status;
    response.body = std::move(body);
    return response;
  }

  SimJob& NewJob(const std::string& job_id, std::vector<int> gpu_indices) {
    SimJob& job = jobs_[job_id];
    job.job_id = job_id;
    job.gpu_indices = std::move(gpu_indices);
    job.seed = HashText(job_id);
    job.pid = 1000 + static_cast<int64_t>(job.seed % 4'000'000);
    job.started_at = NowMicros();
    job.cores = 2.0 + static_cast<double>(job.seed % 600) / 100.0;  // 2..8 cores
    job.wobble_period_s = 30.0 + static_cast<double>((job.seed >> 12) % 90);
    job.memory_base = (int64_t{8} << 30) + static_cast<int64_t>((job.seed >> 20) % (24ULL << 30));
    return job;
  }

  // {"job_id", "state", "pid", "exit_code", "signal", "stop_requested", "started_at",
  //  "finished_at", "error"} as the real agent writes it; `metrics` appends the point.
  void AppendJobState(std::string& out, const SimJob& job) const {
    out += R"({"job_id":")";
    out += job.job_id;  // checked to be [A-Za-z0-9-]: nothing to escape
    out += R"(","state":")";
    out += job.exited ? "exited" : "running";
    out += R"(","pid":)";
    AppendInt(out, job.pid);
    out += R"(,"exit_code":)";
    out += job.exited_by_itself ? "0" : "null";
    out += R"(,"signal":)";
    out += job.exited && !job.exited_by_itself ? "15" : "null";
    out += R"(,"stop_requested":)";
    out += job.stop_requested ? "true" : "false";
    out += R"(,"started_at":)";
    AppendInt(out, job.started_at);
    out += R"(,"finished_at":)";
    if (job.exited) {
      AppendInt(out, job.finished_at);
    } else {
      out += "null";
    }
    out += R"(,"error":null)";
  }

  // A point as a real job would give it: the CPU counter is the integral of a load that wobbles
  // around `cores` (so it only grows, at a realistic rate); memory and GPU figures vary.
  void AppendMetrics(std::string& out, const SimJob& job, int64_t now) const {
    const double t = static_cast<double>(now - job.started_at) / 1e6;
    const double w = 2 * std::numbers::pi / job.wobble_period_s;
    const double amplitude = job.cores * 0.5;
    const double cpu_seconds = job.cores * t + amplitude * (1 - std::cos(w * t)) / w;
    const uint64_t second = static_cast<uint64_t>(now / 1'000'000);
    const int64_t memory =
        job.memory_base + static_cast<int64_t>(Mix(job.seed ^ second) % (2ULL << 30));
    out += R"(,"metrics":{"timestamp_micro":)";
    AppendInt(out, now);
    out += R"(,"cpu_usage_micro":)";
    AppendInt(out, static_cast<int64_t>(cpu_seconds * 1e6));
    out += R"(,"memory_usage_bytes":)";
    AppendInt(out, memory);
    out += R"(,"memory_working_set_bytes":)";
    AppendInt(out, memory - memory / 8);
    out += R"(,"gpus":[)";
    for (size_t g = 0; g < job.gpu_indices.size(); ++g) {
      const uint64_t r = Mix(job.seed ^ (second * 131 + g));
      if (g > 0) out += ',';
      out += R"({"gpu_memory_usage_bytes":)";
      AppendInt(out, (int64_t{40} << 30) + static_cast<int64_t>(r % (38ULL << 30)));
      out += R"(,"gpu_util_percent":)";
      AppendInt(out, 55 + static_cast<int64_t>((r >> 40) % 46));  // 55..100
      out += '}';
    }
    out += "]}";
  }

  // GPU g's UUID, the same in the inventory and in the DCGM text.
  std::string GpuUuid(int g) const {
    char uuid[64];
    const uint64_t a = Mix(static_cast<uint64_t>(index_) * 64 + static_cast<uint64_t>(g) + 1);
    const uint64_t b = Mix(a);
    std::snprintf(uuid, sizeof uuid, "GPU-%08x-%04x-%04x-%04x-%012llx",
                  static_cast<unsigned>(a >> 32), static_cast<unsigned>(a >> 16) & 0xffff,
                  static_cast<unsigned>(a) & 0xffff, static_cast<unsigned>(b >> 48),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return uuid;
  }

  // `,"dcgm":{"collected_at":...,"text":"..."}`: the host's dcgm-exporter text, made again when
  // it is 10 s old; with `raw` (dcgm_raw=1) the text is "" and goes after the JSON instead
  // (`raw_text` is set to it). Requires mu_.
  void AppendDcgm(std::string& out, int64_t now, bool raw, const std::string** raw_text) {
    if (dcgm_text_.empty() || now - dcgm_collected_at_ >= 10'000'000) {
      std::vector<DcgmGpu> gpus;
      for (int g = 0; g < kGpusPerHost; ++g) gpus.push_back({g, GpuUuid(g)});
      std::mt19937_64 rng(static_cast<uint64_t>(index_) * 7919 + static_cast<uint64_t>(now));
      dcgm_text_ = DcgmExporterText(hostname_, gpus, rng);
      dcgm_escaped_.clear();
      dcgm_collected_at_ = now;
    }
    out += R"(,"dcgm":{"collected_at":)";
    AppendInt(out, dcgm_collected_at_);
    out += R"(,"text":")";
    if (raw) {
      *raw_text = &dcgm_text_;
    } else {
      if (dcgm_escaped_.empty()) dcgm_escaped_ = http::JsonEscape(dcgm_text_);
      out += dcgm_escaped_;
    }
    out += R"("})";
  }

  http::Response Healthcheck() const {
    std::string body = R"({"service":"fleetwatch-agent","version":"0.1.0","agent_id":")";
    body += agent_id_;
    body += R"(","started_at":)";
    AppendInt(body, started_at_);
    body += '}';
    return Json(200, std::move(body));
  }

  http::Response Inventory() const {
    std::string body = R"({"agent_id":")" + agent_id_ + R"(","hostname":")" + hostname_ +
                       R"(","cpus":64,"memory_bytes":)" + std::to_string(kHostMemoryBytes) +
                       R"(,"cgroup":"v2","gpus":[)";
    for (int g = 0; g < kGpusPerHost; ++g) {
      if (g > 0) body += ',';
      body += R"({"index":)" + std::to_string(g) + R"(,"name":"NVIDIA H100 80GB HBM3","uuid":")" +
              GpuUuid(g) + R"(","memory_bytes":)" + std::to_string(kGpuMemoryBytes) +
              R"(,"vendor":"nvidia"})";
    }
    body += "]}";
    return Json(200, std::move(body));
  }

  http::Response Poll(const http::Request& request) {
    bool with_metrics = false;
    if (auto it = request.query.find("metrics"); it != request.query.end()) {
      if (it->second != "0" && it->second != "1") {
        return http::JsonError(400, "invalid_argument", "metrics must be 0 or 1");
      }
      with_metrics = it->second == "1";
    }
    bool with_dcgm = false;
    if (auto it = request.query.find("dcgm"); it != request.query.end()) {
      with_dcgm = dcgm_ && with_metrics && it->second == "1";
    }
    const auto raw = request.query.find("dcgm_raw");
    const bool dcgm_raw = raw != request.query.end() && raw->second == "1";
    const int64_t now = NowMicros();
    std::string body;
    body.reserve(256 + jobs_.size() * 420);
    body += R"({"agent_id":")";
    body += agent_id_;
    body += R"(","now":)";
    AppendInt(body, now);
    body += R"(,"jobs":[)";
    std::lock_guard lock(mu_);
    bool first = true;
    for (auto& [id, job] : jobs_) {
      if (job_micros_ > 0 && !job.exited && !job.preloaded && now - job.started_at >= job_micros_) {
        job.exited = true;
        job.exited_by_itself = true;
        job.finished_at = job.started_at + job_micros_;
      }
      if (!first) body += ',';
      first = false;
      AppendJobState(body, job);
      if (with_metrics) {
        if (job.exited) {
          body += R"(,"metrics":null)";
        } else {
          AppendMetrics(body, job, now);
        }
      }
      body += '}';
    }
    body += ']';
    const std::string* raw_text = nullptr;
    if (with_dcgm) AppendDcgm(body, now, dcgm_raw, &raw_text);
    body += '}';
    if (raw_text == nullptr) return Json(200, std::move(body));
    // As the agent sends it with dcgm_raw=1: the text after the JSON, its length in a header.
    body += *raw_text;
    http::Response response = Json(200, std::move(body));
    response.content_type = "application/vnd.fleetwatch.poll+dcgm";
    response.headers.emplace_back("Fleetwatch-Dcgm-Text-Bytes", std::to_string(raw_text->size()));
    return response;
  }

  http::Response JobReply(int status, const SimJob& job) const {
    std::string body;
    AppendJobState(body, job);
    body += '}';
    return Json(status, std::move(body));
  }

  // Accepts any well-formed start (the real agent would check much more); idempotent by job id.
  http::Response Start(const http::Request& request) {
    boost::system::error_code ec;
    json::value v = json::parse(request.body, ec);
    if (ec || !v.is_object()) {
      return http::JsonError(400, "invalid_argument", "the body must be a JSON object");
    }
    const json::value* id = v.as_object().if_contains("job_id");
    if (id == nullptr || !id->is_string() || !IsValidJobId(id->as_string())) {
      return http::JsonError(400, "invalid_argument",
                             "job_id must be 1 to 64 characters of A-Z, a-z, 0-9 and '-'");
    }
    std::vector<int> gpus;
    if (const json::value* g = v.as_object().if_contains("gpu_indices"); g && g->is_array()) {
      for (const json::value& index : g->as_array()) {
        if (!index.is_int64() || index.as_int64() < 0 || index.as_int64() >= kGpusPerHost) {
          return http::JsonError(400, "invalid_argument", "gpu_indices: no such GPU");
        }
        gpus.push_back(static_cast<int>(index.as_int64()));
      }
    }
    const std::string job_id(id->as_string());
    std::lock_guard lock(mu_);
    if (auto it = jobs_.find(job_id); it != jobs_.end()) return JobReply(200, it->second);
    SimJob& job = NewJob(job_id, std::move(gpus));
    if (recorder_ != nullptr) {
      recorder_->Line("start " + hostname_ + " " + job_id + " " + std::to_string(job.started_at));
    }
    return JobReply(201, job);
  }

  http::Response Stop(const http::Request& request) {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(request.path_params.at("job_id"));
    if (it == jobs_.end()) return http::JsonError(404, "not_found", "no such job");
    SimJob& job = it->second;
    job.stop_requested = true;
    if (!job.exited) {
      job.exited = true;  // SIGTERM, obeyed at once
      job.finished_at = NowMicros();
    }
    return JobReply(200, job);
  }

  http::Response Logs(const http::Request& request) const {
    std::lock_guard lock(mu_);
    if (!jobs_.count(request.path_params.at("job_id"))) {
      return http::JsonError(404, "not_found", "no such job");
    }
    http::Response response;
    response.content_type = "application/octet-stream";
    response.headers.emplace_back("X-Log-Size", "0");
    return response;
  }

  http::Response Acknowledge(const http::Request& request) {
    const std::string& job_id = request.path_params.at("job_id");
    std::lock_guard lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return http::JsonError(404, "not_found", "no such job");
    if (!it->second.exited) {
      return http::JsonError(409, "failed_precondition", "the job is still running");
    }
    jobs_.erase(it);
    return Json(200, R"({"job_id":")" + job_id + R"(","acknowledged":true})");
  }

  const int index_;
  const std::string token_;
  const bool dcgm_;           // --dcgm: polls with dcgm=1 carry DCGM text
  const int64_t job_micros_;  // --job-seconds (0: started jobs run until stopped)
  Recorder* const recorder_;
  std::string hostname_;
  std::string agent_id_;
  int64_t started_at_ = 0;
  http::Router router_;
  mutable std::mutex mu_;
  std::map<std::string, SimJob> jobs_;  // by job id
  std::string dcgm_text_;               // guarded by mu_
  std::string dcgm_escaped_;            // dcgm_text_ JSON-escaped, once asked for; guarded by mu_
  int64_t dcgm_collected_at_ = 0;       // guarded by mu_
};

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// One connection: read a request, answer it, repeat while the client keeps it alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, SimHost& host) : stream_(std::move(socket)), host_(host) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    stream_.expires_after(std::chrono::seconds(30));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return Close();
    auto& message = parser_->get();
    http::Response response;
    auto url = boost::urls::parse_origin_form(message.target());
    if (!url) {
      response = http::JsonError(400, "bad_request", "invalid request target");
    } else {
      http::Request request;
      request.method = std::string(message.method_string());
      request.target = std::string(message.target());
      request.path = url->path();
      for (const auto& param : url->params()) request.query[param.key] = param.value;
      for (const auto& field : message) {
        request.headers.emplace_back(ToLower(field.name_string()), std::string(field.value()));
      }
      request.body = std::move(message.body());
      response = host_.Handle(request);
    }
    keep_alive_ = message.keep_alive() && response.status < 400;
    reply_.emplace();
    reply_->version(message.version());
    reply_->result(static_cast<unsigned>(response.status));
    reply_->set(bhttp::field::server, "fleetwatch");
    reply_->set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) reply_->set(name, value);
    reply_->keep_alive(keep_alive_);
    reply_->body() = std::move(response.body);
    reply_->prepare_payload();
    bhttp::async_write(stream_, *reply_,
                       [self = shared_from_this()](beast::error_code write_ec, size_t) {
                         if (write_ec || !self->keep_alive_) return self->Close();
                         self->Read();
                       });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  SimHost& host_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> reply_;
  bool keep_alive_ = false;
};

// Accepts connections for one host. Each connection gets its own strand, so a session's timer
// and its reads and writes never run at once on the shared threads.
class Listener {
 public:
  Listener(asio::io_context& io, SimHost& host, uint16_t port)
      : io_(io), acceptor_(io), retry_(io), host_(host) {
    tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(io_),
                           [this](beast::error_code ec, tcp::socket socket) {
                             if (ec == asio::error::operation_aborted) return;
                             if (ec) {
                               // Out of descriptors, most likely: pause rather than spin, then
                               // accept again.
                               retry_.expires_after(std::chrono::milliseconds(50));
                               retry_.async_wait([this](beast::error_code wait_ec) {
                                 if (!wait_ec) Accept();
                               });
                               return;
                             }
                             std::make_shared<Session>(std::move(socket), host_)->Read();
                             Accept();
                           });
  }

  void Close() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
  }

 private:
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  SimHost& host_;
};

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Main(int argc, char** argv) {
  CLI::App app{"Serves many simulated fleetwatch agents on 127.0.0.1 from one process."};
  int hosts = 1000;
  int jobs_per_host = 8;
  int gpus_per_job = 1;
  int preload_jobs = 0;
  std::string token;
  int first_port = 0;
  std::string ports_file;
  int threads = 2;
  bool dcgm = false;
  double job_seconds = 0;
  std::string record;
  app.add_option("--hosts", hosts, "Number of simulated hosts (one port each)")
      ->check(CLI::Range(1, 60000));
  app.add_option("--jobs-per-host", jobs_per_host,
                 "Job slots per host: --preload-jobs at most this, jobs*GPUs at most 8")
      ->check(CLI::Range(1, 1000));
  app.add_option("--gpus-per-job", gpus_per_job, "GPUs of each preloaded job")
      ->check(CLI::Range(0, kGpusPerHost));
  app.add_option("--preload-jobs", preload_jobs,
                 "Jobs each host already runs at start: sim-<i>-job-<k>, k < N")
      ->check(CLI::Range(0, 1000));
  app.add_option("--token", token, "The agents' bearer token")->required();
  app.add_option("--first-port", first_port, "Host i listens on this + i; 0: the kernel picks")
      ->check(CLI::Range(0, 65535));
  app.add_option("--ports-file", ports_file, "Where to write the ports, one per line, when ready")
      ->required();
  app.add_option("--threads", threads, "I/O threads shared by all hosts")->check(CLI::Range(1, 64));
  app.add_flag("--dcgm", dcgm, "Polls with metrics=1&dcgm=1 carry dcgm-exporter text");
  app.add_option("--job-seconds", job_seconds,
                 "A job started through the API exits (code 0) this long after its start; 0: "
                 "it runs until stopped")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--record", record, "Append each accepted start and each answered poll here");
  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<Recorder> recorder;
  if (!record.empty()) {
    recorder = std::make_unique<Recorder>(record);
    if (!recorder->ok()) {
      std::fprintf(stderr, "cannot open %s\n", record.c_str());
      return 2;
    }
  }
  if (preload_jobs > jobs_per_host) {
    std::fprintf(stderr, "--preload-jobs must not exceed --jobs-per-host\n");
    return 2;
  }
  if (jobs_per_host * gpus_per_job > kGpusPerHost && preload_jobs > 0) {
    std::fprintf(stderr, "--jobs-per-host x --gpus-per-job must not exceed %d GPUs\n",
                 kGpusPerHost);
    return 2;
  }
  if (first_port != 0 && first_port + hosts - 1 > 65535) {
    std::fprintf(stderr, "--first-port + --hosts goes past port 65535\n");
    return 2;
  }
  RaiseFileLimit();

  std::vector<std::unique_ptr<SimHost>> sim_hosts;
  for (int i = 0; i < hosts; ++i) {
    auto host = std::make_unique<SimHost>(i, token, dcgm, static_cast<int64_t>(job_seconds * 1e6),
                                          recorder.get());
    for (int k = 0; k < preload_jobs; ++k) {
      std::vector<int> gpus;
      for (int g = 0; g < gpus_per_job; ++g) gpus.push_back(k * gpus_per_job + g);
      host->Preload(host->hostname() + "-job-" + std::to_string(k), std::move(gpus));
    }
    sim_hosts.push_back(std::move(host));
  }

  asio::io_context io;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::string ports;
  try {
    for (int i = 0; i < hosts; ++i) {
      const auto port = static_cast<uint16_t>(first_port == 0 ? 0 : first_port + i);
      listeners.push_back(std::make_unique<Listener>(io, *sim_hosts[static_cast<size_t>(i)], port));
      ports += std::to_string(listeners.back()->port()) + "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cannot listen for host %zu: %s\n", listeners.size(), e.what());
    return 1;
  }
  for (auto& listener : listeners) listener->Accept();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    for (auto& listener : listeners) listener->Close();
    io.stop();
  });

  const std::string tmp = ports_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ports;
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", tmp.c_str());
      return 1;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, ports_file, ec);
  if (ec) {
    std::fprintf(stderr, "cannot write %s: %s\n", ports_file.c_str(), ec.message().c_str());
    return 1;
  }

  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& w : workers) w.join();
  return 0;
}

}  // namespace
}  // namespace fleetwatch::bench

int main(int argc, char** argv) { return fleetwatch::bench::Main(argc, argv); }
