#include "store/postgres_listener.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "store/change_keys.h"
#include "store/postgres_query.h"
#include "util/ids.h"

namespace fleetwatch::store {
namespace {

// A channel name LISTEN takes as a plain identifier.
bool PlainIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z'))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

std::string Message(PGconn* conn) {
  std::string message = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

}  // namespace

Result<std::unique_ptr<PostgresListener>> PostgresListener::Start(PostgresListenerOptions options) {
  if (options.channels.empty()) return InvalidArgument("a listener needs a channel");
  for (const std::string& channel : options.channels) {
    if (!PlainIdentifier(channel)) {
      return InvalidArgument("'" + channel + "' is not a channel name (a-z, 0-9 and _)");
    }
  }
  std::unique_ptr<PostgresListener> listener(new PostgresListener(std::move(options)));
  if (::pipe2(listener->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Internal("cannot make the listener's pipe");
  }
  listener->thread_ = std::thread([l = listener.get()] { l->Run(); });
  return listener;
}

PostgresListener::PostgresListener(PostgresListenerOptions options)
    : options_(std::move(options)),
      barrier_channel_("fleetwatch_barrier_" + NewToken().substr(0, 16)) {
  pending_.resync = true;  // nothing read yet
}

void PostgresListener::Wake() {
  if (wake_[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &byte, 1);
  }
}

uint64_t PostgresListener::RequestBarrier() {
  uint64_t number = 0;
  {
    MutexLock lock(mu_);
    number = ++barrier_requested_;
  }
  Wake();
  return number;
}

bool PostgresListener::WaitBarrier(uint64_t number,
                                   std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(mu_);
  while (barrier_passed_ < number && !stopping_) {
    if (!cv_.WaitUntil(mu_, deadline)) return barrier_passed_ >= number;
  }
  return barrier_passed_ >= number;
}

void PostgresListener::PassAll() {
  {
    MutexLock lock(mu_);
    barrier_passed_ = barrier_requested_;
  }
  cv_.NotifyAll();
}

PostgresListener::~PostgresListener() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  Wake();
  if (thread_.joinable()) thread_.join();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

ChangeBatch PostgresListener::Take() {
  MutexLock lock(mu_);
  ChangeBatch batch = std::move(pending_);
  pending_ = ChangeBatch{};
  pending_keys_ = 0;
  return batch;
}

bool PostgresListener::Stopping() {
  MutexLock lock(mu_);
  return stopping_;
}

bool PostgresListener::Sleep(std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  MutexLock lock(mu_);
  while (!stopping_ && cv_.WaitUntil(mu_, deadline)) {
  }
  return !stopping_;
}

void PostgresListener::Gather(const std::string& channel, const std::string& payload) {
  if (channel == barrier_channel_) {
    uint64_t number = 0;
    const char* end = payload.data() + payload.size();
    if (std::from_chars(payload.data(), end, number).ptr != end) return;
    {
      MutexLock lock(mu_);
      barrier_passed_ = std::max(barrier_passed_, number);
    }
    cv_.NotifyAll();
    return;
  }
  std::vector<std::string> keys = ChangeKeys(payload);
  MutexLock lock(mu_);
  if (pending_.resync) return;  // everything is read again anyway
  if (pending_keys_ + keys.size() > options_.max_keys) {
    pending_ = ChangeBatch{};
    pending_.resync = true;
    pending_keys_ = 0;
    return;
  }
  std::set<std::string>& set = pending_.keys[channel];
  for (std::string& key : keys) pending_keys_ += set.insert(std::move(key)).second ? 1 : 0;
}

void PostgresListener::Run() {
  std::chrono::milliseconds backoff = options_.min_backoff;
  postgres::ConnHandle conn;
  uint64_t sent_barrier = 0;  // the newest barrier number sent on this connection
  while (!Stopping()) {
    if (conn == nullptr) {
      // A server that does not answer holds the thread (and so the destructor) for at most 10 s
      // a try, unless the URL says otherwise (its own parameters come after, and win).
      const char* keywords[] = {"connect_timeout", "dbname", nullptr};
      const char* values[] = {"10", options_.url.c_str(), nullptr};
      conn.reset(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
      Status status;
      if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
        status = Unavailable(Message(conn.get()));
      }
      for (size_t i = 0; status.ok() && i <= options_.channels.size(); ++i) {
        const std::string listen =
            "LISTEN " + (i < options_.channels.size() ? options_.channels[i] : barrier_channel_);
        status = postgres::ExecSimple(conn.get(), listen.c_str());
      }
      if (status.ok() && PQsetnonblocking(conn.get(), 1) != 0) {
        status = Internal("cannot make the connection non-blocking: " + Message(conn.get()));
      }
      if (!status.ok()) {
        spdlog::warn("database change listener: {}; retrying in {} ms", status.message(),
                     backoff.count());
        conn.reset();
        if (!Sleep(backoff)) break;
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
      backoff = options_.min_backoff;
      {
        // What was sent while no connection listened is lost: the reader reads everything.
        MutexLock lock(mu_);
        pending_ = ChangeBatch{};
        pending_.resync = true;
        pending_keys_ = 0;
      }
      if (connections_.fetch_add(1) > 0) spdlog::info("database change listener reconnected");
      connected_ = true;
      sent_barrier = 0;
      PassAll();  // the resync reads what any barrier asked for so far would wait for
    }
    pollfd fds[2] = {{PQsocket(conn.get()), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int ready = ::poll(fds, 2, 1000);
    if (ready < 0 && errno != EINTR) {
      spdlog::warn("database change listener: poll failed");
    }
    if (fds[1].revents != 0) {
      char drain[64];
      while (::read(wake_[0], drain, sizeof drain) > 0) {
      }
      if (Stopping()) break;
    }
    uint64_t wanted = 0;
    {
      MutexLock lock(mu_);
      wanted = barrier_requested_ > barrier_passed_ ? barrier_requested_ : 0;
    }
    bool lost = false;
    if (wanted > sent_barrier) {
      // The newest number asked for: it answers every request up to it. Sent on this connection,
      // so its own notification comes back after every one committed before it.
      const std::string notify =
          "NOTIFY " + barrier_channel_ + ", '" + std::to_string(wanted) + "'";
      Status sent = postgres::ExecSimple(conn.get(), notify.c_str());
      if (sent.ok()) {
        sent_barrier = wanted;
      } else {
        spdlog::warn("database change listener: barrier: {}", sent.message());
        lost = PQstatus(conn.get()) != CONNECTION_OK;
      }
    }
    if (lost || PQconsumeInput(conn.get()) == 0 || PQstatus(conn.get()) != CONNECTION_OK) {
      spdlog::warn("database change listener lost its connection: {}", Message(conn.get()));
      conn.reset();
      connected_ = false;
      if (!Sleep(backoff)) break;
      continue;
    }
    while (PGnotify* n = PQnotifies(conn.get())) {
      Gather(n->relname, n->extra != nullptr ? n->extra : "");
      PQfreemem(n);
    }
  }
  connected_ = false;
}

}  // namespace fleetwatch::store
