// The real fleetwatch binary on 127.0.0.1: configurations are measured after YAML aliases are
// expanded, a stored configuration that no longer parses fails its run, and run lists leave
// configurations out unless asked.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "support/process.h"
#include "util/certificates.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";
constexpr char kTooLarge[] = "configuration is too large";

// A fleet whose only host never answers (nothing listens on port 1): its instance stays pending,
// so runs wait `submitted`.
constexpr char kSilentFleet[] = R"(type: fleet
name: silent
ssh_config:
  token: agent-secret
  tls: false
  hosts:
    - hostname: 127.0.0.1
      port: 1
)";

// The shape that stored 33 MB before: 1000 commands (the most a run may have), each an alias of
// one 16,000-byte string of quotes. 16 MB of text once expanded (under the old 16 MiB text cap),
// 32 MB as JSON, where each quote is escaped; 19 KB of YAML.
std::string AliasBombRun() {
  std::string body =
      "type: task\nname: bomb\nenv:\n  A: &a '" + std::string(16'000, '"') + "'\ncommands: [";
  for (int i = 0; i < 1000; ++i) body += i ? ",*a" : "*a";
  return body + "]\n";
}

// "Billion laughs": 9^8 short strings once expanded.
std::string LaughsBombFleet() {
  std::string body = "type: fleet\nname: laughs\nl0: &l0 [x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level < 8; ++level) {
    std::string previous = "*l" + std::to_string(level - 1);
    body += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int k = 0; k < 9; ++k) body += (k ? ", " : "") + previous;
    body += "]\n";
  }
  return body;
}

// A JSON fleet whose ssh_config.ca_cert default (a bundle of 16 certificates) is copied into 300
// hosts: about 12 KB of body, megabytes once normalized.
std::string AmplifiedFleetJson() {
  SelfSignedRequest request;
  request.common_name = "ca";
  request.certificate_authority = true;
  Result<SelfSignedCertificate> ca = CreateSelfSignedCertificate(request);
  EXPECT_TRUE(ca.ok());
  std::string bundle;
  for (int i = 0; i < 16; ++i) bundle += ca.ok() ? ca->certificate_pem : "";
  json::array hosts;
  for (int i = 0; i < 300; ++i)
    hosts.emplace_back("10.9." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  json::object ssh{{"token", "agent-secret"}, {"ca_cert", bundle}, {"hosts", std::move(hosts)}};
  return json::serialize(
      json::object{{"type", "fleet"}, {"name", "amplified"}, {"ssh_config", std::move(ssh)}});
}

class InputSizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(data_.str(), home_.str(), kAdminToken,
                                              std::vector<std::string>{"--no-local-fleet"});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
    ApiReply fleet =
        admin_->Send("POST", "/api/project/main/fleets", kSilentFleet, "application/yaml");
    ASSERT_EQ(fleet.status, 201) << fleet.body;
  }

  std::filesystem::path DatabasePath() const { return data_.path() / "fleetwatch.db"; }

  // The database file and its write-ahead log together: a refused request must grow neither,
  // whenever the server checkpoints.
  uintmax_t DatabaseBytes() const {
    uintmax_t total = 0;
    for (const std::string suffix : {"", "-wal"}) {
      std::error_code ec;
      uintmax_t size = std::filesystem::file_size(DatabasePath().string() + suffix, ec);
      if (!ec) total += size;
    }
    return total;
  }

  ApiReply PostRun(const std::string& body, const std::string& type = "application/yaml") {
    return admin_->Send("POST", "/api/project/main/runs", body, type);
  }

  TempDir data_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(InputSizeTest, AliasBombsAreRefusedWithAClearMessageAndStoreNothing) {
  std::string bomb = AliasBombRun();
  ASSERT_LT(bomb.size(), 20'000u);
  uintmax_t before = DatabaseBytes();
  for (int i = 0; i < 10; ++i) {
    ApiReply r = PostRun(bomb);
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.ErrorCode(), "invalid_argument");
    EXPECT_NE(Str(r.json.at("error"), "message").find(kTooLarge), std::string::npos) << r.body;
  }
  ApiReply laughs =
      admin_->Send("POST", "/api/project/main/fleets", LaughsBombFleet(), "application/yaml");
  EXPECT_EQ(laughs.status, 400) << laughs.body;
  EXPECT_NE(laughs.body.find("too many values"), std::string::npos) << laughs.body;
  ApiReply amplified =
      admin_->Send("POST", "/api/project/main/fleets", AmplifiedFleetJson(), "application/json");
  EXPECT_EQ(amplified.status, 400) << amplified.body.substr(0, 300);
  EXPECT_NE(amplified.body.find("over 1 MiB as normalized JSON"), std::string::npos)
      << amplified.body.substr(0, 300);

  // Ten stored bombs were 330 MB; what a few ticks write meanwhile is far under this bound.
  EXPECT_LT(DatabaseBytes(), before + 512 * 1024) << "before: " << before;
  ApiReply runs = admin_->Get("/api/project/main/runs");
  EXPECT_TRUE(runs.json.at("items").as_array().empty()) << runs.body;
  ApiReply fleets = admin_->Get("/api/project/main/fleets");
  EXPECT_EQ(fleets.json.at("items").as_array().size(), 1u) << fleets.body.substr(0, 300);
}

TEST_F(InputSizeTest, ALargeButLegitimateConfigurationIsAcceptedAndShownWhole) {
  // 15 commands of 60,000 bytes: about 900 KB as JSON, under the 1 MiB cap.
  json::array commands;
  for (int i = 0; i < 15; ++i) commands.emplace_back(std::string(60'000, 'a' + i));
  std::string body = json::serialize(
      json::object{{"type", "task"}, {"name", "big"}, {"commands", std::move(commands)}});
  ApiReply r = PostRun(body, "application/json");
  ASSERT_EQ(r.status, 201) << r.body.substr(0, 300);
  ApiReply run = admin_->Get("/api/project/main/runs/big");
  ASSERT_EQ(run.status, 200);
  EXPECT_EQ(run.json.at("configuration").at("commands").as_array().size(), 15u);
}

TEST_F(InputSizeTest, RunListsLeaveConfigurationsOutUnlessAsked) {
  ApiReply r = PostRun("type: task\nname: small\ncommands: ['true']\nresources: {gpu: A100:2}\n");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_TRUE(r.json.as_object().contains("configuration")) << "a single run is shown whole";

  ApiReply list = admin_->Get("/api/project/main/runs");
  ASSERT_EQ(list.status, 200) << list.body;
  const json::object& item = list.json.at("items").at(0).as_object();
  EXPECT_FALSE(item.contains("configuration")) << list.body;
  EXPECT_EQ(item.at("resources").at("gpu").at("name"), "A100") << list.body;

  ApiReply full = admin_->Get("/api/project/main/runs?configuration=1");
  ASSERT_EQ(full.status, 200) << full.body;
  EXPECT_EQ(full.json.at("items").at(0).at("configuration").at("commands").at(0), "true");

  EXPECT_EQ(admin_->Get("/api/project/main/runs?configuration=yes").status, 400);
  ApiReply one = admin_->Get("/api/project/main/runs/small");
  EXPECT_EQ(one.json.at("configuration").at("type"), "task") << one.body;
}

TEST_F(InputSizeTest, AStoredConfigurationThatNoLongerParsesFailsItsRun) {
  ApiReply r = PostRun("type: task\nname: victim\ncommands: ['true']\n");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Str(r.json, "status"), "submitted");

  // Damaged on purpose while the server runs (it waits on the database's lock like any writer).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DatabasePath().c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  char* error = nullptr;
  int rc = sqlite3_exec(db, "UPDATE runs SET configuration = '{broken' WHERE run_name = 'victim'",
                        nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_free(error);
  sqlite3_close(db);

  ApiReply run = WaitForRunStatus(*admin_, "main", "victim", "failed");
  ASSERT_EQ(Str(run.json, "status"), "failed") << run.body;
  EXPECT_EQ(Str(run.json, "termination_reason"), "server_error");
  EXPECT_EQ(Str(run.json.at("jobs").at(0), "status"), "terminated");
  EXPECT_EQ(Str(run.json.at("jobs").at(0), "termination_reason"), "terminated_by_server");
  EXPECT_NE(server_->Output().find("its stored configuration does not parse"), std::string::npos)
      << server_->Output();
}

}  // namespace
}  // namespace fleetwatch::testing
