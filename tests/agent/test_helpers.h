#pragma once

// Helpers shared by the agent tests: files, environment overrides, cgroup availability, waits.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "agent/cgroup_tree.h"
#include "support/process.h"
#include "util/ids.h"

namespace fleetwatch::agent::testing {

inline void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets (or with nullopt unsets) an environment variable for the scope's lifetime.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// A cgroup directory name of its own, so that concurrent test processes never clean up each
// other's jobs.
inline std::string UniqueCgroupGroup() { return "fleetwatch-test-" + NewId().substr(0, 8); }

// True when this process may create job cgroups under `root` (root user, cgroups present).
inline bool CgroupsUsable(const std::filesystem::path& root = "/sys/fs/cgroup") {
  if (::geteuid() != 0) return false;
  CgroupTree tree(root, UniqueCgroupGroup());
  if (tree.mode() == CgroupMode::kNone) return false;
  Result<JobCgroup> probe = tree.Create("probe", {});
  if (!probe.ok()) return false;
  (void)probe->Remove();
  tree.RemoveLeftovers();
  return true;
}

using ::fleetwatch::testing::WaitUntil;

}  // namespace fleetwatch::agent::testing
