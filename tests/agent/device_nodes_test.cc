// GPU device nodes that jobs under their own uids could not open.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/device_nodes.h"
#include "agent/test_helpers.h"
#include "support/process.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;
using fleetwatch::testing::TempDir;

TEST(GpuDeviceNodes, ListsOnlyNodesOthersCannotReadAndWrite) {
  TempDir dev;
  auto node = [&](const std::string& name, mode_t mode) {
    testing::WriteFile(dev.path() / name, "");
    ::chmod((dev.path() / name).c_str(), mode);
  };
  node("nvidia0", 0666);
  node("nvidiactl", 0660);
  node("nvidia-uvm", 0666);
  node("dri/renderD128", 0660);
  node("dri/card0", 0666);
  node("kfd", 0604);
  node("sda", 0600);                                   // not a GPU node
  fs::create_directories(dev.path() / "nvidia-caps");  // directories are not looked into
  ::chmod((dev.path() / "nvidia-caps").c_str(), 0700);
  fs::create_directories(dev.path() / "dri" / "by-path");
  std::vector<std::string> closed = GpuDeviceNodesClosedToOthers(dev.path());
  EXPECT_EQ(closed, (std::vector<std::string>{
                        (dev.path() / "dri" / "renderD128").string() + " (mode 0660)",
                        (dev.path() / "kfd").string() + " (mode 0604)",
                        (dev.path() / "nvidiactl").string() + " (mode 0660)",
                    }));
}

TEST(GpuDeviceNodes, AHostWithoutGpuNodesHasNothingToSay) {
  TempDir dev;
  EXPECT_TRUE(GpuDeviceNodesClosedToOthers(dev.path()).empty());
  EXPECT_TRUE(GpuDeviceNodesClosedToOthers(dev.path() / "missing").empty());
}

}  // namespace
}  // namespace fleetwatch::agent
