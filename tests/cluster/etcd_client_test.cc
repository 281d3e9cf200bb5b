// EtcdClient against a real etcd on 127.0.0.1 (one per test).
#include "coord/etcd_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "etcd_process.h"

namespace cairn::coord {
namespace {

using cairn::testing::EtcdProcess;
using cairn::testing::Eventually;
using std::chrono::milliseconds;
using std::chrono::seconds;

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.Start()) << etcd_.Log();
    EtcdOptions options;
    options.endpoints = {etcd_.endpoint()};
    options.request_timeout = milliseconds(1500);
    auto client = EtcdClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  EtcdProcess etcd_;
  std::unique_ptr<EtcdClient> client_;
};

// Collects watch events from the watch thread.
struct EventLog {
  std::mutex mu;
  std::vector<WatchEvent> events;
  std::vector<int64_t> batch_revisions;

  void Add(const std::vector<WatchEvent>& batch, int64_t revision) {
    std::lock_guard<std::mutex> lock(mu);
    events.insert(events.end(), batch.begin(), batch.end());
    batch_revisions.push_back(revision);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return events.size();
  }
};

TEST(PrefixRangeEndTest, IncrementsLastByteAndCarries) {
  EXPECT_EQ(PrefixRangeEnd("a/"), "a0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixRangeEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientCreateTest, RejectsBadOptions) {
  EXPECT_FALSE(EtcdClient::Create(EtcdOptions{}).ok());
  EtcdOptions options;
  options.endpoints = {"localhost:1", "127.0.0.1:2"};
  EXPECT_EQ(EtcdClient::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  // https:// wants TLS credentials; http:// and a trailing '/' are accepted
  // (the scheme is stripped, so several IPv4 endpoints still qualify).
  options.endpoints = {"https://127.0.0.1:2379"};
  auto https = EtcdClient::Create(options);
  ASSERT_FALSE(https.ok());
  EXPECT_NE(https.status().message().find("is https but no etcd TLS files"), std::string::npos);
  options.endpoints = {"http://127.0.0.1:1/", "http://127.0.0.1:2"};
  EXPECT_TRUE(EtcdClient::Create(options).ok());
  options.endpoints = {"http://localhost:1", "127.0.0.1:2"};
  EXPECT_FALSE(EtcdClient::Create(options).ok());
}

TEST_F(EtcdClientTest, HttpUrlOfAPlaintextEtcdWorks) {
  EtcdOptions options;
  options.endpoints = {"http://" + etcd_.endpoint() + "/"};
  auto client = EtcdClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->Put("/t/url", "1").ok());
}

TEST_F(EtcdClientTest, PutGetPrefixDelete) {
  auto absent = client_->Get("/t/none");
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);

  auto rev1 = client_->Put("/t/b", "2");
  ASSERT_TRUE(rev1.ok()) << rev1.status();
  auto rev2 = client_->Put("/t/a", "1");
  ASSERT_TRUE(rev2.ok());
  EXPECT_GT(*rev2, *rev1);
  ASSERT_TRUE(client_->Put("/t/a", "1bis").ok());
  ASSERT_TRUE(client_->Put("/u/a", "other prefix").ok());

  auto a = client_->Get("/t/a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->value, "1bis");
  EXPECT_EQ(a->version, 2);
  EXPECT_EQ(a->create_revision, *rev2);
  EXPECT_GT(a->mod_revision, *rev2);

  auto prefix = client_->GetPrefix("/t/");
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  ASSERT_EQ(prefix->kvs.size(), 2u);
  EXPECT_EQ(prefix->kvs[0].key, "/t/a");  // key order
  EXPECT_EQ(prefix->kvs[1].key, "/t/b");
  EXPECT_EQ(prefix->revision, a->mod_revision + 1);

  EXPECT_EQ(client_->Delete("/t/none").value_or(-1), 0);
  EXPECT_EQ(client_->Delete("/t/b").value_or(-1), 1);
  EXPECT_EQ(client_->DeletePrefix("/t/").value_or(-1), 1);
  EXPECT_TRUE(client_->GetPrefix("/t/")->kvs.empty());
  EXPECT_EQ(client_->Get("/u/a")->value, "other prefix");
}

TEST_F(EtcdClientTest, CompareAndSwapConflicts) {
  EXPECT_TRUE(client_->PutIfAbsent("/cas/k", "first").value_or(false));
  EXPECT_FALSE(client_->PutIfAbsent("/cas/k", "second").value_or(true));
  EXPECT_EQ(client_->Get("/cas/k")->value, "first");

  int64_t seen = client_->Get("/cas/k")->mod_revision;
  // Someone else writes in between: our swap on the old revision must fail.
  ASSERT_TRUE(client_->Put("/cas/k", "theirs").ok());
  EXPECT_FALSE(client_->CompareAndSwap("/cas/k", seen, "ours").value_or(true));
  EXPECT_EQ(client_->Get("/cas/k")->value, "theirs");
  seen = client_->Get("/cas/k")->mod_revision;
  EXPECT_TRUE(client_->CompareAndSwap("/cas/k", seen, "ours").value_or(false));
  EXPECT_EQ(client_->Get("/cas/k")->value, "ours");

  // A failed transaction runs its failure branch: read what is there.
  auto txn = client_->Txn({Compare::ValueIs("/cas/k", "nope")}, {TxnOp::Delete("/cas/k")},
                          {TxnOp::Get("/cas/", /*prefix=*/true), TxnOp::Put("/cas/x", "y")});
  ASSERT_TRUE(txn.ok()) << txn.status();
  EXPECT_FALSE(txn->succeeded);
  ASSERT_EQ(txn->gets.size(), 2u);
  ASSERT_EQ(txn->gets[0].size(), 1u);
  EXPECT_EQ(txn->gets[0][0].value, "ours");
  EXPECT_TRUE(txn->gets[1].empty());
  EXPECT_EQ(client_->Get("/cas/x")->value, "y");
  EXPECT_TRUE(client_->Get("/cas/k").ok());  // not deleted

  // Concurrent swaps from the same revision: exactly one wins.
  seen = client_->Get("/cas/k")->mod_revision;
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      if (client_->CompareAndSwap("/cas/k", seen, "w" + std::to_string(i)).value_or(false)) {
        ++wins;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST_F(EtcdClientTest, LeaseExpiryDeletesItsKeys) {
  auto lease = client_->GrantLease(seconds(2));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->Put("/lease/a", "x", *lease).ok());
  EXPECT_EQ(client_->Get("/lease/a")->lease, *lease);
  auto ttl = client_->LeaseTimeToLive(*lease);
  ASSERT_TRUE(ttl.ok());
  EXPECT_LE(*ttl, 2);
  EXPECT_TRUE(Eventually([&] { return !client_->Get("/lease/a").ok(); }, seconds(5)));
  EXPECT_EQ(client_->Get("/lease/a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->LeaseTimeToLive(*lease).status().code(), absl::StatusCode::kNotFound);
  // Putting with a dead lease is refused.
  EXPECT_FALSE(client_->Put("/lease/b", "x", *lease).ok());
}

TEST_F(EtcdClientTest, RevokeDeletesKeysAtOnce) {
  auto lease = client_->GrantLease(seconds(30));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(client_->Put("/lease/r", "x", *lease).ok());
  ASSERT_TRUE(client_->RevokeLease(*lease).ok());
  EXPECT_EQ(client_->Get("/lease/r").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->RevokeLease(*lease).code(), absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, KeepAliveKeepsKeysUntilStopped) {
  auto lease = client_->GrantLease(seconds(2));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(client_->Put("/ka/a", "x", *lease).ok());
  std::atomic<bool> lost{false};
  auto keeper = client_->KeepAlive(*lease, seconds(2), [&] { lost = true; });
  std::this_thread::sleep_for(seconds(5));  // 2.5 TTLs
  EXPECT_TRUE(client_->Get("/ka/a").ok());
  EXPECT_FALSE(lost.load());
  EXPECT_FALSE(keeper->lost());
  keeper.reset();  // stop renewing: the lease runs out
  EXPECT_TRUE(Eventually([&] { return !client_->Get("/ka/a").ok(); }, seconds(5)));
  EXPECT_FALSE(lost.load());  // a stopped keeper does not report
}

TEST_F(EtcdClientTest, KeeperReportsRevokedLease) {
  auto lease = client_->GrantLease(seconds(2));
  ASSERT_TRUE(lease.ok());
  std::atomic<int> lost{0};
  auto keeper = client_->KeepAlive(*lease, seconds(2), [&] { ++lost; });
  ASSERT_TRUE(client_->RevokeLease(*lease).ok());
  EXPECT_TRUE(Eventually([&] { return lost.load() == 1; }, seconds(3)));
  EXPECT_TRUE(keeper->lost());
  std::this_thread::sleep_for(milliseconds(800));
  EXPECT_EQ(lost.load(), 1);  // once
}

TEST_F(EtcdClientTest, WatchDeliversPutsAndDeletesInOrder) {
  auto start = client_->GetPrefix("/w/");
  ASSERT_TRUE(start.ok());
  EventLog log;
  auto watch = client_->WatchPrefix("/w/", start->revision + 1,
                                    [&](const auto& events, int64_t rev) { log.Add(events, rev); });
  // Written before the watch is even confirmed: start_revision covers them.
  ASSERT_TRUE(client_->Put("/w/0", "v0").ok());
  ASSERT_TRUE(client_->Put("/x/ignored", "v").ok());
  ASSERT_TRUE(watch->WaitUntilCreated(seconds(5)));
  for (int i = 1; i < 40; ++i) {
    std::string key = "/w/" + std::to_string(i % 7);
    if (i % 5 == 0) {
      ASSERT_TRUE(client_->Delete(key).ok());
    } else {
      ASSERT_TRUE(client_->Put(key, "v" + std::to_string(i)).ok());
    }
  }
  // Deleting an absent key makes no event: count what etcd actually changed.
  ASSERT_TRUE(Eventually([&] { return log.size() >= 36; }, seconds(5))) << log.size();
  std::this_thread::sleep_for(milliseconds(200));
  std::lock_guard<std::mutex> lock(log.mu);
  // Replay the same sequence to know what should have been seen.
  std::map<std::string, bool> exists;
  std::vector<std::pair<WatchEvent::Type, std::string>> expected;
  expected.push_back({WatchEvent::Type::kPut, "/w/0"});
  exists["/w/0"] = true;
  for (int i = 1; i < 40; ++i) {
    std::string key = "/w/" + std::to_string(i % 7);
    if (i % 5 == 0) {
      if (exists[key]) expected.push_back({WatchEvent::Type::kDelete, key});
      exists[key] = false;
    } else {
      expected.push_back({WatchEvent::Type::kPut, key});
      exists[key] = true;
    }
  }
  ASSERT_EQ(log.events.size(), expected.size());
  int64_t last = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(log.events[i].type, expected[i].first) << i;
    EXPECT_EQ(log.events[i].kv.key, expected[i].second) << i;
    EXPECT_GT(log.events[i].kv.mod_revision, last) << i;
    last = log.events[i].kv.mod_revision;
  }
  EXPECT_EQ(log.events[0].kv.value, "v0");
  EXPECT_EQ(log.batch_revisions.back(), last);
}

TEST_F(EtcdClientTest, WatchResumesAfterEtcdRestartWithoutLossOrRepeat) {
  EventLog log;
  auto watch = client_->WatchPrefix("/r/", 0, [&](const auto& e, int64_t rev) { log.Add(e, rev); });
  ASSERT_TRUE(watch->WaitUntilCreated(seconds(5)));
  ASSERT_TRUE(client_->Put("/r/1", "a").ok());
  ASSERT_TRUE(Eventually([&] { return log.size() == 1; }, seconds(5)));
  ASSERT_TRUE(etcd_.Restart()) << etcd_.Log();
  // The channel reconnects by itself (backoff at most 1 s).
  absl::Status last;
  ASSERT_TRUE(Eventually(
      [&] {
        last = client_->Put("/r/2", "b").status();
        return last.ok();
      },
      seconds(10)))
      << last;
  ASSERT_TRUE(client_->Put("/r/3", "c").ok());
  ASSERT_TRUE(Eventually([&] { return log.size() >= 3; }, seconds(10))) << log.size();
  std::this_thread::sleep_for(milliseconds(300));
  std::lock_guard<std::mutex> lock(log.mu);
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[0].kv.key, "/r/1");
  EXPECT_EQ(log.events[1].kv.key, "/r/2");
  EXPECT_EQ(log.events[2].kv.key, "/r/3");
  EXPECT_GE(watch->reconnects(), 1);
}

TEST_F(EtcdClientTest, StoppedEtcdGivesAClearErrorWithoutHanging) {
  ASSERT_TRUE(client_->Put("/s/a", "1").ok());
  etcd_.Stop();
  auto started = std::chrono::steady_clock::now();
  auto put = client_->Put("/s/a", "2");
  auto get = client_->Get("/s/a");
  auto lease = client_->GrantLease(seconds(5));
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(put.ok());
  EXPECT_TRUE(put.status().code() == absl::StatusCode::kUnavailable ||
              put.status().code() == absl::StatusCode::kDeadlineExceeded)
      << put.status();
  EXPECT_NE(put.status().message().find("etcd Put"), std::string::npos) << put.status();
  EXPECT_FALSE(get.ok());
  EXPECT_FALSE(lease.ok());
  EXPECT_LT(took, seconds(5));  // three calls, 1.5 s timeout each at worst

  // A watch on a stopped etcd keeps retrying quietly and is destroyed fast.
  auto watch = client_->WatchPrefix("/s/", 0, [](const auto&, int64_t) {});
  std::this_thread::sleep_for(milliseconds(300));
  started = std::chrono::steady_clock::now();
  watch.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(2));
}

TEST_F(EtcdClientTest, PausedEtcdTimesOutAndTheKeeperGivesTheLeaseUp) {
  auto lease = client_->GrantLease(seconds(2));
  ASSERT_TRUE(lease.ok());
  std::atomic<bool> lost{false};
  auto keeper = client_->KeepAlive(*lease, seconds(2), [&] { lost = true; });
  etcd_.Pause();  // accepts nothing, answers nothing
  auto started = std::chrono::steady_clock::now();
  auto put = client_->Put("/p/a", "1");
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(put.status().code(), absl::StatusCode::kDeadlineExceeded) << put.status();
  EXPECT_LT(took, milliseconds(2500));
  // No renewal can succeed: the keeper must give up within the TTL (plus one
  // request timeout for the renewal in flight).
  EXPECT_TRUE(Eventually([&] { return lost.load(); }, milliseconds(4000)));
  etcd_.Resume();
  EXPECT_TRUE(Eventually([&] { return client_->Put("/p/a", "2").ok(); }, seconds(10)));
}

}  // namespace
}  // namespace cairn::coord
