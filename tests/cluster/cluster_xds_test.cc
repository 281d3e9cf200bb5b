// xDS in cluster mode: a real cluster on loopback (etcd, meta, 2 data, 2
// session processes). Any session server serves ADS from the cluster's data:
// publishers on both sessions (two clients, several publishers each) reach an
// ADS stream on one session; a client's death removes exactly its endpoints;
// a wildcard Cluster subscription lists services published only through the
// other session; `cairnctl xds` shows the node.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "ads_test_client.h"
#include "cairn/cluster/v1/cluster.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster {
namespace {

using cairn::testing::AdsStream;
using cairn::testing::ByName;
using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using cairn::testing::kCdsType;
using cairn::testing::kEdsType;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kService[] = "cairn.cluster.Echo";

std::set<std::string> Addresses(const ClusterLoadAssignment& cla) {
  std::set<std::string> out;
  for (const auto& locality : cla.endpoints()) {
    for (const auto& lb : locality.lb_endpoints()) {
      const auto& sa = lb.endpoint().address().socket_address();
      out.insert(sa.address() + ":" + std::to_string(sa.port_value()));
    }
  }
  return out;
}

std::string Address(int port) { return "127.0.0.1:" + std::to_string(port); }

class ClusterXdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s2"), nullptr) << cluster_.Logs();
    auto etcd = cluster_.ConnectEtcd();
    ASSERT_TRUE(etcd.ok());
    // Every slot led and followed: no slot moves while the test runs.
    ASSERT_TRUE(Eventually(
        [&] {
          auto kv = (*etcd)->Get(ClusterKeys("cairn").SlotTable());
          v1::SlotTable table;
          if (!kv.ok() || !table.ParseFromString(kv->value)) return false;
          if (table.slots_size() != static_cast<int>(cluster_.slots())) return false;
          for (const auto& slot : table.slots()) {
            if (slot.leader().empty() || slot.followers_size() != 1) return false;
          }
          return true;
        },
        seconds(30)))
        << cluster_.Logs();
  }

  std::unique_ptr<RegistryClient> Client(const std::string& session, const std::string& id) {
    RegistryClientOptions options;
    options.servers = {cluster_.Find(session)->grpc_address};
    options.client_id = id;
    options.app_name = id;
    options.keepalive_interval = milliseconds(1000);
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    EXPECT_TRUE((*client)->WaitConnected(seconds(10)).ok());
    return std::move(*client);
  }

  std::shared_ptr<Publisher> Publish(RegistryClient& client, const std::string& data_id, int port,
                                     const std::string& zone) {
    PublishSpec spec;
    spec.key.set_data_id(data_id);
    spec.data = {"grpc://" + Address(port)};
    spec.zone = zone;
    auto publisher = client.Publish(spec);
    EXPECT_TRUE(publisher.ok()) << publisher.status();
    return publisher.ok() ? *publisher : nullptr;
  }

  // Reads EDS responses (ACKing each) until the service's addresses are
  // `want`, within `timeout`.
  static bool WaitForAddresses(AdsStream& ads, const std::set<std::string>& want,
                               std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::set<std::string> last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto response = ads.Next(milliseconds(200));
      if (!response) continue;
      ads.Ack(*response);
      if (response->type_url() != kEdsType) continue;
      auto clas = ByName<ClusterLoadAssignment>(*response);
      auto it = clas.find(kService);
      if (it == clas.end()) continue;
      last = Addresses(it->second);
      if (last == want) return true;
    }
    ADD_FAILURE() << "addresses never became the expected set; last seen " << last.size();
    return false;
  }

  ClusterHarness cluster_;
};

TEST_F(ClusterXdsTest, AnySessionServesTheClustersEndpointsAndFollowsChanges) {
  // Two clients on two sessions, two publishers each, in two zones.
  auto a = Client("s1", "client-a");
  auto b = Client("s2", "client-b");
  ASSERT_TRUE(a && b);
  std::vector<std::shared_ptr<Publisher>> held = {
      Publish(*a, kService, 31001, "zone-a"), Publish(*a, kService, 31002, "zone-a"),
      Publish(*b, kService, 31003, "zone-b"), Publish(*b, kService, 31004, "zone-b")};

  AdsStream ads(cluster_.Find("s2")->grpc_address, "cluster-node");
  ASSERT_TRUE(ads.Subscribe(kEdsType, {kService}));
  ASSERT_TRUE(WaitForAddresses(
      ads, {Address(31001), Address(31002), Address(31003), Address(31004)}, seconds(10)))
      << cluster_.Logs();

  // Client a (on the other session) goes away: exactly its endpoints leave.
  held[0].reset();
  held[1].reset();
  a.reset();
  ASSERT_TRUE(WaitForAddresses(ads, {Address(31003), Address(31004)}, seconds(15)))
      << cluster_.Logs();

  // A new client on s1 publishes: the stream on s2 gets it.
  auto c = Client("s1", "client-c");
  ASSERT_TRUE(c);
  held.push_back(Publish(*c, kService, 31005, "zone-a"));
  ASSERT_TRUE(WaitForAddresses(ads, {Address(31003), Address(31004), Address(31005)}, seconds(10)))
      << cluster_.Logs();

  // The operator sees the node on s2, with what it acknowledged.
  auto [code, out] =
      cairn::testing::RunCommand({cairn::testing::BinDir() + "/cairnctl", "--server",
                                  cluster_.Find("s2")->grpc_address, "--output", "json", "xds"},
                                 seconds(10));
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"node_id\":\"cluster-node\""), std::string::npos) << out;
  EXPECT_NE(out.find(kService), std::string::npos) << out;
}

TEST_F(ClusterXdsTest, WildcardClustersListTheWholeCluster) {
  auto b = Client("s2", "client-b");
  ASSERT_TRUE(b);
  auto p1 = Publish(*b, "cairn.cluster.One", 32001, "zone-a");
  auto p2 = Publish(*b, "cairn.cluster.Two", 32002, "zone-a");
  // The stream is on s1, which never saw these publishers.
  AdsStream ads(cluster_.Find("s1")->grpc_address, "wildcard-node");
  ASSERT_TRUE(ads.Subscribe(kCdsType, {}));
  std::set<std::string> names;
  auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (std::chrono::steady_clock::now() < deadline && names.size() < 2) {
    auto response = ads.Next(milliseconds(200));
    if (!response) continue;
    ads.Ack(*response);
    names.clear();
    for (const auto& [name, c] : ByName<envoy::config::cluster::v3::Cluster>(*response)) {
      names.insert(name);
    }
  }
  EXPECT_EQ(names, (std::set<std::string>{"cairn.cluster.One", "cairn.cluster.Two"}))
      << cluster_.Logs();
  // A service created later through the other session joins the list.
  auto p3 = Publish(*b, "cairn.cluster.Three", 32003, "zone-a");
  deadline = std::chrono::steady_clock::now() + seconds(15);
  while (std::chrono::steady_clock::now() < deadline && names.size() < 3) {
    auto response = ads.Next(milliseconds(200));
    if (!response) continue;
    ads.Ack(*response);
    names.clear();
    for (const auto& [name, c] : ByName<envoy::config::cluster::v3::Cluster>(*response)) {
      names.insert(name);
    }
  }
  EXPECT_EQ(names.count("cairn.cluster.Three"), 1u) << cluster_.Logs();
}

}  // namespace
}  // namespace cairn::cluster
