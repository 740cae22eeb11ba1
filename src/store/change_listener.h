#pragma once

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
};

}  // namespace fleetwatch::store
