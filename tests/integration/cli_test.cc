// The fleetwatch client commands end to end: the real binary against a real server on
// 127.0.0.1, each command run as a process with its own HOME (so config files are isolated).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-for-cli-tests-0123456789";
constexpr char kUnset[] = "\x01unset";

constexpr char kFleetYaml[] = R"(type: fleet
name: gpus
ssh_config:
  tls: false
  hosts:
    - hostname: 127.0.0.1
      port: 10998
      token: t
      price: 1.5
    - hostname: 127.0.0.1
      port: 10999
      token: t
      price: 1.5
)";

constexpr char kRunYaml[] = R"(type: task
name: train
commands:
  - sleep 600
)";

// The commands (as argument lists) that must all answer --help with exit code 0.
const std::vector<std::vector<std::string>> kAllCommands = {
    {"config"},
    {"project"},
    {"project", "list"},
    {"project", "create"},
    {"project", "add-member"},
    {"project", "remove-member"},
    {"user"},
    {"user", "create"},
    {"user", "list"},
    {"user", "refresh-token"},
    {"user", "set-role"},
    {"user", "delete"},
    {"fleet"},
    {"fleet", "apply"},
    {"fleet", "list"},
    {"fleet", "delete"},
    {"apply"},
    {"run"},
    {"ps"},
    {"stop"},
    {"delete"},
    {"logs"},
    {"metrics"},
    {"waste"},
    {"server"},
    {"agent"},
};

// The environment of a client process: HOME is `home`, nothing leaks in from the test runner.
std::map<std::string, std::string> ClientEnv(const std::string& home,
                                             std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> env = {{"HOME", home},
                                            {"FLEETWATCH_URL", kUnset},
                                            {"FLEETWATCH_TOKEN", kUnset},
                                            {"FLEETWATCH_PROJECT", kUnset},
                                            {"COLUMNS", "200"}};
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

ProcessResult Fleetwatch(const std::string& home, const std::vector<std::string>& args,
                         std::map<std::string, std::string> extra_env = {},
                         const std::string& input = {}) {
  return RunProcess(FLEETWATCH_BINARY, args, ClientEnv(home, std::move(extra_env)), input, 60);
}

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The command failed the way every client command must: exit code 1 and exactly one line
// "error: ..." on stderr. Returns that line's message.
std::string ExpectOneErrorLine(const ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << Describe(r);
  EXPECT_FALSE(r.err.empty() || r.err.back() != '\n') << Describe(r);
  if (r.err.size() < 8) return "";
  return r.err.substr(7, r.err.size() - 8);
}

// Lines of `text` that contain every one of `needles`.
int CountLinesWith(const std::string& text, const std::vector<std::string>& needles) {
  int count = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    bool all = std::all_of(needles.begin(), needles.end(),
                           [&](const std::string& n) { return line.find(n) != std::string::npos; });
    if (all) ++count;
    start = end + 1;
  }
  return count;
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return 1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(data_.str(), server_home_.str(), kAdminToken);
    ASSERT_TRUE(server_->started()) << server_->Output();
  }

  // Runs the client as whoever the config file in home_ names.
  ProcessResult Cli(const std::vector<std::string>& args,
                    std::map<std::string, std::string> extra_env = {},
                    const std::string& input = {}) {
    return Fleetwatch(home_.str(), args, std::move(extra_env), input);
  }

  // Runs the client and expects success.
  std::string Ok(const std::vector<std::string>& args,
                 std::map<std::string, std::string> extra_env = {}, const std::string& input = {}) {
    ProcessResult r = Cli(args, std::move(extra_env), input);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.err, "") << Describe(r);
    return r.out;
  }

  void ConfigureAsAdmin(const std::string& project) {
    Ok({"config", "--url", server_->url(), "--token", kAdminToken, "--project", project});
  }

  // The runs `ps -a --json` lists, by name (the newest of each name).
  std::map<std::string, json::value> AllRuns() {
    std::string out = Ok({"ps", "-a", "--json"});
    boost::system::error_code ec;
    json::value reply = json::parse(out, ec);
    EXPECT_FALSE(ec) << out;
    std::map<std::string, json::value> runs;
    if (ec || !reply.is_object() || !reply.as_object().contains("items")) return runs;
    for (const json::value& run : reply.at("items").as_array()) {
      std::string name(run.at("run_name").as_string());
      if (!runs.contains(name)) runs[name] = run;
    }
    return runs;
  }

  std::string RunStatus(const std::string& name) {
    auto runs = AllRuns();
    auto it = runs.find(name);
    if (it == runs.end()) return "";
    return std::string(it->second.at("status").as_string());
  }

  // Polls `ps -a --json` until the run has `want` (at most ~10 s); returns the last status.
  std::string WaitForRunStatus(const std::string& name, const std::string& want) {
    std::string status;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      status = RunStatus(name);
      if (status == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return status;
  }

  TempDir data_;
  TempDir server_home_;
  TempDir home_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, ConfigWritesAPrivateFileAndShowsTheTokenMasked) {
  ConfigureAsAdmin("main");
  std::filesystem::path file = home_.path() / ".fleetwatch" / "config.yml";
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(file.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  std::string shown = Ok({"config"});
  EXPECT_NE(shown.find(server_->url()), std::string::npos) << shown;
  EXPECT_NE(shown.find("admi…"), std::string::npos) << shown;
  EXPECT_EQ(shown.find(kAdminToken), std::string::npos) << shown;

  // A later call merges: only the project changes.
  Ok({"project", "create", "other"});
  Ok({"config", "--project", "other"});
  shown = Ok({"config"});
  EXPECT_NE(shown.find("other"), std::string::npos) << shown;
  EXPECT_NE(shown.find(server_->url()), std::string::npos) << shown;

  ExpectOneErrorLine(Cli({"config", "--url", "ftp://example.com"}));
  ExpectOneErrorLine(Cli({"config", "--ca-cert", "/nonexistent/ca.pem"}));
  ExpectOneErrorLine(Cli({"config", "--project", "Not_A_Name"}));
}

TEST_F(CliTest, ProjectsUsersFleetsAndRunsEndToEnd) {
  ConfigureAsAdmin("main");
  EXPECT_EQ(Ok({"project", "create", "ml"}), "Created project ml\n");
  Ok({"config", "--project", "ml"});  // checked: it exists now

  std::string created = Ok({"user", "create", "alice"});
  size_t token_at = created.find("Token: ");
  ASSERT_NE(token_at, std::string::npos) << created;
  std::string alice_token =
      created.substr(token_at + 7, created.find('\n', token_at) - token_at - 7);
  ASSERT_FALSE(alice_token.empty());
  EXPECT_NE(created.find("fleetwatch config --url " + server_->url() + " --token " + alice_token),
            std::string::npos)
      << created;

  Ok({"project", "add-member", "ml", "alice", "--role", "manager"});
  std::string projects = Ok({"project", "list"});
  EXPECT_EQ(CountLinesWith(projects, {"NAME", "OWNER", "MEMBERS", "CREATED"}), 1) << projects;
  EXPECT_EQ(CountLinesWith(projects, {"ml", "alice (manager)"}), 1) << projects;
  EXPECT_EQ(CountLinesWith(Ok({"user", "list"}), {"alice", "user"}), 1);

  // Fleets: both hosts become pending instances.
  WriteFile(home_.path() / "fleet.yml", kFleetYaml);
  std::string applied = Ok({"fleet", "apply", "-f", (home_.path() / "fleet.yml").string()});
  EXPECT_EQ(CountLinesWith(applied, {"gpus", "127.0.0.1:1099", "$1.5"}), 2) << applied;
  std::string fleets = Ok({"fleet", "list"});
  EXPECT_EQ(CountLinesWith(fleets, {"FLEET", "INSTANCE", "BACKEND", "HOST", "GPU", "PRICE",
                                    "STATUS", "CREATED"}),
            1)
      << fleets;
  EXPECT_EQ(CountLinesWith(fleets, {"gpus", "remote", "127.0.0.1:10998", "pending"}), 1) << fleets;
  EXPECT_EQ(CountLinesWith(fleets, {"gpus", "remote", "127.0.0.1:10999", "pending"}), 1) << fleets;

  // Runs: one from a file, one from flags (as alice, by flag over the config file), one from stdin.
  WriteFile(home_.path() / "run.yml", kRunYaml);
  // -d: return once submitted (cli_attach_test.cc covers following a run).
  EXPECT_EQ(Ok({"apply", "-d", "-f", (home_.path() / "run.yml").string()}),
            "Submitted run train (status submitted)\n");
  EXPECT_EQ(Ok({"run", "--token", alice_token, "--name", "x", "--env", "GREETING=hi there", "-d",
                "--", "echo", "hi", "-x", "--help"}),
            "Submitted run x (status submitted)\n");
  EXPECT_EQ(
      Ok({"apply", "-f", "-", "--detach"}, {}, "type: task\nname: piped\ncommands: [\"true\"]\n"),
      "Submitted run piped (status submitted)\n");

  std::string ps = Ok({"ps"});
  EXPECT_EQ(CountLinesWith(ps, {"RUN", "USER", "TYPE", "STATUS", "GPU", "SUBMITTED"}), 1) << ps;
  EXPECT_EQ(CountLinesWith(ps, {"train", "admin", "task"}), 1) << ps;
  EXPECT_EQ(CountLinesWith(ps, {"x ", "alice", "task"}), 1) << ps;

  std::map<std::string, json::value> runs = AllRuns();
  ASSERT_TRUE(runs.contains("x"));
  EXPECT_EQ(runs["x"].at("user_name").as_string(), "alice");
  EXPECT_EQ(runs["x"].at("configuration").at("commands").at(0).as_string(), "echo hi -x --help");
  EXPECT_EQ(runs["x"].at("configuration").at("env").at("GREETING").as_string(), "hi there");

  // Without -y and without a terminal to ask on, nothing changes.
  std::string unconfirmed = ExpectOneErrorLine(Cli({"stop", "train"}, {}, "y\n"));
  EXPECT_NE(unconfirmed.find("-y"), std::string::npos) << unconfirmed;
  EXPECT_NE(RunStatus("train"), "terminating");

  EXPECT_EQ(Ok({"stop", "x", "-y"}), "Stopping run x\n");
  std::string status = RunStatus("x");
  EXPECT_TRUE(status == "terminating" || status == "terminated") << status;
  EXPECT_EQ(WaitForRunStatus("x", "terminated"), "terminated");
  EXPECT_EQ(CountLinesWith(Ok({"ps"}), {"x ", "alice"}), 0);  // finished runs need -a
  EXPECT_EQ(CountLinesWith(Ok({"ps", "-a"}), {"x ", "alice", "terminated"}), 1);

  EXPECT_EQ(Ok({"delete", "x", "-y"}), "Deleted run x\n");
  EXPECT_FALSE(AllRuns().contains("x"));

  // An unfinished run cannot be deleted; the server's 409 message is shown.
  ExpectOneErrorLine(Cli({"delete", "train", "-y"}));
  EXPECT_EQ(Ok({"stop", "train", "--abort", "-y"}), "Aborting run train\n");
  EXPECT_EQ(WaitForRunStatus("train", "terminated"), "terminated");
}

TEST_F(CliTest, ErrorsAreOneLineAndExitOne) {
  ConfigureAsAdmin("main");

  std::string unknown = ExpectOneErrorLine(Cli({"stop", "no-such-run", "-y"}));
  EXPECT_NE(unknown.find("no-such-run"), std::string::npos) << unknown;
  ExpectOneErrorLine(Cli({"delete", "no-such-run", "-y"}));

  EXPECT_EQ(ExpectOneErrorLine(Cli({"ps", "--token", "wrong-token"})),
            "the server rejected the token (run fleetwatch config --token ...)");
  EXPECT_EQ(ExpectOneErrorLine(Cli({"ps"}, {{"FLEETWATCH_TOKEN", "wrong-token"}})),
            "the server rejected the token (run fleetwatch config --token ...)");

  // The server validates run options; its message names the key.
  std::string bad_cpu = ExpectOneErrorLine(Cli({"run", "-d", "--cpu", "lots", "--", "true"}));
  EXPECT_NE(bad_cpu.find("cpu"), std::string::npos) << bad_cpu;

  ExpectOneErrorLine(Cli({"run", "--name", "nothing"}));  // no command after --
  ExpectOneErrorLine(Cli({"run", "--env", "NOEQUALS", "--", "true"}));
  ExpectOneErrorLine(Cli({"run", "--env", "--", "true"}));  // --env without its value
  ExpectOneErrorLine(Cli({"apply", "-f", (home_.path() / "missing.yml").string()}));
  ExpectOneErrorLine(Cli({"project", "add-member", "main", "admin", "--role", "owner"}));
  ExpectOneErrorLine(Cli({"project", "create", "main"}));  // already exists
  ExpectOneErrorLine(Cli({"ps", "--project", "no-such-project"}));
}

TEST(CliWithoutServer, HelpWorksForEveryCommand) {
  TempDir home;
  for (std::vector<std::string> args : kAllCommands) {
    args.push_back("--help");
    ProcessResult r = Fleetwatch(home.str(), args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << (args.size() > 2 ? args[1] : "") << "\n"
                              << Describe(r);
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << Describe(r);
  }
}

TEST(CliWithoutServer, NoArgumentsPrintTheHelp) {
  TempDir home;
  ProcessResult r = Fleetwatch(home.str(), {});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  for (const char* text : {"Usage", "run", "ps", "logs", "fleet"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << Describe(r);
  }
}

TEST(CliWithoutServer, AnUnknownCommandIsNamedWithTheClosestOne) {
  TempDir home;
  EXPECT_EQ(ExpectOneErrorLine(Fleetwatch(home.str(), {"fleets"})),
            "unknown command `fleets`; did you mean `fleet`?");
  EXPECT_EQ(ExpectOneErrorLine(Fleetwatch(home.str(), {"fleet", "lsit"})),
            "unknown command `fleet lsit`; did you mean `fleet list`?");
  const std::string far = ExpectOneErrorLine(Fleetwatch(home.str(), {"foo", "bar"}));
  EXPECT_EQ(far.rfind("unknown command `foo`; the commands are: ", 0), 0u) << far;
  EXPECT_NE(far.find("fleet"), std::string::npos) << far;
}

TEST(CliWithoutServer, UnconfiguredClientSaysToRunConfig) {
  TempDir home;
  std::string message = ExpectOneErrorLine(Fleetwatch(home.str(), {"ps"}));
  EXPECT_NE(message.find("fleetwatch config"), std::string::npos) << message;
}

TEST(CliWithoutServer, UnreachableServerIsAClearError) {
  TempDir home;
  std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  std::string message =
      ExpectOneErrorLine(Fleetwatch(home.str(), {"ps", "--url", url, "--token", "t"}));
  EXPECT_EQ(message.rfind("cannot reach the server at " + url + ": ", 0), 0u) << message;
}

// The value after `prefix` up to the end of its line in `text` ("" when absent).
std::string ValueAfter(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  at += prefix.size();
  return text.substr(at, text.find('\n', at) - at);
}

TEST_F(CliTest, RefreshTokenRotatesTheTokenAndRewritesTheConfigOfItsOwner) {
  ConfigureAsAdmin("main");
  const std::string alice_token = ValueAfter(Ok({"user", "create", "alice"}), "Token: ");
  ASSERT_FALSE(alice_token.empty());

  // Alice, configured in her own HOME, rotates her token: her config file follows.
  TempDir alice_home;
  auto as_alice = [&](const std::vector<std::string>& args) {
    return Fleetwatch(alice_home.str(), args);
  };
  ASSERT_EQ(as_alice({"config", "--url", server_->url(), "--token", alice_token}).exit_code, 0);
  ProcessResult refreshed = as_alice({"user", "refresh-token"});
  ASSERT_EQ(refreshed.exit_code, 0) << Describe(refreshed);
  const std::string new_token = ValueAfter(refreshed.out, "New token of alice: ");
  ASSERT_FALSE(new_token.empty()) << refreshed.out;
  EXPECT_NE(new_token, alice_token);
  const std::filesystem::path config = alice_home.path() / ".fleetwatch" / "config.yml";
  std::ifstream in(config);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(new_token), std::string::npos) << text;
  EXPECT_EQ(text.find(alice_token), std::string::npos) << text;
  struct stat st {};
  ASSERT_EQ(::stat(config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(as_alice({"project", "list"}).exit_code, 0);  // the new token, from the file
  ProcessResult old = Fleetwatch(alice_home.str(), {"project", "list", "--token", alice_token});
  EXPECT_NE(ExpectOneErrorLine(old), "");

  // An admin refreshing someone else's token prints it and leaves their own config alone.
  std::string by_admin = Ok({"user", "refresh-token", "alice"});
  const std::string third = ValueAfter(by_admin, "New token of alice: ");
  ASSERT_FALSE(third.empty()) << by_admin;
  EXPECT_NE(ExpectOneErrorLine(as_alice({"project", "list"})),
            "");  // her saved token stopped working
  EXPECT_EQ(Fleetwatch(alice_home.str(), {"project", "list", "--token", third}).exit_code, 0);
  EXPECT_EQ(Ok({"config"}).find(third.substr(0, 4)), std::string::npos);
}

// The first two words of every line of a table: what stays the same between two listings a
// second apart (the relative times move on).
std::string TableShape(const std::string& table) {
  std::string shape;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first;
    std::string second;
    words >> first >> second;
    shape += first + " " + second + "\n";
  }
  return shape;
}

TEST_F(CliTest, AGroupAloneListsLikeItsListCommand) {
  ConfigureAsAdmin("main");
  Ok({"user", "create", "carol"});
  for (const char* group : {"fleet", "project", "user"}) {
    const std::string alone = Ok({group});
    EXPECT_NE(alone, "") << group;
    EXPECT_EQ(TableShape(alone), TableShape(Ok({group, "list"}))) << group;
  }
  EXPECT_EQ(CountLinesWith(Ok({"user"}), {"carol"}), 1);
  // Options after the group are the list's.
  EXPECT_EQ(TableShape(Ok({"fleet", "--project", "main"})), TableShape(Ok({"fleet", "list"})));
  ProcessResult help = Cli({"fleet", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("apply"), std::string::npos) << Describe(help);
}

TEST_F(CliTest, ConfigAsksTheServerBeforeSaving) {
  ConfigureAsAdmin("main");
  const std::filesystem::path file = home_.path() / ".fleetwatch" / "config.yml";
  const std::string working = ReadFile(file);

  // A wrong token never replaces the working one.
  std::string wrong_token = ExpectOneErrorLine(Cli({"config", "--token", "wrong-token"}));
  EXPECT_EQ(wrong_token, "the server at " + server_->url() +
                             " rejected the token (--token); nothing saved (--no-check saves "
                             "without asking the server)");
  // Nor a URL nothing answers at, nor a project the server does not know.
  const std::string closed = "http://127.0.0.1:" + std::to_string(ClosedPort());
  std::string wrong_url = ExpectOneErrorLine(Cli({"config", "--url", closed}));
  EXPECT_EQ(wrong_url.rfind("cannot reach the server at " + closed + ": ", 0), 0u) << wrong_url;
  EXPECT_NE(wrong_url.find("(--url); nothing saved"), std::string::npos) << wrong_url;
  std::string wrong_project = ExpectOneErrorLine(Cli({"config", "--project", "nope"}));
  EXPECT_EQ(wrong_project.rfind("project nope (--project): ", 0), 0u) << wrong_project;
  // Together: the first that is wrong is named.
  std::string both = ExpectOneErrorLine(
      Cli({"config", "--url", server_->url(), "--token", "wrong-token", "--project", "main"}));
  EXPECT_NE(both.find("rejected the token (--token)"), std::string::npos) << both;
  EXPECT_EQ(ReadFile(file), working);
  Ok({"ps"});

  // --no-check saves as given.
  Ok({"config", "--project", "nope", "--no-check"});
  EXPECT_NE(ReadFile(file).find("nope"), std::string::npos);
  ExpectOneErrorLine(Cli({"ps"}));
  Ok({"config", "--project", "main"});
  Ok({"ps"});
}

TEST_F(CliTest, PsShowsWhyARunEnded) {
  ConfigureAsAdmin("main");
  Ok({"run", "-d", "--name", "banana", "--gpu", "banana", "--", "true"});
  ASSERT_TRUE(WaitUntil([&] { return RunStatus("banana") == "failed"; }));
  std::string ps = Ok({"ps", "-a"});
  EXPECT_EQ(CountLinesWith(ps, {"banana", "failed (no capacity"}), 1) << ps;
  std::string verbose = Ok({"ps", "-a", "-v"});
  EXPECT_EQ(CountLinesWith(verbose, {"banana", "failed (no capacity"}), 1) << verbose;
  EXPECT_EQ(verbose.find("…"), std::string::npos) << verbose;
}

TEST_F(CliTest, SetRoleAndDeleteUser) {
  ConfigureAsAdmin("main");
  const std::string bob_token = ValueAfter(Ok({"user", "create", "bob"}), "Token: ");
  EXPECT_EQ(Ok({"user", "set-role", "bob", "admin"}), "User bob now has global role admin\n");
  EXPECT_EQ(CountLinesWith(Ok({"user", "list"}), {"bob", "admin"}), 1);
  ExpectOneErrorLine(Cli({"user", "set-role", "bob", "root"}));
  EXPECT_EQ(Ok({"user", "set-role", "bob", "user"}), "User bob now has global role user\n");

  // The last admin stays.
  std::string last = ExpectOneErrorLine(Cli({"user", "set-role", "admin", "user"}));
  EXPECT_NE(last.find("last global admin"), std::string::npos) << last;
  ExpectOneErrorLine(Cli({"user", "delete", "admin", "-y"}));

  // Without -y and without a terminal, nothing is deleted.
  ExpectOneErrorLine(Cli({"user", "delete", "bob"}));
  EXPECT_EQ(Fleetwatch(home_.str(), {"project", "list", "--token", bob_token}).exit_code, 0);
  EXPECT_EQ(Ok({"user", "delete", "bob", "-y"}), "Deleted user bob\n");
  ExpectOneErrorLine(Fleetwatch(home_.str(), {"project", "list", "--token", bob_token}));
  EXPECT_EQ(CountLinesWith(Ok({"user", "list"}), {"bob"}), 0);
}

}  // namespace
}  // namespace fleetwatch::testing
