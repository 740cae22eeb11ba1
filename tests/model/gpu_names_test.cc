#include "model/gpu_names.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace fleetwatch::model {
namespace {

// Names as NVML reports them, with the label value dstack exports for each.
TEST(ShortGpuName, NvidiaNamesBecomeDstackShortNames) {
  const std::pair<std::string, std::string> cases[] = {
      {"NVIDIA GeForce RTX 4060 Ti", "RTX4060Ti"},
      {"NVIDIA GeForce RTX 4060", "RTX4060"},
      {"NVIDIA RTX 4000 Ada Generation", "RTX4000Ada"},
      {"NVIDIA L4", "L4"},
      {"NVIDIA GH200 120GB", "GH200"},
      {"NVIDIA A100-SXM4-80GB", "A100"},
      {"NVIDIA A100 80GB PCIe", "A100"},
      {"NVIDIA A10G", "A10G"},
      {"NVIDIA L40S", "L40S"},
      {"NVIDIA H100 NVL", "H100NVL"},
      {"NVIDIA H100 80GB HBM3", "H100"},
      {"NVIDIA H200", "H200"},
      {"Tesla T4", "T4"},
      {"Tesla V100-SXM2-16GB", "V100"},
      {"Tesla P100-PCIE-16GB", "P100"},
      {"NVIDIA GeForce RTX 2070 Super", "RTX2070SUPER"},
      {"NVIDIA GeForce RTX 4070 Ti SUPER", "RTX4070TiSUPER"},
      {"NVIDIA RTX A6000", "A6000"},
      {"NVIDIA RTX A4000", "A4000"},
      {"Quadro RTX 8000", "RTX8000"},
      {"NVIDIA B200", "B200"},
      {"NVIDIA Graphics Device", "GraphicsDevice"},  // no known model: without spaces
      {"", ""},
  };
  for (const auto& [reported, expected] : cases) {
    EXPECT_EQ(ShortNvidiaGpuName(reported), expected) << reported;
    EXPECT_EQ(ShortGpuName("nvidia", reported), expected) << reported;
  }
}

TEST(ShortGpuName, AmdMarketNamesBecomeModels) {
  const std::pair<std::string, std::string> cases[] = {
      {"MI300X-O", "MI300X"},
      {"Instinct MI210", "MI210"},
      {"AMD INSTINCT MI250 (MCM) OAM AC MBA", "MI250"},
      {"MI300A", "MI300A"},
      {"Instinct MI325X", "MI325X"},
      {"AMD Instinct MI300X", "MI300X"},
      {"AMD Radeon PRO W7900", "AMD Radeon PRO W7900"},
      {"MI3000", "MI3000"},
      {"MI300X-", "MI300X-"},
      {"MI", "MI"},
  };
  for (const auto& [reported, expected] : cases) {
    EXPECT_EQ(ShortAmdGpuName(reported), expected) << reported;
    EXPECT_EQ(ShortGpuName("amd", reported), expected) << reported;
  }
}

TEST(ShortGpuName, IntelGaudiModelsBecomeMarketNames) {
  EXPECT_EQ(ShortIntelAcceleratorName("HL-225"), "Gaudi2");
  EXPECT_EQ(ShortIntelAcceleratorName("HL-225B"), "Gaudi2");
  EXPECT_EQ(ShortIntelAcceleratorName("HL-325L"), "Gaudi3");
  EXPECT_EQ(ShortIntelAcceleratorName("HL-338"), "Gaudi3");
  EXPECT_EQ(ShortIntelAcceleratorName("HL-1000"), "HL-1000");
  EXPECT_EQ(ShortGpuName("intel", "HL-205"), "Gaudi");
}

TEST(ShortGpuName, OtherVendorsKeepTheReportedName) {
  EXPECT_EQ(ShortGpuName("", "NVIDIA H100 80GB HBM3"), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(ShortGpuName("acme", "X1 \"quoted\"\n"), "X1 \"quoted\"\n");
}

}  // namespace
}  // namespace fleetwatch::model
