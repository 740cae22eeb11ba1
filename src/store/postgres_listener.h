#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/change_listener.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::store {

struct PostgresListenerOptions {
  std::string url;                    // libpq connection URI or key=value string
  std::vector<std::string> channels;  // LISTENed on every connection
  // Reconnect backoff: the first retry after `min_backoff`, doubling up to `max_backoff`.
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{10'000};
  // More keys than this gathered and not yet taken are dropped for a resync (bounds memory).
  size_t max_keys = 200'000;
};

// LISTENs on PostgreSQL channels over a connection of its own (not the store's: a notification is
// delivered between transactions of the session that listens), on a thread of its own that waits
// on the socket, reads notifications (PQconsumeInput, PQnotifies) and gathers their keys
// (change_keys.h) for Take. A lost connection (the server restarted, the backend was terminated)
// is re-established with backoff; as notifications sent meanwhile are lost, every connection made
// (the first included) makes the next Take say resync. Needs a session of its own through
// PgBouncer: session pooling or a direct connection (transaction pooling drops LISTEN).
// A connection attempt waits at most 10 s unless the URL sets connect_timeout.
// Barriers (ChangeListener::RequestBarrier): the thread sends, on its own connection, a
// notification of a channel only this listener listens on (barrier_channel()) with the newest
// barrier number asked for, and the barrier has passed once it comes back: PostgreSQL delivers a
// session's notifications in the order their transactions committed, so every notification
// committed before the request has arrived by then. Requests made while one is in flight are
// answered by the next. A (re)connection passes every barrier asked for so far (the resync it
// causes reads everything). Thread-safe; the destructor stops the thread (waiting for a
// connection attempt in progress).
class PostgresListener final : public ChangeListener {
 public:
  // Starts the thread, which connects at once (and retries with backoff when it cannot). Errors:
  // InvalidArgument for no channels or a channel name PostgreSQL cannot take as an identifier.
  static Result<std::unique_ptr<PostgresListener>> Start(PostgresListenerOptions options);
  ~PostgresListener() override;
  PostgresListener(const PostgresListener&) = delete;
  PostgresListener& operator=(const PostgresListener&) = delete;

  ChangeBatch Take() override FW_EXCLUDES(mu_);
  uint64_t RequestBarrier() override FW_EXCLUDES(mu_);
  bool WaitBarrier(uint64_t number, std::chrono::steady_clock::time_point deadline) override
      FW_EXCLUDES(mu_);

  // The channel of this listener's barriers ("fleetwatch_barrier_" and a random part).
  const std::string& barrier_channel() const { return barrier_channel_; }

  // Connections made so far, the first included (a reconnect raises it); whether one is up now.
  uint64_t connections() const { return connections_.load(); }
  bool connected() const { return connected_.load(); }

 private:
  explicit PostgresListener(PostgresListenerOptions options);
  void Run();
  // True when `mu_`'s stopping_ was set (then the thread ends).
  bool Stopping() FW_EXCLUDES(mu_);
  // Waits `d` or until stopped; false when stopped.
  bool Sleep(std::chrono::milliseconds d) FW_EXCLUDES(mu_);
  void Gather(const std::string& channel, const std::string& payload) FW_EXCLUDES(mu_);
  // Wakes the thread's wait on the socket.
  void Wake();
  // Every barrier asked for so far has passed.
  void PassAll() FW_EXCLUDES(mu_);

  const PostgresListenerOptions options_;
  int wake_[2] = {-1, -1};  // a pipe: Stop writes to it to end the thread's wait on the socket
  Mutex mu_;
  CondVar cv_;
  bool stopping_ FW_GUARDED_BY(mu_) = false;
  ChangeBatch pending_ FW_GUARDED_BY(mu_);
  size_t pending_keys_ FW_GUARDED_BY(mu_) = 0;
  const std::string barrier_channel_;
  uint64_t barrier_requested_ FW_GUARDED_BY(mu_) = 0;  // the newest number handed out
  uint64_t barrier_passed_ FW_GUARDED_BY(mu_) = 0;     // every number up to it has passed
  std::atomic<uint64_t> connections_{0};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace fleetwatch::store
