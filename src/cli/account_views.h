#pragma once

#include <boost/json/array.hpp>

#include "cli/table.h"
#include "util/clock.h"

namespace fleetwatch::cli {

// Projects (docs/api.md "A project"): NAME, OWNER, MEMBERS ("alice (admin), bob (user)"),
// CREATED relative to `now`. Pure.
Table ProjectsTable(const boost::json::array& projects, TimeMicros now);

// Users: NAME, ROLE, CREATED relative to `now`. Pure.
Table UsersTable(const boost::json::array& users, TimeMicros now);

}  // namespace fleetwatch::cli
