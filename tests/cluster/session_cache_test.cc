// The cluster session's datum cache on a real cluster (etcd, meta, 2 data
// servers, 1 session with datum_cache_idle_ms 400): copies nobody reads are
// dropped, and a dropped datum is still pushed when it changes and fetched
// when a subscriber asks for it again.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "client/registry_client.h"
#include "cluster_harness.h"

namespace cairn::cluster {
namespace {

using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using std::chrono::milliseconds;
using std::chrono::seconds;

pb::DataInfoKey Key(int i) {
  pb::DataInfoKey key;
  key.set_data_id("cache.svc." + std::to_string(i));
  return key;
}

// The newest data of each subscription, by service index.
class Views {
 public:
  PushCallback For(int i) {
    return [this, i](const pb::Push& push) {
      std::set<std::string> data;
      for (const auto& zone : push.zones()) {
        for (const auto& publisher : zone.publishers()) {
          for (const auto& d : publisher.data()) data.insert(d);
        }
      }
      std::lock_guard lock(mu_);
      views_[i] = std::move(data);
    };
  }
  bool Has(int i, const std::set<std::string>& want) {
    std::lock_guard lock(mu_);
    auto it = views_.find(i);
    return it != views_.end() && it->second == want;
  }

 private:
  std::mutex mu_;
  std::map<int, std::set<std::string>> views_;
};

class SessionCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s1", {"--datum-cache-idle-ms", "400"}), nullptr)
        << cluster_.Logs();
  }

  std::unique_ptr<RegistryClient> Client(const std::string& id) {
    RegistryClientOptions options;
    options.servers = {cluster_.Find("s1")->grpc_address};
    options.client_id = id;
    options.app_name = "cache-test";
    options.keepalive_interval = milliseconds(1000);  // the harness's sessions wait 3 s
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok() || !(*client)->WaitConnected(seconds(10)).ok()) return nullptr;
    return std::move(*client);
  }

  // cairn_registry_cached_datums on s1's admin port, or -1.
  int CachedDatums() {
    return static_cast<int>(cluster_.Metric("s1", "cairn_registry_cached_datums"));
  }

  ClusterHarness cluster_{16, 2};
};

TEST_F(SessionCacheTest, IdleCopiesAreDroppedAndDatumsStillServed) {
  auto provider = Client("provider");
  auto consumer = Client("consumer");
  ASSERT_TRUE(provider && consumer);
  std::vector<std::shared_ptr<Publisher>> publishers;
  for (int i = 0; i < 10; ++i) {
    auto p = provider->Publish({Key(i), {"a-" + std::to_string(i)}});
    ASSERT_TRUE(p.ok()) << p.status();
    publishers.push_back(std::move(*p));
  }
  Views views;
  std::vector<std::shared_ptr<Subscription>> subs;
  for (int i = 0; i < 10; ++i) {
    auto s = consumer->Subscribe({Key(i)}, views.For(i));
    ASSERT_TRUE(s.ok()) << s.status();
    subs.push_back(std::move(*s));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Eventually([&] { return views.Has(i, {"a-" + std::to_string(i)}); }, seconds(10)))
        << i << cluster_.Logs();
  }
  EXPECT_TRUE(Eventually([&] { return CachedDatums() >= 10; }, seconds(5))) << CachedDatums();

  // Nine subscriptions go; the tenth stays but nobody reads its datum.
  for (int i = 1; i < 10; ++i) ASSERT_TRUE(subs[i]->Unsubscribe().ok());
  EXPECT_TRUE(Eventually([&] { return CachedDatums() == 0; }, seconds(5))) << CachedDatums();

  // The dropped datum still reaches its subscriber when it changes...
  auto second = provider->Publish({Key(0), {"b-0"}});
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(Eventually(
      [&] {
        return views.Has(0, {"a-0", "b-0"});
      },
      seconds(5)))
      << cluster_.Logs();
  // ...and a new subscriber of a dropped datum gets it from its data server.
  Views again;
  auto resubscribed = consumer->Subscribe({Key(5)}, again.For(5));
  ASSERT_TRUE(resubscribed.ok());
  EXPECT_TRUE(Eventually([&] { return again.Has(5, {"a-5"}); }, seconds(5))) << cluster_.Logs();
  EXPECT_GE(CachedDatums(), 1);
}

}  // namespace
}  // namespace cairn::cluster
