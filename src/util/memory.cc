#include "util/memory.h"

// Any C library header defines __GLIBC__ where the library is glibc; without one the checks
// below would never see it.
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fleetwatch {

void ReleaseFreedMemory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

void LimitAllocatorArenas(int arenas) {
#if defined(__GLIBC__)
  ::mallopt(M_ARENA_MAX, arenas);
#else
  (void)arenas;
#endif
}

}  // namespace fleetwatch
