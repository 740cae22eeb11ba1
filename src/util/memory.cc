#include "util/memory.h"

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
