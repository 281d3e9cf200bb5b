// Application-level discovery in cluster mode: a real cluster on loopback
// (etcd, meta, 2 data, 2 or 3 session processes) with real C++ clients.
// Revisions are registered through one session and used through another;
// they live in etcd; interface-level and app-level clients see each other
// across sessions, as in standalone mode; unused revisions are collected.
// Also the operator's queries (list, describe) answered by any session for
// the whole cluster.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cairn/cluster/v1/cluster.pb.h"
#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "coord/etcd_kv_store.h"
#include "registry/app/app_model.h"
#include "registry/app/revision_store.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster {
namespace {

using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kIface[] = "com.shop.Cart:1.0";

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

std::string Endpoint(int i) { return "bolt://127.0.0.1:" + std::to_string(21000 + i); }
std::string Rendered(int i) { return Endpoint(i) + "?protocol=bolt&weight=100"; }

RevisionSpec ShopRevision() {
  return RevisionSpec{"shop", {{Key(kIface), {{"protocol", "bolt"}, {"weight", "100"}}}}, ""};
}

// Every push a subscriber got, in order.
class Pushes {
 public:
  PushCallback Callback() {
    return [this](const pb::Push& push) {
      std::lock_guard lock(mu_);
      pushes_.push_back(push);
    };
  }
  static std::set<std::string> Data(const pb::Push& push) {
    std::set<std::string> out;
    for (const auto& zone : push.zones()) {
      for (const auto& publisher : zone.publishers()) {
        for (const auto& d : publisher.data()) out.insert(d);
      }
    }
    return out;
  }
  std::optional<pb::Push> Last() const {
    std::lock_guard lock(mu_);
    if (pushes_.empty()) return std::nullopt;
    return pushes_.back();
  }
  bool LastHas(const std::set<std::string>& want) const {
    auto last = Last();
    return last.has_value() && Data(*last) == want;
  }
  std::vector<pb::Push> All() const {
    std::lock_guard lock(mu_);
    return pushes_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<pb::Push> pushes_;
};

class ClusterAppTest : public ::testing::Test {
 protected:
  // Flags of every data and session process.
  virtual std::vector<std::string> RoleFlags() const { return {}; }

  void SetUp() override {
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    auto client = cluster_.ConnectEtcd();
    ASSERT_TRUE(client.ok());
    etcd_ = std::move(*client);
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d1", RoleFlags()), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d2", RoleFlags()), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s1", RoleFlags()), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s2", RoleFlags()), nullptr) << cluster_.Logs();
    // Every slot led and followed, and the leaders balanced: no slot moves
    // (and rebuilds) while a test runs.
    ASSERT_TRUE(Eventually(
        [&] {
          auto kv = etcd_->Get(ClusterKeys("cairn").SlotTable());
          v1::SlotTable table;
          if (!kv.ok() || !table.ParseFromString(kv->value)) return false;
          if (table.slots_size() != static_cast<int>(cluster_.slots())) return false;
          std::map<std::string, int> leads;
          for (const auto& slot : table.slots()) {
            if (slot.leader().empty() || slot.followers_size() != 1) return false;
            ++leads[slot.leader()];
          }
          return leads.size() == 2 && std::abs(leads.begin()->second - leads.rbegin()->second) <= 1;
        },
        seconds(30)))
        << cluster_.Logs();
  }

  std::unique_ptr<RegistryClient> Client(const std::string& session, const std::string& id,
                                         const std::string& app = "consumer") {
    return FailoverClient({session}, id, app);
  }
  // A client that starts on the first session and moves to the next when
  // its session dies.
  std::unique_ptr<RegistryClient> FailoverClient(const std::vector<std::string>& sessions,
                                                 const std::string& id, const std::string& app) {
    RegistryClientOptions options;
    for (const std::string& session : sessions) {
      options.servers.push_back(cluster_.Find(session)->grpc_address);
    }
    options.client_id = id;
    options.app_name = app;
    // The harness's sessions close a stream silent for 3 s.
    options.keepalive_interval = milliseconds(1000);
    options.reconnect_backoff_max = milliseconds(500);
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    EXPECT_TRUE((*client)->WaitConnected(seconds(10)).ok());
    return std::move(*client);
  }

  // cairnctl against a session, as an operator runs it: exit code, output.
  std::pair<int, std::string> Cairnctl(const std::string& session, std::vector<std::string> args) {
    std::vector<std::string> argv = {cairn::testing::BinDir() + "/cairnctl", "--server",
                                     cluster_.Find(session)->grpc_address, "--output", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return cairn::testing::RunCommand(argv, seconds(10));
  }

  std::unique_ptr<pb::Registry::Stub> Stub(const std::string& session) {
    return pb::Registry::NewStub(grpc::CreateChannel(cluster_.Find(session)->grpc_address,
                                                     grpc::InsecureChannelCredentials()));
  }

  ClusterHarness cluster_{16, 2};
  std::unique_ptr<coord::EtcdClient> etcd_;
};

TEST_F(ClusterAppTest, InstancesRegisteredThroughOneSessionReachSubscribersOfAnother) {
  auto provider = Client("s1", "provider", "shop");
  auto revision = provider->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok()) << revision.status() << cluster_.Logs();
  auto first = provider->PublishApp({"shop", *revision, {Endpoint(1)}, "", {}});
  ASSERT_TRUE(first.ok()) << first.status();

  // An old, interface-level consumer and a new, app-level one, on the other
  // session.
  auto consumer = Client("s2", "consumer");
  Pushes by_interface;
  Pushes by_app;
  auto sub = consumer->Subscribe({Key(kIface)}, by_interface.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto app_sub = consumer->SubscribeApp("shop", by_app.Callback());
  ASSERT_TRUE(app_sub.ok()) << app_sub.status();
  EXPECT_TRUE(Eventually([&] { return by_interface.LastHas({Rendered(1)}); }, seconds(10)))
      << cluster_.Logs();
  EXPECT_TRUE(Eventually([&] { return by_app.LastHas({Endpoint(1)}); }, seconds(10)));

  // A second instance from a client of s2, on the revision s1 registered: it
  // does not register it again.
  auto other = Client("s2", "provider-2", "shop");
  auto second = other->PublishApp({"shop", *revision, {Endpoint(2)}, "", {}});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(Eventually(
      [&] {
        return by_interface.LastHas({Rendered(1), Rendered(2)});
      },
      seconds(10)));
  ASSERT_TRUE((*first)->Unregister().ok());
  EXPECT_TRUE(Eventually([&] { return by_interface.LastHas({Rendered(2)}); }, seconds(10)));
  EXPECT_TRUE(Eventually([&] { return by_app.LastHas({Endpoint(2)}); }, seconds(10)));

  // Every answer came on the first stream: a registration answered late (or
  // never) shows up as a reconnect after the session's keepalive timeout.
  EXPECT_EQ(provider->stats().reconnects, 0u);
  EXPECT_EQ(other->stats().reconnects, 0u);

  // Each change of the derived view reached the subscriber as a newer version
  // (the client drops a push whose version is not newer).
  EXPECT_GE(by_interface.All().size(), 3u);

  // The app queries answer from any session.
  auto stub = Stub("s2");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(5));
  pb::DescribeInterfaceRequest request;
  *request.mutable_key() = Key(kIface);
  pb::DescribeInterfaceResponse response;
  ASSERT_TRUE(stub->DescribeInterface(&context, request, &response).ok());
  ASSERT_EQ(response.apps_size(), 1);
  EXPECT_EQ(response.apps(0).app_name(), "shop");
  EXPECT_EQ(response.apps(0).instances(), 1u);

  // And cairnctl, as an operator runs it against a session.
  auto [code, out] = Cairnctl("s1", {"app", "shop"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(Endpoint(2)), std::string::npos) << out;
  EXPECT_EQ(out.find(Endpoint(1)), std::string::npos) << out;
}

TEST_F(ClusterAppTest, RevisionsLiveInEtcdAndStayImmutable) {
  auto provider = Client("s1", "provider", "shop");
  auto revision = provider->RegisterRevision(ShopRevision());
  ASSERT_TRUE(revision.ok()) << revision.status();

  // Stored in etcd, in the layout of the standalone store.
  auto kv = coord::OpenEtcdKvStore(*etcd_, ClusterKeys("cairn").Kv());
  ASSERT_TRUE(kv.ok());
  auto store = NewKvRevisionStore(**kv);
  auto stored = store->Get(*revision);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->meta.app_name(), "shop");
  ASSERT_EQ(stored->meta.interfaces_size(), 1);

  // The same id with other content is refused through the other session too.
  auto s2 = Client("s2", "other", "shop");
  auto again = s2->RegisterRevision(
      RevisionSpec{"shop", {{Key(kIface), {{"protocol", "bolt"}, {"weight", "5"}}}}, *revision});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();

  // An instance on a revision nobody registered is refused clearly.
  auto bogus = s2->PublishApp({"shop", "no-such-revision", {Endpoint(9)}, "", {}});
  EXPECT_EQ(bogus.status().code(), absl::StatusCode::kFailedPrecondition) << bogus.status();

  // A revision written straight to etcd (as by another session an instant
  // ago) is usable at once: the session looks it up if its watch lags.
  StoredRevision direct;
  direct.meta.set_revision("rev-direct");
  direct.meta.set_app_name("shop");
  *direct.meta.add_interfaces()->mutable_key() = Key("com.shop.Direct:1.0");
  direct.registered_at_ms = 1;
  ASSERT_TRUE(store->Put(direct).ok());
  auto direct_instance = s2->PublishApp({"shop", "rev-direct", {Endpoint(3)}, "", {}});
  EXPECT_TRUE(direct_instance.ok()) << direct_instance.status();

  // A session started now loads every revision from etcd.
  ASSERT_NE(cluster_.Start("session", "s3"), nullptr) << cluster_.Logs();
  auto stub = Stub("s3");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(5));
  pb::GetRevisionRequest request;
  request.set_revision(*revision);
  pb::GetRevisionResponse response;
  ASSERT_TRUE(stub->GetRevision(&context, request, &response).ok()) << cluster_.Logs();
  EXPECT_EQ(response.revision().meta().app_name(), "shop");
  EXPECT_GT(response.revision().registered_at_ms(), 0);
}

TEST_F(ClusterAppTest, AppSubscriberSeesInterfaceLevelPublishersOfTheApp) {
  // An old provider of app "shop" publishes interface-level only, and has
  // never registered a revision.
  auto old_provider = Client("s1", "old-provider", "shop");
  std::string url = Endpoint(5) + "?weight=100";
  auto legacy = old_provider->Publish({Key(kIface), {url}, "shop", "", {}});
  ASSERT_TRUE(legacy.ok()) << legacy.status();

  auto consumer = Client("s2", "new-consumer");
  Pushes by_app;
  auto sub = consumer->SubscribeApp("shop", by_app.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Eventually([&] { return by_app.LastHas({url}); }, seconds(10))) << cluster_.Logs();
  pb::Push push = *by_app.Last();
  const auto& entry = push.zones(0).publishers(0);
  ASSERT_TRUE(entry.attributes().contains(std::string(app::kInterfaceAttribute)))
      << push.DebugString();
  EXPECT_EQ(entry.attributes().at(std::string(app::kInterfaceAttribute)),
            DataInfoId(NormalizeKey(Key(kIface))));

  // A session that starts after the publish learns the app index from the
  // data servers when it connects.
  ASSERT_NE(cluster_.Start("session", "s3"), nullptr) << cluster_.Logs();
  auto late = Client("s3", "late-consumer");
  Pushes late_view;
  auto late_sub = late->SubscribeApp("shop", late_view.Callback());
  ASSERT_TRUE(late_sub.ok());
  EXPECT_TRUE(Eventually([&] { return late_view.LastHas({url}); }, seconds(10))) << cluster_.Logs();

  // The old provider leaves: both app views drop it.
  ASSERT_TRUE((*legacy)->Unregister().ok());
  EXPECT_TRUE(Eventually([&] { return by_app.LastHas({}); }, seconds(10)));
  EXPECT_TRUE(Eventually([&] { return late_view.LastHas({}); }, seconds(10)));
}

TEST_F(ClusterAppTest, ListAndDescribeSeeTheWholeClusterFromAnySession) {
  // 20 services published through s1; s2 has never fetched any of them.
  auto provider = Client("s1", "provider", "shop");
  std::vector<std::shared_ptr<Publisher>> held;
  for (int i = 0; i < 20; ++i) {
    auto p =
        provider->Publish({Key("list.svc." + std::to_string(i)), {Endpoint(i)}, "shop", "", {}});
    ASSERT_TRUE(p.ok()) << p.status();
    held.push_back(std::move(*p));
  }
  auto stub = Stub("s2");
  pb::ListDataInfosResponse list;
  ASSERT_TRUE(Eventually(
      [&] {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + seconds(5));
        pb::ListDataInfosRequest request;
        request.set_data_id_prefix("list.svc.");
        list.Clear();
        return stub->ListDataInfos(&context, request, &list).ok() && list.data_infos_size() == 20;
      },
      seconds(10)))
      << list.DebugString();
  std::set<std::string> ids;
  for (const auto& d : list.data_infos()) {
    EXPECT_EQ(d.publishers(), 1u) << d.DebugString();  // once, though two servers hold it
    ids.insert(d.key().data_id());
  }
  EXPECT_EQ(ids.size(), 20u);

  // Describe fetches from the slot leader (it used to answer only from cache).
  auto [code, out] = Cairnctl("s2", {"describe", "list.svc.7"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(Endpoint(7)), std::string::npos) << out;
}

// Churn through both sessions, on revisions each session learns from the
// other an instant before (or after) the instances that use them, then a
// session killed under its clients. Every interface view ends whole, and the
// failover drops no live instance. This is where a fetch that began before a
// change and landed after it used to leave a view short of an instance.
TEST_F(ClusterAppTest, InterfaceViewsStayWholeThroughChurnAndASessionFailover) {
  // Clients of s1 move to s2 when it dies.
  std::vector<std::unique_ptr<RegistryClient>> providers;
  providers.push_back(FailoverClient({"s1", "s2"}, "provider-1", "shop"));
  providers.push_back(Client("s2", "provider-2", "shop"));
  auto consumer_1 = FailoverClient({"s1", "s2"}, "consumer-1", "consumer");
  auto consumer_2 = Client("s2", "consumer-2", "consumer");
  ASSERT_TRUE(providers[0] && providers[1] && consumer_1 && consumer_2);
  Pushes view_1;
  Pushes view_2;
  auto sub_1 = consumer_1->Subscribe({Key(kIface)}, view_1.Callback());
  auto sub_2 = consumer_2->Subscribe({Key(kIface)}, view_2.Callback());
  ASSERT_TRUE(sub_1.ok() && sub_2.ok());

  // Both providers at once, 24 rounds each: a round registers a new revision
  // of shop (kIface plus an interface of its own, so kIface renders the
  // same) and publishes an instance on it at once; every third round one of
  // the provider's instances leaves.
  std::map<int, std::shared_ptr<Publisher>> live[2];
  std::atomic<int> failures{0};
  std::vector<std::thread> churn;
  for (int p = 0; p < 2; ++p) {
    churn.emplace_back([&, p] {
      for (int k = 0; k < 24; ++k) {
        int round = 2 * k + p;
        RevisionSpec spec = ShopRevision();
        spec.interfaces.push_back({Key("com.shop.Extra" + std::to_string(round) + ":1.0"), {}});
        auto revision = providers[p]->RegisterRevision(spec);
        auto instance =
            revision.ok() ? providers[p]->PublishApp({"shop", *revision, {Endpoint(round)}, "", {}})
                          : absl::StatusOr<std::shared_ptr<Publisher>>(revision.status());
        if (!instance.ok()) {
          ++failures;
          continue;
        }
        live[p][round] = std::move(*instance);
        if (k % 3 == 2) {
          if (!live[p][round - 4]->Unregister().ok()) ++failures;
          live[p].erase(round - 4);
        }
      }
    });
  }
  for (auto& t : churn) t.join();
  ASSERT_EQ(failures.load(), 0);
  std::set<std::string> expected;
  for (const auto& by_provider : live) {
    for (const auto& [round, publisher] : by_provider) expected.insert(Rendered(round));
  }
  auto whole = [&] { return view_1.LastHas(expected) && view_2.LastHas(expected); };
  auto mismatch = [&] {
    std::string out = "expected " + std::to_string(expected.size());
    for (const Pushes* view : {&view_1, &view_2}) {
      auto last = view->Last();
      out += last ? "; a view of " + std::to_string(Pushes::Data(*last).size()) : "; no push";
    }
    return out;
  };
  EXPECT_TRUE(Eventually(whole, seconds(10))) << mismatch() << cluster_.Logs();

  // s1 dies under provider-1 and consumer-1; both replay on s2.
  size_t before_kill = view_2.All().size();
  cluster_.Find("s1")->process->Signal(SIGKILL);
  EXPECT_TRUE(Eventually([&] { return consumer_1->stats().reconnects >= 1; }, seconds(15)));
  EXPECT_TRUE(Eventually(whole, seconds(10))) << mismatch() << cluster_.Logs();
  // Past the dead session's lease (4 s): what was replayed on s2 stays.
  std::this_thread::sleep_for(seconds(5));
  EXPECT_TRUE(Eventually(whole, seconds(5))) << mismatch() << cluster_.Logs();

  // consumer-2 never moved: after the kill, no push of its view dropped a
  // live instance.
  auto after = view_2.All();
  for (size_t i = before_kill; i < after.size(); ++i) {
    std::set<std::string> got = Pushes::Data(after[i]);
    EXPECT_TRUE(std::includes(got.begin(), got.end(), expected.begin(), expected.end()))
        << "push " << i << " holds " << got.size() << " of " << expected.size();
  }
}

// Garbage collection with revision_gc_after 1 s (sweeps every 250 ms, and a
// session rewrites a revision registered again at most every 250 ms).
class ClusterAppGcTest : public ClusterAppTest {
 protected:
  std::vector<std::string> RoleFlags() const override { return {"--revision-gc-after-ms", "1000"}; }
  bool InEtcd(const std::string& revision) {
    auto kv = etcd_->Get(ClusterKeys("cairn").Kv() + kRevisionKeyPrefix + revision);
    EXPECT_TRUE(kv.ok() || absl::IsNotFound(kv.status())) << kv.status();
    return kv.ok();
  }
  static RevisionSpec Spec(const std::string& id, const std::string& weight) {
    return RevisionSpec{"shop", {{Key(kIface), {{"protocol", "bolt"}, {"weight", weight}}}}, id};
  }
};

TEST_F(ClusterAppGcTest, UnusedRevisionsAreCollectedAndUsedOnesKept) {
  auto provider = Client("s1", "provider", "shop");
  auto registered = provider->RegisterRevision(Spec("rev-used", "1"));
  ASSERT_TRUE(registered.ok()) << registered.status();
  ASSERT_TRUE(provider->RegisterRevision(Spec("rev-unused", "2")).ok());
  auto instance = provider->PublishApp({"shop", "rev-used", {Endpoint(1)}, "", {}});
  ASSERT_TRUE(instance.ok()) << instance.status();
  ASSERT_TRUE(InEtcd("rev-used"));

  // The unused one goes from etcd and from every session's catalog.
  ASSERT_TRUE(Eventually([&] { return !InEtcd("rev-unused"); }, seconds(15))) << cluster_.Logs();
  auto stub = Stub("s2");
  auto get = [&](const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(5));
    pb::GetRevisionRequest request;
    request.set_revision(id);
    pb::GetRevisionResponse response;
    return stub->GetRevision(&context, request, &response).error_code();
  };
  EXPECT_TRUE(
      Eventually([&] { return get("rev-unused") == grpc::StatusCode::NOT_FOUND; }, seconds(5)));
  // The used one stays, well past gc_after.
  std::this_thread::sleep_for(milliseconds(2000));
  EXPECT_TRUE(InEtcd("rev-used"));
  EXPECT_EQ(get("rev-used"), grpc::StatusCode::OK);

  // Once its last instance leaves, it goes too.
  ASSERT_TRUE((*instance)->Unregister().ok());
  EXPECT_TRUE(Eventually([&] { return !InEtcd("rev-used"); }, seconds(15))) << cluster_.Logs();
}

TEST_F(ClusterAppGcTest, ARevisionClientsKeepRegisteringIsNotCollected) {
  // New clients register the same revision every 150 ms for 3 s (3x
  // gc_after) without publishing: each registration through a session
  // rewrites it in etcd at most every 250 ms, which restarts the count.
  auto deadline = std::chrono::steady_clock::now() + seconds(3);
  int n = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto client = Client(n % 2 == 0 ? "s1" : "s2", "registrar-" + std::to_string(n), "shop");
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->RegisterRevision(Spec("rev-touched", "3")).ok());
    ASSERT_TRUE(InEtcd("rev-touched")) << "collected while clients kept registering it";
    ++n;
    std::this_thread::sleep_for(milliseconds(150));
  }
  // Nobody registers or uses it any more: collected.
  EXPECT_TRUE(Eventually([&] { return !InEtcd("rev-touched"); }, seconds(15))) << cluster_.Logs();
}

}  // namespace
}  // namespace cairn::cluster
