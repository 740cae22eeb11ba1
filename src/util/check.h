#pragma once

// FW_CHECK(condition, message): for states that only a bug in fleetwatch can bring about (an
// index that did not come from the registry that hands them out, a library breaking its own
// contract). When `condition` is false it prints "<file>:<line>: check failed: <condition>:
// <message>" to stderr and aborts, loudly, instead of going on with a corrupt state.
// Untrusted input never reaches a FW_CHECK: it gets a Status (STYLE.md "Errors").
// Thread-safe. `message` is a C string.
#define FW_CHECK(condition, message)                                                \
  do {                                                                              \
    if (!(condition)) [[unlikely]] {                                                \
      ::fleetwatch::internal::CheckFailed(__FILE__, __LINE__, #condition, message); \
    }                                                                               \
  } while (false)

namespace fleetwatch::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const char* message);

}  // namespace fleetwatch::internal
