#pragma once

namespace fleetwatch {

// The way long-running subcommands (server, agent) stop: SIGTERM and SIGINT are blocked in every
// thread and taken synchronously by the main thread, so no handler runs at an arbitrary point.
class TerminationSignals {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread and ignores SIGPIPE. Call before starting
  // any thread: threads inherit the mask.
  TerminationSignals();
  // Waits for SIGTERM or SIGINT and returns its name ("SIGTERM" or "SIGINT").
  const char* Wait() const;
};

}  // namespace fleetwatch
