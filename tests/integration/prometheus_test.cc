// The headline path end to end: a real server runs a real job on its local fleet (fake NVML GPUs,
// a fake dcgm-exporter on PATH, both at the hardware edge), and a real Prometheus (Debian's)
// scrapes /metrics with the bearer token. What hosts report is hostile on purpose; an independent
// parser (the official Python client's) checks every sample is well-formed and intact.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/message.h"
#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr char kScrapeToken[] = "scrape-token-for-prometheus";
const fs::path kSource = FLEETWATCH_SOURCE_DIR;
const fs::path kDcgmTestdata = kSource / "tests/agent/testdata/dcgm";

// What hosts may report, as unpleasant as the formats allow: quotes, a backslash, a closing
// brace, a newline followed by what would be a directive, markup.
const std::string kHostileGpu = "NVIDIA H100 \"80GB\" \\} \n# EOF <img src=x onerror=alert(1)>";
// What dstack's `dstack_gpu` label makes of it (model::ShortGpuName); the API keeps it whole.
const std::string kHostileGpuShortName = "H100";
const std::string kHostileHost = "node-1\"} 1\n# TYPE x counter\n\\";

// The fake NVML's line format escapes a newline as "\n" and any byte as "\xHH".
std::string NvmlEscaped(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\\' || c == '|') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

// Escaped as a label value in the exposition text.
std::string LabelEscaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Uuid(int i) { return "GPU-00000000-0000-0000-0000-00000000000" + std::to_string(i); }

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample of `body` as the official Python client parses it; fails the test when it does
// not parse.
std::vector<Sample> ParseIndependently(const std::string& body, const std::string& format) {
  ProcessResult r = RunProcess(
      "/usr/bin/python3",
      {(kSource / "tests/integration/tools/parse_exposition.py").string(), format}, {}, body);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<Sample> samples;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    json::error_code ec;
    json::value parsed = json::parse(line, ec);
    if (ec || !parsed.is_object()) {
      ADD_FAILURE() << "unreadable parser output: " << line;
      continue;
    }
    const json::object& o = parsed.as_object();
    Sample s;
    s.name = std::string(o.at("name").as_string());
    for (const auto& [k, v] : o.at("labels").as_object()) {
      s.labels[std::string(k)] = std::string(v.as_string());
    }
    const json::value& v = o.at("value");
    s.value = v.is_double() ? v.as_double() : v.is_int64() ? static_cast<double>(v.as_int64()) : 0;
    samples.push_back(std::move(s));
  }
  return samples;
}

class PrometheusIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists("/usr/bin/prometheus")) << "Debian's prometheus is missing";
    ASSERT_TRUE(fs::exists("/usr/bin/python3")) << "Debian's python3 is missing";
    // Four GPUs, the first with a hostile name; GPU i at 10·(i+1) % and (i+1) GiB used, drawing
    // 100·(i+1) W at 50+i °C, capped by software power limits, with a few corrected ECC errors
    // and one row remapped after a correctable error (all of which leave a GPU healthy), so that
    // the GPU health and energy families have samples.
    std::string gpus;
    for (int i = 0; i < 4; ++i) {
      gpus += NvmlEscaped(i == 0 ? kHostileGpu : "NVIDIA H100 80GB HBM3") + "|" + Uuid(i) + "|" +
              std::to_string(int64_t{80} << 30) + "|" + std::to_string(int64_t{i + 1} << 30) + "|" +
              std::to_string(10 * (i + 1)) + "|power=" + std::to_string(100000 * (i + 1)) +
              "|temp=" + std::to_string(50 + i) + "|throttle=4|ecc=2,0,2,0|rows=1,0,0,0\n";
    }
    WriteFile(dir_.path() / "gpus.txt", gpus);
    // One application fault (XID 13, which leaves the GPU healthy) on GPU 3, which no job holds.
    WriteFile(dir_.path() / "xids.txt", "3 13\n");
    // The exporter's fixture, its Hostname made hostile.
    std::string fixture = ReadFile(kDcgmTestdata / "four-gpus.txt");
    ASSERT_FALSE(fixture.empty());
    size_t at = 0;
    const std::string plain = "Hostname=\"node-1\"";
    while ((at = fixture.find(plain, at)) != std::string::npos) {
      std::string hostile = "Hostname=\"" + LabelEscaped(kHostileHost) + "\"";
      fixture.replace(at, plain.size(), hostile);
      at += hostile.size();
    }
    WriteFile(dir_.path() / "dcgm.txt", fixture);
    fs::create_directories(dir_.path() / "bin");
    fs::create_symlink(kDcgmTestdata / "fake-dcgm-exporter", dir_.path() / "bin/dcgm-exporter");
    WriteFile(dir_.path() / "scrape-token", kScrapeToken);

    env_ = {
        {"FLEETWATCH_POLL_INTERVAL_MS", "200"},
        {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
        {"FLEETWATCH_NVML_LIBRARY", FAKE_NVML_LIBRARY},
        {"FAKE_NVML_FILE", (dir_.path() / "gpus.txt").string()},
        {"FAKE_NVML_XID_FILE", (dir_.path() / "xids.txt").string()},
        {"FAKE_DCGM_FIXTURE", (dir_.path() / "dcgm.txt").string()},
        {"FAKE_DCGM_STARTS", (dir_.path() / "dcgm-starts").string()},
        {"FLEETWATCH_DCGM_EXPORTER_PORT", std::to_string(FreePort())},
        {"FLEETWATCH_DCGM_INTERVAL_SECONDS", "1"},
        {"PATH", (dir_.path() / "bin").string() + ":" + std::getenv("PATH")},
        // GPU 0 (10 %, memory in use) counts as idle and GPU 1 (20 %) as busy, so that a job on
        // both has idle GPU time, idle cost and busy time in the GPU ledger.
        {"FLEETWATCH_GPU_IDLE_THRESHOLD_PERCENT", "15"},
        {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
        {"DSTACK_PROMETHEUS_AUTH_TOKEN", kScrapeToken},
    };
    StartServer();
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>((dir_.path() / "data").string(),
                                              (dir_.path() / "home").string(), kAdminToken,
                                              std::vector<std::string>{}, env_);
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  // The value of the one sample of `series` (name and labels as they print) in `body`, or -1.
  static double SampleValue(const std::string& body, const std::string& series) {
    size_t at = body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(body.substr(at + series.size() + 2));
  }

  void TearDown() override {
    if (prometheus_) prometheus_->Stop(SIGTERM);
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  http::Response Get(const std::string& url, const std::string& target,
                     std::vector<std::pair<std::string, std::string>> headers = {},
                     http::ClientOptions options = {}) {
    Result<http::Client> client = http::Client::Create(url, std::move(options));
    EXPECT_TRUE(client.ok());
    Result<http::Response> r = client->Send("GET", target, {}, headers);
    return r.ok() ? *r : http::Response{};
  }

  http::Response Scrape(const std::string& accept = {}, const std::string& path = "/metrics") {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", std::string("Bearer ") + kScrapeToken}};
    if (!accept.empty()) headers.emplace_back("Accept", accept);
    return Get(server_->url(), path, headers);
  }

  // Scrapes until `done` holds for the body (at most `seconds`); the last 200 body.
  std::string ScrapeUntil(const std::function<bool(const std::string&)>& done, int seconds = 60,
                          const std::string& path = "/metrics") {
    std::string body;
    auto deadline = steady_clock::now() + std::chrono::seconds(seconds);
    while (steady_clock::now() < deadline) {
      http::Response r = Scrape({}, path);
      EXPECT_EQ(r.status, 200) << r.body;
      body = r.body;
      if (done(body)) return body;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ADD_FAILURE() << "timed out; last scrape:\n" << body << "\nserver:\n" << server_->Output();
    return body;
  }

  // Prometheus with `config_file`, its paths relative to that file's directory.
  void StartPrometheusWith(const fs::path& config_file) {
    prometheus_port_ = FreePort();
    prometheus_ = std::make_unique<ChildProcess>(
        "/usr/bin/prometheus",
        std::vector<std::string>{
            "--config.file=" + config_file.string(),
            "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
            "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port_),
            "--log.level=warn"},
        std::map<std::string, std::string>{});
  }

  void StartPrometheus() {
    std::string config =
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: fleetwatch\n"
        "    authorization:\n"
        "      credentials_file: " +
        (dir_.path() / "scrape-token").string() +
        "\n"
        "    static_configs:\n"
        "      - targets: ['127.0.0.1:" +
        std::to_string(server_->port()) + "']\n";
    WriteFile(dir_.path() / "prometheus.yml", config);
    StartPrometheusWith(dir_.path() / "prometheus.yml");
  }

  // PromQL through Prometheus' HTTP API, retried until it returns at least `want` series.
  json::array Query(const std::string& promql, size_t want = 1, int seconds = 60) {
    const std::string url = "http://127.0.0.1:" + std::to_string(prometheus_port_);
    json::array result;
    std::string last;
    auto deadline = steady_clock::now() + std::chrono::seconds(seconds);
    while (steady_clock::now() < deadline) {
      http::Response r = Get(url, "/api/v1/query?query=" + http::UrlEncode(promql));
      last = r.body;
      json::error_code ec;
      json::value v = json::parse(r.body, ec);
      if (r.status == 200 && !ec && v.is_object()) {
        result = v.at("data").at("result").as_array();
        if (result.size() >= want) return result;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ADD_FAILURE() << promql << ": " << last << "\nprometheus:\n"
                  << (prometheus_ ? prometheus_->Output() : "");
    return result;
  }

  static std::string LabelOf(const json::value& series, const char* name) {
    const json::object& metric = series.at("metric").as_object();
    const json::value* v = metric.if_contains(name);
    return v != nullptr ? std::string(v->as_string()) : "<absent>";
  }
  static double ValueOf(const json::value& series) {
    return std::stod(std::string(series.at("value").as_array()[1].as_string()));
  }

  // The pid of a line of the fake exporter's start log ({"pid": N, "argv": [...]}).
  static pid_t PidOf(const std::string& start) {
    return static_cast<pid_t>(json::parse(start).at("pid").as_int64());
  }

  std::vector<std::string> ExporterStarts() {
    std::vector<std::string> starts;
    std::istringstream lines(ReadFile(dir_.path() / "dcgm-starts"));
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty()) starts.push_back(line);
    }
    return starts;
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
  std::unique_ptr<ChildProcess> prometheus_;
  uint16_t prometheus_port_ = 0;
};

TEST_F(PrometheusIntegrationTest, JobsGpusAndDcgmReachPrometheusWithTheJobsLabels) {
  ApiReply submitted =
      admin_->Send("POST", "/api/project/main/runs",
                   "type: task\nname: train\ncommands: ['sleep 300']\nresources: {gpu: 2}\n",
                   "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;

  // The exposition gets the job's GPU figures and its DCGM samples.
  std::string body = ScrapeUntil([](const std::string& b) {
    return b.find("dstack_job_gpu_usage_ratio{") != std::string::npos &&
           b.find("DCGM_FI_DEV_GPU_UTIL{") != std::string::npos &&
           b.find("dstack_project_gpu_seconds_total{") != std::string::npos;
  });

  // An independent parser reads every sample; each series exactly once.
  std::vector<Sample> samples = ParseIndependently(body, "text");
  ASSERT_FALSE(samples.empty());
  std::set<std::pair<std::string, std::map<std::string, std::string>>> series;
  for (const Sample& s : samples) {
    EXPECT_TRUE(series.insert({s.name, s.labels}).second) << "duplicate series " << s.name;
    EXPECT_FALSE(s.labels.contains("job")) << s.name;
    EXPECT_FALSE(s.labels.contains("instance")) << s.name;
  }
  std::vector<const Sample*> dcgm_util, gpu_ratio, instance_gpus;
  for (const Sample& s : samples) {
    if (s.name == "DCGM_FI_DEV_GPU_UTIL") dcgm_util.push_back(&s);
    if (s.name == "dstack_job_gpu_usage_ratio") gpu_ratio.push_back(&s);
    if (s.name == "dstack_instance_gpu_count") instance_gpus.push_back(&s);
  }
  // The job holds GPUs 0 and 1: exactly their DCGM samples, with the 11 job labels appended and
  // the host's hostile label values intact.
  ASSERT_EQ(dcgm_util.size(), 2u) << body;
  std::set<std::string> uuids;
  for (const Sample* s : dcgm_util) {
    uuids.insert(s->labels.at("UUID"));
    EXPECT_EQ(s->labels.at("Hostname"), kHostileHost);
    EXPECT_EQ(s->labels.at("dstack_run_name"), "train");
    EXPECT_EQ(s->labels.at("dstack_job_name"), "train-0-0");
    EXPECT_EQ(s->labels.at("dstack_project_name"), "main");
    EXPECT_EQ(s->labels.at("dstack_user_name"), "admin");
    EXPECT_EQ(s->labels.at("dstack_backend"), "local");
    EXPECT_EQ(s->labels.at("dstack_gpu"), kHostileGpuShortName);
    EXPECT_EQ(s->labels.size(), 7u + 11u) << s->name;
  }
  EXPECT_EQ(uuids, (std::set<std::string>{Uuid(0), Uuid(1)}));
  ASSERT_EQ(gpu_ratio.size(), 2u);
  ASSERT_EQ(instance_gpus.size(), 1u);
  EXPECT_EQ(instance_gpus[0]->labels.at("dstack_gpu"), kHostileGpuShortName);
  EXPECT_EQ(instance_gpus[0]->labels.at("dstack_instance_type"), "instance");
  EXPECT_EQ(instance_gpus[0]->value, 4.0);

  // A scraper asking for OpenMetrics gets the text format, as from dstack: DCGM's counters keep
  // their `counter` type (FLEETWATCH_OPENMETRICS is off).
  http::Response om = Scrape("application/openmetrics-text; version=1.0.0");
  ASSERT_EQ(om.status, 200);
  EXPECT_EQ(ParseIndependently(om.body, "text").size(), samples.size());
  EXPECT_EQ(om.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << om.content_type;

  // promtool: no parse error.
  ProcessResult check = RunProcess("/usr/bin/promtool", {"check", "metrics"}, {}, body);
  EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 3) << check.out << check.err;

  // A real Prometheus scrapes it with the bearer token.
  StartPrometheus();
  json::array up = Query("up{job=\"fleetwatch\"} == 1");
  ASSERT_EQ(up.size(), 1u);
  json::array runs = Query("dstack_run_count_total{dstack_project_name=\"main\"}");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(LabelOf(runs[0], "dstack_user_name"), "admin");
  EXPECT_EQ(ValueOf(runs[0]), 1.0);
  json::array ratio = Query("dstack_job_gpu_usage_ratio{dstack_run_name=\"train\"}", 2);
  ASSERT_EQ(ratio.size(), 2u);
  std::map<std::string, double> by_gpu;
  for (const json::value& s : ratio) by_gpu[LabelOf(s, "dstack_gpu_num")] = ValueOf(s);
  EXPECT_EQ(by_gpu, (std::map<std::string, double>{{"0", 0.1}, {"1", 0.2}}));
  json::array dcgm = Query("DCGM_FI_DEV_GPU_UTIL{dstack_run_name=\"train\"}", 2);
  ASSERT_EQ(dcgm.size(), 2u);
  for (const json::value& s : dcgm) {
    EXPECT_EQ(LabelOf(s, "dstack_job_name"), "train-0-0");
    EXPECT_EQ(LabelOf(s, "Hostname"), kHostileHost);
    EXPECT_EQ(LabelOf(s, "job"), "fleetwatch");  // Prometheus' own target label, untouched
  }
  json::array cost = Query("dstack_project_gpu_seconds_total{dstack_project_name=\"main\"} > 0");
  EXPECT_EQ(cost.size(), 1u);
}

// Cost, GPU time and run counts are persisted: a restarted server starts from where it was, and
// a deleted run keeps what it spent.
TEST_F(PrometheusIntegrationTest, CountersSurviveARestartAndTheRunsDeletion) {
  const std::string gpu_seconds =
      "dstack_project_gpu_seconds_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"}";
  const std::string runs =
      "dstack_run_count_total{dstack_project_name=\"main\",dstack_user_name=\"admin\"}";
  ApiReply submitted = admin_->Send("POST", "/api/project/main/runs",
                                    "type: task\nname: spend\ncommands: ['sleep 300']\n"
                                    "resources: {gpu: 2}\n",
                                    "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  // At least 4 GPU-seconds accounted (two GPUs for two seconds or more).
  std::string body =
      ScrapeUntil([&](const std::string& b) { return SampleValue(b, gpu_seconds) >= 4; });
  ASSERT_EQ(
      admin_->Send("POST", "/api/project/main/runs/spend/stop", "{}", "application/json").status,
      200);
  body = ScrapeUntil([&](const std::string& b) {
    return b.find(
               "dstack_run_count_terminated_total{dstack_project_name=\"main\","
               "dstack_user_name=\"admin\"} 1.0") != std::string::npos;
  });
  ASSERT_EQ(admin_->Delete("/api/project/main/runs/spend").status, 200);
  body = ScrapeUntil([&](const std::string& b) { return SampleValue(b, gpu_seconds) > 0; });
  const double spent = SampleValue(body, gpu_seconds);

  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
  StartServer();
  std::string after = ScrapeUntil([&](const std::string& b) {
    return SampleValue(b, gpu_seconds) >= 0 && SampleValue(b, runs) >= 0;
  });
  // Never lower (the run's last stretch may be charged after `spent` was read).
  EXPECT_GE(SampleValue(after, gpu_seconds), spent) << after;
  EXPECT_EQ(SampleValue(after, runs), 1.0) << after;
}

// Without the switch there is no DCGM collection: the local agent runs no exporter even though
// one is on PATH.
TEST_F(PrometheusIntegrationTest, WithoutTheSwitchTheLocalAgentRunsNoExporter) {
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
  std::error_code ec;
  fs::remove(dir_.path() / "dcgm-starts", ec);
  env_["DSTACK_ENABLE_PROMETHEUS_METRICS"] = "\x01unset";
  StartServer();
  json::value state = json::parse(ReadFile(dir_.path() / "data/local-agent.json"));
  // The local agent speaks HTTPS with its own certificate, which the server pinned.
  const std::string agent = "https://127.0.0.1:" + std::to_string(state.at("port").as_int64());
  http::ClientOptions pinned;
  pinned.tls.fingerprint = std::string(state.at("fingerprint").as_string());
  http::Response metrics = Get(agent, "/metrics", {}, pinned);
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_NE(metrics.body.find("fleetwatch_agent_info{"), std::string::npos) << metrics.body;
  EXPECT_EQ(metrics.body.find("dcgm"), std::string::npos) << metrics.body;
  EXPECT_FALSE(fs::exists(dir_.path() / "dcgm-starts"));
  EXPECT_EQ(Scrape().status, 404);
}

TEST_F(PrometheusIntegrationTest, ServiceDiscoveryListsTheReachableAgentsToTheTokenOnly) {
  http::Response none = Get(server_->url(), "/api/prometheus/sd");
  EXPECT_EQ(none.status, 403) << none.body;
  http::Response wrong =
      Get(server_->url(), "/api/prometheus/sd", {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 403) << wrong.body;

  json::array groups;
  auto deadline = steady_clock::now() + std::chrono::seconds(60);
  while (steady_clock::now() < deadline) {
    http::Response sd = Get(server_->url(), "/api/prometheus/sd",
                            {{"Authorization", std::string("Bearer ") + kScrapeToken}});
    ASSERT_EQ(sd.status, 200) << sd.body;
    groups = json::parse(sd.body).as_array();
    if (!groups.empty()) break;  // the local agent answered its first poll
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(groups.size(), 1u);
  const json::object& labels = groups[0].at("labels").as_object();
  EXPECT_EQ(labels.at("dstack_project_name"), "main");
  EXPECT_EQ(labels.at("dstack_fleet_name"), "local");
  EXPECT_EQ(labels.at("dstack_instance_name"), "local-0");
  EXPECT_EQ(labels.at("dstack_backend"), "local");
  EXPECT_EQ(labels.at("dstack_gpu").as_string(), kHostileGpuShortName);
  EXPECT_EQ(labels.at("dstack_gpu_count"), "4");
  EXPECT_EQ(labels.at("__metrics_path__"), "/metrics");
  const std::string target(groups[0].at("targets").as_array().at(0).as_string());
  EXPECT_EQ(target.rfind("127.0.0.1:", 0), 0u) << target;
}

TEST_F(PrometheusIntegrationTest, TheExporterIsRestartedAndBadDcgmTextCostsOnlyDcgmSamples) {
  ApiReply submitted = admin_->Send("POST", "/api/project/main/runs",
                                    "type: task\nname: burn\ncommands: ['sleep 300']\n"
                                    "resources: {gpu: 1}\n",
                                    "application/yaml");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  ScrapeUntil([](const std::string& b) { return b.find("DCGM_FI_DEV_GPU_UTIL{") != b.npos; });

  // The agent started the exporter with its counters file on the configured address.
  std::vector<std::string> starts = ExporterStarts();
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_NE(starts[0].find("dcgm-counters.csv"), std::string::npos) << starts[0];
  // Killed, it is started again.
  pid_t pid = PidOf(starts[0]);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto deadline = steady_clock::now() + std::chrono::seconds(60);
  while (ExporterStarts().size() < 2 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(ExporterStarts().size(), 2u) << server_->Output();

  // Text that does not parse: DCGM samples go, the error is counted, the rest is served.
  WriteFile(dir_.path() / "dcgm.txt", ReadFile(kDcgmTestdata / "malformed.txt"));
  std::string body =
      ScrapeUntil([](const std::string& b) { return b.find("DCGM_") == std::string::npos; });
  // This server's own count of texts it could not read (GET /metrics/replica).
  ScrapeUntil(
      [](const std::string& own) {
        return own.find("fleetwatch_dcgm_text_errors_total ") != std::string::npos &&
               own.find("fleetwatch_dcgm_text_errors_total 0.0") == std::string::npos;
      },
      60, "/metrics/replica");
  EXPECT_NE(body.find("dstack_job_gpu_usage_ratio{"), std::string::npos) << body;
  EXPECT_NE(body.find("dstack_run_count_total{"), std::string::npos) << body;

  // The server's graceful stop stops its local agent, which stops the exporter.
  pid_t second = PidOf(ExporterStarts().back());
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
  server_.reset();
  deadline = steady_clock::now() + std::chrono::seconds(30);
  while (::kill(second, 0) == 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(::kill(second, 0), 0) << "the exporter outlived its agent";
}

// The operators' kit as shipped (deploy/prometheus: scrape config, service discovery, rules), only
// its address and intervals adjusted, against a real server running real jobs: both scrape jobs
// are healthy and every query of every Grafana dashboard (tests/deploy/dashboard_queries.json,
// variables substituted) returns data.
TEST_F(PrometheusIntegrationTest, TheDeployKitSeesTheFleetAndEveryDashboardQueryHasData) {
  // A job on 2 GPUs, a run that fails, a run that waits for 4 GPUs (2 are taken).
  for (const char* run :
       {"type: task\nname: train\ncommands: ['sleep 300']\nresources: {gpu: 2}\n",
        "type: task\nname: broken\ncommands: ['exit 3']\n",
        "type: task\nname: queued\ncommands: ['sleep 1']\nresources: {gpu: 4}\n"}) {
    ApiReply submitted = admin_->Send("POST", "/api/project/main/runs", run, "application/yaml");
    ASSERT_EQ(submitted.status, 201) << submitted.body;
    // One at a time, so that `train` holds its GPUs before `queued` asks for all four.
    ScrapeUntil([&](const std::string& b) {
      return std::string(run).find("train") == std::string::npos ||
             b.find("DCGM_FI_DEV_GPU_UTIL{") != std::string::npos;
    });
  }

  const fs::path kit = dir_.path() / "kit";
  fs::copy(kSource / "deploy/prometheus", kit, fs::copy_options::recursive);
  WriteFile(kit / "fleetwatch-token", kScrapeToken);
  std::string config = ReadFile(kit / "prometheus.yml");
  auto replace_all = [&](const std::string& from, const std::string& to) {
    size_t at = 0;
    int n = 0;
    while ((at = config.find(from, at)) != std::string::npos) {
      config.replace(at, from.size(), to);
      at += to.size();
      ++n;
    }
    return n;
  };
  ASSERT_GT(replace_all("127.0.0.1:3000", "127.0.0.1:" + std::to_string(server_->port())), 0);
  ASSERT_GT(replace_all("scrape_timeout: 10s", "scrape_timeout: 1s"), 0);
  ASSERT_GT(replace_all("15s", "1s"), 0);
  ASSERT_GT(replace_all("refresh_interval: 30s", "refresh_interval: 1s"), 0);
  WriteFile(kit / "prometheus.yml", config);
  StartPrometheusWith(kit / "prometheus.yml");

  // Both jobs scrape successfully; service discovery found the local agent.
  json::array server_up = Query("up{job=\"fleetwatch-server\"} == 1");
  ASSERT_EQ(server_up.size(), 1u);
  json::array agents_up = Query("up{job=\"fleetwatch-agents\"} == 1");
  ASSERT_EQ(agents_up.size(), 1u);
  EXPECT_EQ(LabelOf(agents_up[0], "dstack_instance_name"), "local-0");
  EXPECT_EQ(LabelOf(agents_up[0], "dstack_gpu"), kHostileGpuShortName);
  // The agent's own exposition: its health and the host's DCGM text for all four GPUs.
  EXPECT_EQ(Query("DCGM_FI_DEV_GPU_UTIL{job=\"fleetwatch-agents\"}", 4).size(), 4u);
  EXPECT_EQ(Query("fleetwatch_agent_jobs{job=\"fleetwatch-agents\",state=\"running\"} >= 1").size(),
            1u);

  // Every dashboard query.
  json::array queries =
      json::parse(ReadFile(kSource / "tests/deploy/dashboard_queries.json")).as_array();
  ASSERT_GT(queries.size(), 50u);
  for (const json::value& q : queries) {
    const std::string promql(q.at("query").as_string());
    json::array result = Query(promql, 1, 90);
    EXPECT_FALSE(result.empty()) << q.at("dashboard").as_string() << " / "
                                 << (q.as_object().contains("panel") ? q.at("panel").as_string()
                                                                     : json::string("variable"))
                                 << ": " << promql;
  }
}

}  // namespace
}  // namespace fleetwatch::testing
