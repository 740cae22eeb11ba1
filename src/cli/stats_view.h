#pragma once

// `fleetwatch stats RUN`: the tables drawn from a reply of GET
// /api/project/{p}/runs/{run}/summary (docs/api.md "Run summary"), kept apart from the network
// so that they can be tested on canned replies. Pure functions; thread-safe.

#include <boost/json/value.hpp>
#include <string>

namespace fleetwatch::cli {

// Joules as "850 J", "12.5 kJ", "2.52 MJ", "1.2 GJ"; estimated figures start with "~".
std::string FormatEnergy(double joules, bool estimated);
// Grams as "850 g", "12.3 kg", "1.5 t".
std::string FormatCarbon(double grams);

// The run's line, a table of its jobs (duration, CPU mean/peak, memory peak/limit, energy,
// carbon, cost), a table of their GPUs (utilization mean/max, idle share, memory peak/size,
// energy, XID events) and the notes, each naming its job. Text from the server is shown as text
// (SanitizeForTerminal). Missing fields read as zero or "-".
std::string RenderStats(const boost::json::value& summary, size_t width);

}  // namespace fleetwatch::cli
