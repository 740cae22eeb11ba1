#pragma once

// Which OS user a job runs as. When the agent is root, every job gets an unprivileged uid of its
// own from a range (like systemd's DynamicUser: no passwd entry), or one named user for all
// jobs, or root only when explicitly allowed; otherwise jobs run as the agent's user. See
// docs/agent-api.md, "Who a job runs as".

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::agent {

// The credentials a job process gets. `switch_user` false: it keeps the agent's (no setuid).
struct JobIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups after the switch (empty: none)
  std::string user_name;      // USER and LOGNAME of the job
  bool switch_user = false;
  // The uid belongs to this job alone while it lives: every process with it is the job's, so
  // ending the job may kill them all (KillProcessesOfUid).
  bool exclusive = false;
};

// An inclusive uid range such as 61000-61999.
struct UidRange {
  uid_t first = 61000;
  uid_t last = 61999;
};

// "FIRST-LAST" with 1 <= FIRST <= LAST < 2^31 and at most 1,000,000 uids; InvalidArgument with
// the reason otherwise. Pure.
Result<UidRange> ParseUidRange(std::string_view text);

// The uids of a /proc/<pid>/status text: the four numbers of its "Uid:" line (real, effective,
// saved, filesystem); empty when there is none. Pure.
std::vector<uid_t> ParseStatusUids(std::string_view status);

// Every uid some process under `proc_root` (normally "/proc") has now, in any of the four
// roles. Processes that vanish while being read are skipped. Thread-safe.
std::set<uid_t> UidsInUse(const std::filesystem::path& proc_root);

// Jobs keep the agent's own credentials (agent not root, or root with --allow-root-jobs).
struct AgentUserPolicy {};

// Every job runs as this existing user (--job-user).
struct NamedUserPolicy {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // the user's supplementary groups (getgrouplist)
  std::string name;
};

// Every job gets a uid of its own from `range` (gid = uid), locked exclusively across every
// agent on the host with an flock'ed `<lock_dir>/<uid>.lock`.
struct DynamicUserPolicy {
  UidRange range;
  std::filesystem::path lock_dir = "/run/fleetwatch/uids";
  std::filesystem::path proc_root = "/proc";
  // Skip uids and gids that have a passwd or group entry (real users' files stay theirs).
  bool skip_named_ids = true;
};

using JobUserPolicy = std::variant<AgentUserPolicy, NamedUserPolicy, DynamicUserPolicy>;

// What the agent flags ask for.
struct JobUserFlags {
  std::string uid_range = "61000-61999";
  std::string job_user;  // empty: none
  bool allow_root_jobs = false;
};

// The policy for an agent with effective uid `agent_uid` (`lock_dir`: where dynamic uids are
// locked). Not root: AgentUserPolicy; --job-user then must name the agent's own user. Root:
// --allow-root-jobs gives AgentUserPolicy, --job-user NAME a NamedUserPolicy, else a
// DynamicUserPolicy over the range. InvalidArgument for a bad range, an unknown user, a
// --job-user that is root (uid 0), or --job-user together with --allow-root-jobs. Reads the
// user database; thread-safe.
Result<JobUserPolicy> ResolveJobUserPolicy(const JobUserFlags& flags, uid_t agent_uid,
                                           const std::filesystem::path& lock_dir);

// True when the policy may run jobs under a uid other than the agent's `agent_uid`.
bool RunsJobsAsOtherUsers(const JobUserPolicy& policy, uid_t agent_uid);

// One job's identity, held for the job's whole life. For a dynamic uid it holds the uid's lock:
// destroying the lease (or the agent's exit, which closes the descriptor) frees the uid.
// Move-only; not thread-safe (owned by one job).
class JobIdentityLease {
 public:
  JobIdentityLease() = default;
  JobIdentityLease(JobIdentity identity, std::filesystem::path lock_file, int lock_fd);
  ~JobIdentityLease();
  JobIdentityLease(JobIdentityLease&& other) noexcept;
  JobIdentityLease& operator=(JobIdentityLease&& other) noexcept;
  JobIdentityLease(const JobIdentityLease&) = delete;
  JobIdentityLease& operator=(const JobIdentityLease&) = delete;

  const JobIdentity& identity() const { return identity_; }

 private:
  void Release();

  JobIdentity identity_;
  std::filesystem::path lock_file_;
  int lock_fd_ = -1;
};

// Hands out job identities by a policy. Thread-safe.
class JobUsers {
 public:
  explicit JobUsers(JobUserPolicy policy);

  const JobUserPolicy& policy() const { return policy_; }

  // An identity for a new job. With a DynamicUserPolicy: the next uid of the range (round robin)
  // that no process on the host has, that has no passwd/group entry and whose lock this call
  // gets; Unavailable when the lock directory cannot be made or no uid is free.
  Result<JobIdentityLease> Acquire();

  // The lease of `uid`, which an earlier agent with this policy gave a job, when nobody holds
  // its lock now: what still runs under it is that job's remains. nullopt when the policy hands
  // out no uids of their own, `uid` is outside the range, or another job holds it (it has been
  // given out again since). Unavailable when the lock directory cannot be used.
  Result<std::optional<JobIdentityLease>> Reclaim(uid_t uid);

 private:
  Result<JobIdentityLease> AcquireDynamic(const DynamicUserPolicy& policy);

  const JobUserPolicy policy_;
  Mutex mu_;
  uint64_t next_offset_ FW_GUARDED_BY(mu_) = 0;  // where the next dynamic search starts
};

// SIGKILLs every process whose real or saved uid is `uid` (from a short-lived child that takes
// that uid and calls kill(-1)). For exclusive uids only: those processes are all one job's.
// Requires root; `uid` must not be 0. Thread-safe.
void KillProcessesOfUid(uid_t uid);

}  // namespace fleetwatch::agent
