// GPU readings (power, energy, temperature, throttle reasons, error counters, XID events,
// processes, RAS) end to end through the agent's poll reply: the fake NVML loaded through the
// real dlopen path (also as an old driver without the newer functions), and a fake AMD sysfs
// tree.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <fstream>

#include "agent/agent_api.h"
#include "agent/amd_sysfs_backend.h"
#include "agent/host_gpus.h"
#include "agent/nvml_backend.h"
#include "agent/process_job_runtime.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace json = boost::json;
using fleetwatch::testing::TempDir;
using testing::ScopedEnv;
using testing::WaitUntil;
using testing::WriteFile;

constexpr char kToken[] = "agent-token-for-tests";
constexpr TimeMicros kStart = 1'700'000'000'000'000;

// Every NVML reading set on GPU 0; GPU 1 has only the core ones (every other function answers
// NOT_SUPPORTED).
constexpr char kFullGpus[] =
    "GPU A|GPU-a|1000|100|55|power=251234|energy=987654321|temp=67|throttle=68"
    "|ecc=1,2,30,40|rows=5,1,1,0|retired=3,2,1|nvlink=1,2,3,4;down;5,6,7,8"
    "|procs=4242:1048576;4343:na\n"
    "GPU B|GPU-b|1000|200|7\n";

class GpuReadingsTest : public ::testing::Test {
 protected:
  // The agent API over `gpus` (opened by the caller, after the fake's files are in place).
  void Build(std::unique_ptr<GpuBackend> gpus) {
    api_.reset();
    runtime_.reset();
    gpus_ = std::move(gpus);
    ProcessJobRuntimeOptions options;
    options.data_dir = data_.path();
    options.use_cgroups = false;
    options.gpu_vendor = HostGpuVendor(*gpus_);
    runtime_ = NewProcessJobRuntime(options, clock_);
    api_ = std::make_unique<AgentApi>(AgentIdentity{"agent-1", kStart, kToken, std::nullopt},
                                      CollectInventory(*gpus_, CgroupMode::kNone), *runtime_,
                                      *gpus_, clock_);
  }

  // GET /api/poll?metrics=1 → its "gpus" list.
  json::array PollGpus() {
    http::Request request;
    request.method = "GET";
    request.target = "/api/poll?metrics=1";
    request.path = "/api/poll";
    request.query["metrics"] = "1";
    request.headers.emplace_back("authorization", std::string("Bearer ") + kToken);
    http::Response response = api_->Handle(request);
    EXPECT_EQ(response.status, 200) << response.body;
    json::value reply = json::parse(response.body);
    EXPECT_TRUE(reply.as_object().contains("gpus")) << response.body;
    return reply.at("gpus").as_array();
  }

  void InjectXid(int gpu, int xid) {
    std::ofstream(xid_file_, std::ios::app) << gpu << " " << xid << "\n";
  }

  TempDir dir_;
  TempDir data_;
  std::filesystem::path gpus_file_ = dir_.path() / "gpus.txt";
  std::filesystem::path xid_file_ = dir_.path() / "xids.txt";
  ScopedEnv nvml_file_{"FAKE_NVML_FILE", gpus_file_.string()};
  ScopedEnv xid_env_{"FAKE_NVML_XID_FILE", xid_file_.string()};
  FakeClock clock_{kStart};
  std::unique_ptr<GpuBackend> gpus_;
  std::unique_ptr<JobRuntime> runtime_;
  std::unique_ptr<AgentApi> api_;
};

TEST_F(GpuReadingsTest, EveryNvmlReadingReachesThePollReply) {
  WriteFile(gpus_file_, kFullGpus);
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 2u);
  const json::object& a = gpus[0].as_object();
  EXPECT_EQ(a.at("index").as_int64(), 0);
  EXPECT_EQ(a.at("uuid").as_string(), "GPU-a");
  EXPECT_EQ(a.at("util_percent").as_int64(), 55);
  EXPECT_EQ(a.at("memory_used_bytes").as_int64(), 100);
  EXPECT_EQ(a.at("power_mw").as_int64(), 251234);
  EXPECT_EQ(a.at("energy_mj").as_int64(), 987654321);
  EXPECT_EQ(a.at("temperature_c").as_int64(), 67);
  // 68 = 0x44: software power cap and hardware thermal slowdown.
  EXPECT_EQ(a.at("throttle_reasons").at("mask").as_int64(), 68);
  EXPECT_EQ(json::serialize(a.at("throttle_reasons").at("names")),
            R"(["sw_power_cap","hw_thermal_slowdown"])");
  EXPECT_EQ(json::serialize(a.at("ecc")),
            R"({"corrected_volatile":1,"uncorrected_volatile":2,"corrected_aggregate":30,)"
            R"("uncorrected_aggregate":40})");
  EXPECT_EQ(json::serialize(a.at("remapped_rows")),
            R"({"correctable":5,"uncorrectable":1,"pending":true,"failure":false})");
  EXPECT_EQ(json::serialize(a.at("retired_pages")),
            R"({"single_bit_ecc":3,"double_bit_ecc":2,"pending":true})");
  // Per active link: link 1 is down and left out.
  EXPECT_EQ(json::serialize(a.at("nvlink")),
            R"([{"link":0,"replay":1,"recovery":2,"crc_flit":3,"crc_data":4},)"
            R"({"link":2,"replay":5,"recovery":6,"crc_flit":7,"crc_data":8}])");
  EXPECT_EQ(json::serialize(a.at("processes")),
            R"([{"pid":4242,"used_memory_bytes":1048576},{"pid":4343}])");
  EXPECT_EQ(json::serialize(a.at("xid")), R"({"counts":[]})");
  EXPECT_FALSE(a.contains("ras"));

  // NOT_SUPPORTED everywhere but the core: only those readings, and XID events (supported).
  const json::object& b = gpus[1].as_object();
  EXPECT_EQ(json::serialize(b),
            R"({"index":1,"uuid":"GPU-b","util_percent":7,"memory_used_bytes":200,)"
            R"("xid":{"counts":[]}})");
}

TEST_F(GpuReadingsTest, ReadingsAreTakenAtEveryPoll) {
  WriteFile(gpus_file_, "GPU A|GPU-a|1000|100|55|power=1000|temp=40\n");
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  EXPECT_EQ(PollGpus()[0].at("power_mw").as_int64(), 1000);
  WriteFile(gpus_file_, "GPU A|GPU-a|1000|100|55|power=300000|temp=85\n");
  json::array later = PollGpus();
  EXPECT_EQ(later[0].at("power_mw").as_int64(), 300000);
  EXPECT_EQ(later[0].at("temperature_c").as_int64(), 85);
}

TEST_F(GpuReadingsTest, FailingAndUnsupportedFunctionsLeaveTheirReadingAbsent) {
  // "err": NVML_ERROR_UNKNOWN; missing keys: NOT_SUPPORTED; ECC only partly supported.
  WriteFile(gpus_file_,
            "GPU A|GPU-a|1000|100|55|power=err|energy=err|temp=err|throttle=err|rows=err"
            "|retired=err|nvlink=err|procs=err|ecc=1,2|xid=off\n");
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 1u);
  // The volatile ECC counts are there; the aggregate ones (past the list) are not.
  EXPECT_EQ(json::serialize(gpus[0]),
            R"({"index":0,"uuid":"GPU-a","util_percent":55,"memory_used_bytes":100,)"
            R"("ecc":{"corrected_volatile":1,"uncorrected_volatile":2}})");
}

TEST_F(GpuReadingsTest, ValuesOutsideTheirRangeAreLeftOut) {
  // ~0 is NVML's "not available" sentinel; 200 kW and 5000 °C are garbage.
  WriteFile(gpus_file_,
            "GPU A|GPU-a|1000|100|55|power=200000000|energy=18446744073709551615|temp=5000"
            "|ecc=18446744073709551615,0,4611686018427387905,1"
            "|procs=7:18446744073709551614\n");
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  EXPECT_EQ(json::serialize(PollGpus()[0]),
            R"({"index":0,"uuid":"GPU-a","util_percent":55,"memory_used_bytes":100,)"
            R"("ecc":{"uncorrected_volatile":0,"uncorrected_aggregate":1},)"
            R"("xid":{"counts":[]},"processes":[{"pid":7}]})");
}

TEST_F(GpuReadingsTest, AnOldDriverWithoutTheNewerFunctionsReportsWhatItHas) {
  WriteFile(gpus_file_, kFullGpus);
  Build(OpenNvmlBackend(FAKE_NVML_OLD_LIBRARY, clock_));
  ASSERT_EQ(gpus_->ListGpus().size(), 2u);
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(json::serialize(gpus[0]),
            R"({"index":0,"uuid":"GPU-a","util_percent":55,"memory_used_bytes":100})");
  EXPECT_EQ(json::serialize(gpus[1]),
            R"({"index":1,"uuid":"GPU-b","util_percent":7,"memory_used_bytes":200})");
  InjectXid(0, 79);  // no event functions: nothing waits, nothing counts
  EXPECT_FALSE(PollGpus()[0].as_object().contains("xid"));
}

TEST_F(GpuReadingsTest, AnInjectedXidIsCountedOnceWithItsTime) {
  WriteFile(gpus_file_, "GPU A|GPU-a|1|0|0\nGPU B|GPU-b|1|0|0\nGPU C|GPU-c|1|0|0|xid=off\n");
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  clock_.Set(kStart + 7'000'000);
  InjectXid(1, 79);
  json::array gpus;
  ASSERT_TRUE(WaitUntil([&] {
    gpus = PollGpus();
    return gpus[1].at("xid").at("counts").as_array().size() == 1;
  }));
  EXPECT_EQ(json::serialize(gpus[1].at("xid")),
            R"({"counts":[{"xid":79,"count":1}],"last":79,"last_at":1700000007000000})");
  EXPECT_EQ(json::serialize(gpus[0].at("xid")), R"({"counts":[]})");
  EXPECT_FALSE(gpus[2].as_object().contains("xid"));  // this GPU has no XID events

  // Two more on GPU 1 later: counted per XID number, the newest one and its time kept. The
  // first is still counted once.
  clock_.Set(kStart + 9'000'000);
  InjectXid(1, 13);
  InjectXid(1, 79);
  ASSERT_TRUE(WaitUntil([&] {
    gpus = PollGpus();
    return gpus[1].at("xid").at("counts").as_array().size() == 2 &&
           gpus[1].at("xid").at("counts").at(1).at("count").as_int64() == 2;
  }));
  EXPECT_EQ(json::serialize(gpus[1].at("xid")),
            R"({"counts":[{"xid":13,"count":1},{"xid":79,"count":2}],"last":79,)"
            R"("last_at":1700000009000000})");
  // An event for a device the agent does not know is dropped.
  InjectXid(7, 31);
  InjectXid(0, 48);
  ASSERT_TRUE(WaitUntil([&] {
    gpus = PollGpus();
    return gpus[0].at("xid").at("counts").as_array().size() == 1;
  }));
  EXPECT_EQ(gpus[1].at("xid").at("counts").as_array().size(), 2u);
  EXPECT_EQ(gpus[0].at("xid").at("last").as_int64(), 48);
}

TEST_F(GpuReadingsTest, AGpuThatCannotBeOpenedCarriesOnlyItsError) {
  WriteFile(gpus_file_, kFullGpus);
  Build(OpenNvmlBackend(FAKE_NVML_LIBRARY, clock_));
  WriteFile(gpus_file_, "GPU A|GPU-a|1000|100|55\n");  // GPU 1 is gone
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(json::serialize(gpus[1]),
            R"({"index":1,"uuid":"GPU-b","error":"NVML cannot open GPU 1"})");
}

TEST_F(GpuReadingsTest, AmdReadingsFromSysfsAndHwmon) {
  auto drm = dir_.path() / "sys" / "class" / "drm";
  auto card0 = drm / "card0" / "device";
  WriteFile(card0 / "vendor", "0x1002\n");
  WriteFile(card0 / "unique_id", "amd-0\n");
  WriteFile(card0 / "mem_info_vram_total", "68702699520\n");
  WriteFile(card0 / "mem_info_vram_used", "1048576\n");
  WriteFile(card0 / "gpu_busy_percent", "42\n");
  WriteFile(card0 / "hwmon" / "hwmon3" / "power1_average", "287000000\n");  // µW
  WriteFile(card0 / "hwmon" / "hwmon3" / "power1_input", "1\n");            // power1_average wins
  WriteFile(card0 / "hwmon" / "hwmon3" / "energy1_input", "123456789\n");   // µJ
  WriteFile(card0 / "hwmon" / "hwmon3" / "temp1_input", "61500\n");         // m°C
  WriteFile(card0 / "ras" / "umc_err_count", "ue: 2\nce: 17\n");
  WriteFile(card0 / "ras" / "gfx_err_count", "ue: 0\nce: 0\n");
  WriteFile(card0 / "ras" / "sdma_err_count", "garbage\n");
  WriteFile(card0 / "ras" / "features", "feature mask: 0x3fff\n");  // not a counter
  // A card with nothing but its busy percentage: no hwmon, no RAS directory.
  auto card1 = drm / "card1" / "device";
  WriteFile(card1 / "vendor", "0x1002\n");
  WriteFile(card1 / "gpu_busy_percent", "3\n");
  // One whose hwmon has only power1_input, and RAS without counters.
  auto card2 = drm / "card2" / "device";
  WriteFile(card2 / "vendor", "0x1002\n");
  WriteFile(card2 / "hwmon" / "hwmon0" / "power1_input", "90000000\n");
  WriteFile(card2 / "ras" / "features", "feature mask: 0x0\n");

  Build(OpenHostGpuBackend("/nonexistent/libnvidia-ml.so.1", dir_.path() / "sys"));
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 3u);
  EXPECT_EQ(json::serialize(gpus[0]),
            R"({"index":0,"uuid":"amd-0","util_percent":42,"memory_used_bytes":1048576,)"
            R"("power_mw":287000,"energy_mj":123456,"temperature_c":61,)"
            R"("ras":[{"block":"gfx","correctable":0,"uncorrectable":0},)"
            R"({"block":"sdma"},{"block":"umc","correctable":17,"uncorrectable":2}]})");
  EXPECT_EQ(json::serialize(gpus[1]), R"({"index":1,"uuid":"amd-card1","util_percent":3})");
  EXPECT_EQ(json::serialize(gpus[2]),
            R"({"index":2,"uuid":"amd-card2","power_mw":90000,"ras":[]})");
}

// The AMD fixture of tests/agent/testdata/amd_ras (umc: 3 uncorrectable RAS errors) gives
// exactly the reading of amd_ras/reading.json, which the server's health test classifies.
TEST_F(GpuReadingsTest, AmdRasFixtureGivesTheSharedReading) {
  const std::filesystem::path fixture = std::filesystem::path(AGENT_TESTDATA_DIR) / "amd_ras";
  Build(OpenHostGpuBackend("/nonexistent/libnvidia-ml.so.1", fixture / "sys"));
  json::array gpus = PollGpus();
  ASSERT_EQ(gpus.size(), 1u);
  std::ifstream in(fixture / "reading.json");
  std::string expected;
  std::getline(in, expected);
  EXPECT_EQ(json::serialize(gpus[0]), expected);
}

TEST_F(GpuReadingsTest, NoGpusAnEmptyList) {
  Build(OpenNvmlBackend("/nonexistent/libnvidia-ml.so.1", clock_));
  EXPECT_TRUE(PollGpus().empty());
}

TEST(ThrottleReasons, NamesEachKnownBit) {
  EXPECT_TRUE(model::ThrottleReasonNames(0).empty());
  EXPECT_EQ(model::ThrottleReasonNames(0x1ff),
            (std::vector<std::string>{"gpu_idle", "applications_clocks_setting", "sw_power_cap",
                                      "hw_slowdown", "sync_boost", "sw_thermal_slowdown",
                                      "hw_thermal_slowdown", "hw_power_brake_slowdown",
                                      "display_clock_setting"}));
  EXPECT_EQ(model::ThrottleReasonNames(0x200 | 0x8),
            (std::vector<std::string>{"hw_slowdown"}));  // unnamed bits are skipped
}

}  // namespace
}  // namespace fleetwatch::agent
