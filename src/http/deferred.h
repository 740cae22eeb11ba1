#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "http/message.h"
#include "util/mutex.h"

namespace fleetwatch::http {

// Answers a request after its handler has returned, from any thread: what a handler uses when
// the answer waits on something slow (another host) that must not hold a server worker thread.
// Copyable; all copies answer the same request. The first Send wins, later ones are ignored.
// When the last copy goes away without a Send, the request is answered 500 "internal" (and an
// error logged), so no client is left waiting. Thread-safe.
class Responder {
 public:
  void Send(Response response) const;

 private:
  friend std::pair<Response, Responder> DeferResponse();
  class Guard;
  explicit Responder(std::shared_ptr<Guard> guard) : guard_(std::move(guard)) {}
  std::shared_ptr<Guard> guard_;
};

// For a handler that answers later: it returns `first` at once and keeps `second`, whose Send
// answers the request. Only http::Server understands such a Response (it waits for the answer
// without a thread; Stop() waits for it as for any request in flight, up to the grace period).
// Anyone else calling a handler sees a Response with `deferred` set and must not send it.
std::pair<Response, Responder> DeferResponse();

namespace internal {

// What DeferResponse's two halves share: the answer, once given, and who waits for it.
// Thread-safe.
class DeferredState {
 public:
  // The answer; the first call wins. Calls the waiter, if any, under the state's lock.
  void Complete(Response response);
  // The server's side: `deliver` gets the answer once, now if it is there already, else from
  // Complete; it runs under the state's lock, so it must only hand the answer on (post it).
  void OnComplete(std::function<void(Response)> deliver);
  // The server is gone: drops the waiter (after the lock is released); the answer, if it ever
  // comes, is dropped too.
  void Abandon();

 private:
  Mutex mu_;
  bool done_ FW_GUARDED_BY(mu_) = false;              // answered or abandoned
  std::optional<Response> ready_ FW_GUARDED_BY(mu_);  // answered before anyone waited
  std::function<void(Response)> deliver_ FW_GUARDED_BY(mu_);
};

}  // namespace internal
}  // namespace fleetwatch::http
