#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model/entities.h"
#include "model/run_spec.h"
#include "server/auth.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::server {

// Runs and their jobs as users change them: submission, listing, stop, delete. The transitions
// the server makes on its own are the FleetController's. Thread-safe: changes to runs are
// serialized by one mutex, shared with the FleetController.
class RunService {
 public:
  RunService(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Validates the configuration and creates the run with nodes × replicas jobs named
  // "{run}-{job_num}-{replica_num}", all `submitted`. Without a name one is generated. A finished
  // run of that name is deleted (as Delete does, with the same rights: PermissionDenied for
  // another user's run unless the caller manages the project) in the same store transaction.
  // AlreadyExists "run 'x' is running; stop it ..." when an unfinished run has that name.
  Result<model::Run> Submit(const ProjectAccess& access, const model::User& caller,
                            std::string_view text, model::ConfigFormat format) FW_EXCLUDES(mu_);
  // Newest first; `statuses` empty means any. `limit` must be 1..1000.
  Result<std::vector<model::Run>> List(const ProjectAccess& access,
                                       const std::vector<model::RunStatus>& statuses, int limit);
  Result<model::Run> Get(const ProjectAccess& access, std::string_view run_name);
  // Moves an unfinished run to `terminating` (reason stopped_by_user or aborted_by_user); jobs
  // that were never placed on an instance end at once. A finished run is returned unchanged.
  // Project users may stop only their own runs. Written only on the row version read
  // (Store::UpdateRunIfCurrent): when another replica changed the run meanwhile, the run is read
  // again and the stop applied to what it decided, a few times; Unavailable ("kept changing ...
  // try again") when every attempt was overtaken, with nothing written.
  Result<model::Run> Stop(const ProjectAccess& access, const model::User& caller,
                          std::string_view run_name, bool abort) FW_EXCLUDES(mu_);
  // Deletes a finished run (FailedPrecondition otherwise), its stored logs with it. Same
  // permissions as Stop, and conditional on the row version read as Stop is.
  Status Delete(const ProjectAccess& access, const model::User& caller, std::string_view run_name)
      FW_EXCLUDES(mu_);

  // Serializes every change to runs: the FleetController takes it while it applies a tick.
  Mutex& mutex() FW_RETURN_CAPABILITY(mu_) { return mu_; }

 private:
  Result<model::Run> GetLocked(const ProjectAccess& access, std::string_view run_name);
  // Fills Run::cost from the project's instance prices and the jobs' running times.
  Status FillCost(const ProjectAccess& access, std::vector<model::Run>& runs);
  // With mu_ held: the name stays free until the caller's insert.
  Result<std::string> GenerateName(const ProjectAccess& access) FW_REQUIRES(mu_);

  store::Store& store_;
  const Clock& clock_;
  Mutex mu_;
};

}  // namespace fleetwatch::server
