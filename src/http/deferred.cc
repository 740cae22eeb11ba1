#include "http/deferred.h"

#include <spdlog/spdlog.h>

#include <atomic>

namespace fleetwatch::http {

// Owned by every copy of a Responder: the last one to go answers a request nobody answered.
class Responder::Guard {
 public:
  explicit Guard(std::shared_ptr<internal::DeferredState> state) : state_(std::move(state)) {}
  ~Guard() {
    if (sent_.load()) return;
    spdlog::error("http: a deferred response was never sent; answering 500");
    state_->Complete(JsonError(500, "internal", "internal server error"));
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  void Send(Response response) {
    if (sent_.exchange(true)) return;
    state_->Complete(std::move(response));
  }

 private:
  const std::shared_ptr<internal::DeferredState> state_;
  std::atomic<bool> sent_{false};
};

void Responder::Send(Response response) const { guard_->Send(std::move(response)); }

std::pair<Response, Responder> DeferResponse() {
  auto state = std::make_shared<internal::DeferredState>();
  Response first;
  first.deferred = state;
  return {std::move(first), Responder(std::make_shared<Responder::Guard>(std::move(state)))};
}

namespace internal {

void DeferredState::Complete(Response response) {
  MutexLock lock(mu_);
  if (done_) return;
  done_ = true;
  if (deliver_) {
    deliver_(std::move(response));
    deliver_ = nullptr;
  } else {
    ready_.emplace(std::move(response));
  }
}

void DeferredState::OnComplete(std::function<void(Response)> deliver) {
  MutexLock lock(mu_);
  if (ready_) {
    deliver(std::move(*ready_));
    ready_.reset();
    return;
  }
  if (!done_) deliver_ = std::move(deliver);
}

void DeferredState::Abandon() {
  std::function<void(Response)> dropped;
  {
    MutexLock lock(mu_);
    done_ = true;
    ready_.reset();
    dropped = std::move(deliver_);
    deliver_ = nullptr;
  }
}

}  // namespace internal
}  // namespace fleetwatch::http
