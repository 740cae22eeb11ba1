#include "server/agent_lanes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"

namespace fleetwatch::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A host on loopback: /slow/<n> answers after 300 ms, /fast/<n> at once, /gate/<n> when opened.
// It counts requests in flight per first path segment.
class Host {
 public:
  Host() : server_(Options(), [this](http::Request& r) { return Handle(r); }) {
    port_ = *server_.Start();
  }
  ~Host() {
    Open();
    server_.Stop();
  }

  http::AsyncRequest Request(const std::string& target) const {
    http::AsyncRequest r;
    r.host = "127.0.0.1";
    r.port = port_;
    r.target = target;
    r.timeout = milliseconds(10'000);
    return r;
  }
  AgentOperation Op(const std::string& target) const {
    return [request = Request(target)](const AgentSend& send,
                                       std::function<void(Result<http::Response>)> done) {
      send(request, std::move(done));
    };
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int max_in_flight(const std::string& kind) {
    std::lock_guard lock(mu_);
    return max_[kind];
  }
  std::vector<std::string> served() {
    std::lock_guard lock(mu_);
    return served_;
  }

 private:
  static http::ServerOptions Options() {
    http::ServerOptions o;
    o.threads = 8;
    return o;
  }
  http::Response Handle(const http::Request& r) {
    const std::string kind = r.path.substr(1, r.path.find('/', 1) - 1);
    {
      std::unique_lock lock(mu_);
      max_[kind] = std::max(max_[kind], ++now_[kind]);
      if (kind == "gate") cv_.wait(lock, [this] { return open_; });
    }
    if (kind == "slow") std::this_thread::sleep_for(milliseconds(300));
    std::lock_guard lock(mu_);
    --now_[kind];
    served_.push_back(r.path);
    http::Response out;
    out.body = r.path;
    return out;
  }

  http::Server server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::map<std::string, int> now_, max_;
  std::vector<std::string> served_;
};

std::vector<std::string> Bodies(const std::vector<AgentReply>& replies) {
  std::vector<std::string> out;
  for (const AgentReply& r : replies) out.push_back(r.reply.ok() ? r.reply->body : "error");
  return out;
}

std::vector<AgentReply> TakeAll(AgentLanes& lanes, size_t n) {
  std::vector<AgentReply> all;
  const auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (all.size() < n && steady_clock::now() < deadline) {
    for (AgentReply& r : lanes.Take()) all.push_back(std::move(r));
    std::this_thread::sleep_for(milliseconds(10));
  }
  return all;
}

TEST(AgentLanes, OneOperationInFlightPerLaneTheRestInOrder) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  lanes.Replace("h1", AgentRequestKind::kStart,
                {{"a", host.Op("/slow/a")}, {"b", host.Op("/slow/b")}, {"c", host.Op("/slow/c")}});
  std::vector<AgentReply> replies = TakeAll(lanes, 3);
  EXPECT_EQ(Bodies(replies), (std::vector<std::string>{"/slow/a", "/slow/b", "/slow/c"}));
  EXPECT_EQ(host.max_in_flight("slow"), 1);
  for (const AgentReply& r : replies) {
    EXPECT_EQ(r.instance_id, "h1");
    EXPECT_EQ(r.kind, AgentRequestKind::kStart);
  }
  EXPECT_EQ(replies[1].key, "b");
}

TEST(AgentLanes, ASlowLaneDoesNotHoldUpAnotherHostOrKind) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  lanes.Replace("slow-host", AgentRequestKind::kStop, {{"x", host.Op("/gate/x")}});
  lanes.Replace("fast-host", AgentRequestKind::kStop, {{"y", host.Op("/fast/y")}});
  lanes.Replace("slow-host", AgentRequestKind::kForget, {{"z", host.Op("/fast/z")}});
  std::vector<AgentReply> replies = TakeAll(lanes, 2);
  std::vector<std::string> bodies = Bodies(replies);
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"/fast/y", "/fast/z"}));
  EXPECT_EQ(lanes.in_flight(), 1u);  // the gated one
  host.Open();
  EXPECT_EQ(Bodies(TakeAll(lanes, 1)), (std::vector<std::string>{"/gate/x"}));
  EXPECT_EQ(lanes.in_flight(), 0u);
}

TEST(AgentLanes, ReplacingAWaitingListNeverResendsWhatIsInFlight) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  lanes.Replace("h", AgentRequestKind::kAcknowledge,
                {{"j1", host.Op("/gate/j1")}, {"j2", host.Op("/gate/j2")}});
  while (lanes.in_flight() == 0) std::this_thread::sleep_for(milliseconds(5));
  // The next tick decides again: j1 (in flight) and j3; j2 is no longer wanted.
  lanes.Replace("h", AgentRequestKind::kAcknowledge,
                {{"j1", host.Op("/gate/j1")}, {"j3", host.Op("/gate/j3")}});
  host.Open();
  EXPECT_EQ(Bodies(TakeAll(lanes, 2)), (std::vector<std::string>{"/gate/j1", "/gate/j3"}));
  EXPECT_EQ(host.served(), (std::vector<std::string>{"/gate/j1", "/gate/j3"}));
}

TEST(AgentLanes, ReplaceAllEmptiesTheWaitingListsOfItsKindsThatGetNothingAndOnlyThose) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  // Each lane: one operation in flight (gated), one waiting.
  lanes.Replace("h1", AgentRequestKind::kStop,
                {{"a", host.Op("/gate/a")}, {"b", host.Op("/gate/b")}});
  lanes.Replace("h2", AgentRequestKind::kStop,
                {{"c", host.Op("/gate/c")}, {"d", host.Op("/gate/d")}});
  lanes.Replace("h1", AgentRequestKind::kForget,
                {{"e", host.Op("/gate/e")}, {"f", host.Op("/gate/f")}});
  while (lanes.in_flight() < 3) std::this_thread::sleep_for(milliseconds(5));
  // The next tick: h2's stops are decided again (d goes, g comes), h1 gets no stop, and forgets
  // are not among the kinds handed over, so h1's stay as they were.
  AgentLanes::LaneOperations next;
  next[{"h2", AgentRequestKind::kStop}] = {{"c", host.Op("/gate/c")}, {"g", host.Op("/gate/g")}};
  next[{"h3", AgentRequestKind::kStop}] = {{"h", host.Op("/gate/h")}};
  lanes.ReplaceAll({AgentRequestKind::kStop, AgentRequestKind::kAcknowledge}, std::move(next));
  host.Open();
  std::vector<std::string> bodies = Bodies(TakeAll(lanes, 6));
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"/gate/a", "/gate/c", "/gate/e", "/gate/f", "/gate/g",
                                              "/gate/h"}));
  std::this_thread::sleep_for(milliseconds(200));  // nothing else comes
  EXPECT_TRUE(lanes.Take().empty());
  EXPECT_EQ(lanes.in_flight(), 0u);
}

TEST(AgentLanes, WaitIdleReturnsAtItsDeadlineAndSendIfIdleRefusesABusyLane) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  ASSERT_TRUE(lanes.SendIfIdle("h", AgentRequestKind::kPoll, host.Request("/gate/poll")));
  EXPECT_FALSE(lanes.SendIfIdle("h", AgentRequestKind::kPoll, host.Request("/gate/poll2")));
  const auto started = steady_clock::now();
  lanes.WaitIdle({{"h", AgentRequestKind::kPoll}}, steady_clock::now() + milliseconds(100));
  std::cout << "[ figures  ] WaitIdle on a silent host returned after "
            << std::chrono::duration<double, std::milli>(steady_clock::now() - started).count()
            << " ms (deadline 100 ms)" << std::endl;
  EXPECT_TRUE(lanes.Take().empty());
  host.Open();
  lanes.WaitIdle({{"h", AgentRequestKind::kPoll}}, steady_clock::now() + std::chrono::seconds(30));
  EXPECT_EQ(Bodies(lanes.Take()), (std::vector<std::string>{"/gate/poll"}));
  EXPECT_TRUE(lanes.SendIfIdle("h", AgentRequestKind::kPoll, host.Request("/fast/again")));
}

TEST(AgentLanes, OperationsGivenToALaneBusyWithASentRequestStartWhenItEnds) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  ASSERT_TRUE(lanes.SendIfIdle("h", AgentRequestKind::kStart, host.Request("/gate/first")));
  lanes.Replace("h", AgentRequestKind::kStart,
                {{"a", host.Op("/fast/a")}, {"b", host.Op("/fast/b")}});
  EXPECT_EQ(lanes.in_flight(), 1u);
  EXPECT_FALSE(lanes.SendIfIdle("h", AgentRequestKind::kStart, host.Request("/fast/refused")));
  host.Open();
  lanes.WaitIdle({{"h", AgentRequestKind::kStart}}, steady_clock::now() + std::chrono::seconds(30));
  std::vector<AgentReply> replies = lanes.Take();
  EXPECT_EQ(Bodies(replies), (std::vector<std::string>{"/gate/first", "/fast/a", "/fast/b"}));
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].key, "");
  EXPECT_EQ(replies[0].instance_id, "h");
  EXPECT_EQ(replies[0].kind, AgentRequestKind::kStart);
  EXPECT_EQ(replies[2].key, "b");
  EXPECT_EQ(host.max_in_flight("fast"), 1);
  EXPECT_EQ(lanes.in_flight(), 0u);
}

TEST(AgentLanes, WaitIdleReturnsOnceEveryListedLaneHasBeenIdle) {
  Host host;
  http::AsyncClient client(2);
  AgentLanes lanes(client);
  // h1's start lane holds two operations (idle after both), h2's poll is listed twice, h3's poll
  // lane has nothing at all.
  lanes.Replace("h1", AgentRequestKind::kStart,
                {{"a", host.Op("/gate/a")}, {"b", host.Op("/fast/b")}});
  ASSERT_TRUE(lanes.SendIfIdle("h2", AgentRequestKind::kPoll, host.Request("/gate/p")));
  std::thread opener([&host] {
    std::this_thread::sleep_for(milliseconds(50));
    host.Open();
  });
  const auto deadline = steady_clock::now() + std::chrono::seconds(60);
  lanes.WaitIdle({{"h1", AgentRequestKind::kStart},
                  {"h2", AgentRequestKind::kPoll},
                  {"h2", AgentRequestKind::kPoll},
                  {"h3", AgentRequestKind::kPoll}},
                 deadline);
  opener.join();
  EXPECT_LT(steady_clock::now(), deadline);
  std::vector<std::string> bodies = Bodies(lanes.Take());
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"/fast/b", "/gate/a", "/gate/p"}));
  EXPECT_EQ(lanes.in_flight(), 0u);
  // The lanes are usable again, and a wait on idle lanes returns at once.
  ASSERT_TRUE(lanes.SendIfIdle("h2", AgentRequestKind::kPoll, host.Request("/fast/again")));
  lanes.WaitIdle({{"h2", AgentRequestKind::kPoll}}, deadline);
  EXPECT_EQ(Bodies(lanes.Take()), (std::vector<std::string>{"/fast/again"}));
  lanes.WaitIdle({{"h2", AgentRequestKind::kPoll}}, deadline);
}

TEST(AgentLanes, NothingStartsOnceTheLanesAreGone) {
  Host host;
  http::AsyncClient client(2);
  {
    AgentLanes lanes(client);
    lanes.Replace("h", AgentRequestKind::kStart,
                  {{"a", host.Op("/gate/a")}, {"b", host.Op("/gate/b")}});
    while (lanes.in_flight() == 0) std::this_thread::sleep_for(milliseconds(5));
  }
  host.Open();
  // The request in flight ends; the one waiting behind it is never sent.
  ASSERT_TRUE([&] {
    for (int k = 0; k < 600 && host.served().empty(); ++k) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    return !host.served().empty();
  }());
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(host.served(), (std::vector<std::string>{"/gate/a"}));
}

}  // namespace
}  // namespace fleetwatch::server
