#include "agent/device_nodes.h"

#include <sys/stat.h>

#include <algorithm>

#include "agent/file_modes.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

void CheckNode(const fs::path& node, std::vector<std::string>& closed) {
  struct stat st = {};
  if (::stat(node.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return;
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != (S_IROTH | S_IWOTH)) {
    closed.push_back(node.string() + " (mode " + ModeText(st.st_mode) + ")");
  }
}

}  // namespace

std::vector<std::string> GpuDeviceNodesClosedToOthers(const fs::path& dev_root) {
  std::vector<std::string> closed;
  std::error_code ec;
  for (fs::directory_iterator it(dev_root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind("nvidia", 0) == 0) CheckNode(it->path(), closed);
  }
  for (fs::directory_iterator it(dev_root / "dri", ec), end; !ec && it != end; it.increment(ec)) {
    CheckNode(it->path(), closed);
  }
  CheckNode(dev_root / "kfd", closed);
  std::sort(closed.begin(), closed.end());
  return closed;
}

}  // namespace fleetwatch::agent
