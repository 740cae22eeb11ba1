#include "util/build_info.h"

#include "build_revision.h"  // generated at every build by cmake/write_revision.cmake

namespace fleetwatch {

std::string_view BuildVersion() { return FLEETWATCH_VERSION; }
std::string_view BuildRevision() { return FLEETWATCH_REVISION; }

}  // namespace fleetwatch
