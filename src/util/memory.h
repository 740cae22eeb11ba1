#pragma once

namespace fleetwatch {

// Hands memory that the allocator keeps after frees back to the system, where the C library
// allows it (glibc: malloc_trim over all arenas; elsewhere nothing). For after a large batch of
// frees of small blocks (replacing hundreds of MB of exposition fragments), which glibc would
// otherwise keep mapped. Costs a walk over the heap (milliseconds for a GB): not for hot paths.
// Thread-safe.
void ReleaseFreedMemory();

// Caps the allocator's arenas (glibc: M_ARENA_MAX) at `arenas`. glibc gives threads arenas of
// their own, up to 8 per core; a thread that parses hundreds of MB of replies and one that renders
// a scrape each keep their freed pages, and the process holds several times what it uses. Call
// before the threads start. Thread-safe; does nothing where the C library has no such setting.
void LimitAllocatorArenas(int arenas);

}  // namespace fleetwatch
