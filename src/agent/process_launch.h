#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace fleetwatch::agent {

// The user a child process becomes before exec.
struct LaunchCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups; empty: none
};

struct LaunchSpec {
  std::string script;                                     // run as /bin/sh -c script
  std::map<std::string, std::string> env;                 // the whole environment
  std::optional<std::string> working_dir;                 // nullopt: the caller's
  std::filesystem::path log_file;                         // stdout and stderr, appended
  std::vector<std::filesystem::path> cgroup_procs_files;  // joined before exec
  std::optional<LaunchCredentials> credentials;           // nullopt: the caller's
};

// Forks a child that, before exec: puts itself in a new process group (its pid), clears the
// signal mask and resets SIGPIPE/SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGCHLD to default (the agent
// blocks or ignores some), sets umask 077, writes "0" to each cgroup.procs file; with
// `credentials`, drops every supplementary group but theirs, sets gid and then uid (real,
// effective and saved) and PR_SET_NO_NEW_PRIVS, each checked; then changes to working_dir (as the
// new user), points stdin at /dev/null and stdout+stderr at log_file (created 0600, O_APPEND),
// and marks every other descriptor close-on-exec; then execs /bin/sh. Between fork and exec only
// async-signal-safe calls are made. Returns the child's pid once exec succeeded (a close-on-exec
// status pipe tells). When a step before exec fails the child exits without exec'ing anything, is
// reaped, and the error is InvalidArgument for a working_dir problem ("working_dir /x: No such
// file or directory") and Unavailable otherwise ("cannot switch to uid 61000 gid 61000: ...").
// Does not reap a started child: the caller waitpid()s that pid. Thread-safe.
Result<pid_t> LaunchJobProcess(const LaunchSpec& spec);

}  // namespace fleetwatch::agent
