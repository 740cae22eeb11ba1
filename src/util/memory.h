#pragma once

namespace fleetwatch {

// Hands memory that the allocator keeps after frees back to the system, where the C library
// allows it (glibc: malloc_trim over all arenas; elsewhere nothing). For after a large batch of
// frees of small blocks (replacing hundreds of MB of exposition fragments), which glibc would
// otherwise keep mapped. Costs a walk over the heap (milliseconds for a GB): not for hot paths.
// Thread-safe.
void ReleaseFreedMemory();

}  // namespace fleetwatch
