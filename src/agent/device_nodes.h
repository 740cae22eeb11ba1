#pragma once

// Whether jobs running under other uids can open the host's GPU device nodes.

#include <filesystem>
#include <string>
#include <vector>

namespace fleetwatch::agent {

// The GPU device nodes under `dev_root` (normally "/dev": nvidia*, dri/*, kfd) whose mode does
// not let others read and write them, each as "<path> (mode 0660)". Directories (nvidia-caps,
// dri/by-path) are not looked into. Such nodes are normally 0666; a job under a uid of its own
// cannot use a GPU behind one that is not. Thread-safe.
std::vector<std::string> GpuDeviceNodesClosedToOthers(const std::filesystem::path& dev_root);

}  // namespace fleetwatch::agent
