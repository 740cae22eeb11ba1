#pragma once

#include <boost/json/value.hpp>

#include "cli/table.h"

namespace fleetwatch::cli {

// The table of a waste report (GET /api/project/{p}/waste, GET /api/waste: docs/api.md): the
// grouping's name columns (project; user; run), then GPU HOURS (held), IDLE HOURS, IDLE % and
// IDLE COST, and a last `total` row. Names are the server's untrusted text, made safe for the
// terminal. Missing fields show as "-". Pure.
Table WasteTable(const boost::json::value& report);

}  // namespace fleetwatch::cli
