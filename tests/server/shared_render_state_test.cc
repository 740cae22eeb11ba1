// SharedRenderState on a real (SQLite) store that two replicas' states share, with the change
// notifications PostgreSQL would send handed over by a listener the test feeds.
#include "server/shared_render_state.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/change_keys.h"
#include "store/sqlite_store.h"
#include "store/store_contract.h"
#include "support/process.h"
#include "util/mutex.h"

namespace fleetwatch::server {
namespace {

constexpr TimeMicros kStart = 1'700'000'000'000'000;

// The notifications a replica's listener would have gathered, as the test adds them.
class FedListener final : public store::ChangeListener {
 public:
  store::ChangeBatch Take() override {
    MutexLock lock(mu_);
    store::ChangeBatch batch = std::move(pending_);
    pending_ = {};
    return batch;
  }
  void Add(const std::string& channel, const std::string& key) {
    MutexLock lock(mu_);
    pending_.keys[channel].insert(key);
  }
  void Resync() {
    MutexLock lock(mu_);
    pending_.resync = true;
  }

 private:
  Mutex mu_;
  store::ChangeBatch pending_ FW_GUARDED_BY(mu_) = FirstBatch();

  static store::ChangeBatch FirstBatch() {
    store::ChangeBatch batch;
    batch.resync = true;  // as a listener that just connected
    return batch;
  }
};

class SharedRenderStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::OpenSqliteStore((dir_.path() / "db").string())).value();
    owner_ = store::MakeUser("alice");
    ASSERT_TRUE(store_->CreateUser(owner_, "hash").ok());
    project_ = store::MakeProject("main", owner_);
    ASSERT_TRUE(store_->CreateProject(project_).ok());
    model::Fleet fleet = store::MakeFleet(project_, "pool");
    instances_ = {store::MakeInstance(fleet, 0), store::MakeInstance(fleet, 1)};
    ASSERT_TRUE(store_->CreateFleet(fleet, instances_).ok());
    run_ = store::MakeRun(project_, owner_, "train", kStart, model::RunStatus::kRunning, 2);
    for (int i = 0; i < 2; ++i) {
      run_.jobs[i].status = model::JobStatus::kRunning;
      run_.jobs[i].instance_id = instances_[i].id;
    }
    ASSERT_TRUE(store_->CreateRun(run_).ok());
  }

  // A tick's report of the replica that polls instance `host`: its DCGM text (when `text` is set)
  // and a point of the job on it, stored as the controller stores it.
  TickReport Tick(int host, TimeMicros collected_at, std::optional<std::string> text) {
    TickReport report;
    report.ended_at = clock_.Now();
    report.instances = instances_;
    report.runs = std::vector<model::Run>{run_};
    if (text) {
      report.dcgm.push_back({instances_[host].id,
                             AgentDcgm{.collected_at = collected_at, .text = *text, .error = {}}});
    }
    model::JobMetricsPoint point;
    point.job_id = run_.jobs[host].id;
    point.timestamp_micro = collected_at;
    point.cpu_usage_micro = collected_at;
    EXPECT_TRUE(store_->AddJobMetricsPoints({point}).ok());
    report.stored_points.push_back(point);
    return report;
  }

  // What PostgreSQL would notify every listener of after the writes of `report` by `writer`.
  void Notify(const TickReport& report) {
    std::vector<std::pair<std::string, int64_t>> versions = store_->ListHostDcgmVersions().value();
    for (FedListener* listener : {&listener_a_, &listener_b_}) {
      for (const DcgmReport& d : report.dcgm) {
        for (const auto& [id, version] : versions) {
          if (id == d.instance_id) {
            listener->Add(store::kHostDcgmChannel, store::VersionedKey(id, version));
          }
        }
      }
      for (const model::JobMetricsPoint& p : report.stored_points) {
        listener->Add(store::kJobPointsChannel, store::VersionedKey(p.job_id, p.timestamp_micro));
      }
    }
  }

  static std::vector<std::pair<std::string, std::string>> Texts(const TickReport& report) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const DcgmReport& d : report.dcgm) out.emplace_back(d.instance_id, d.dcgm.text);
    return out;
  }
  static std::vector<std::pair<std::string, TimeMicros>> Points(const TickReport& report) {
    std::vector<std::pair<std::string, TimeMicros>> out;
    for (const model::JobMetricsPoint& p : report.stored_points) {
      out.emplace_back(p.job_id, p.timestamp_micro);
    }
    return out;
  }

  testing::TempDir dir_;
  FakeClock clock_{kStart};
  std::unique_ptr<store::Store> store_;
  model::User owner_;
  model::Project project_;
  std::vector<model::Instance> instances_;
  model::Run run_;
  FedListener listener_a_, listener_b_;
};

TEST_F(SharedRenderStateTest, EachReplicaGetsWhatTheOtherStoredAndNothingItHasAlready) {
  SharedRenderState a(*store_, listener_a_, clock_);
  SharedRenderState b(*store_, listener_b_, clock_);
  const std::string i0 = instances_[0].id, i1 = instances_[1].id;
  const std::string j0 = run_.jobs[0].id, j1 = run_.jobs[1].id;

  // A polls host 0 and B host 1. A's first Share compares everything: nothing of B's yet.
  TickReport ra = Tick(0, kStart + 100, "text-a1");
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(Texts(ra), (std::vector<std::pair<std::string, std::string>>{{i0, "text-a1"}}));
  EXPECT_EQ(Points(ra), (std::vector<std::pair<std::string, TimeMicros>>{{j0, kStart + 100}}));
  Notify(ra);
  // B's first Share: its own, then A's text and point.
  TickReport rb = Tick(1, kStart + 150, "text-b1");
  ASSERT_TRUE(b.Share(rb).ok());
  EXPECT_EQ(Texts(rb),
            (std::vector<std::pair<std::string, std::string>>{{i1, "text-b1"}, {i0, "text-a1"}}));
  EXPECT_EQ(Points(rb), (std::vector<std::pair<std::string, TimeMicros>>{{j1, kStart + 150},
                                                                         {j0, kStart + 100}}));
  Notify(rb);
  // A, on notifications: B's text and point; its own (notified too) are not read back.
  clock_.Advance(1'000'000);
  ra = Tick(0, kStart + 1'100, std::nullopt);
  const uint64_t queries_before = a.stats().queries;
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(Texts(ra), (std::vector<std::pair<std::string, std::string>>{{i1, "text-b1"}}));
  EXPECT_EQ(Points(ra), (std::vector<std::pair<std::string, TimeMicros>>{{j0, kStart + 1'100},
                                                                         {j1, kStart + 150}}));
  EXPECT_EQ(a.stats().queries - queries_before, 2u);  // B's text, B's point
  EXPECT_EQ(a.stats().texts_read, 1u);
  EXPECT_EQ(a.stats().points_read, 1u);
  // Notifications of what it has (stale or its own) read nothing.
  listener_a_.Add(store::kHostDcgmChannel, store::VersionedKey(i1, 1));
  listener_a_.Add(store::kJobPointsChannel, store::VersionedKey(j1, kStart + 150));
  ra = Tick(0, kStart + 1'200, std::nullopt);
  const uint64_t queries_then = a.stats().queries;
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(a.stats().queries, queries_then);
  EXPECT_EQ(Texts(ra).size(), 0u);

  // B's next text.
  rb = Tick(1, kStart + 2'000, "text-b2");
  ASSERT_TRUE(b.Share(rb).ok());
  Notify(rb);
  ra = Tick(0, kStart + 2'100, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(Texts(ra), (std::vector<std::pair<std::string, std::string>>{{i1, "text-b2"}}));

  // A text older than what A has (another replica's, from before a lease moved) is read, since
  // its version moved, but not handed on.
  ASSERT_TRUE(
      store_
          ->WriteHostDcgm(
              {{.instance_id = i1, .collected_at = kStart + 1'500, .text = "old", .error = {}}})
          .ok());
  listener_a_.Add(store::kHostDcgmChannel, store::VersionedKey(i1, 3));
  ra = Tick(0, kStart + 2'200, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_TRUE(Texts(ra).empty());
  EXPECT_EQ(a.stats().resyncs, 1u);
}

TEST_F(SharedRenderStateTest, AResyncComparesEveryVersionAtTheIntervalAndWhenTheListenerSaysSo) {
  SharedRenderState a(*store_, listener_a_, clock_,
                      SharedRenderOptions{.resync_interval = std::chrono::seconds(60)});
  SharedRenderState b(*store_, listener_b_, clock_);
  TickReport rb = Tick(1, kStart + 100, "text-b1");
  ASSERT_TRUE(b.Share(rb).ok());
  TickReport ra = Tick(0, kStart + 100, "text-a1");
  ASSERT_TRUE(a.Share(ra).ok());  // the first: B's text though nothing was notified
  EXPECT_EQ(Texts(ra).size(), 2u);
  EXPECT_EQ(a.stats().resyncs, 1u);

  // Notifications lost: B's next text shows at the next resync, by the listener's word...
  rb = Tick(1, kStart + 200, "text-b2");
  ASSERT_TRUE(b.Share(rb).ok());
  ra = Tick(0, kStart + 300, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_TRUE(Texts(ra).empty());
  listener_a_.Resync();
  ra = Tick(0, kStart + 400, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(Texts(ra),
            (std::vector<std::pair<std::string, std::string>>{{instances_[1].id, "text-b2"}}));
  EXPECT_EQ(a.stats().resyncs, 2u);
  // ...or when the interval has passed.
  rb = Tick(1, kStart + 500, "text-b3");
  ASSERT_TRUE(b.Share(rb).ok());
  clock_.Advance(59'000'000);
  ra = Tick(0, kStart + 600, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_TRUE(Texts(ra).empty());
  clock_.Advance(1'000'000);
  ra = Tick(0, kStart + 700, std::nullopt);
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(Texts(ra),
            (std::vector<std::pair<std::string, std::string>>{{instances_[1].id, "text-b3"}}));
  EXPECT_EQ(a.stats().resyncs, 3u);
}

TEST_F(SharedRenderStateTest, OnlyChangedStorableTextsAreWritten) {
  SharedRenderState a(*store_, listener_a_, clock_);
  TickReport ra = Tick(0, kStart + 100, "text-a1");
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(a.stats().texts_written, 1u);
  EXPECT_EQ(a.stats().bytes_written, 7u);
  // The same text again (the report of a tick that used an older reply): not written again.
  ra = Tick(0, kStart + 100, "text-a1");
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(a.stats().texts_written, 1u);
  // Bytes PostgreSQL's text cannot hold (not UTF-8, a NUL) are not shared; the rest is.
  ra = Tick(0, kStart + 200, std::string("bad \xff text"));
  ra.dcgm.push_back({instances_[1].id, AgentDcgm{.collected_at = kStart + 200,
                                                 .text = std::string("nul \0 text", 10),
                                                 .error = {}}});
  ASSERT_TRUE(a.Share(ra).ok());
  EXPECT_EQ(a.stats().texts_written, 1u);
  std::vector<store::HostDcgm> stored =
      store_->ListHostDcgm({instances_[0].id, instances_[1].id}).value();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].text, "text-a1");
  EXPECT_EQ(stored[0].received_at, kStart);
}

}  // namespace
}  // namespace fleetwatch::server
