// TLS on both hops, end to end with real processes on loopback: an agent with its self-signed
// certificate pinned by fingerprint runs jobs (logs, metrics, DCGM through a fake dcgm-exporter);
// a wrong pin or CA is refused and the instance says why; the server over HTTPS with the CLI
// trusting its CA (--ca-cert); a real Prometheus (Debian's) scraping /metrics over HTTPS.
#include <signal.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/message.h"
#include "integration/api_client.h"
#include "support/process.h"
#include "support/test_certificates.h"
#include "util/certificates.h"

namespace fleetwatch::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::steady_clock;
using ::testing::HasSubstr;

constexpr char kAdminToken[] = "admin-token-for-tls-tests-0123456789";
constexpr char kAgentToken[] = "agent-token-for-tls-tests";
constexpr char kUnset[] = "\x01unset";
const fs::path kSource = FLEETWATCH_SOURCE_DIR;
const fs::path kDcgmTestdata = kSource / "tests/agent/testdata/dcgm";

class TlsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Four fake GPUs whose UUIDs match the fake exporter's fixture.
    std::string gpus;
    for (int i = 0; i < 4; ++i) {
      gpus += "NVIDIA H100 80GB HBM3|GPU-00000000-0000-0000-0000-00000000000" + std::to_string(i) +
              "|" + std::to_string(int64_t{80} << 30) + "|" + std::to_string(int64_t{i + 1} << 30) +
              "|" + std::to_string(10 * (i + 1)) + "\n";
    }
    WriteFile(dir_.path() / "gpus.txt", gpus);
    fs::create_directories(dir_.path() / "bin");
    fs::create_symlink(kDcgmTestdata / "fake-dcgm-exporter", dir_.path() / "bin/dcgm-exporter");
  }

  void TearDown() override {
    if (prometheus_) prometheus_->Stop(SIGTERM);
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
      server_->StopLeftoverLocalAgent();
    }
    for (auto& agent : agents_) agent->Stop(SIGTERM);
  }

  // Starts `fleetwatch agent` with TLS (its self-signed certificate unless `extra` says
  // otherwise) in data dir `name`; returns its port and fingerprint from the ready file.
  struct StartedAgent {
    int port = 0;
    std::string fingerprint;
    fs::path data_dir;
    ChildProcess* process = nullptr;
  };
  StartedAgent StartAgent(const std::string& name, std::vector<std::string> extra = {}) {
    StartedAgent started;
    started.data_dir = dir_.path() / name;
    std::vector<std::string> args = {"agent",
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--data-dir",
                                     started.data_dir.string(),
                                     "--dcgm-interval-seconds",
                                     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::map<std::string, std::string> env = {
        {"FLEETWATCH_AGENT_TOKEN", kAgentToken},
        {"FLEETWATCH_NVML_LIBRARY", FAKE_NVML_LIBRARY},
        {"FAKE_NVML_FILE", (dir_.path() / "gpus.txt").string()},
        {"FAKE_DCGM_FIXTURE", (kDcgmTestdata / "four-gpus.txt").string()},
        {"FLEETWATCH_DCGM_EXPORTER_PORT", std::to_string(FreePort())},
        {"PATH", (dir_.path() / "bin").string() + ":" + std::getenv("PATH")},
        {"FLEETWATCH_TLS_CERT", kUnset},
        {"FLEETWATCH_TLS_KEY", kUnset}};
    agents_.push_back(std::make_unique<ChildProcess>(FLEETWATCH_BINARY, args, env));
    started.process = agents_.back().get();
    if (!started.process->WaitForOutput("fleetwatch agent listening on", 60)) {
      ADD_FAILURE() << started.process->Output();
      return started;
    }
    json::value ready = json::parse(ReadFile(started.data_dir / "agent.json"));
    started.port = static_cast<int>(ready.at("port").as_int64());
    if (const json::value* fingerprint = ready.as_object().if_contains("fingerprint")) {
      started.fingerprint = std::string(fingerprint->as_string());
    }
    return started;
  }

  void StartServer(std::vector<std::string> args = {}, std::map<std::string, std::string> env = {},
                   http::ClientOptions options = {}) {
    std::map<std::string, std::string> all = {{"FLEETWATCH_POLL_INTERVAL_MS", "200"},
                                              {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
                                              {"FLEETWATCH_INSTANCE_UNREACHABLE_SECONDS", "2"},
                                              {"FLEETWATCH_STOP_GRACE_SECONDS", "2"},
                                              {"DSTACK_ENABLE_PROMETHEUS_METRICS", ""},
                                              {"DSTACK_PROMETHEUS_AUTH_TOKEN", kUnset},
                                              {"FLEETWATCH_TLS_CERT", kUnset},
                                              {"FLEETWATCH_TLS_KEY", kUnset}};
    for (auto& [k, v] : env) all[k] = v;
    if (std::find(args.begin(), args.end(), "--local-fleet") != args.end()) {
      std::erase(args, "--local-fleet");
      all["FLEETWATCH_NVML_LIBRARY"] = FAKE_NVML_LIBRARY;
      all["FAKE_NVML_FILE"] = (dir_.path() / "gpus.txt").string();
    } else {
      args.insert(args.begin(), "--no-local-fleet");
    }
    server_ = std::make_unique<ServerProcess>(
        (dir_.path() / "data").string(), (dir_.path() / "home").string(), kAdminToken, args, all);
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken, std::move(options));
  }

  ApiReply ApplyFleet(const std::string& yaml) {
    return admin_->Send("POST", "/api/project/main/fleets", yaml, "application/yaml");
  }

  // The instance named `name` as GET .../instances shows it, once `done` holds for it.
  json::value WaitForInstance(const std::string& name,
                              const std::function<bool(const json::value&)>& done) {
    json::value last;
    bool ok = WaitUntil([&] {
      ApiReply r = admin_->Get("/api/project/main/instances");
      if (r.status != 200) return false;
      for (const json::value& i : r.json.at("items").as_array()) {
        if (Str(i, "name") == name) last = i;
      }
      return !last.is_null() && done(last);
    });
    EXPECT_TRUE(ok) << "instance " << name << ": " << json::serialize(last) << "\n"
                    << server_->Output();
    return last;
  }

  http::Response Get(const std::string& url, const std::string& target,
                     http::ClientOptions options = {},
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    Result<http::Client> client = http::Client::Create(url, std::move(options));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    if (!client.ok()) return {};
    Result<http::Response> r = client->Send("GET", target, {}, headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::Response{};
  }

  TempDir dir_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
  std::unique_ptr<ChildProcess> prometheus_;
};

TEST_F(TlsIntegrationTest, AgentMakesItsCertificateOnceAndPrintsItsFingerprint) {
  StartedAgent first = StartAgent("agent", {"--no-dcgm"});
  ASSERT_GT(first.port, 0);
  ASSERT_TRUE(NormalizeFingerprint(first.fingerprint).ok()) << first.fingerprint;
  EXPECT_THAT(first.process->Output(), HasSubstr("fingerprint: " + first.fingerprint));
  EXPECT_THAT(first.process->Output(),
              HasSubstr("listening on https://127.0.0.1:" + std::to_string(first.port)));
  struct stat key {};
  ASSERT_EQ(::stat((first.data_dir / "tls.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600u);
  Result<std::string> file_fingerprint = FingerprintOfPem(ReadFile(first.data_dir / "tls.crt"));
  ASSERT_TRUE(file_fingerprint.ok());
  EXPECT_EQ(*file_fingerprint, first.fingerprint);
  // Its health check answers over HTTPS to the pin, and not over plain HTTP.
  http::ClientOptions pinned;
  pinned.tls.fingerprint = first.fingerprint;
  EXPECT_EQ(Get("https://127.0.0.1:" + std::to_string(first.port), "/api/healthcheck", pinned,
                {{"Authorization", std::string("Bearer ") + kAgentToken}})
                .status,
            200);
  Result<http::Client> plain =
      http::Client::Create("http://127.0.0.1:" + std::to_string(first.port));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->Send("GET", "/api/healthcheck").ok());
  EXPECT_EQ(first.process->Stop(SIGTERM), 0);

  // Restarted on the same data dir: the same certificate.
  StartedAgent second = StartAgent("agent", {"--no-dcgm"});
  EXPECT_EQ(second.fingerprint, first.fingerprint);
  EXPECT_EQ(*FingerprintOfPem(ReadFile(second.data_dir / "tls.crt")), first.fingerprint);
}

TEST_F(TlsIntegrationTest, APinnedAgentRunsJobsWithLogsMetricsAndDcgm) {
  StartedAgent agent = StartAgent("agent");
  ASSERT_GT(agent.port, 0);
  StartServer();
  ApiReply fleet = ApplyFleet(
      "type: fleet\nname: pinned\nssh_config:\n  token: " + std::string(kAgentToken) +
      "\n  hosts:\n    - hostname: 127.0.0.1\n" + "      port: " + std::to_string(agent.port) +
      "\n      fingerprint: " + agent.fingerprint + "\n");
  ASSERT_EQ(fleet.status, 201) << fleet.body;
  json::value instance =
      WaitForInstance("pinned-0", [](const json::value& i) { return Str(i, "status") == "idle"; });
  EXPECT_EQ(instance.at("tls"), true);
  EXPECT_EQ(Str(instance, "tls_fingerprint"), agent.fingerprint);
  EXPECT_TRUE(instance.at("error").is_null()) << json::serialize(instance);

  ApiReply run = admin_->Send("POST", "/api/project/main/runs",
                              "type: task\nname: secure\nresources: {gpu: 1}\n"
                              "commands: ['echo hello over tls', 'sleep 300']\n",
                              "application/yaml");
  ASSERT_EQ(run.status, 201) << run.body;
  // The running job's log comes from the agent, over TLS.
  std::string log;
  EXPECT_TRUE(WaitUntil([&] {
    ApiReply r = admin_->Get("/api/project/main/runs/secure/logs?job_num=0");
    log = r.body;
    return r.status == 200 && log.find("hello over tls") != std::string::npos;
  })) << log
      << "\n"
      << server_->Output();

  // Metrics points and the host's DCGM text reach /metrics, relabeled for the job.
  std::string body;
  EXPECT_TRUE(WaitUntil([&] {
    body = Get(server_->url(), "/metrics").body;
    return body.find("dstack_job_cpu_time_seconds_total{") != std::string::npos &&
           body.find("DCGM_FI_DEV_GPU_UTIL{") != std::string::npos &&
           body.find("dstack_run_name=\"secure\"") != std::string::npos;
  })) << body;
  // Prometheus service discovery tells Prometheus to scrape this agent over HTTPS.
  json::value sd = json::parse(Get(server_->url(), "/api/prometheus/sd").body);
  ASSERT_TRUE(sd.is_array()) << json::serialize(sd);
  ASSERT_EQ(sd.as_array().size(), 1u);
  EXPECT_EQ(Str(sd.at(0).at("labels"), "__scheme__"), "https");

  ApiReply stop = admin_->PostJson("/api/project/main/runs/secure/stop", json::object());
  EXPECT_EQ(stop.status, 200) << stop.body;
  EXPECT_TRUE(WaitUntil([&] {
    ApiReply r = admin_->Get("/api/project/main/runs/secure");
    return Str(r.json, "status") == "terminated";
  })) << server_->Output();
}

TEST_F(TlsIntegrationTest, AWrongPinOrCaIsRefusedAndTheInstanceSaysWhy) {
  StartedAgent pinned = StartAgent("pinned", {"--no-dcgm"});
  StartedAgent signed_by_other = StartAgent("other", {"--no-dcgm"});
  ASSERT_GT(pinned.port, 0);
  ASSERT_GT(signed_by_other.port, 0);
  StartServer();
  const std::string wrong_pin = "sha256:" + std::string(64, '0');
  std::string ca_yaml = "|\n";
  std::istringstream ca_lines(NewCa("some other CA").certificate_pem);
  for (std::string line; std::getline(ca_lines, line);) ca_yaml += "        " + line + "\n";
  ApiReply fleet = ApplyFleet(
      "type: fleet\nname: wrong\nssh_config:\n  token: " + std::string(kAgentToken) +
      "\n  hosts:\n    - hostname: 127.0.0.1\n      port: " + std::to_string(pinned.port) +
      "\n      fingerprint: " + wrong_pin + "\n    - hostname: 127.0.0.1\n      port: " +
      std::to_string(signed_by_other.port) + "\n      ca_cert: " + ca_yaml);
  ASSERT_EQ(fleet.status, 201) << fleet.body;

  json::value by_pin = WaitForInstance("wrong-0", [](const json::value& i) {
    return i.at("unreachable") == true && !Str(i, "error").empty();
  });
  EXPECT_THAT(Str(by_pin, "error"), HasSubstr("certificate fingerprint " + pinned.fingerprint +
                                              " does not match the pinned " + wrong_pin));
  EXPECT_EQ(Str(by_pin, "status"), "pending");
  json::value by_ca = WaitForInstance("wrong-1", [](const json::value& i) {
    return i.at("unreachable") == true && !Str(i, "error").empty();
  });
  EXPECT_THAT(Str(by_ca, "error"), HasSubstr("certificate verify failed: "));
  // The server's log says so too.
  EXPECT_THAT(server_->Output(), HasSubstr("does not match the pinned " + wrong_pin));

  // A CA or a fingerprint that is not one is refused at submit, and so is a host that says
  // nothing about TLS.
  ApiReply bad_pem = ApplyFleet(
      "type: fleet\nname: bad\nssh_config:\n  token: t\n  hosts:\n    - hostname: h\n"
      "      ca_cert: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"\n");
  EXPECT_EQ(bad_pem.status, 400) << bad_pem.body;
  EXPECT_THAT(bad_pem.body, HasSubstr("ca_cert"));
  ApiReply bad_pin = ApplyFleet(
      "type: fleet\nname: bad\nssh_config:\n  token: t\n  hosts:\n    - hostname: h\n"
      "      fingerprint: sha256:1234\n");
  EXPECT_EQ(bad_pin.status, 400) << bad_pin.body;
  ApiReply silent = ApplyFleet("type: fleet\nname: bad\nssh_config:\n  token: t\n  hosts: [h]\n");
  EXPECT_EQ(silent.status, 400) << silent.body;
  EXPECT_THAT(silent.body, HasSubstr("tls: false"));
}

TEST_F(TlsIntegrationTest, PlainHttpToAnAgentNeedsTlsFalseOnBothSidesAndIsWarnedAbout) {
  StartedAgent plain = StartAgent("plain", {"--no-dcgm", "--no-tls"});
  ASSERT_GT(plain.port, 0);
  EXPECT_TRUE(plain.fingerprint.empty());
  EXPECT_THAT(plain.process->Output(), HasSubstr("--no-tls"));
  StartServer();
  ApiReply fleet =
      ApplyFleet("type: fleet\nname: plain\nssh_config:\n  token: " + std::string(kAgentToken) +
                 "\n  hosts:\n    - hostname: 127.0.0.1\n" +
                 "      port: " + std::to_string(plain.port) + "\n      tls: false\n");
  ASSERT_EQ(fleet.status, 201) << fleet.body;
  json::value instance =
      WaitForInstance("plain-0", [](const json::value& i) { return Str(i, "status") == "idle"; });
  EXPECT_EQ(instance.at("tls"), false);
  // Warned about once, however often it is polled.
  const std::string output = server_->Output();
  const std::string warning = "plain HTTP (tls: false)";
  ASSERT_THAT(output, HasSubstr(warning));
  EXPECT_EQ(output.find(warning), output.rfind(warning)) << output;
}

TEST_F(TlsIntegrationTest, TheLocalAgentSpeaksHttpsAndIsPinnedAcrossARestart) {
  StartServer({"--local-fleet"}, {{"DSTACK_ENABLE_PROMETHEUS_METRICS", kUnset}});
  json::value state = json::parse(ReadFile(dir_.path() / "data/local-agent.json"));
  const std::string fingerprint(state.at("fingerprint").as_string());
  ASSERT_TRUE(NormalizeFingerprint(fingerprint).ok()) << json::serialize(state);
  json::value local =
      WaitForInstance("local-0", [](const json::value& i) { return Str(i, "status") == "idle"; });
  EXPECT_EQ(local.at("tls"), true);
  EXPECT_EQ(Str(local, "tls_fingerprint"), fingerprint);
  // Its certificate is the one in its own directory.
  EXPECT_EQ(*FingerprintOfPem(ReadFile(dir_.path() / "data/local-agent/tls.crt")), fingerprint);

  ApiReply run = admin_->Send("POST", "/api/project/main/runs",
                              "type: task\nname: local\ncommands: ['echo local over tls']\n",
                              "application/yaml");
  ASSERT_EQ(run.status, 201) << run.body;
  EXPECT_TRUE(WaitUntil([&] {
    return Str(admin_->Get("/api/project/main/runs/local").json, "status") == "done";
  })) << server_->Output();
  EXPECT_EQ(admin_->Get("/api/project/main/runs/local/logs?job_num=0").body, "local over tls\n");

  // A server killed without stopping its agent finds it again, still pinned, and polls it.
  const std::string seen_before =
      Str(WaitForInstance("local-0",
                          [](const json::value& i) { return !Str(i, "last_seen_at").empty(); }),
          "last_seen_at");
  EXPECT_EQ(server_->Stop(SIGKILL), 128 + SIGKILL);
  server_.reset();
  StartServer({"--local-fleet"}, {{"DSTACK_ENABLE_PROMETHEUS_METRICS", kUnset}});
  EXPECT_THAT(server_->Output(), HasSubstr("using the local agent still running"));
  json::value again = WaitForInstance("local-0", [&](const json::value& i) {
    return Str(i, "last_seen_at") > seen_before && i.at("error").is_null();
  });
  EXPECT_EQ(Str(again, "tls_fingerprint"), fingerprint);
}

// The server with a certificate from a private CA.
class HttpsServerTest : public TlsIntegrationTest {
 protected:
  void SetUp() override {
    TlsIntegrationTest::SetUp();
    ca_ = NewCa("fleetwatch test CA");
    SelfSignedRequest leaf;
    leaf.common_name = "fleetwatch server";
    leaf.ip_addresses = {"127.0.0.1"};
    SelfSignedCertificate server = MustCreate(CreateSignedCertificate(leaf, ca_));
    WriteFile(dir_.path() / "ca.pem", ca_.certificate_pem);
    WriteFile(dir_.path() / "server.crt", server.certificate_pem);
    WriteFile(dir_.path() / "server.key", server.private_key_pem);
    trusting_.tls.ca_certificates_pem = ca_.certificate_pem;
  }

  SelfSignedCertificate ca_;
  http::ClientOptions trusting_;
};

TEST_F(HttpsServerTest, TheApiAndUiAreServedOverHttpsAndTheCliTrustsItsCa) {
  // The certificate from the environment, as a systemd unit would set it.
  StartServer({},
              {{"FLEETWATCH_TLS_CERT", (dir_.path() / "server.crt").string()},
               {"FLEETWATCH_TLS_KEY", (dir_.path() / "server.key").string()}},
              trusting_);
  ASSERT_EQ(server_->url().rfind("https://127.0.0.1:", 0), 0u) << server_->Output();
  EXPECT_THAT(server_->Output(), HasSubstr("UI:    https://127.0.0.1:"));
  EXPECT_EQ(admin_->Get("/api/projects").status, 200);
  http::Response ui = Get(server_->url(), "/", trusting_);
  EXPECT_EQ(ui.status, 200);
  EXPECT_THAT(ui.body, HasSubstr("<html"));
  // Plain HTTP to the HTTPS port gets nothing.
  Result<http::Client> plain =
      http::Client::Create("http://127.0.0.1:" + std::to_string(server_->port()));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->Send("GET", "/api/projects").ok());

  const std::string home = (dir_.path() / "cli-home").string();
  fs::create_directories(home);
  fs::create_directories(dir_.path() / "other-home");
  std::map<std::string, std::string> env = {{"HOME", home},
                                            {"FLEETWATCH_URL", kUnset},
                                            {"FLEETWATCH_TOKEN", kUnset},
                                            {"FLEETWATCH_PROJECT", kUnset},
                                            {"FLEETWATCH_CA_CERT", kUnset}};
  // Without the CA the CLI refuses the server's certificate.
  ProcessResult untrusting =
      RunProcess(FLEETWATCH_BINARY, {"ps", "--url", server_->url(), "--token", kAdminToken}, env);
  EXPECT_EQ(untrusting.exit_code, 1);
  EXPECT_THAT(untrusting.err, HasSubstr("certificate verify failed"));

  ProcessResult config = RunProcess(FLEETWATCH_BINARY,
                                    {"config", "--url", server_->url(), "--token", kAdminToken,
                                     "--ca-cert", (dir_.path() / "ca.pem").string()},
                                    env);
  ASSERT_EQ(config.exit_code, 0) << config.err;
  EXPECT_THAT(ReadFile(fs::path(home) / ".fleetwatch/config.yml"), HasSubstr("ca_cert:"));
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"ps"}, {"fleet", "list"}, {"project", "list"}}) {
    ProcessResult r = RunProcess(FLEETWATCH_BINARY, command, env);
    EXPECT_EQ(r.exit_code, 0) << command[0] << ": " << r.err;
  }
  ProcessResult shown = RunProcess(FLEETWATCH_BINARY, {"config"}, env);
  EXPECT_THAT(shown.out, HasSubstr("ca.pem"));

  // FLEETWATCH_CA_CERT does the same without a config file.
  env["HOME"] = (dir_.path() / "other-home").string();
  env["FLEETWATCH_CA_CERT"] = (dir_.path() / "ca.pem").string();
  ProcessResult from_env =
      RunProcess(FLEETWATCH_BINARY, {"ps", "--url", server_->url(), "--token", kAdminToken}, env);
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  // A CA file that is not one is a clear error.
  WriteFile(dir_.path() / "junk.pem", "junk");
  env["FLEETWATCH_CA_CERT"] = (dir_.path() / "junk.pem").string();
  ProcessResult junk =
      RunProcess(FLEETWATCH_BINARY, {"ps", "--url", server_->url(), "--token", kAdminToken}, env);
  EXPECT_EQ(junk.exit_code, 1);
  EXPECT_THAT(junk.err, HasSubstr("junk.pem"));
  EXPECT_THAT(junk.err, HasSubstr("FLEETWATCH_CA_CERT"));
}

TEST_F(HttpsServerTest, ACertificateWithoutItsKeyOrAMismatchedKeyStopsTheStart) {
  const std::string certificate = (dir_.path() / "server.crt").string();
  ProcessResult alone =
      RunProcess(FLEETWATCH_BINARY,
                 {"server", "--port", "0", "--data-dir", (dir_.path() / "data").string(),
                  "--no-local-fleet", "--tls-cert", certificate},
                 {{"HOME", dir_.str()}, {"FLEETWATCH_TLS_KEY", kUnset}}, "", 60);
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_THAT(alone.err, HasSubstr("--tls-cert and --tls-key go together"));
  SelfSignedCertificate other = MustCreate(CreateSelfSignedCertificate({}));
  WriteFile(dir_.path() / "other.key", other.private_key_pem);
  ProcessResult mismatched = RunProcess(
      FLEETWATCH_BINARY,
      {"server", "--port", "0", "--data-dir", (dir_.path() / "data").string(), "--no-local-fleet",
       "--tls-cert", certificate, "--tls-key", (dir_.path() / "other.key").string()},
      {{"HOME", dir_.str()}}, "", 60);
  EXPECT_EQ(mismatched.exit_code, 1);
  EXPECT_THAT(mismatched.err, HasSubstr("does not match the certificate"));
}

TEST_F(HttpsServerTest, PrometheusScrapesMetricsOverHttpsWithTheCa) {
  ASSERT_TRUE(fs::exists("/usr/bin/prometheus")) << "Debian's prometheus is missing";
  StartServer({"--tls-cert", (dir_.path() / "server.crt").string(), "--tls-key",
               (dir_.path() / "server.key").string()},
              {}, trusting_);
  const uint16_t prometheus_port = FreePort();
  const std::string config =
      "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      "scrape_configs:\n"
      "  - job_name: fleetwatch-server\n"
      "    scheme: https\n"
      "    tls_config:\n"
      "      ca_file: " +
      (dir_.path() / "ca.pem").string() +
      "\n"
      "    static_configs:\n"
      "      - targets: ['127.0.0.1:" +
      std::to_string(server_->port()) + "']\n";
  WriteFile(dir_.path() / "prometheus.yml", config);
  prometheus_ = std::make_unique<ChildProcess>(
      "/usr/bin/prometheus",
      std::vector<std::string>{"--config.file=" + (dir_.path() / "prometheus.yml").string(),
                               "--storage.tsdb.path=" + (dir_.path() / "tsdb").string(),
                               "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port),
                               "--log.level=warn"},
      std::map<std::string, std::string>{});
  const std::string query = "up{job=\"fleetwatch-server\"} == 1";
  std::string last;
  EXPECT_TRUE(WaitUntil(
      [&] {
        Result<http::Client> client =
            http::Client::Create("http://127.0.0.1:" + std::to_string(prometheus_port));
        if (!client.ok()) return false;
        Result<http::Response> r =
            client->Send("GET", "/api/v1/query?query=" + http::UrlEncode(query));
        if (!r.ok()) return false;
        last = r->body;
        json::error_code ec;
        json::value v = json::parse(r->body, ec);
        return !ec && v.is_object() && v.at("data").at("result").as_array().size() == 1;
      },
      std::chrono::seconds(90)))
      << last << "\n"
      << prometheus_->Output();
  // The targets page agrees: the scrape URL is https.
  http::Response targets =
      Get("http://127.0.0.1:" + std::to_string(prometheus_port), "/api/v1/targets");
  EXPECT_THAT(targets.body, HasSubstr("https://127.0.0.1:" + std::to_string(server_->port())));
}

}  // namespace
}  // namespace fleetwatch::testing
