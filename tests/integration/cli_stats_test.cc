// `fleetwatch stats` end to end: the real binary against a real server whose fleet is a real
// agent on the fake NVML, whose energy counter the test moves; a running run shows its summary
// so far, a finished one the summary the server wrote at its end, and `fleetwatch waste` sums its
// notes per project.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/agent_process.h"
#include "integration/api_client.h"
#include "support/process.h"

namespace fleetwatch::testing {
namespace {

namespace json = boost::json;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-token-for-cli-stats-tests-0123";
constexpr char kUnset[] = "\x01unset";

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The fake NVML's two GPUs, GPU 0 with its energy counter at `energy_mj`.
void WriteGpus(const std::filesystem::path& file, int64_t energy_mj) {
  std::ofstream(file, std::ios::trunc)
      << "NVIDIA A100-SXM4-80GB|GPU-fake-0|85899345920|1073741824|2|power=300000|energy="
      << energy_mj << "\nNVIDIA A100-SXM4-80GB|GPU-fake-1|85899345920|0|0\n";
}

class CliStatsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Output();
    }
  }

  std::map<std::string, std::string> ClientEnv() const {
    return {{"HOME", home_.str()},
            {"FLEETWATCH_URL", kUnset},
            {"FLEETWATCH_TOKEN", kUnset},
            {"FLEETWATCH_PROJECT", kUnset},
            {"COLUMNS", "200"}};
  }

  ProcessResult Cli(const std::vector<std::string>& args, const std::string& input = {}) {
    return RunProcess(FLEETWATCH_BINARY, args, ClientEnv(), input, 60);
  }

  // `stats RUN --json` until `done` holds of it (or 60 s pass); returns the last document.
  json::value WaitForStats(const std::string& run,
                           const std::function<bool(const json::value&)>& done) {
    json::value last;
    std::string described;
    for (auto deadline = steady_clock::now() + std::chrono::seconds(60);
         steady_clock::now() < deadline;) {
      ProcessResult r = Cli({"stats", run, "--json"});
      described = Describe(r);
      boost::system::error_code ec;
      last = json::parse(r.out, ec);
      if (r.exit_code == 0 && !ec && done(last)) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "stats of " << run << " never got there; last:\n"
                  << described << "\nserver:\n"
                  << server_->Output();
    return last;
  }

  TempDir data_;
  TempDir server_home_;
  TempDir home_;
  TempDir shared_;
  std::unique_ptr<ServerProcess> server_;
};

double Num(const json::value& v, std::string_view key) {
  const json::value* f = v.as_object().if_contains(key);
  return f != nullptr && f->is_number() ? f->to_number<double>() : -1;
}

TEST_F(CliStatsTest, ARunningRunShowsItsSummarySoFarAFinishedOneItsFinalOneAndWasteItsNotes) {
  AgentProcess gpu_host(AgentProcessOptions::FakeGpus(2, FAKE_NVML_LIBRARY));
  ASSERT_GT(gpu_host.port(), 0) << gpu_host.Output();
  const std::filesystem::path gpus = gpu_host.dir() / "gpus.txt";
  WriteGpus(gpus, 5'000'000);
  server_ = std::make_unique<ServerProcess>(
      data_.str(), server_home_.str(), kAdminToken, std::vector<std::string>{"--no-local-fleet"},
      std::map<std::string, std::string>{{"FLEETWATCH_POLL_INTERVAL_MS", "200"},
                                         {"FLEETWATCH_METRICS_INTERVAL_SECONDS", "1"},
                                         {"FLEETWATCH_CARBON_INTENSITY", "400"},
                                         {"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvml.so"}});
  ASSERT_TRUE(server_->started()) << server_->Output();
  ProcessResult configured =
      Cli({"config", "--url", server_->url(), "--token", kAdminToken, "--project", "main"});
  ASSERT_EQ(configured.exit_code, 0) << Describe(configured);
  ProcessResult fleet =
      Cli({"apply", "-f", "-"}, "type: fleet\nname: gpus\nssh_config:\n  tls: false\n  token: " +
                                    std::string(kTestAgentToken) +
                                    "\n  hosts:\n    - hostname: 127.0.0.1\n      port: " +
                                    std::to_string(gpu_host.port()) + "\n      price: 3.6\n");
  ASSERT_EQ(fleet.exit_code, 0) << Describe(fleet);

  // A job on one GPU that holds it until the test opens the gate.
  ::chmod(shared_.path().c_str(), 01777);
  const std::string gate = (shared_.path() / "gate").string();
  ProcessResult submitted =
      Cli({"apply", "-d", "-f", "-"}, "type: task\nname: train\ncommands: ['while [ ! -e " + gate +
                                          " ]; do sleep 0.1; done']\nresources: {gpu: A100:1}\n");
  ASSERT_EQ(submitted.exit_code, 0) << Describe(submitted);

  // Running, with readings: the counter moves by 4 kJ, which the summary so far shows.
  WaitForStats("train", [](const json::value& s) {
    const json::array& jobs = s.at("jobs").as_array();
    return !jobs.empty() && jobs[0].at("status") == "running" &&
           jobs[0].at("gpus").as_array().size() == 1 &&
           jobs[0].at("gpus").at(0).at("samples").to_number<double>() >= 1;
  });
  WriteGpus(gpus, 9'000'000);
  // Three samples at least: enough for the notes to judge the GPU's use.
  json::value running = WaitForStats("train", [](const json::value& s) {
    return Num(s, "energy_joules") == 4000 &&
           s.at("jobs").at(0).at("gpus").at(0).at("samples").to_number<double>() >= 3;
  });
  EXPECT_EQ(running.at("jobs").at(0).at("final"), false);
  EXPECT_NEAR(Num(running, "carbon_grams"), 4000 / 3.6e6 * 400, 1e-9);

  ProcessResult table = Cli({"stats", "train"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  EXPECT_EQ(table.err, "");
  EXPECT_NE(table.out.find("train (running): GPU energy 4.00 kJ"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("train-0-0"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("UTIL MEAN/MAX"), std::string::npos) << table.out;

  std::ofstream(gate).put('x');
  json::value finished = WaitForStats(
      "train", [](const json::value& s) { return s.at("jobs").at(0).at("final") == true; });
  EXPECT_EQ(finished.at("status"), "done");
  EXPECT_EQ(Num(finished, "energy_joules"), 4000);
  // GPU utilization stayed at 2 %: the job's GPU was requested but never used.
  bool unused_note = false;
  for (const json::value& note : finished.at("jobs").at(0).at("notes").as_array()) {
    unused_note |= note.at("rule") == "unused_gpus";
  }
  EXPECT_TRUE(unused_note) << json::serialize(finished);
  ProcessResult final_table = Cli({"stats", "train"});
  ASSERT_EQ(final_table.exit_code, 0) << Describe(final_table);
  EXPECT_NE(final_table.out.find("train (done)"), std::string::npos) << final_table.out;
  EXPECT_NE(final_table.out.find("asked for 1 GPU, 1 stayed below 5 %"), std::string::npos)
      << final_table.out;
  std::printf("%s", final_table.out.c_str());

  // The waste report sums the notes of the project's ended jobs.
  ApiClient admin(server_->url(), kAdminToken);
  ApiReply waste = admin.Get("/api/project/main/waste?since=1d");
  ASSERT_EQ(waste.status, 200) << waste.body;
  const json::array& notes = waste.json.at("notes").as_array();
  ASSERT_EQ(notes.size(), 1u) << waste.body;
  EXPECT_EQ(notes[0].at("project_name"), "main");
  EXPECT_EQ(notes[0].at("jobs"), 1);
  const json::array& items = notes[0].at("items").as_array();
  ASSERT_EQ(items.size(), 5u) << waste.body;
  EXPECT_EQ(items[0].at("rule"), "unused_gpus");
  EXPECT_EQ(items[0].at("jobs"), 1);
  EXPECT_EQ(items[0].at("runs"), 1);
  EXPECT_EQ(items[0].at("example_runs"), json::array{"train"});
  // One GPU for the job's running time, at the instance's $3.60 an hour.
  const double held = Num(items[0], "held_seconds");
  const double duration = Num(finished.at("jobs").at(0), "duration_seconds");
  EXPECT_GT(held, 0);
  EXPECT_NEAR(held, duration, 1e-6);
  EXPECT_NEAR(Num(items[0], "cost"), duration / 3600 * 3.6, 1e-6);
  EXPECT_EQ(items[3].at("rule"), "memory_near_limit");
  EXPECT_EQ(items[3].at("jobs"), 0);
  // The same in the server-wide report, whatever its grouping.
  ApiReply all = admin.Get("/api/waste?since=1d&by=user");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.json.at("notes"), waste.json.at("notes"));

  ProcessResult report = Cli({"waste", "--since", "1d"});
  ASSERT_EQ(report.exit_code, 0) << Describe(report);
  EXPECT_NE(report.out.find("\nright-sizing notes of the 1 job that ended in the window:\n"
                            "PROJECT  NOTE                  JOBS  RUNS  GPU HOURS  COST"),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.out.find("\nmain     unused_gpus           1     1     "), std::string::npos)
      << report.out;
  EXPECT_EQ(report.out.find("memory_near_limit"), std::string::npos) << report.out;
  std::printf("%s", report.out.c_str());
  ProcessResult as_json = Cli({"waste", "--since", "1d", "--json"});
  ASSERT_EQ(as_json.exit_code, 0) << Describe(as_json);
  EXPECT_EQ(json::parse(as_json.out).at("notes"), waste.json.at("notes"));

  // Bad input: a clear 400 (one error line from the client), nothing else.
  ApiReply bad = admin.Get("/api/project/main/waste?since=0d");
  EXPECT_EQ(bad.status, 400) << bad.body;
  ProcessResult bad_cli = Cli({"waste", "--since", "soon"});
  EXPECT_EQ(bad_cli.exit_code, 1) << Describe(bad_cli);
  EXPECT_NE(bad_cli.err.find("'since'"), std::string::npos) << Describe(bad_cli);
  EXPECT_EQ(bad_cli.out, "");

  // A user outside the project sees none of its notes: not its report, not the server's, and not
  // in the report of a project of their own.
  ApiReply user = admin.Send("POST", "/api/users", R"({"name": "bob"})", "application/json");
  ASSERT_EQ(user.status, 201) << user.body;
  ApiClient bob(server_->url(), std::string(user.json.at("token").as_string()));
  EXPECT_EQ(bob.Get("/api/project/main/waste?since=1d").status, 403);
  EXPECT_EQ(bob.Get("/api/waste?since=1d").status, 403);
  ApiReply lab = bob.Send("POST", "/api/projects", R"({"name": "lab"})", "application/json");
  ASSERT_EQ(lab.status, 201) << lab.body;
  ApiReply own = bob.Get("/api/project/lab/waste?since=1d");
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(own.json.at("notes"), json::array()) << own.body;
}

TEST_F(CliStatsTest, AnUnknownRunIsOneErrorLineAndExitOne) {
  server_ = std::make_unique<ServerProcess>(
      data_.str(), server_home_.str(), kAdminToken, std::vector<std::string>{"--no-local-fleet"},
      std::map<std::string, std::string>{{"FLEETWATCH_NVML_LIBRARY", "/nonexistent/libnvml.so"}});
  ASSERT_TRUE(server_->started()) << server_->Output();
  ASSERT_EQ(Cli({"config", "--url", server_->url(), "--token", kAdminToken, "--project", "main"})
                .exit_code,
            0);
  for (std::vector<std::string> args : {std::vector<std::string>{"stats", "nope"},
                                        std::vector<std::string>{"stats", "nope", "--json"}}) {
    ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << Describe(r);
    EXPECT_NE(r.err.find("nope"), std::string::npos) << Describe(r);
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(CliStatsTest, AServerRefusesABadCarbonIntensityWithAClearMessage) {
  ProcessResult r = RunProcess(FLEETWATCH_BINARY,
                               {"server", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                                data_.str(), "--no-local-fleet"},
                               {{"HOME", server_home_.str()},
                                {"FLEETWATCH_CARBON_INTENSITY", "lots"},
                                {"FLEETWATCH_SERVER_ADMIN_TOKEN", kAdminToken}},
                               {}, 60);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("FLEETWATCH_CARBON_INTENSITY must be a number of grams of CO2e per kWh"),
            std::string::npos)
      << Describe(r);
}

}  // namespace
}  // namespace fleetwatch::testing
