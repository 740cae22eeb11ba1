// The real fleetwatch binary on 127.0.0.1, used over HTTP: users, projects, fleets, runs, the
// auth matrix, bad input and restarts.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-tests-0123456789";

constexpr char kFleetYaml[] = R"(type: fleet
name: gpus
ssh_config:
  token: agent-secret
  tls: false
  hosts:
    - hostname: 127.0.0.1
      port: 10998
      price: 1.5
    - hostname: 127.0.0.2
      port: 10999
)";

constexpr char kRunYaml[] = R"(type: task
name: train
nodes: 2
commands:
  - python3 -c 'print(1)'
resources:
  cpu: 2
  memory: 1GB
)";

size_t ItemCount(const ApiReply& reply) {
  if (!reply.json.is_object() || !reply.json.as_object().contains("items")) return SIZE_MAX;
  return reply.json.at("items").as_array().size();
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer() {
    // No local fleet: runs here must stay where the API put them (jobs run in jobs_test.cc).
    server_ = std::make_unique<ServerProcess>(data_.str(), home_.str(), kAdminToken,
                                              std::vector<std::string>{"--no-local-fleet"});
    ASSERT_TRUE(server_->started()) << server_->Output();
    admin_ = std::make_unique<ApiClient>(server_->url(), kAdminToken);
  }

  ApiClient As(const std::string& token) const { return ApiClient(server_->url(), token); }

  // Creates a user and returns their client.
  ApiClient CreateUser(const std::string& name, const std::string& role = "user") {
    ApiReply r = admin_->PostJson("/api/users", {{"name", name}, {"global_role", role}});
    EXPECT_EQ(r.status, 201) << r.body;
    return As(Str(r.json, "token"));
  }

  void AddMember(const std::string& project, const std::string& user, const std::string& role) {
    ApiReply r = admin_->PostJson("/api/projects/" + project + "/members",
                                  {{"user_name", user}, {"project_role", role}});
    EXPECT_EQ(r.status, 200) << r.body;
  }

  // Polls the run until its status is `want` (or the wait runs out) and returns the last reply.
  ApiReply WaitForRunStatus(const ApiClient& client, const std::string& path,
                            const std::string& want) {
    ApiReply r;
    for (int i = 0; i < 200; ++i) {
      r = client.Get(path);
      if (Str(r.json, "status") == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return r;
  }

  TempDir data_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ApiClient> admin_;
};

TEST_F(ApiTest, FirstStartPrintsTheAdminTokenAndCreatesProjectMain) {
  EXPECT_NE(server_->Output().find(kAdminToken), std::string::npos);
  ApiReply me = admin_->Get("/api/users/me");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(Str(me.json, "name"), "admin");
  EXPECT_EQ(Str(me.json, "global_role"), "admin");
  ApiReply projects = admin_->Get("/api/projects");
  ASSERT_EQ(ItemCount(projects), 1u) << projects.body;
  EXPECT_EQ(Str(projects.json.at("items").at(0), "name"), "main");
  ApiReply info = admin_->Get("/api/server/info");
  EXPECT_EQ(info.status, 200);
  EXPECT_EQ(Str(info.json, "version"), "0.1.0");
}

TEST_F(ApiTest, UserProjectFleetAndRunLifecycle) {
  ApiClient alice = CreateUser("alice");
  ASSERT_EQ(admin_->PostJson("/api/projects", {{"name", "ml"}}).status, 201);
  AddMember("ml", "alice", "user");

  // Fleets: managers and admins add them; one pending instance per host.
  ApiReply fleet = admin_->Send("POST", "/api/project/ml/fleets", kFleetYaml, "application/yaml");
  ASSERT_EQ(fleet.status, 201) << fleet.body;
  EXPECT_EQ(fleet.body.find("agent-secret"), std::string::npos) << "agent token leaked";
  const json::array& instances = fleet.json.at("instances").as_array();
  ASSERT_EQ(instances.size(), 2u);
  EXPECT_EQ(Str(instances[0], "name"), "gpus-0");
  EXPECT_EQ(Str(instances[0], "status"), "pending");
  EXPECT_EQ(Str(instances[0], "backend"), "remote");
  EXPECT_EQ(instances[0].at("price").as_double(), 1.5);
  EXPECT_TRUE(instances[1].at("price").is_null());
  EXPECT_EQ(alice.Send("POST", "/api/project/ml/fleets", kFleetYaml, "application/yaml").status,
            403);
  EXPECT_EQ(ItemCount(alice.Get("/api/project/ml/fleets")), 1u);
  EXPECT_EQ(ItemCount(alice.Get("/api/project/ml/instances")), 2u);
  EXPECT_EQ(alice.Get("/api/project/ml/fleets/gpus").status, 200);

  // Runs: nodes × replicas jobs named {run}-{job}-{replica}, status submitted.
  ApiReply run = alice.Send("POST", "/api/project/ml/runs", kRunYaml, "application/yaml");
  ASSERT_EQ(run.status, 201) << run.body;
  EXPECT_EQ(Str(run.json, "status"), "submitted");
  EXPECT_EQ(Str(run.json, "user_name"), "alice");
  EXPECT_EQ(Str(run.json, "run_type"), "task");
  const json::array& jobs = run.json.at("jobs").as_array();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(Str(jobs[0], "job_name"), "train-0-0");
  EXPECT_EQ(Str(jobs[1], "job_name"), "train-1-0");
  EXPECT_EQ(Str(jobs[1], "status"), "submitted");
  std::string first_id = Str(run.json, "id");

  // The name is taken while the run is unfinished.
  ApiReply again = alice.Send("POST", "/api/project/ml/runs", kRunYaml, "application/yaml");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(again.ErrorCode(), "already_exists");
  // Unfinished runs cannot be deleted.
  EXPECT_EQ(alice.Delete("/api/project/ml/runs/train").status, 409);

  ApiReply list = alice.Get("/api/project/ml/runs?status=submitted");
  EXPECT_EQ(ItemCount(list), 1u) << list.body;
  EXPECT_EQ(ItemCount(alice.Get("/api/project/ml/runs?status=running")), 0u);

  // Stop: terminating at once, terminated when the server has processed it.
  ApiReply stopped = alice.PostJson("/api/project/ml/runs/train/stop", json::object());
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  EXPECT_EQ(Str(stopped.json, "status"), "terminating");
  EXPECT_EQ(Str(stopped.json, "termination_reason"), "stopped_by_user");
  ApiReply done = WaitForRunStatus(alice, "/api/project/ml/runs/train", "terminated");
  EXPECT_EQ(Str(done.json, "status"), "terminated") << done.body;
  EXPECT_EQ(Str(done.json.at("jobs").at(0), "termination_reason"), "terminated_by_user");
  EXPECT_FALSE(done.json.at("finished_at").is_null());

  // A finished run's name may be reused, as in dstack: the new run replaces the finished one.
  ApiReply reused = alice.Send("POST", "/api/project/ml/runs", kRunYaml, "application/yaml");
  ASSERT_EQ(reused.status, 201) << reused.body;
  EXPECT_NE(Str(reused.json, "id"), first_id);
  EXPECT_EQ(Str(alice.Get("/api/project/ml/runs/train").json, "id"), Str(reused.json, "id"));
  EXPECT_EQ(ItemCount(alice.Get("/api/project/ml/runs")), 1u);
  // While it is active the name is taken.
  ApiReply taken = alice.Send("POST", "/api/project/ml/runs", kRunYaml, "application/yaml");
  EXPECT_EQ(taken.status, 409) << taken.body;
  EXPECT_EQ(taken.ErrorCode(), "already_exists");

  // Abort the new one, then delete it.
  ApiReply aborted = alice.PostJson("/api/project/ml/runs/train/stop", {{"abort", true}});
  EXPECT_EQ(Str(aborted.json, "termination_reason"), "aborted_by_user");
  WaitForRunStatus(alice, "/api/project/ml/runs/train", "terminated");
  EXPECT_EQ(alice.Delete("/api/project/ml/runs/train").status, 200);
  ApiReply gone = alice.Get("/api/project/ml/runs/train");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.ErrorCode(), "not_found");
  EXPECT_EQ(ItemCount(alice.Get("/api/project/ml/runs")), 0u);

  // Fleets: delete, then it is gone.
  EXPECT_EQ(admin_->Delete("/api/project/ml/fleets/gpus").status, 200);
  EXPECT_EQ(admin_->Get("/api/project/ml/fleets/gpus").status, 404);
  EXPECT_EQ(ItemCount(admin_->Get("/api/project/ml/instances")), 0u);
}

TEST_F(ApiTest, RunWithoutNameGetsAGeneratedOneAndJsonBodiesWork) {
  json::value config = {{"type", "task"}, {"commands", json::array{"echo hi"}}};
  ApiReply run =
      admin_->Send("POST", "/api/project/main/runs", json::serialize(config), "application/json");
  ASSERT_EQ(run.status, 201) << run.body;
  std::string name = Str(run.json, "run_name");
  EXPECT_FALSE(name.empty());
  EXPECT_EQ(admin_->Get("/api/project/main/runs/" + name).status, 200);
}

TEST_F(ApiTest, EverythingSurvivesARestart) {
  ApiClient bob = CreateUser("bob");
  ASSERT_EQ(bob.PostJson("/api/projects", {{"name", "vision"}}).status, 201);
  ASSERT_EQ(bob.Send("POST", "/api/project/vision/fleets", kFleetYaml, "application/yaml").status,
            201);
  ASSERT_EQ(bob.Send("POST", "/api/project/vision/runs", kRunYaml, "application/yaml").status, 201);
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
  EXPECT_NE(server_->Output().find("fleetwatch server stopped"), std::string::npos);

  StartServer();  // on a new port: clients must be made anew
  EXPECT_EQ(server_->Output().find(kAdminToken), std::string::npos) << "token printed twice";
  bob = As(bob.token());
  EXPECT_EQ(bob.Get("/api/users/me").status, 200);
  ApiReply run = bob.Get("/api/project/vision/runs/train");
  ASSERT_EQ(run.status, 200) << run.body;
  EXPECT_EQ(Str(run.json, "status"), "submitted");
  EXPECT_EQ(run.json.at("jobs").as_array().size(), 2u);
  EXPECT_EQ(ItemCount(bob.Get("/api/project/vision/instances")), 2u);
  EXPECT_EQ(ItemCount(admin_->Get("/api/users")), 2u);
}

// Every endpoint family × admin, member, non-member, no token, wrong token.
TEST_F(ApiTest, AuthMatrix) {
  ApiClient member = CreateUser("member");
  ApiClient outsider = CreateUser("outsider");
  AddMember("main", "member", "user");
  ASSERT_EQ(admin_->Send("POST", "/api/project/main/fleets", kFleetYaml, "application/yaml").status,
            201);
  ASSERT_EQ(admin_->Send("POST", "/api/project/main/runs", kRunYaml, "application/yaml").status,
            201);
  ApiClient anonymous = As("");
  ApiClient wrong = As("not-a-real-token-0000000000000000");

  struct Case {
    std::string method, target;
    int admin, member, outsider;  // expected statuses; anonymous/wrong always 401
  };
  const std::vector<Case> cases = {
      {"GET", "/api/server/info", 200, 200, 200},
      {"GET", "/api/users/me", 200, 200, 200},
      {"GET", "/api/users", 200, 403, 403},
      {"GET", "/api/projects", 200, 200, 200},
      {"GET", "/api/projects/main", 200, 200, 403},
      {"GET", "/api/project/main/fleets", 200, 200, 403},
      {"GET", "/api/project/main/fleets/gpus", 200, 200, 403},
      {"GET", "/api/project/main/instances", 200, 200, 403},
      {"GET", "/api/project/main/runs", 200, 200, 403},
      {"GET", "/api/project/main/runs/train", 200, 200, 403},
      {"GET", "/api/project/main/runs/train/logs", 200, 200, 403},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target);
    EXPECT_EQ(admin_->Send(c.method, c.target).status, c.admin);
    EXPECT_EQ(member.Send(c.method, c.target).status, c.member);
    EXPECT_EQ(outsider.Send(c.method, c.target).status, c.outsider);
    ApiReply a = anonymous.Send(c.method, c.target);
    EXPECT_EQ(a.status, 401);
    EXPECT_EQ(a.ErrorCode(), "unauthenticated");
    EXPECT_EQ(wrong.Send(c.method, c.target).status, 401);
  }

  // Changes: each role's outcome, then a check that the change did or did not happen.
  EXPECT_EQ(outsider.Send("POST", "/api/project/main/runs", kRunYaml, "application/yaml").status,
            403);
  EXPECT_EQ(anonymous.Send("POST", "/api/project/main/runs", kRunYaml, "application/yaml").status,
            401);
  EXPECT_EQ(outsider.PostJson("/api/project/main/runs/train/stop", json::object()).status, 403);
  // A project user may not stop someone else's run, nor add fleets or members.
  EXPECT_EQ(member.PostJson("/api/project/main/runs/train/stop", json::object()).status, 403);
  EXPECT_EQ(member.Delete("/api/project/main/fleets/gpus").status, 403);
  EXPECT_EQ(member
                .PostJson("/api/projects/main/members",
                          {{"user_name", "outsider"}, {"project_role", "user"}})
                .status,
            403);
  EXPECT_EQ(member.PostJson("/api/users", {{"name", "mallory"}}).status, 403);
  EXPECT_EQ(Str(admin_->Get("/api/project/main/runs/train").json, "status"), "submitted");
  EXPECT_EQ(admin_->Get("/api/project/main/fleets/gpus").status, 200);
  EXPECT_EQ(outsider.Get("/api/projects/main").status, 403);
  EXPECT_EQ(ItemCount(admin_->Get("/api/users")), 3u);
  // The outsider sees only their own projects.
  EXPECT_EQ(ItemCount(outsider.Get("/api/projects")), 0u);
  // A manager may stop others' runs.
  AddMember("main", "member", "manager");
  EXPECT_EQ(member.PostJson("/api/project/main/runs/train/stop", json::object()).status, 200);
}

// Bad input of every kind: a clear 4xx with a JSON error, and nothing changed.
TEST_F(ApiTest, BadInputIsRefusedAndChangesNothing) {
  auto snapshot = [&] {
    return admin_->Get("/api/users").body + admin_->Get("/api/projects").body +
           admin_->Get("/api/project/main/fleets").body +
           admin_->Get("/api/project/main/runs").body;
  };
  // A fleet whose hosts never answer keeps the run waiting in `submitted`.
  ASSERT_EQ(admin_->Send("POST", "/api/project/main/fleets", kFleetYaml, "application/yaml").status,
            201);
  ASSERT_EQ(admin_->Send("POST", "/api/project/main/runs", kRunYaml, "application/yaml").status,
            201);
  // The controller records on each instance why its host cannot be reached after its first poll;
  // taken before that, the snapshot would see the controller's change, not the bad input's.
  ASSERT_TRUE(WaitUntil([&] {
    const json::value fleets = admin_->Get("/api/project/main/fleets").json;
    for (const json::value& instance : fleets.at("items").at(0).at("instances").as_array()) {
      if (instance.at("error").is_null()) return false;
    }
    return true;
  }));
  const std::string before = snapshot();

  const std::vector<std::string> bad_names = {"",
                                              std::string(2000, 'a'),
                                              "a\"b",
                                              "a\\b",
                                              "a\nb",
                                              "<script>alert(1)</script>",
                                              "x'; DROP TABLE runs; --",
                                              "ранок",
                                              "Upper",
                                              "1abc",
                                              "-abc",
                                              "a b",
                                              std::string("a\0b", 3)};
  for (const std::string& name : bad_names) {
    SCOPED_TRACE("name of " + std::to_string(name.size()) + " bytes");
    json::value as_json = json::string(name);
    ApiReply user = admin_->PostJson("/api/users", {{"name", as_json}});
    EXPECT_EQ(user.status, 400) << user.body;
    EXPECT_EQ(user.ErrorCode(), "invalid_argument");
    EXPECT_EQ(admin_->PostJson("/api/projects", {{"name", as_json}}).status, 400);
    json::value run = {{"type", "task"}, {"name", as_json}, {"commands", json::array{"true"}}};
    EXPECT_EQ(
        admin_->Send("POST", "/api/project/main/runs", json::serialize(run), "application/json")
            .status,
        400);
    json::value fleet = {
        {"type", "fleet"},
        {"name", as_json},
        {"ssh_config", {{"hosts", json::array{{{"hostname", "h"}, {"token", "t"}}}}}}};
    EXPECT_EQ(
        admin_->Send("POST", "/api/project/main/fleets", json::serialize(fleet), "application/json")
            .status,
        400);
  }

  struct Case {
    std::string what, method, target, content_type, body;
    int status;
  };
  const std::vector<Case> cases = {
      {"malformed JSON", "POST", "/api/projects", "application/json", "{\"name\": ", 400},
      {"JSON array", "POST", "/api/projects", "application/json", "[1,2]", 400},
      {"unknown key", "POST", "/api/projects", "application/json", R"({"name":"x","evil":1})", 400},
      {"wrong type", "POST", "/api/projects", "application/json", R"({"name":42})", 400},
      {"bad role", "POST", "/api/users", "application/json", R"({"name":"x","global_role":"root"})",
       400},
      {"malformed run YAML", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [unclosed\n", 400},
      {"malformed run JSON", "POST", "/api/project/main/runs", "application/json",
       "{\"type\":", 400},
      {"run unknown key", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\nfoo: 1\n", 400},
      {"run image unsupported", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\nimage: ubuntu\ncommands: [x]\n", 400},
      {"run wrong type", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: x\nnodes: two\n", 400},
      {"negative cpu", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\nresources:\n  cpu: -1\n", 400},
      {"absurd memory", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\nresources:\n  memory: 99999999TB\n", 400},
      {"absurd gpus", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\nresources:\n  gpu: 100000\n", 400},
      {"zero nodes", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\nnodes: 0\n", 400},
      {"no type", "POST", "/api/project/main/runs", "application/yaml", "commands: [x]\n", 400},
      {"empty body", "POST", "/api/project/main/runs", "application/yaml", "", 400},
      {"unsupported content type", "POST", "/api/project/main/runs", "multipart/form-data", "x",
       415},
      {"fleet bad host", "POST", "/api/project/main/fleets", "application/yaml",
       "type: fleet\nname: f\nssh_config:\n  hosts:\n    - hostname: \"a;b\"\n      token: t\n",
       400},
      {"fleet ssh key", "POST", "/api/project/main/fleets", "application/yaml",
       "type: fleet\nname: f\nssh_config:\n  user: ubuntu\n  hosts: [h]\n", 400},
      {"stop with bad body", "POST", "/api/project/main/runs/train/stop", "application/json",
       R"({"abort":"yes"})", 400},
      {"bad status filter", "GET", "/api/project/main/runs?status=bogus", "", "", 400},
      {"bad limit", "GET", "/api/project/main/runs?limit=-5", "", "", 400},
      {"unknown project", "GET", "/api/project/nope/runs", "", "", 404},
      {"unknown project (hostile)", "GET", "/api/project/%3Cscript%3E/runs", "", "", 404},
      {"unknown run", "GET", "/api/project/main/runs/nope", "", "", 404},
      {"stop unknown run", "POST", "/api/project/main/runs/nope/stop", "", "", 404},
      {"unknown fleet", "DELETE", "/api/project/main/fleets/nope", "", "", 404},
      {"unknown route", "GET", "/api/nothing-here", "", "", 404},
      {"wrong method", "PUT", "/api/projects", "", "", 405},
      {"member of unknown user", "POST", "/api/projects/main/members", "application/json",
       R"({"user_name":"ghost","project_role":"user"})", 404},
      {"duplicate project", "POST", "/api/projects", "application/json", R"({"name":"main"})", 409},
      {"oversized body", "POST", "/api/project/main/runs", "application/yaml",
       "type: task\ncommands: [x]\n#" + std::string(2 << 20, 'x'), 413},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ApiReply r = admin_->Send(c.method, c.target, c.body, c.content_type);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_FALSE(r.ErrorCode().empty()) << r.body;
    std::string message =
        r.json.is_object() ? json::serialize(r.json.at("error").at("message")) : std::string();
    EXPECT_FALSE(message.empty());
  }
  EXPECT_EQ(snapshot(), before);
  // And the server still answers normally.
  EXPECT_EQ(admin_->Get("/api/users/me").status, 200);
}

// --- token lifecycle ---

TEST_F(ApiTest, ARefreshedTokenReplacesTheOldOneAtOnce) {
  ApiClient alice = CreateUser("alice");
  ApiClient bob = CreateUser("bob");
  ApiReply refreshed = alice.PostJson("/api/users/me/refresh_token", json::object());
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(Str(refreshed.json, "name"), "alice");
  const std::string token = Str(refreshed.json, "token");
  ASSERT_FALSE(token.empty());
  EXPECT_NE(token, alice.token());
  EXPECT_EQ(alice.Get("/api/users/me").status, 401);
  ApiReply me = As(token).Get("/api/users/me");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(Str(me.json, "name"), "alice");
  EXPECT_FALSE(me.json.as_object().contains("token"));

  // Someone else's: global admins only.
  EXPECT_EQ(As(token).PostJson("/api/users/bob/refresh_token", json::object()).status, 403);
  EXPECT_EQ(bob.Get("/api/users/me").status, 200);
  ApiReply by_admin = admin_->PostJson("/api/users/bob/refresh_token", json::object());
  ASSERT_EQ(by_admin.status, 200) << by_admin.body;
  EXPECT_EQ(bob.Get("/api/users/me").status, 401);
  EXPECT_EQ(As(Str(by_admin.json, "token")).Get("/api/users/me").status, 200);
  EXPECT_EQ(admin_->PostJson("/api/users/nobody/refresh_token", json::object()).status, 404);
  EXPECT_EQ(admin_->PostJson("/api/users/me/refresh_token", {{"x", 1}}).status, 400);
  EXPECT_EQ(admin_->Get("/api/users/me").status, 200);  // the refused request changed nothing
}

TEST_F(ApiTest, ADeletedUserGets401EverywhereAtOnceAndTheirRunsStay) {
  ApiClient bob = CreateUser("bob");
  AddMember("main", "bob", "manager");
  ASSERT_EQ(bob.Send("POST", "/api/project/main/fleets", kFleetYaml, "application/yaml").status,
            201);
  ASSERT_EQ(bob.Send("POST", "/api/project/main/runs", kRunYaml, "application/yaml").status, 201);
  ASSERT_EQ(bob.PostJson("/api/projects", {{"name", "bobs"}}).status, 201);

  EXPECT_EQ(bob.Delete("/api/users/admin").status, 403);
  ApiReply deleted = admin_->Delete("/api/users/bob");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  for (const std::string target :
       {"/api/users/me", "/api/projects", "/api/project/main/runs", "/api/project/main/fleets",
        "/api/project/bobs/runs", "/api/server/info"}) {
    EXPECT_EQ(bob.Get(target).status, 401) << target;
  }
  EXPECT_EQ(bob.PostJson("/api/users/me/refresh_token", json::object()).status, 401);
  // Their run stays (its counters are labeled by their name); memberships go; owned projects stay.
  ApiReply run = admin_->Get("/api/project/main/runs/train");
  ASSERT_EQ(run.status, 200) << run.body;
  EXPECT_EQ(Str(run.json, "user_name"), "bob");
  EXPECT_EQ(admin_->Get("/api/projects/main").body.find("\"bob\""), std::string::npos);
  EXPECT_EQ(admin_->Get("/api/projects/bobs").status, 200);
  EXPECT_EQ(ItemCount(admin_->Get("/api/users")), 1u);
  EXPECT_EQ(admin_->Delete("/api/users/bob").status, 404);
  EXPECT_EQ(admin_->PostJson("/api/users", {{"name", "bob"}}).status, 409);  // the name stays

  // dstack's shape: several at once, all or none.
  ApiClient carol = CreateUser("carol");
  ApiClient dave = CreateUser("dave");
  EXPECT_EQ(admin_->PostJson("/api/users/delete", {{"users", {"carol", "nobody"}}}).status, 404);
  EXPECT_EQ(carol.Get("/api/users/me").status, 200);
  EXPECT_EQ(admin_->PostJson("/api/users/delete", {{"users", "carol"}}).status, 400);
  ApiReply both = admin_->PostJson("/api/users/delete", {{"users", {"carol", "dave"}}});
  EXPECT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(carol.Get("/api/users/me").status, 401);
  EXPECT_EQ(dave.Get("/api/users/me").status, 401);

  // Never oneself, never the last admin.
  EXPECT_EQ(admin_->Delete("/api/users/admin").status, 400);
  ApiClient root = CreateUser("root", "admin");
  EXPECT_EQ(root.Delete("/api/users/admin").status, 200);
  EXPECT_EQ(admin_->Get("/api/users/me").status, 401);
  EXPECT_EQ(root.PostJson("/api/users/delete", {{"users", {"root"}}}).status, 400);
}

TEST_F(ApiTest, GlobalRolesChangeButTheLastAdminStays) {
  ApiClient carol = CreateUser("carol");
  EXPECT_EQ(carol.Get("/api/users").status, 403);
  EXPECT_EQ(carol.PostJson("/api/users/carol/role", {{"global_role", "admin"}}).status, 403);
  ApiReply promoted = admin_->PostJson("/api/users/carol/role", {{"global_role", "admin"}});
  ASSERT_EQ(promoted.status, 200) << promoted.body;
  EXPECT_EQ(Str(promoted.json, "global_role"), "admin");
  EXPECT_EQ(carol.Get("/api/users").status, 200);
  EXPECT_EQ(admin_->PostJson("/api/users/carol/role", {{"global_role", "root"}}).status, 400);
  EXPECT_EQ(admin_->PostJson("/api/users/nobody/role", {{"global_role", "user"}}).status, 404);

  ASSERT_EQ(carol.PostJson("/api/users/admin/role", {{"global_role", "user"}}).status, 200);
  EXPECT_EQ(admin_->Get("/api/users").status, 403);
  ApiReply last = carol.PostJson("/api/users/carol/role", {{"global_role", "user"}});
  EXPECT_EQ(last.status, 409) << last.body;
  EXPECT_NE(last.body.find("last global admin"), std::string::npos) << last.body;
  EXPECT_EQ(carol.Get("/api/users").status, 200);
}

TEST_F(ApiTest, DuplicateKeysInJsonBodiesAreRefusedAndChangeNothing) {
  CreateUser("carol");
  const std::string before = admin_->Get("/api/users").body + admin_->Get("/api/projects").body;
  struct Case {
    std::string target, body;
  };
  const std::vector<Case> cases = {
      {"/api/users", R"({"name": "x1", "name": "x2"})"},
      {"/api/users", R"({"name": "x3", "global_role": "user", "global_role": "admin"})"},
      {"/api/projects", R"({"name": "p1", "name": "p2"})"},
      {"/api/projects/main/members",
       R"({"user_name": "carol", "project_role": "user", "project_role": "admin"})"},
      {"/api/users/carol/role", R"({"global_role": "user", "global_role": "admin"})"},
      {"/api/users/delete", R"({"users": ["carol"], "users": []})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target + " " + c.body);
    ApiReply r = admin_->Send("POST", c.target, c.body, "application/json");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.ErrorCode(), "invalid_argument");
    EXPECT_NE(r.body.find("duplicate key"), std::string::npos) << r.body;
  }
  EXPECT_EQ(admin_->Get("/api/users").body + admin_->Get("/api/projects").body, before);
}

}  // namespace
}  // namespace fleetwatch::testing
