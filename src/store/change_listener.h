#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

// A feed of change notifications from the database (store.h kHostDcgmChannel,
// kJobPointsChannel): the keys of rows other writers changed, gathered until the reader takes them.
// postgres_listener.h is the PostgreSQL one; tests substitute their own.
namespace fleetwatch::store {

// What arrived since the last ChangeListener::Take. Plain data.
struct ChangeBatch {
  // Notifications may have been missed (the listener (re)connected, or gathered too many keys):
  // the reader reads everything again rather than only `keys`.
  bool resync = false;
  std::map<std::string, std::set<std::string>> keys;  // channel → changed keys
};

// Thread-safe.
class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
  // What arrived since the last call (the first call says resync); never blocks.
  virtual ChangeBatch Take() = 0;

  // A barrier: RequestBarrier returns a number that WaitBarrier reports passed once every
  // notification committed before the request has been gathered (so that a Take after it has
  // their keys), or a resync is pending instead (notifications may have been lost). Without a
  // database to ask (this default, the tests' feeds), every barrier has passed at once.
  virtual uint64_t RequestBarrier() { return 0; }
  // Waits until barrier `number` has passed (true) or `deadline` has come (false).
  virtual bool WaitBarrier(uint64_t number, std::chrono::steady_clock::time_point deadline) {
    (void)number;
    (void)deadline;
    return true;
  }
};

}  // namespace fleetwatch::store
