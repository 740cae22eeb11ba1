#pragma once

// Job directories: `<jobs root>/<job id>`, each the job's HOME and default working directory,
// owned by the job's uid with mode 0700 under a jobs root that job users may traverse but not
// list (0711, root's, when the agent is root). Nothing the agent itself keeps lives there: a job
// owns its directory and could swap any file in it for a symlink, so the agent never follows a
// path inside one.

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "util/status.h"

namespace fleetwatch::agent {

// Prepares the jobs root: creates it (missing parents 0755) and refuses a symlink or anything
// but a directory. When `agent_is_root`: it must be root's and is set to mode 0711. When
// `others_must_reach` (jobs run under uids other than the agent's): every ancestor must be
// searchable by others (o+x), else FailedPrecondition naming the first that is not. Thread-safe.
Status PrepareJobsRoot(const std::filesystem::path& root, bool agent_is_root,
                       bool others_must_reach);

// Creates `<root>/<job_id>` afresh (one left by an earlier agent is removed first), mode 0700,
// owned by `uid`:`gid` (changed only when they differ from the caller's). InvalidArgument for a
// job id that is not a safe file name; Unavailable with the reason otherwise. Thread-safe.
Result<std::filesystem::path> CreateJobDirectory(const std::filesystem::path& root,
                                                 const std::string& job_id, uid_t uid, gid_t gid);

// Removes `<root>/<job_id>` and everything in it, descriptor-relative (openat with O_NOFOLLOW,
// unlinkat) so that no symlink inside is ever followed, even one swapped in meanwhile. Ok when it
// does not exist. A tree it cannot remove entirely (e.g. nested deeper than 512 levels) is left
// owned by the caller with mode 0700, out of its former owner's reach, and reported Unavailable.
// Thread-safe.
Status RemoveJobDirectory(const std::filesystem::path& root, const std::string& job_id);

}  // namespace fleetwatch::agent
