#include "store/schema_steps.h"

#include <algorithm>
#include <string>

namespace fleetwatch::store {

int OldestCompatibleVersion(std::span<const SchemaStep> steps, int version) {
  const int known = std::min(version, static_cast<int>(steps.size()));
  for (int step = known; step >= 1; --step) {
    if (!steps[static_cast<size_t>(step - 1)].additive) return step;
  }
  return 0;
}

Status CheckSchemaCompatible(int binary_version, int database_version,
                             std::optional<int> oldest_compatible) {
  if (database_version <= binary_version) return Status::Ok();
  const int oldest = oldest_compatible.value_or(database_version);
  if (binary_version >= oldest) return Status::Ok();
  return FailedPrecondition(
      "database schema version " + std::to_string(database_version) +
      " is newer than this fleetwatch (" + std::to_string(binary_version) +
      ") and needs a fleetwatch of schema version " + std::to_string(oldest) +
      " or newer: upgrade this server (the newer steps are not all additive)");
}

}  // namespace fleetwatch::store
