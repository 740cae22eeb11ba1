// GPU inventory through the real dlopen path with a fake NVML library, and AMD GPUs from a fake
// sysfs tree.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "agent/agent_json.h"
#include "agent/amd_sysfs_backend.h"
#include "agent/host_gpus.h"
#include "agent/inventory.h"
#include "agent/nvml_backend.h"
#include "agent/test_helpers.h"
#include "model/json_text.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

using fleetwatch::testing::TempDir;
using testing::ReadFile;
using testing::ScopedEnv;
using testing::WriteFile;

class FakeNvmlTest : public ::testing::Test {
 protected:
  void SetGpus(const std::string& lines) { WriteFile(file_, lines); }

  TempDir dir_;
  std::filesystem::path file_ = dir_.path() / "gpus.txt";
  ScopedEnv env_{"FAKE_NVML_FILE", file_.string()};
};

TEST_F(FakeNvmlTest, ListsGpusWithNamesUuidsAndMemory) {
  SetGpus(
      "NVIDIA H100 80GB HBM3|GPU-aaaa|85899345920|1024|10\n"
      "NVIDIA H100 80GB HBM3|GPU-bbbb|85899345920|2048|20\n");
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend(FAKE_NVML_LIBRARY);
  std::vector<model::Gpu> gpus = nvml->ListGpus();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0].index, 0);
  EXPECT_EQ(gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(gpus[0].uuid, "GPU-aaaa");
  EXPECT_EQ(gpus[0].memory_bytes, 85899345920);
  EXPECT_EQ(gpus[0].vendor, "nvidia");
  EXPECT_EQ(gpus[1].index, 1);
  EXPECT_EQ(gpus[1].uuid, "GPU-bbbb");
}

TEST_F(FakeNvmlTest, SampleReadsCurrentUtilisationAndMemory) {
  SetGpus("A|GPU-a|1000|100|5\nB|GPU-b|1000|200|7\n");
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend(FAKE_NVML_LIBRARY);
  Result<GpuSample> before = nvml->Sample(1);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->util_percent, 7);
  EXPECT_EQ(before->memory_used_bytes, 200);
  SetGpus("A|GPU-a|1000|100|5\nB|GPU-b|1000|900|93\n");
  Result<GpuSample> after = nvml->Sample(1);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->util_percent, 93);
  EXPECT_EQ(after->memory_used_bytes, 900);
  EXPECT_EQ(nvml->Sample(2).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(nvml->Sample(-1).status().code(), StatusCode::kNotFound);
}

TEST_F(FakeNvmlTest, HostileNamesPassThroughAsDataAndStayValidJson) {
  SetGpus("Tesla \"quoted\"\\nsecond line <img src=x onerror=alert(1)>|GPU-<script>|1|0|0\n");
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend(FAKE_NVML_LIBRARY);
  std::vector<model::Gpu> gpus = nvml->ListGpus();
  ASSERT_EQ(gpus.size(), 1u);
  const std::string name = "Tesla \"quoted\"\nsecond line <img src=x onerror=alert(1)>";
  EXPECT_EQ(gpus[0].name, name);
  EXPECT_EQ(gpus[0].uuid, "GPU-<script>");

  HostInventory inventory;
  inventory.gpus = gpus;
  std::string text = model::SerializeJson(InventoryJson(inventory, "id"));
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  EXPECT_EQ(parsed.at("gpus").at(0).at("name").as_string(), name);
}

TEST_F(FakeNvmlTest, UnterminatedAndInvalidUtf8NamesAreBounded) {
  SetGpus("@unterminated|GPU-a|1|0|0\nbad \\xff\\xfe byte|GPU-b|1|0|0\n");
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend(FAKE_NVML_LIBRARY);
  std::vector<model::Gpu> gpus = nvml->ListGpus();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_LE(gpus[0].name.size(), 256u);
  EXPECT_EQ(gpus[0].name.find_first_not_of('A'), std::string::npos);
  EXPECT_EQ(gpus[1].name, "bad \xEF\xBF\xBD\xEF\xBF\xBD byte");
}

TEST_F(FakeNvmlTest, FailingInitMeansNoGpus) {
  SetGpus("A|GPU-a|1|0|0\n");
  ScopedEnv fail("FAKE_NVML_INIT_FAIL", "1");
  EXPECT_TRUE(OpenNvmlBackend(FAKE_NVML_LIBRARY)->ListGpus().empty());
}

TEST(NvmlBackend, MissingLibraryMeansNoGpus) {
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend("/nonexistent/libnvidia-ml.so.1");
  EXPECT_TRUE(nvml->ListGpus().empty());
  EXPECT_EQ(nvml->Sample(0).status().code(), StatusCode::kNotFound);
}

TEST(NvmlBackend, LibraryWithoutNvmlFunctionsMeansNoGpus) {
  std::unique_ptr<GpuBackend> nvml = OpenNvmlBackend(NOT_NVML_LIBRARY);
  EXPECT_TRUE(nvml->ListGpus().empty());
}

TEST(NvmlBackend, LibraryComesFromTheEnvironment) {
  {
    ScopedEnv env("FLEETWATCH_NVML_LIBRARY", "/x/libfake.so");
    EXPECT_EQ(DefaultNvmlLibrary(), "/x/libfake.so");
  }
  ScopedEnv env("FLEETWATCH_NVML_LIBRARY", std::nullopt);
  EXPECT_EQ(DefaultNvmlLibrary(), "libnvidia-ml.so.1");
}

// A sysfs tree with two AMD cards, a connector entry, and an NVIDIA card that must be skipped.
class AmdSysfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto drm = dir_.path() / "class" / "drm";
    auto card0 = drm / "card0" / "device";
    WriteFile(card0 / "vendor", "0x1002\n");
    WriteFile(card0 / "device", "0x740f\n");
    WriteFile(card0 / "product_name", "AMD Instinct MI210\n");
    WriteFile(card0 / "unique_id", "abc123\n");
    WriteFile(card0 / "mem_info_vram_total", "68702699520\n");
    WriteFile(card0 / "mem_info_vram_used", "1048576\n");
    WriteFile(card0 / "gpu_busy_percent", "42\n");
    WriteFile(drm / "card0-DP-1" / "device" / "vendor", "0x1002\n");
    WriteFile(drm / "card1" / "device" / "vendor", "0x10de\n");
    auto card2 = drm / "card2" / "device";
    WriteFile(card2 / "vendor", "0x1002\n");
    WriteFile(card2 / "device", "0x73bf\n");
    WriteFile(card2 / "mem_info_vram_total", "17163091968\n");
    WriteFile(card2 / "mem_info_vram_used", "5\n");
    WriteFile(card2 / "gpu_busy_percent", "250\n");  // out of range: clamped
    auto card10 = drm / "card10" / "device";
    WriteFile(card10 / "vendor", "0x1002\n");
    WriteFile(card10 / "device", "0x1111\n");
  }

  TempDir dir_;
};

TEST_F(AmdSysfsTest, ListsAmdCardsInCardOrder) {
  std::unique_ptr<GpuBackend> amd = OpenAmdSysfsBackend(dir_.path());
  std::vector<model::Gpu> gpus = amd->ListGpus();
  ASSERT_EQ(gpus.size(), 3u);
  EXPECT_EQ(gpus[0].index, 0);
  EXPECT_EQ(gpus[0].name, "AMD Instinct MI210");
  EXPECT_EQ(gpus[0].uuid, "abc123");
  EXPECT_EQ(gpus[0].memory_bytes, 68702699520);
  EXPECT_EQ(gpus[0].vendor, "amd");
  EXPECT_EQ(gpus[1].index, 1);
  EXPECT_EQ(gpus[1].name, "AMD GPU 0x73bf");
  EXPECT_EQ(gpus[1].uuid, "amd-card2");
  EXPECT_EQ(gpus[2].uuid, "amd-card10");  // card10 after card2: numeric order
  EXPECT_EQ(gpus[2].memory_bytes, 0);
}

TEST_F(AmdSysfsTest, SampleReadsBusyPercentAndVramUsed) {
  std::unique_ptr<GpuBackend> amd = OpenAmdSysfsBackend(dir_.path());
  Result<GpuSample> first = amd->Sample(0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->util_percent, 42);
  EXPECT_EQ(first->memory_used_bytes, 1048576);
  Result<GpuSample> second = amd->Sample(1);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->util_percent, 100);
  EXPECT_EQ(amd->Sample(2).status().code(), StatusCode::kUnavailable);  // no files
  EXPECT_EQ(amd->Sample(3).status().code(), StatusCode::kNotFound);
}

TEST_F(AmdSysfsTest, HostBackendFallsBackToAmdWithoutNvml) {
  std::unique_ptr<GpuBackend> host = OpenHostGpuBackend("/nonexistent/libnvml.so", dir_.path());
  EXPECT_EQ(host->ListGpus().size(), 3u);
  EXPECT_EQ(HostGpuVendor(*host), "amd");
}

TEST(HostGpus, NvidiaWinsWhenNvmlHasGpus) {
  TempDir dir;
  WriteFile(dir.path() / "gpus.txt", "A|GPU-a|1|0|0\n");
  ScopedEnv env("FAKE_NVML_FILE", (dir.path() / "gpus.txt").string());
  std::unique_ptr<GpuBackend> host = OpenHostGpuBackend(FAKE_NVML_LIBRARY, dir.path());
  EXPECT_EQ(HostGpuVendor(*host), "nvidia");
  std::unique_ptr<GpuBackend> none = OpenHostGpuBackend("/nonexistent.so", dir.path());
  EXPECT_TRUE(none->ListGpus().empty());
  EXPECT_EQ(HostGpuVendor(*none), "");
}

TEST(Inventory, ParsesMemTotal) {
  EXPECT_EQ(ParseMemTotal("MemTotal:       16303932 kB\nMemFree: 1 kB\n"), 16303932LL * 1024);
  EXPECT_EQ(ParseMemTotal("MemFree: 1 kB\nMemTotal: 2 kB\n"), 2048);
  EXPECT_EQ(ParseMemTotal("MemFree: 1 kB\n"), std::nullopt);
  EXPECT_EQ(ParseMemTotal("MemTotal: lots kB\n"), std::nullopt);
  EXPECT_EQ(ParseMemTotal("XMemTotal: 2 kB\n"), std::nullopt);
}

TEST(Inventory, CollectsThisHost) {
  std::unique_ptr<GpuBackend> none = OpenNvmlBackend("/nonexistent.so");
  HostInventory inventory = CollectInventory(*none, CgroupMode::kV1);
  EXPECT_FALSE(inventory.hostname.empty());
  EXPECT_GE(inventory.cpus, 1);
  EXPECT_GT(inventory.memory_bytes, 0);
  EXPECT_EQ(inventory.cgroup, CgroupMode::kV1);
  EXPECT_TRUE(inventory.gpus.empty());
}

}  // namespace
}  // namespace fleetwatch::agent
