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

}  // namespace fleetwatch
