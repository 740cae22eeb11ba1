// The real `fleetwatch agent` binary, driven over HTTP on 127.0.0.1 with port 0.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "agent/test_helpers.h"
#include "http/client.h"
#include "support/process.h"
#include "util/certificates.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using fleetwatch::testing::ChildProcess;
using fleetwatch::testing::ProcessResult;
using fleetwatch::testing::RunProcess;
using fleetwatch::testing::TempDir;
using testing::WaitUntil;

constexpr char kToken[] = "t";

class AgentCommandTest : public ::testing::Test {
 protected:
  std::map<std::string, std::string> Env() const {
    return {{"FLEETWATCH_NVML_LIBRARY", FAKE_NVML_LIBRARY},
            {"FAKE_NVML_FILE", gpus_file_.string()},
            {"FLEETWATCH_AGENT_TOKEN", "\x01unset"},
            {"HOME", home_.str()}};
  }

  json::value Call(http::Client& client, const std::string& method, const std::string& target,
                   const std::string& body = "", int* status = nullptr) {
    Result<http::Response> r = client.Send(
        method, target, body,
        {{"Authorization", std::string("Bearer ") + kToken}, {"Content-Type", "application/json"}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    if (status != nullptr) *status = r->status;
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    return ec ? json::value(r->body) : v;
  }

  std::string JobState(http::Client& client, const std::string& job_id) {
    json::value poll = Call(client, "GET", "/api/poll");
    if (!poll.is_object()) return "";
    for (const auto& job : poll.at("jobs").as_array()) {
      if (job.at("job_id").as_string() == job_id) return job.at("state").as_string().c_str();
    }
    return "";
  }

  TempDir data_;
  TempDir home_;
  TempDir dir_;
  fs::path gpus_file_ = [this] {
    testing::WriteFile(dir_.path() / "gpus.txt", "GPU A|GPU-a|1000|0|0\nGPU B|GPU-b|1000|0|0\n");
    return dir_.path() / "gpus.txt";
  }();
};

TEST_F(AgentCommandTest, RequiresAToken) {
  ProcessResult r = RunProcess(FLEETWATCH_BINARY,
                               {"agent", "--port", "0", "--data-dir", data_.str()}, Env(), "", 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: an agent token is required"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(data_.path() / "agent.json"));
}

TEST_F(AgentCommandTest, HelpListsTheDcgmFlags) {
  ProcessResult r = RunProcess(FLEETWATCH_BINARY, {"agent", "--help"}, Env(), "", 30);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* flag :
       {"--dcgm-exporter-port", "--dcgm-interval-seconds", "--dcgm-exporter-url", "--no-dcgm"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << r.out;
  }
}

TEST_F(AgentCommandTest, TlsFlagsMustGoTogether) {
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--tls-cert", "/nonexistent.crt"},
        {"--no-tls", "--tls-cert", "/a.crt", "--tls-key", "/a.key"},
        {"--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"}}) {
    std::vector<std::string> args = {"agent", "--port",     "0",         "--token",
                                     kToken,  "--data-dir", data_.str(), "--no-dcgm"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = RunProcess(FLEETWATCH_BINARY, args, Env(), "", 30);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(data_.path() / "agent.json"));
  }
}

TEST_F(AgentCommandTest, ServesTheGivenCertificateAndPrintsItsFingerprint) {
  SelfSignedRequest request;
  request.ip_addresses = {"127.0.0.1"};
  Result<SelfSignedCertificate> made = CreateSelfSignedCertificate(request);
  ASSERT_TRUE(made.ok());
  testing::WriteFile(dir_.path() / "my.crt", made->certificate_pem);
  testing::WriteFile(dir_.path() / "my.key", made->private_key_pem);
  std::map<std::string, std::string> env = Env();
  env["FLEETWATCH_TLS_CERT"] = (dir_.path() / "my.crt").string();
  env["FLEETWATCH_TLS_KEY"] = (dir_.path() / "my.key").string();
  ChildProcess agent(FLEETWATCH_BINARY,
                     {"agent", "--host", "127.0.0.1", "--port", "0", "--token", kToken,
                      "--data-dir", data_.str(), "--no-dcgm"},
                     env);
  ASSERT_TRUE(agent.WaitForOutput("fleetwatch agent listening on https://127.0.0.1:", 60))
      << agent.Output();
  EXPECT_NE(agent.Output().find("fingerprint: " + made->fingerprint), std::string::npos)
      << agent.Output();
  json::value file = json::parse(testing::ReadFile(data_.path() / "agent.json"));
  EXPECT_EQ(file.at("fingerprint").as_string(), made->fingerprint);
  EXPECT_FALSE(fs::exists(data_.path() / "tls.key"));  // no self-signed one was made
  http::ClientOptions options;
  options.tls.ca_certificates_pem = made->certificate_pem;  // trusted as is, host name checked
  Result<http::Client> client = http::Client::Create(
      "https://127.0.0.1:" + std::to_string(file.at("port").as_int64()), options);
  ASSERT_TRUE(client.ok());
  json::value health = Call(*client, "GET", "/api/healthcheck");
  EXPECT_EQ(health.at("service").as_string(), "fleetwatch-agent") << json::serialize(health);
  EXPECT_EQ(agent.Stop(SIGTERM), 0);
}

TEST_F(AgentCommandTest, ServesJobsAndStopsThemOnSigterm) {
  ChildProcess agent(
      FLEETWATCH_BINARY,
      {"agent", "--host", "127.0.0.1", "--port", "0", "--token", kToken, "--data-dir", data_.str(),
       "--no-dcgm",  // hermetic on hosts with a real dcgm-exporter on PATH
       "--no-tls"},
      Env());
  ASSERT_TRUE(agent.WaitForOutput("fleetwatch agent listening on http://127.0.0.1:", 60))
      << agent.Output();

  json::value file = json::parse(testing::ReadFile(data_.path() / "agent.json"));
  EXPECT_EQ(file.at("pid").as_int64(), agent.pid());
  EXPECT_EQ(file.at("host").as_string(), "127.0.0.1");
  int port = static_cast<int>(file.at("port").as_int64());
  ASSERT_GT(port, 0);
  EXPECT_NE(agent.Output().find(":" + std::to_string(port)), std::string::npos);
  std::string agent_id(file.at("agent_id").as_string());

  Result<http::Client> client = http::Client::Create("http://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(client.ok());
  int status = 0;
  Call(*client, "GET", "/api/healthcheck", "", &status);
  EXPECT_EQ(status, 200);
  Result<http::Response> anonymous = client->Send("GET", "/api/healthcheck");
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->status, 401);

  json::value inventory = Call(*client, "GET", "/api/inventory");
  EXPECT_EQ(inventory.at("agent_id").as_string(), agent_id);
  EXPECT_EQ(inventory.at("gpus").as_array().size(), 2u);

  // A job stopped over HTTP ends by SIGTERM: the agent's blocked signals do not reach jobs.
  json::value started = Call(*client, "POST", "/api/jobs",
                             R"({"job_id":"term","commands":["echo ready","sleep 600"],
                                 "gpu_indices":[1]})",
                             &status);
  EXPECT_EQ(status, 201) << json::serialize(started);
  ASSERT_TRUE(WaitUntil([&] {
    Result<http::Response> log =
        client->Send("GET", "/api/jobs/term/logs", "", {{"Authorization", "Bearer t"}});
    return log.ok() && log->body == "ready\n";
  }));
  json::value stopping =
      Call(*client, "POST", "/api/jobs/term/stop", R"({"grace_seconds": 120})", &status);
  EXPECT_EQ(status, 200);
  ASSERT_TRUE(WaitUntil([&] { return JobState(*client, "term") == "exited"; }));
  json::value poll = Call(*client, "GET", "/api/poll");
  EXPECT_EQ(poll.at("jobs").at(0).at("signal").as_int64(), SIGTERM);

  // A job still running when the agent gets SIGTERM is stopped with it.
  json::value running =
      Call(*client, "POST", "/api/jobs", R"({"job_id":"left","commands":["sleep 600"]})", &status);
  ASSERT_EQ(status, 201);
  auto pid = static_cast<pid_t>(running.at("pid").as_int64());
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0);

  EXPECT_EQ(agent.Stop(SIGTERM, 60), 0) << agent.Output();
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_FALSE(fs::exists(data_.path() / "agent.json"));
  EXPECT_NE(agent.Output().find("fleetwatch agent stopped"), std::string::npos);
}

TEST_F(AgentCommandTest, ASecondAgentOnTheSameDataDirRefusesAndChangesNothing) {
  ChildProcess first(FLEETWATCH_BINARY,
                     {"agent", "--host", "127.0.0.1", "--port", "0", "--token", kToken,
                      "--data-dir", data_.str(), "--no-dcgm", "--no-tls"},
                     Env());
  ASSERT_TRUE(first.WaitForOutput("fleetwatch agent listening on", 60)) << first.Output();
  const std::string ready = testing::ReadFile(data_.path() / "agent.json");
  ASSERT_FALSE(ready.empty());

  ProcessResult second = RunProcess(FLEETWATCH_BINARY,
                                    {"agent", "--host", "127.0.0.1", "--port", "0", "--token",
                                     kToken, "--data-dir", data_.str(), "--no-dcgm", "--no-tls"},
                                    Env(), "", 60);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(second.err, "error: another fleetwatch agent (pid " + std::to_string(first.pid()) +
                            ") uses " + data_.str() + "\n");
  EXPECT_EQ(testing::ReadFile(data_.path() / "agent.json"), ready);  // the first one's

  // The first agent still serves.
  json::value file = json::parse(ready);
  Result<http::Client> client =
      http::Client::Create("http://127.0.0.1:" + std::to_string(file.at("port").as_int64()));
  ASSERT_TRUE(client.ok());
  int status = 0;
  Call(*client, "GET", "/api/healthcheck", "", &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(first.Stop(SIGTERM, 60), 0) << first.Output();
}

}  // namespace
}  // namespace fleetwatch::agent
