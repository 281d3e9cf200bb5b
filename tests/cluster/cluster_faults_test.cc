// A real registry cluster on loopback (etcd, meta, 3 data, 2 session
// processes; tests/support/cluster_harness.h) with real clients publishing
// and subscribing through both sessions, and one fault per test: kill -9 of a
// data server during a publish storm, of the meta leader (then a data server
// joins), of a session; and a graceful data server shutdown.
//
// After each fault every live publisher must be in every subscriber's view
// within 10 s, and the canary subscribers must never receive a push that
// lacks a live canary publisher. Each test prints its convergence time.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cairn/cluster/v1/cluster.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster {
namespace {

using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kCanaries = 8;
constexpr int kStormIds = 16;

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

// What one subscriber last received, and whether it ever lost a canary.
class View {
 public:
  explicit View(std::string canary) : canary_(std::move(canary)) {}
  void OnPush(const pb::Push& push) {
    std::set<std::string> data;
    for (const auto& zone : push.zones()) {
      for (const auto& publisher : zone.publishers()) {
        for (const auto& d : publisher.data()) data.insert(d);
      }
    }
    std::lock_guard lock(mu_);
    if (!canary_.empty()) {
      bool has = data.contains(canary_);
      if (has) armed_ = true;
      if (armed_ && !has) ++canary_drops_;
    }
    data_ = std::move(data);
  }
  std::set<std::string> data() const {
    std::lock_guard lock(mu_);
    return data_;
  }
  int canary_drops() const {
    std::lock_guard lock(mu_);
    return canary_drops_;
  }

 private:
  const std::string canary_;  // empty: not a canary view
  mutable std::mutex mu_;
  std::set<std::string> data_;
  bool armed_ = false;
  int canary_drops_ = 0;
};

class ClusterFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    auto client = cluster_.ConnectEtcd();
    ASSERT_TRUE(client.ok());
    etcd_ = std::move(*client);
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    for (const char* id : {"d1", "d2", "d3"}) {
      ASSERT_NE(cluster_.Start("data", id), nullptr) << cluster_.Logs();
    }
    ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s2"), nullptr) << cluster_.Logs();
    ASSERT_TRUE(Eventually(
        [&] {
          return Settled({"d1", "d2", "d3"});
        },
        seconds(20)))
        << cluster_.Logs();
    std::string s1 = cluster_.Find("s1")->grpc_address;
    std::string s2 = cluster_.Find("s2")->grpc_address;
    // Two clients, each starting on a different session and failing over to
    // the other; both publish canaries and subscribe to everything.
    for (int c = 0; c < 2; ++c) {
      RegistryClientOptions options;
      options.servers =
          c == 0 ? std::vector<std::string>{s1, s2} : std::vector<std::string>{s2, s1};
      options.client_id = "client-" + std::to_string(c);
      options.app_name = "faults";
      options.reconnect_backoff_max = milliseconds(500);
      options.keepalive_interval = milliseconds(1000);
      auto client = RegistryClient::Create(options);
      ASSERT_TRUE(client.ok()) << client.status();
      ASSERT_TRUE((*client)->WaitConnected(seconds(10)).ok());
      clients_.push_back(std::move(*client));
    }
    for (int i = 0; i < kCanaries; ++i) {
      std::string id = "canary-" + std::to_string(i);
      PublishSpec spec{Key(id), {"c-" + std::to_string(i)}};
      auto publisher = clients_[i % 2]->Publish(spec);
      ASSERT_TRUE(publisher.ok()) << publisher.status();
      publishers_.push_back(std::move(*publisher));
      expected_[id].insert("c-" + std::to_string(i));
      SubscribeTo(id, "c-" + std::to_string(i));
    }
    for (int k = 0; k < kStormIds; ++k) SubscribeTo("storm-" + std::to_string(k), "");
    ASSERT_TRUE(Converged(seconds(10))) << Mismatch() << cluster_.Logs();
  }

  void TearDown() override {
    publishers_.clear();
    subscriptions_.clear();
    clients_.clear();
  }

  void SubscribeTo(const std::string& id, const std::string& canary) {
    for (auto& client : clients_) {
      auto view = std::make_shared<View>(canary);
      auto sub = client->Subscribe(SubscribeSpec{Key(id)},
                                   [view](const pb::Push& push) { view->OnPush(push); });
      ASSERT_TRUE(sub.ok()) << sub.status();
      subscriptions_.push_back(std::move(*sub));
      std::lock_guard lock(mu_);
      views_[id].push_back(view);
    }
  }

  absl::StatusOr<v1::SlotTable> Table() {
    auto kv = etcd_->Get(keys_.SlotTable());
    if (!kv.ok()) return kv.status();
    v1::SlotTable table;
    if (!table.ParseFromString(kv->value)) return absl::DataLossError("bad table");
    return table;
  }

  // Every slot has a live leader and a live follower, and every live data
  // server leads some slot.
  bool Settled(const std::set<std::string>& live) {
    auto table = Table();
    if (!table.ok() || table->slots_size() != static_cast<int>(cluster_.slots())) return false;
    std::map<std::string, int> leads;
    for (const auto& slot : table->slots()) {
      if (!live.contains(slot.leader()) || slot.followers_size() != 1 ||
          !live.contains(slot.followers(0))) {
        return false;
      }
      ++leads[slot.leader()];
    }
    return leads.size() == live.size();
  }

  // Whether every subscriber sees exactly the expected publishers.
  bool AllViewsMatch() {
    std::lock_guard lock(mu_);
    for (const auto& [id, views] : views_) {
      const std::set<std::string>& want = expected_[id];
      for (const auto& view : views) {
        if (view->data() != want) return false;
      }
    }
    return true;
  }
  bool Converged(milliseconds timeout) {
    return Eventually([&] { return AllViewsMatch(); }, timeout);
  }
  std::string Mismatch() {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [id, views] : views_) {
      for (const auto& view : views) {
        auto data = view->data();
        if (data != expected_[id]) {
          out += id + ": has " + std::to_string(data.size()) + ", wants " +
                 std::to_string(expected_[id].size()) + "\n";
        }
      }
    }
    return out;
  }
  int CanaryDrops() {
    std::lock_guard lock(mu_);
    int drops = 0;
    for (const auto& [id, views] : views_) {
      for (const auto& view : views) drops += view->canary_drops();
    }
    return drops;
  }

  // Publishes `count` storm publishers from client 0, one every `gap`,
  // calling `midway` after half of them. Returns the failures.
  int Storm(int count, milliseconds gap, const std::function<void()>& midway) {
    int failures = 0;
    for (int n = 0; n < count; ++n) {
      if (n == count / 2) midway();
      std::string id = "storm-" + std::to_string(n % kStormIds);
      std::string data = "s-" + std::to_string(n);
      auto publisher = clients_[n % 2]->Publish(PublishSpec{Key(id), {data}});
      if (!publisher.ok()) {
        ++failures;
        ADD_FAILURE() << "publish " << data << ": " << publisher.status();
        continue;
      }
      publishers_.push_back(std::move(*publisher));
      std::lock_guard lock(mu_);
      expected_[id].insert(data);
      std::this_thread::sleep_for(gap);
    }
    return failures;
  }

  // Milliseconds from `since` until every view matches (or -1 after 10 s).
  long ConvergenceMs(Clock::time_point since) {
    bool ok = Converged(seconds(10));
    return ok ? std::chrono::duration_cast<milliseconds>(Clock::now() - since).count() : -1;
  }

  ClusterHarness cluster_;
  std::unique_ptr<coord::EtcdClient> etcd_;
  ClusterKeys keys_{"cairn"};
  std::vector<std::unique_ptr<RegistryClient>> clients_;
  std::vector<std::shared_ptr<Publisher>> publishers_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::shared_ptr<View>>> views_;
  std::map<std::string, std::set<std::string>> expected_;
};

TEST_F(ClusterFaultsTest, DataServerKilledDuringPublishStorm) {
  Clock::time_point killed;
  int failures = Storm(200, milliseconds(10), [&] {
    cluster_.Find("d2")->process->Signal(SIGKILL);
    killed = Clock::now();
  });
  EXPECT_EQ(failures, 0);
  Clock::time_point storm_end = Clock::now();
  long ms = ConvergenceMs(storm_end);
  EXPECT_GE(ms, 0) << Mismatch() << cluster_.Logs();
  std::printf(
      "convergence after kill -9 of a data server: %ld ms after the storm ended, %ld ms "
      "after the kill\n",
      ms,
      static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - killed).count()));
  EXPECT_EQ(CanaryDrops(), 0);
  EXPECT_TRUE(Eventually([&] { return Settled({"d1", "d3"}); }, seconds(20)));
  // Still converged once the slots settled on the two survivors.
  EXPECT_TRUE(Converged(seconds(10))) << Mismatch();
  EXPECT_EQ(CanaryDrops(), 0);
}

// Back under the same id before its membership lease ran out: the table does
// not change, yet the restarted server has lost everything it held. The
// sessions notice through their change feed and re-send their part.
TEST_F(ClusterFaultsTest, DataServerRestartedUnderTheSameId) {
  cluster_.Find("d2")->process->Signal(SIGKILL);
  ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
  Clock::time_point restarted = Clock::now();
  EXPECT_EQ(Storm(20, milliseconds(10), [] {}), 0);
  long ms = ConvergenceMs(restarted);
  EXPECT_GE(ms, 0) << Mismatch() << cluster_.Logs();
  std::printf("convergence after a data server restarted under its id: %ld ms\n", ms);
  // Still complete once any rebuild timeout has passed.
  std::this_thread::sleep_for(seconds(3));
  EXPECT_TRUE(Converged(seconds(10))) << Mismatch() << cluster_.Logs();
  EXPECT_EQ(CanaryDrops(), 0);
}

TEST_F(ClusterFaultsTest, MetaLeaderKilledThenDataServerJoins) {
  ASSERT_NE(cluster_.Start("meta", "m2"), nullptr);
  cluster_.Find("m1")->process->Signal(SIGKILL);
  ASSERT_TRUE(Eventually(
      [&] {
        auto kv = etcd_->Get(keys_.MetaLeader());
        return kv.ok() && kv->value == "m2";
      },
      seconds(10)));
  ASSERT_NE(cluster_.Start("data", "d4"), nullptr);
  Clock::time_point joined = Clock::now();
  EXPECT_EQ(Storm(40, milliseconds(20), [] {}), 0);
  ASSERT_TRUE(Eventually(
      [&] {
        return Settled({"d1", "d2", "d3", "d4"});
      },
      seconds(20)))
      << cluster_.Logs();
  long ms = ConvergenceMs(joined);
  EXPECT_GE(ms, 0) << Mismatch() << cluster_.Logs();
  std::printf("convergence after a data server joined (slots rebalanced): %ld ms\n", ms);
  EXPECT_EQ(CanaryDrops(), 0);
}

TEST_F(ClusterFaultsTest, SessionKilledClientsMoveAndReplay) {
  // Clients find the sessions through any session's server list.
  std::string s1 = cluster_.Find("s1")->grpc_address;
  std::string s2 = cluster_.Find("s2")->grpc_address;
  auto servers = [&](const std::string& admin) {
    return cairn::testing::RunCommand(
               {"/usr/bin/curl", "-s", "http://" + admin + "/api/v1/servers"}, seconds(10))
        .second;
  };
  std::string listed = servers(cluster_.Find("s2")->admin_address);
  EXPECT_NE(listed.find("\"" + s1 + "\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"" + s2 + "\""), std::string::npos) << listed;

  cluster_.Find("s1")->process->Signal(SIGKILL);
  Clock::time_point killed = Clock::now();
  // A change right after the kill reaches the subscribers that were on s1
  // only once their clients have moved to s2 and replayed.
  EXPECT_EQ(Storm(2, milliseconds(0), [] {}), 0);
  long ms = ConvergenceMs(killed);
  EXPECT_GE(ms, 0) << Mismatch() << cluster_.Logs();
  std::printf("convergence after kill -9 of a session: %ld ms\n", ms);
  EXPECT_GE(clients_[0]->stats().reconnects, 1u);
  // The dead session's lease (4 s) runs out: what its clients re-registered
  // on s2 stays.
  std::this_thread::sleep_for(seconds(6));
  EXPECT_TRUE(Converged(seconds(5))) << Mismatch() << cluster_.Logs();
  listed = servers(cluster_.Find("s2")->admin_address);
  EXPECT_EQ(listed.find("\"" + s1 + "\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"" + s2 + "\""), std::string::npos) << listed;
  EXPECT_EQ(Storm(20, milliseconds(10), [] {}), 0);
  EXPECT_TRUE(Converged(seconds(10))) << Mismatch();
  EXPECT_EQ(CanaryDrops(), 0);
}

// Clients given the same list of sessions spread over them.
TEST_F(ClusterFaultsTest, ClientsSpreadOverTheSessions) {
  std::vector<std::unique_ptr<RegistryClient>> more;
  for (int i = 0; i < 16; ++i) {
    RegistryClientOptions options;
    options.servers = {cluster_.Find("s1")->grpc_address, cluster_.Find("s2")->grpc_address};
    options.spread_over_servers = true;
    auto client = RegistryClient::Create(options);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->WaitConnected(seconds(10)).ok());
    more.push_back(std::move(*client));
  }
  auto streams = [&](const char* id) {
    return static_cast<int>(cluster_.Metric(id, "cairn_registry_connections"));
  };
  // Each session also holds one of the fixture's two clients. With 16 more
  // spread at random, both get some (all 16 on one: p = 2^-15).
  EXPECT_GT(streams("s1"), 1);
  EXPECT_GT(streams("s2"), 1);
  EXPECT_EQ(streams("s1") + streams("s2"), 18);
}

TEST_F(ClusterFaultsTest, GracefulDataShutdownHandsSlotsOver) {
  std::optional<int> code;
  std::thread stopper([&] { code = cluster_.Stop("d1", SIGTERM, seconds(30)); });
  EXPECT_EQ(Storm(40, milliseconds(20), [] {}), 0);
  stopper.join();
  EXPECT_EQ(code, 0) << cluster_.Logs();
  EXPECT_NE(cluster_.Find("d1")->process->Output().find("drained"), std::string::npos)
      << cluster_.Find("d1")->process->Output();
  EXPECT_TRUE(Eventually([&] { return Settled({"d2", "d3"}); }, seconds(20)));
  EXPECT_TRUE(Converged(seconds(10))) << Mismatch() << cluster_.Logs();
  EXPECT_EQ(CanaryDrops(), 0);
  // Every role stops cleanly on SIGTERM (exit 0; sanitizer builds report
  // leaks through the exit code).
  TearDown();  // the clients first, so the sessions do not wait for them
  for (const char* id : {"s1", "s2", "d2", "d3", "m1"}) {
    EXPECT_EQ(cluster_.Stop(id, SIGTERM, seconds(30)), 0) << id << "\n"
                                                          << cluster_.Find(id)->process->Output();
  }
}

}  // namespace
}  // namespace cairn::cluster
