#pragma once

// CPU time, as the benchmarks measure it: of the calling thread, of this process (all its
// threads), and of another process by its pid (from /proc). Stateless functions; thread-safe.

#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace fleetwatch::bench {

// CPU time (user + system) of the calling thread, seconds.
inline double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// CPU time (user + system) of this process, all its threads, seconds (getrusage RUSAGE_SELF).
inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

// The fields of /proc/`pid`/stat after the process's name, from field 3 (the state) on (proc(5));
// empty when it cannot be read (the process is gone, say).
inline std::vector<std::string> ProcStatFields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');  // the name may hold spaces and parentheses
  if (name_end == std::string::npos) return {};
  std::istringstream fields(stat.substr(name_end + 1));
  std::vector<std::string> out;
  for (std::string f; fields >> f;) out.push_back(f);
  return out;
}

// CPU time (utime + stime) of process `pid`, seconds; -1 when it cannot be read.
inline double ProcessCpuSeconds(pid_t pid) {
  const std::vector<std::string> fields = ProcStatFields(pid);
  if (fields.size() < 13) return -1;
  // Fields 14 and 15 of proc(5), in clock ticks.
  return (std::stod(fields[11]) + std::stod(fields[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace fleetwatch::bench
