// The host's DCGM text: the counters file, DcgmExporter against the fake dcgm-exporter (a real
// process serving fixture text), the poll reply's "dcgm" field, and the real `fleetwatch agent`
// managing the fake.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <set>
#include <sstream>

#include "agent/agent_api.h"
#include "agent/dcgm_counters.h"
#include "agent/dcgm_exporter.h"
#include "agent/job_env.h"
#include "agent/nvml_backend.h"
#include "agent/process_job_runtime.h"
#include "agent/test_helpers.h"
#include "http/client.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using fleetwatch::testing::ChildProcess;
using fleetwatch::testing::FreePort;
using fleetwatch::testing::ProcessResult;
using fleetwatch::testing::RunProcess;
using fleetwatch::testing::TempDir;
using std::chrono::milliseconds;
using testing::ReadFile;
using testing::ScopedEnv;
using testing::WaitUntil;
using testing::WriteFile;

const fs::path kDcgmTestdata = fs::path(AGENT_TESTDATA_DIR) / "dcgm";
const fs::path kFakeExporter = kDcgmTestdata / "fake-dcgm-exporter";
const fs::path kFourGpus = kDcgmTestdata / "four-gpus.txt";
const fs::path kMalformed = kDcgmTestdata / "malformed.txt";
const fs::path kFakeNvmlGpus = kDcgmTestdata / "fake-nvml-four-gpus.txt";
constexpr TimeMicros kStart = 1'700'000'000'000'000;

// One line of $FAKE_DCGM_STARTS: a start of the fake exporter.
struct FakeStart {
  pid_t pid = 0;
  std::vector<std::string> argv;

  // The argument after `flag`, or "" when absent.
  std::string Arg(const std::string& flag) const {
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == flag) return argv[i + 1];
    }
    return "";
  }
};

std::vector<FakeStart> ReadStarts(const fs::path& file) {
  std::vector<FakeStart> starts;
  std::istringstream lines(ReadFile(file));
  std::string line;
  while (std::getline(lines, line)) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec) continue;  // being written
    FakeStart start;
    start.pid = static_cast<pid_t>(v.at("pid").as_int64());
    for (const auto& arg : v.at("argv").as_array()) start.argv.emplace_back(arg.as_string());
    starts.push_back(std::move(start));
  }
  return starts;
}

// Gone: no such process, or a zombie whose parent does not reap it.
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
}

// Replaces a file in one step, so that the fake never serves half of it.
void ReplaceFile(const fs::path& file, const std::string& text) {
  WriteFile(fs::path(file) += ".new", text);
  fs::rename(fs::path(file) += ".new", file);
}

TEST(DcgmCountersFile, HasThe49FieldsWithTheirTypes) {
  const std::set<std::string> gauges = {"DCGM_FI_DEV_GPU_UTIL",
                                        "DCGM_FI_DEV_MEM_COPY_UTIL",
                                        "DCGM_FI_DEV_ENC_UTIL",
                                        "DCGM_FI_DEV_DEC_UTIL",
                                        "DCGM_FI_DEV_FB_FREE",
                                        "DCGM_FI_DEV_FB_USED",
                                        "DCGM_FI_DEV_SM_CLOCK",
                                        "DCGM_FI_DEV_MEM_CLOCK",
                                        "DCGM_FI_DEV_MEMORY_TEMP",
                                        "DCGM_FI_DEV_GPU_TEMP",
                                        "DCGM_FI_DEV_POWER_USAGE",
                                        "DCGM_FI_DEV_XID_ERRORS",
                                        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                                        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                                        "DCGM_FI_PROF_SM_ACTIVE",
                                        "DCGM_FI_PROF_SM_OCCUPANCY",
                                        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                                        "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
                                        "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
                                        "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
                                        "DCGM_FI_PROF_PIPE_INT_ACTIVE",
                                        "DCGM_FI_PROF_DRAM_ACTIVE"};
  const std::set<std::string> counters = {"DCGM_FI_PROF_PCIE_TX_BYTES",
                                          "DCGM_FI_PROF_PCIE_RX_BYTES",
                                          "DCGM_FI_PROF_NVLINK_RX_BYTES",
                                          "DCGM_FI_PROF_NVLINK_TX_BYTES",
                                          "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                                          "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
                                          "DCGM_FI_DEV_POWER_VIOLATION",
                                          "DCGM_FI_DEV_THERMAL_VIOLATION",
                                          "DCGM_FI_DEV_SYNC_BOOST_VIOLATION",
                                          "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
                                          "DCGM_FI_DEV_LOW_UTIL_VIOLATION",
                                          "DCGM_FI_DEV_RELIABILITY_VIOLATION",
                                          "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                                          "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                                          "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
                                          "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
                                          "DCGM_FI_DEV_RETIRED_SBE",
                                          "DCGM_FI_DEV_RETIRED_DBE",
                                          "DCGM_FI_DEV_RETIRED_PENDING",
                                          "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
                                          "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                                          "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
                                          "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
                                          "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
                                          "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
                                          "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
                                          "DCGM_FI_DEV_NVLINK_BANDWIDTH_L0"};
  ASSERT_EQ(gauges.size() + counters.size(), 49u);

  TempDir dir;
  const fs::path file = dir.path() / "dcgm-counters.csv";
  WriteFile(file, "old content that must go\n");
  ASSERT_TRUE(WriteDcgmCountersFile(file).ok());
  const std::string text = ReadFile(file);
  EXPECT_EQ(text, DcgmCountersCsv());

  // Parsed as dcgm-exporter does: '#' starts a comment line, fields are comma-separated.
  std::set<std::string> seen_gauges;
  std::set<std::string> seen_counters;
  std::istringstream lines(text);
  std::string line;
  int rows = 0;
  std::vector<std::string> labels;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("DCGM_FI_DRIVER_VERSION, label, ", 0) == 0) {
      labels.push_back(line);
      continue;
    }
    ++rows;
    std::vector<std::string> fields;
    std::stringstream row(line);
    std::string field;
    while (std::getline(row, field, ',')) fields.push_back(field);
    ASSERT_EQ(fields.size(), 3u) << line;
    ASSERT_EQ(fields[1].substr(0, 1), " ") << line;
    ASSERT_EQ(fields[2].substr(0, 1), " ") << line;
    std::string type = fields[1].substr(1);
    EXPECT_GT(fields[2].size(), 5u) << line;
    if (type == "gauge") {
      seen_gauges.insert(fields[0]);
    } else if (type == "counter") {
      seen_counters.insert(fields[0]);
    } else {
      ADD_FAILURE() << "type " << type << ": " << line;
    }
  }
  EXPECT_EQ(rows, 49);
  EXPECT_EQ(labels.size(), 1u);  // the driver version, as a label of every sample
  EXPECT_EQ(seen_gauges, gauges);
  EXPECT_EQ(seen_counters, counters);
  EXPECT_EQ(DcgmCounterFields().size(), 49u);

  // Nothing but the file itself is left in the directory.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  Status missing_dir = WriteDcgmCountersFile(dir.path() / "no" / "such" / "dir" / "x.csv");
  EXPECT_EQ(missing_dir.code(), StatusCode::kUnavailable);
  EXPECT_NE(missing_dir.message().find("no/such/dir"), std::string::npos) << missing_dir.message();
}

TEST(FindExecutable, LooksUpPathLikeAShell) {
  TempDir dir;
  WriteFile(dir.path() / "a" / "tool", "#!/bin/sh\n");  // not executable
  WriteFile(dir.path() / "b" / "tool", "#!/bin/sh\n");
  fs::permissions(dir.path() / "b" / "tool", fs::perms::owner_all);
  WriteFile(dir.path() / "c" / "tool" / "inside", "");  // a directory named like it
  fs::permissions(dir.path() / "c" / "tool", fs::perms::owner_all);
  const std::string a = (dir.path() / "a").string();
  const std::string b = (dir.path() / "b").string();
  const std::string c = (dir.path() / "c").string();

  EXPECT_EQ(FindExecutable("tool", a), std::nullopt);  // no x bit, even for root
  EXPECT_EQ(FindExecutable("tool", c + ":" + a + ":" + b), dir.path() / "b" / "tool");
  EXPECT_EQ(FindExecutable("tool", c), std::nullopt);
  EXPECT_EQ(FindExecutable("tool", ""), std::nullopt);
  EXPECT_EQ(FindExecutable("other", b), std::nullopt);
  EXPECT_EQ(FindExecutable("", b), std::nullopt);
  EXPECT_EQ(FindExecutable((dir.path() / "b" / "tool").string(), ""), dir.path() / "b" / "tool");
  EXPECT_EQ(FindExecutable("./nowhere/tool", b), std::nullopt);
}

TEST(DcgmExporterCreate, RefusesWhatCannotWork) {
  FakeClock clock(kStart);
  DcgmExporterOptions none;
  EXPECT_EQ(DcgmExporter::Create(none, clock).status().code(), StatusCode::kInvalidArgument);
  for (const char* url : {"https://127.0.0.1:9400/metrics", "127.0.0.1:9400", "http://",
                          "http://h:9400/metrics?x=1", "http://h:99999"}) {
    DcgmExporterOptions options;
    options.url = url;
    Result<std::unique_ptr<DcgmExporter>> created = DcgmExporter::Create(options, clock);
    EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument) << url;
  }
  DcgmExporterOptions no_data_dir;
  no_data_dir.executable = kFakeExporter;
  EXPECT_EQ(DcgmExporter::Create(no_data_dir, clock).status().code(), StatusCode::kInvalidArgument);
  DcgmExporterOptions zero;
  zero.url = "http://127.0.0.1:9400";
  zero.interval = milliseconds(0);
  EXPECT_FALSE(DcgmExporter::Create(zero, clock).ok());

  for (const auto& [url, scraped] : std::vector<std::pair<std::string, std::string>>{
           {"http://127.0.0.1:9400", "http://127.0.0.1:9400/metrics"},
           {"http://127.0.0.1:9400/", "http://127.0.0.1:9400/metrics"},
           {"http://10.0.0.5:9400/custom/path", "http://10.0.0.5:9400/custom/path"}}) {
    DcgmExporterOptions options;
    options.url = url;
    Result<std::unique_ptr<DcgmExporter>> created = DcgmExporter::Create(options, clock);
    ASSERT_TRUE(created.ok()) << url << ": " << created.status().ToString();
    EXPECT_EQ((*created)->scrape_url(), scraped);
    EXPECT_FALSE((*created)->managed());
    // Not started: nothing scraped yet.
    DcgmReport report = (*created)->Report();
    EXPECT_EQ(report.text, nullptr);
    EXPECT_EQ(report.collected_at, std::nullopt);
    EXPECT_EQ(report.error, "starting");
  }
}

class DcgmExporterTest : public ::testing::Test {
 protected:
  void SetUp() override { ReplaceFile(fixture_, ReadFile(kFourGpus)); }

  DcgmExporterOptions ManagedOptions() const {
    DcgmExporterOptions options;
    options.executable = kFakeExporter;
    options.data_dir = data_.path();
    options.port = FreePort();
    options.interval = milliseconds(100);
    options.env = CurrentEnvironment();  // with the FAKE_DCGM_* variables below
    options.restart_delay_min = milliseconds(50);
    options.restart_delay_max = milliseconds(400);
    return options;
  }

  std::unique_ptr<DcgmExporter> Make(DcgmExporterOptions options) {
    Result<std::unique_ptr<DcgmExporter>> created =
        DcgmExporter::Create(std::move(options), clock_);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? std::move(created).value() : nullptr;
  }

  // Waits until the report carries text collected at the fake clock's current time.
  static bool WaitForFreshText(const DcgmExporter& dcgm, const Clock& clock) {
    return WaitUntil([&] {
      DcgmReport report = dcgm.Report();
      return report.text != nullptr && report.collected_at == clock.Now();
    });
  }

  static bool WaitForError(const DcgmExporter& dcgm, const std::string& part) {
    return WaitUntil([&] {
      DcgmReport report = dcgm.Report();
      return report.text == nullptr && report.error.find(part) != std::string::npos;
    });
  }

  // An executable /bin/sh script in the test's directory.
  fs::path WriteScript(const std::string& name, const std::string& body) const {
    const fs::path file = dir_.path() / name;
    WriteFile(file, "#!/bin/sh\n" + body + "\n");
    fs::permissions(file, fs::perms::owner_all);
    return file;
  }

  // An agent API over `dcgm` (or none), with the fake NVML's four GPUs.
  std::unique_ptr<AgentApi> MakeApi(const DcgmExporter* dcgm) {
    gpus_ = OpenNvmlBackend(FAKE_NVML_LIBRARY);
    ProcessJobRuntimeOptions options;
    options.data_dir = data_.path();
    options.use_cgroups = false;
    runtime_ = NewProcessJobRuntime(options, clock_);
    return std::make_unique<AgentApi>(AgentIdentity{"agent-1", kStart, "t", std::nullopt},
                                      CollectInventory(*gpus_, CgroupMode::kNone), *runtime_,
                                      *gpus_, clock_, dcgm);
  }

  static http::Response PollResponse(AgentApi& api, std::map<std::string, std::string> query) {
    http::Request request;
    request.method = "GET";
    request.path = "/api/poll";
    request.target = "/api/poll";
    request.query = std::move(query);
    request.headers.emplace_back("authorization", "Bearer t");
    return api.Handle(request);
  }

  static json::value Poll(AgentApi& api, std::map<std::string, std::string> query,
                          int* status = nullptr) {
    http::Response response = PollResponse(api, std::move(query));
    if (status != nullptr) *status = response.status;
    return json::parse(response.body);
  }

  TempDir data_;
  TempDir dir_;
  const fs::path fixture_ = dir_.path() / "metrics.txt";
  const fs::path starts_ = dir_.path() / "starts.jsonl";
  ScopedEnv fixture_env_{"FAKE_DCGM_FIXTURE", fixture_.string()};
  ScopedEnv starts_env_{"FAKE_DCGM_STARTS", starts_.string()};
  ScopedEnv nvml_env_{"FAKE_NVML_FILE", kFakeNvmlGpus.string()};
  FakeClock clock_{kStart};
  std::unique_ptr<GpuBackend> gpus_;
  std::unique_ptr<JobRuntime> runtime_;
};

TEST_F(DcgmExporterTest, ManagedModeRunsTheExporterWithTheCountersFileAndServesItsText) {
  DcgmExporterOptions options = ManagedOptions();
  const uint16_t port = options.port;
  std::unique_ptr<DcgmExporter> dcgm = Make(options);
  ASSERT_NE(dcgm, nullptr);
  EXPECT_TRUE(dcgm->managed());
  EXPECT_EQ(dcgm->scrape_url(), "http://127.0.0.1:" + std::to_string(port) + "/metrics");
  dcgm->Start();

  ASSERT_TRUE(WaitUntil([&] { return ReadStarts(starts_).size() == 1; }));
  FakeStart start = ReadStarts(starts_).at(0);
  const fs::path counters = data_.path() / "dcgm-counters.csv";
  EXPECT_EQ(start.Arg("-f"), counters.string());
  EXPECT_EQ(start.Arg("-a"), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(start.Arg("-c"), "100");
  EXPECT_EQ(ReadFile(counters), DcgmCountersCsv());
  EXPECT_EQ(start.pid, dcgm->exporter_pid());
  EXPECT_EQ(::getpgid(start.pid), start.pid);  // its own process group
  EXPECT_EQ(ReadFile(data_.path() / "dcgm-exporter.pid"), std::to_string(start.pid) + "\n");

  ASSERT_TRUE(WaitForFreshText(*dcgm, clock_)) << dcgm->Report().error;
  DcgmReport report = dcgm->Report();
  EXPECT_EQ(*report.text, ReadFile(kFourGpus));
  EXPECT_EQ(report.collected_at, kStart);
  EXPECT_TRUE(report.error.empty());
  EXPECT_EQ(dcgm->restarts(), 0);
  // The fake's output goes to the log.
  EXPECT_TRUE(WaitUntil([&] {
    return ReadFile(data_.path() / "dcgm-exporter.log").find("listening on") != std::string::npos;
  }));

  // The poll reply: "dcgm" only with dcgm=1, whether or not metrics=1.
  std::unique_ptr<AgentApi> api = MakeApi(dcgm.get());
  json::value poll = Poll(*api, {{"metrics", "1"}, {"dcgm", "1"}});
  ASSERT_TRUE(poll.at("dcgm").is_object()) << json::serialize(poll);
  const json::object& field = poll.at("dcgm").as_object();
  EXPECT_EQ(field.size(), 2u) << json::serialize(poll);
  EXPECT_EQ(field.at("collected_at").as_int64(), kStart);
  EXPECT_EQ(field.at("text").as_string(), ReadFile(kFourGpus));
  EXPECT_EQ(Poll(*api, {{"dcgm", "1"}}).at("dcgm"), poll.at("dcgm"));
  for (const auto& query : std::vector<std::map<std::string, std::string>>{
           {}, {{"metrics", "1"}}, {{"metrics", "1"}, {"dcgm", "0"}}}) {
    int status = 0;
    json::value plain = Poll(*api, query, &status);
    EXPECT_EQ(status, 200);
    EXPECT_FALSE(plain.as_object().contains("dcgm")) << json::serialize(plain);
  }
  for (const char* bad : {"", "2", "true", "01"}) {
    int status = 0;
    json::value reply = Poll(*api, {{"metrics", "1"}, {"dcgm", bad}}, &status);
    EXPECT_EQ(status, 400) << bad;
    EXPECT_EQ(reply.at("error").at("code").as_string(), "invalid_argument");
    reply = Poll(*api, {{"metrics", "1"}, {"dcgm", "1"}, {"dcgm_raw", bad}}, &status);
    EXPECT_EQ(status, 400) << bad;
    EXPECT_EQ(reply.at("error").at("code").as_string(), "invalid_argument");
  }

  // dcgm_raw=1: the same text, verbatim after the JSON (whose "text" is empty), its length in
  // the Fleetwatch-Dcgm-Text-Bytes header. Without dcgm=1 there is no text and no header.
  const std::string text = ReadFile(kFourGpus);
  http::Response raw = PollResponse(*api, {{"metrics", "1"}, {"dcgm", "1"}, {"dcgm_raw", "1"}});
  ASSERT_EQ(raw.status, 200) << raw.body;
  ASSERT_EQ(raw.headers.size(), 1u);
  EXPECT_EQ(raw.headers[0].first, "Fleetwatch-Dcgm-Text-Bytes");
  EXPECT_EQ(raw.headers[0].second, std::to_string(text.size()));
  ASSERT_GT(raw.body.size(), text.size());
  EXPECT_EQ(raw.body.substr(raw.body.size() - text.size()), text);
  json::value head = json::parse(raw.body.substr(0, raw.body.size() - text.size()));
  EXPECT_EQ(head.at("dcgm"), (json::object{{"collected_at", kStart}, {"text", ""}}));
  EXPECT_EQ(head.at("jobs"), poll.at("jobs"));
  http::Response none = PollResponse(*api, {{"metrics", "1"}, {"dcgm_raw", "1"}});
  ASSERT_EQ(none.status, 200);
  EXPECT_TRUE(none.headers.empty());
  EXPECT_FALSE(json::parse(none.body).as_object().contains("dcgm")) << none.body;

  // Stop: SIGTERM, the fake ends at once; it is reaped and its pid file removed.
  const pid_t pid = dcgm->exporter_pid();
  dcgm->Stop();
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_EQ(dcgm->exporter_pid(), 0);
  EXPECT_FALSE(fs::exists(data_.path() / "dcgm-exporter.pid"));
  dcgm->Stop();  // idempotent
}

TEST_F(DcgmExporterTest, AKilledExporterIsRestartedAndItsTextComesBack) {
  std::unique_ptr<DcgmExporter> dcgm = Make(ManagedOptions());
  dcgm->Start();
  ASSERT_TRUE(WaitForFreshText(*dcgm, clock_)) << dcgm->Report().error;
  const pid_t first = dcgm->exporter_pid();
  ASSERT_GT(first, 0);

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return ReadStarts(starts_).size() == 2; }));
  // Every scrape of the first exporter is recorded by now; its text is stale from here on.
  clock_.Advance(1'000'000);
  std::vector<FakeStart> starts = ReadStarts(starts_);
  EXPECT_NE(starts[1].pid, first);
  EXPECT_EQ(starts[1].argv, starts[0].argv);
  EXPECT_TRUE(ProcessGone(first));
  ASSERT_TRUE(WaitForFreshText(*dcgm, clock_)) << dcgm->Report().error;
  EXPECT_EQ(*dcgm->Report().text, ReadFile(kFourGpus));
  EXPECT_EQ(dcgm->restarts(), 1);
  EXPECT_EQ(dcgm->exporter_pid(), starts[1].pid);
}

TEST_F(DcgmExporterTest, AnExporterThatKeepsFailingIsRestartedWithGrowingDelays) {
  // It records when it ran, says why it fails and exits 3.
  const fs::path runs = dir_.path() / "runs.txt";
  DcgmExporterOptions options = ManagedOptions();
  options.executable = WriteScript(
      "broken-exporter", "date +%s%N >> '" + runs.string() + "'\necho 'no DCGM here' >&2\nexit 3");
  std::unique_ptr<DcgmExporter> dcgm = Make(options);
  dcgm->Start();

  auto runs_so_far = [&] {
    std::vector<int64_t> times;
    std::istringstream lines(ReadFile(runs));
    for (std::string line; std::getline(lines, line);) times.push_back(std::stoll(line));
    return times;
  };
  ASSERT_TRUE(WaitUntil([&] { return runs_so_far().size() >= 5; })) << dcgm->restarts();
  ASSERT_TRUE(WaitForError(*dcgm, "exited with code 3"));
  EXPECT_GE(dcgm->restarts(), 4);
  DcgmReport report = dcgm->Report();
  EXPECT_EQ(report.collected_at, std::nullopt);
  EXPECT_NE(report.error.find("restarting in"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("dcgm-exporter.log"), std::string::npos) << report.error;
  EXPECT_NE(ReadFile(data_.path() / "dcgm-exporter.log").find("no DCGM here"), std::string::npos);
  dcgm->Stop();

  // Restarts are at least 50, 100, 200 and 400 ms apart (the delay doubles up to the maximum).
  std::vector<int64_t> times = runs_so_far();
  const int64_t min_gap_ms[] = {50, 100, 200, 400};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_GE((times[i + 1] - times[i]) / 1'000'000, min_gap_ms[i]) << "restart " << i + 1;
  }
}

TEST_F(DcgmExporterTest, AnExporterThatIgnoresSigtermIsKilledAfterTheGrace) {
  const fs::path ready = dir_.path() / "ready";
  DcgmExporterOptions options = ManagedOptions();
  options.executable = WriteScript("stubborn-exporter", "trap '' TERM\ntouch '" + ready.string() +
                                                            "'\nwhile :; do sleep 1; done");
  options.stop_grace = milliseconds(300);
  std::unique_ptr<DcgmExporter> dcgm = Make(options);
  dcgm->Start();
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(ready); }));
  const pid_t pid = dcgm->exporter_pid();
  ASSERT_GT(pid, 0);

  auto before = std::chrono::steady_clock::now();
  dcgm->Stop();
  EXPECT_GE(std::chrono::steady_clock::now() - before, milliseconds(300));
  EXPECT_TRUE(ProcessGone(pid));
}

TEST_F(DcgmExporterTest, BadAnswersAreErrorsAndTheAgentStaysHealthy) {
  // External mode: the test runs the fake itself; DcgmExporter starts nothing, even with an
  // executable given.
  const uint16_t port = FreePort();
  ChildProcess fake(kFakeExporter.string(),
                    {"-f", kFourGpus.string(), "-a", "127.0.0.1:" + std::to_string(port)}, {});
  ASSERT_TRUE(fake.WaitForOutput("listening on", 30)) << fake.Output();
  DcgmExporterOptions options = ManagedOptions();
  options.url = "http://127.0.0.1:" + std::to_string(port);
  options.max_text_bytes = 1 << 20;
  std::unique_ptr<DcgmExporter> dcgm = Make(options);
  EXPECT_FALSE(dcgm->managed());
  std::unique_ptr<AgentApi> api = MakeApi(dcgm.get());
  dcgm->Start();
  ASSERT_TRUE(WaitForFreshText(*dcgm, clock_)) << dcgm->Report().error;
  EXPECT_EQ(*dcgm->Report().text, ReadFile(kFourGpus));

  const std::string too_big = ReadFile(kFourGpus) + std::string(1 << 20, '#');
  struct Case {
    std::optional<std::string> fixture;  // nullopt: no fixture, the fake answers 500
    std::string error;
  };
  for (const Case& c :
       {Case{std::nullopt, "answered HTTP 500"}, Case{too_big, "exceeds 1048576 bytes"}}) {
    const int64_t errors = dcgm->scrape_errors();
    if (c.fixture) {
      ReplaceFile(fixture_, *c.fixture);
    } else {
      fs::remove(fixture_);
    }
    // Once a scrape failed, every earlier one is recorded; then the good text becomes stale.
    ASSERT_TRUE(WaitUntil([&] { return dcgm->scrape_errors() > errors; }));
    clock_.Advance(1'000'000);
    ASSERT_TRUE(WaitForError(*dcgm, c.error)) << c.error << ": " << dcgm->Report().error;
    DcgmReport report = dcgm->Report();
    EXPECT_EQ(report.error.rfind("dcgm-exporter: ", 0), 0u) << report.error;
    EXPECT_NE(report.error.find("127.0.0.1:" + std::to_string(port)), std::string::npos);
    EXPECT_EQ(report.collected_at, kStart);  // the newest good scrape is still reported

    int status = 0;
    json::value poll = Poll(*api, {{"metrics", "1"}, {"dcgm", "1"}}, &status);
    ASSERT_EQ(status, 200) << c.error;
    const json::object& field = poll.at("dcgm").as_object();
    EXPECT_EQ(field.size(), 2u) << json::serialize(poll);
    EXPECT_EQ(field.at("collected_at").as_int64(), kStart);
    EXPECT_NE(std::string(field.at("error").as_string()).find(c.error), std::string::npos);
  }
  EXPECT_GE(dcgm->scrape_errors(), 2);

  // Text that does not parse is passed on verbatim: the server judges it (and counts it).
  ReplaceFile(fixture_, ReadFile(kMalformed));
  ASSERT_TRUE(WaitUntil([&] {
    DcgmReport report = dcgm->Report();
    return report.text != nullptr && *report.text == ReadFile(kMalformed);
  }));

  clock_.Advance(1'000'000);
  ReplaceFile(fixture_, ReadFile(kFourGpus));
  ASSERT_TRUE(WaitForFreshText(*dcgm, clock_)) << dcgm->Report().error;
  EXPECT_EQ(*dcgm->Report().text, ReadFile(kFourGpus));

  // The exporter goes away: the newest text is served while it is at most 3 intervals old.
  const int64_t errors = dcgm->scrape_errors();
  EXPECT_EQ(fake.Stop(SIGTERM), 0);
  ASSERT_TRUE(WaitUntil([&] { return dcgm->scrape_errors() > errors; }));
  EXPECT_NE(dcgm->Report().text, nullptr);
  clock_.Advance(300'000);  // exactly 3 intervals
  EXPECT_NE(dcgm->Report().text, nullptr);
  clock_.Advance(1);
  ASSERT_TRUE(WaitForError(*dcgm, "cannot reach http://127.0.0.1:" + std::to_string(port)))
      << dcgm->Report().error;
  EXPECT_EQ(dcgm->Report().collected_at, kStart + 3'000'000);
  dcgm->Stop();

  // Only the test's own fake ever ran.
  EXPECT_EQ(dcgm->exporter_pid(), 0);
  EXPECT_EQ(dcgm->restarts(), 0);
  std::vector<FakeStart> starts = ReadStarts(starts_);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].pid, fake.pid());
  EXPECT_FALSE(fs::exists(data_.path() / "dcgm-counters.csv"));
}

// The real `fleetwatch agent`, with `dcgm-exporter` on its PATH being the fake.
class DcgmAgentProcessTest : public ::testing::Test {
 protected:
  DcgmAgentProcessTest() {
    fs::create_directories(bin_.path());
    fs::create_symlink(kFakeExporter, bin_.path() / "dcgm-exporter");
    fs::create_directories(empty_bin_.path());
    ReplaceFile(fixture_, ReadFile(kFourGpus));
  }

  std::map<std::string, std::string> Env(const fs::path& bin) const {
    return {{"FLEETWATCH_NVML_LIBRARY", FAKE_NVML_LIBRARY},
            {"FAKE_NVML_FILE", kFakeNvmlGpus.string()},
            {"FLEETWATCH_AGENT_TOKEN", "\x01unset"},
            {"HOME", dir_.str()},
            {"PATH", bin.string()},
            {"FAKE_DCGM_FIXTURE", fixture_.string()},
            {"FAKE_DCGM_STARTS", starts_.string()}};
  }

  std::vector<std::string> Args(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"agent",   "--host", "127.0.0.1",  "--port",    "0",
                                     "--token", "t",      "--data-dir", data_.str(), "--no-tls"};
    if (std::find(extra.begin(), extra.end(), "--dcgm-interval-seconds") == extra.end()) {
      extra.insert(extra.end(), {"--dcgm-interval-seconds", "1"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Starts an agent and returns a client for it (nullptr when it did not come up).
  std::unique_ptr<http::Client> StartAgent(std::unique_ptr<ChildProcess>& agent,
                                           const fs::path& bin, std::vector<std::string> extra) {
    agent = std::make_unique<ChildProcess>(FLEETWATCH_BINARY, Args(std::move(extra)), Env(bin));
    if (!agent->WaitForOutput("fleetwatch agent listening on", 60)) {
      ADD_FAILURE() << agent->Output();
      return nullptr;
    }
    json::value file = json::parse(ReadFile(data_.path() / "agent.json"));
    Result<http::Client> client =
        http::Client::Create("http://127.0.0.1:" + std::to_string(file.at("port").as_int64()));
    return client.ok() ? std::make_unique<http::Client>(std::move(client).value()) : nullptr;
  }

  // The "dcgm" field of GET /api/poll?metrics=1&dcgm=1 (a string with the body when absent).
  static json::value PollDcgm(http::Client& client) {
    Result<http::Response> r =
        client.Send("GET", "/api/poll?metrics=1&dcgm=1", "", {{"Authorization", "Bearer t"}});
    if (!r.ok() || r->status != 200) return r.ok() ? json::value(r->body) : json::value("");
    json::value poll = json::parse(r->body);
    return poll.as_object().contains("dcgm") ? poll.at("dcgm") : json::value(r->body);
  }

  static bool HasText(const json::value& dcgm) {
    return dcgm.is_object() && dcgm.as_object().contains("text");
  }

  TempDir data_;
  TempDir dir_;
  TempDir bin_;
  TempDir empty_bin_;
  const fs::path fixture_ = dir_.path() / "metrics.txt";
  const fs::path starts_ = dir_.path() / "starts.jsonl";
};

TEST_F(DcgmAgentProcessTest, RunsTheExporterOnPathServesItsTextAndStopsItOnSigterm) {
  const uint16_t port = FreePort();
  std::unique_ptr<ChildProcess> agent;
  const TimeMicros before = SystemClock::Get().Now();
  std::unique_ptr<http::Client> client =
      StartAgent(agent, bin_.path(), {"--dcgm-exporter-port", std::to_string(port)});
  ASSERT_NE(client, nullptr);

  ASSERT_TRUE(WaitUntil([&] { return ReadStarts(starts_).size() == 1; })) << agent->Output();
  FakeStart start = ReadStarts(starts_).at(0);
  EXPECT_EQ(start.Arg("-f"), (data_.path() / "dcgm-counters.csv").string());
  EXPECT_EQ(start.Arg("-a"), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(start.Arg("-c"), "1000");
  EXPECT_EQ(ReadFile(data_.path() / "dcgm-counters.csv"), DcgmCountersCsv());

  json::value dcgm;
  ASSERT_TRUE(WaitUntil([&] { return HasText(dcgm = PollDcgm(*client)); }))
      << json::serialize(dcgm) << agent->Output();
  EXPECT_EQ(dcgm.as_object().size(), 2u);
  EXPECT_EQ(dcgm.at("text").as_string(), ReadFile(kFourGpus));
  EXPECT_GE(dcgm.at("collected_at").as_int64(), before);
  EXPECT_LE(dcgm.at("collected_at").as_int64(), SystemClock::Get().Now());

  EXPECT_EQ(agent->Stop(SIGTERM, 60), 0) << agent->Output();
  EXPECT_TRUE(ProcessGone(start.pid));
  EXPECT_FALSE(fs::exists(data_.path() / "dcgm-exporter.pid"));
  EXPECT_EQ(ReadStarts(starts_).size(), 1u);
  EXPECT_NE(agent->Output().find("dcgm-exporter started, pid " + std::to_string(start.pid)),
            std::string::npos)
      << agent->Output();
}

TEST_F(DcgmAgentProcessTest, TheExporterOfAKilledAgentIsReplacedByTheNextAgent) {
  const uint16_t port = FreePort();
  std::unique_ptr<ChildProcess> agent;
  ASSERT_NE(StartAgent(agent, bin_.path(), {"--dcgm-exporter-port", std::to_string(port)}),
            nullptr);
  ASSERT_TRUE(WaitUntil([&] { return ReadStarts(starts_).size() == 1; })) << agent->Output();
  const pid_t orphan = ReadStarts(starts_).at(0).pid;
  agent->Stop(SIGKILL);
  EXPECT_FALSE(ProcessGone(orphan));  // nobody stopped it

  std::unique_ptr<http::Client> client =
      StartAgent(agent, bin_.path(), {"--dcgm-exporter-port", std::to_string(port)});
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(orphan); })) << agent->Output();
  ASSERT_TRUE(WaitUntil([&] { return ReadStarts(starts_).size() == 2; })) << agent->Output();
  EXPECT_TRUE(WaitUntil([&] { return HasText(PollDcgm(*client)); })) << agent->Output();
  EXPECT_NE(agent->Output().find("left running by an earlier agent"), std::string::npos);
  EXPECT_EQ(agent->Stop(SIGTERM, 60), 0) << agent->Output();
  EXPECT_TRUE(ProcessGone(ReadStarts(starts_).at(1).pid));
}

TEST_F(DcgmAgentProcessTest, AnExternalExporterIsScrapedAndNoneIsStarted) {
  const uint16_t port = FreePort();
  ChildProcess fake(
      kFakeExporter.string(),
      {"--collectors", kFourGpus.string(), "--address", "127.0.0.1:" + std::to_string(port)},
      Env(empty_bin_.path()));
  ASSERT_TRUE(fake.WaitForOutput("listening on", 30)) << fake.Output();
  std::unique_ptr<ChildProcess> agent;
  // dcgm-exporter is on PATH, but the URL wins.
  std::unique_ptr<http::Client> client = StartAgent(
      agent, bin_.path(), {"--dcgm-exporter-url", "http://127.0.0.1:" + std::to_string(port)});
  ASSERT_NE(client, nullptr);
  json::value dcgm;
  ASSERT_TRUE(WaitUntil([&] { return HasText(dcgm = PollDcgm(*client)); }))
      << json::serialize(dcgm) << agent->Output();
  EXPECT_EQ(dcgm.at("text").as_string(), ReadFile(kFourGpus));

  // It goes away: the agent reports why and stays healthy.
  EXPECT_EQ(fake.Stop(SIGTERM), 0);
  ASSERT_TRUE(WaitUntil([&] {
    dcgm = PollDcgm(*client);
    return dcgm.is_object() && dcgm.as_object().contains("error");
  })) << json::serialize(dcgm);
  EXPECT_NE(std::string(dcgm.at("error").as_string()).find("cannot reach"), std::string::npos);
  EXPECT_TRUE(dcgm.at("collected_at").is_int64());
  EXPECT_EQ(agent->Stop(SIGTERM, 60), 0) << agent->Output();
  std::vector<FakeStart> starts = ReadStarts(starts_);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].pid, fake.pid());
  EXPECT_FALSE(fs::exists(data_.path() / "dcgm-counters.csv"));
}

TEST_F(DcgmAgentProcessTest, WithoutAnExporterOrWithNoDcgmTheFieldIsNull) {
  struct Case {
    fs::path bin;
    std::vector<std::string> extra;
  };
  for (const Case& c : {Case{empty_bin_.path(), {}}, Case{bin_.path(), {"--no-dcgm"}}}) {
    std::unique_ptr<ChildProcess> agent;
    std::unique_ptr<http::Client> client = StartAgent(agent, c.bin, c.extra);
    ASSERT_NE(client, nullptr);
    json::value dcgm = PollDcgm(*client);
    EXPECT_TRUE(dcgm.is_null()) << json::serialize(dcgm);
    EXPECT_EQ(agent->Stop(SIGTERM, 60), 0) << agent->Output();
    EXPECT_FALSE(fs::exists(starts_));
    EXPECT_FALSE(fs::exists(data_.path() / "dcgm-counters.csv"));
  }
}

TEST_F(DcgmAgentProcessTest, BadDcgmFlagsAreRefused) {
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {"--dcgm-exporter-url", "https://127.0.0.1:9400/metrics"},
           {"--dcgm-exporter-url", "not a url"},
           {"--dcgm-interval-seconds", "0"},
           {"--dcgm-exporter-port", "0"}}) {
    ProcessResult r = RunProcess(FLEETWATCH_BINARY, Args(extra), Env(bin_.path()), "", 30);
    EXPECT_EQ(r.exit_code, 1) << extra[0] << " " << extra[1] << ": " << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(starts_));
  }
}

}  // namespace
}  // namespace fleetwatch::agent
