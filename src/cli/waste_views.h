#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <string>

#include "cli/table.h"

namespace fleetwatch::cli {

// The table of a waste report (GET /api/project/{p}/waste, GET /api/waste: docs/api.md): the
// grouping's name columns (project; user; run), then GPU HOURS (held), IDLE HOURS, IDLE % and
// IDLE COST, and a last `total` row. Names are the server's untrusted text, made safe for the
// terminal. Missing fields show as "-". Pure.
Table WasteTable(const boost::json::value& report);

// The report's right-sizing notes section ("notes": per project, per rule): a blank line, a
// heading that counts the jobs that ended in the window, then a table of PROJECT, NOTE, JOBS,
// RUNS, GPU HOURS (held by those jobs), COST and EXAMPLE RUNS with one row per note some job got
// (rules no job got are left out); without such rows, one line saying so instead of the table.
// Empty when the report has no notes section (an older server). Text from the server is made
// safe for the terminal; the table fits `width` as RenderTable does. Pure.
std::string RenderWasteNotes(const boost::json::value& report, size_t width);

}  // namespace fleetwatch::cli
