// Application-level discovery through the sidecar (issue 6), with real
// processes: a registry, sidecars, HTTP backends, RegistryClient watchers.
//   * inbound: the discovery switch (interface | both | app) decides which
//     records the sidecar publishes for the interfaces in its config; old
//     interface-level subscribers see the app in every mode; SIGTERM
//     withdraws;
//   * the local registration API: bad JSON, publish/unpublish and revisions;
//   * outbound app mode: a cluster fed app-level reaches a provider published
//     app-level and one still published interface-level (a migration), and
//     keeps serving without a failed request when one of them leaves.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The value of "key":"VALUE" in a flat JSON text (first occurrence).
std::string JsonString(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\":\"";
  size_t pos = json.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  return json.substr(pos, json.find('"', pos) - pos);
}

// (HTTP status, body) of a request to the sidecar's admin API.
std::pair<int, std::string> Admin(const std::string& admin, const std::string& path,
                                  const std::string& post_body = "", bool post = false) {
  std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-w", "\n%{http_code}"};
  if (post) {
    argv.insert(argv.end(),
                {"-X", "POST", "-H", "content-type: application/json", "--data-binary", post_body});
  }
  argv.push_back("http://" + admin + path);
  std::string out = RunCommand(argv, seconds(10)).second;
  size_t nl = out.rfind('\n');
  if (nl == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

class SidecarAppDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(registry_.Start()) << registry_.Log();
    stub_ = pb::Registry::NewStub(
        grpc::CreateChannel(registry_.grpc_address(), grpc::InsecureChannelCredentials()));
  }

  pb::DescribeInterfaceResponse DescribeInterface(const std::string& data_id) {
    grpc::ClientContext context;
    pb::DescribeInterfaceRequest request;
    *request.mutable_key() = Key(data_id);
    pb::DescribeInterfaceResponse response;
    EXPECT_TRUE(stub_->DescribeInterface(&context, request, &response).ok());
    return response;
  }
  // The revisions of an app's instances (empty when it has none).
  std::vector<std::string> AppRevisions(const std::string& app, int* instances = nullptr) {
    grpc::ClientContext context;
    pb::DescribeAppRequest request;
    request.set_app_name(app);
    pb::DescribeAppResponse response;
    std::vector<std::string> out;
    int count = 0;
    if (stub_->DescribeApp(&context, request, &response).ok()) {
      for (const auto& r : response.revisions()) {
        if (r.instances_size() == 0) continue;
        out.push_back(r.revision());
        count += r.instances_size();
      }
    }
    if (instances != nullptr) *instances = count;
    return out;
  }
  pb::RevisionMeta Revision(const std::string& id) {
    grpc::ClientContext context;
    pb::GetRevisionRequest request;
    request.set_revision(id);
    pb::GetRevisionResponse response;
    EXPECT_TRUE(stub_->GetRevision(&context, request, &response).ok());
    return response.revision().meta();
  }

  // An inbound sidecar fronting `backend`, publishing two interfaces.
  std::string InboundConfig(const std::string& mode, const BackendProcess& backend,
                            const std::string& app = "shop") {
    return R"(
workers: 1
admin: 127.0.0.1:0
registry_servers: [")" +
           registry_.grpc_address() + R"("]
app: { name: )" +
           app + ", discovery: " + mode + R"( }
listeners:
  - name: inbound
    address: 127.0.0.1:0
    publish:
      interfaces:
        - { data_id: "com.shop.Cart:1.0", params: { version: "1.0", weight: "50" } }
        - { data_id: "com.shop.Order:1.0" }
    publish_health_cluster: local
    routes:
      - cluster: local
clusters:
  - name: local
    endpoints: [")" +
           backend.address() + R"("]
    health_check: { type: tcp, interval_ms: 200, timeout_ms: 200 }
)";
  }

  RegistryProcess registry_;
  std::unique_ptr<pb::Registry::Stub> stub_;
};

TEST_F(SidecarAppDiscoveryTest, AppModePublishesOneRecordThatOldSubscribersSee) {
  BackendProcess app("cart-app");
  ASSERT_TRUE(app.Start());
  SidecarProcess sidecar(InboundConfig("app", app));
  ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
  std::string endpoint = "http://" + sidecar.listener("inbound");

  // An old interface-level subscriber: the registry derives its data from
  // the app-level record, with the interface's params.
  auto client = MakeClient({registry_.grpc_address()}, "old-consumer");
  PushCollector cart;
  auto sub = client->Subscribe({Key("com.shop.Cart:1.0")}, cart.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(cart.WaitForData({endpoint + "?protocol=http&version=1.0&weight=50"}, seconds(10))
                  .has_value())
      << sidecar.Log();
  EXPECT_EQ(RunCommand({"/usr/bin/curl", "-s", endpoint + "/"}, seconds(10)).second, "cart-app\n");

  // The records: one app instance on a revision serving both interfaces, no
  // interface-level publisher.
  int instances = 0;
  auto revisions = AppRevisions("shop", &instances);
  ASSERT_EQ(revisions.size(), 1u);
  EXPECT_EQ(instances, 1);
  pb::RevisionMeta meta = Revision(revisions[0]);
  ASSERT_EQ(meta.interfaces_size(), 2);
  EXPECT_EQ(meta.interfaces(0).key().data_id(), "com.shop.Cart:1.0");
  EXPECT_EQ(meta.interfaces(0).params().at("weight"), "50");
  EXPECT_EQ(meta.interfaces(1).params().at("protocol"), "http");
  auto described = DescribeInterface("com.shop.Cart:1.0");
  EXPECT_EQ(described.interface_publishers(), 0u);
  ASSERT_EQ(described.apps_size(), 1);
  EXPECT_EQ(described.apps(0).app_name(), "shop");
  auto state = Admin(sidecar.admin(), "/registry");
  EXPECT_EQ(state.first, 200);
  EXPECT_EQ(JsonString(state.second, "revision"), revisions[0]) << state.second;

  // SIGTERM: the app-level record is withdrawn before the sidecar exits.
  EXPECT_EQ(sidecar.Stop(SIGTERM), 0) << sidecar.Log();
  EXPECT_TRUE(cart.WaitForData({}, seconds(5)).has_value());
  AppRevisions("shop", &instances);
  EXPECT_EQ(instances, 0);
}

TEST_F(SidecarAppDiscoveryTest, BothAndInterfaceModesPublishTheExpectedRecords) {
  BackendProcess app("order-app");
  ASSERT_TRUE(app.Start());
  auto client = MakeClient({registry_.grpc_address()}, "old-consumer");
  for (std::string mode : {"both", "interface"}) {
    SCOPED_TRACE(mode);
    SidecarProcess sidecar(InboundConfig(mode, app));
    ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
    std::string endpoint = "http://" + sidecar.listener("inbound");
    PushCollector order;
    auto sub = client->Subscribe({Key("com.shop.Order:1.0")}, order.Callback());
    ASSERT_TRUE(sub.ok());
    // One URL either way: in mode both the interface-level one and the one
    // derived from the app record share the endpoint, and the registry keeps
    // one.
    ASSERT_TRUE(order.WaitForData({endpoint + "?protocol=http"}, seconds(10)).has_value())
        << sidecar.Log();
    for (const char* interface : {"com.shop.Cart:1.0", "com.shop.Order:1.0"}) {
      ASSERT_TRUE(Eventually(
          [&] { return DescribeInterface(interface).interface_publishers() == 1; }, seconds(5)))
          << interface;
    }
    int instances = 0;
    std::vector<std::string> revisions;
    // Mode both publishes interface-level first, then app-level.
    Eventually(
        [&] {
          revisions = AppRevisions("shop", &instances);
          return instances > 0;
        },
        seconds(mode == "both" ? 5 : 1));
    if (mode == "both") {
      EXPECT_EQ(instances, 1);
      ASSERT_EQ(revisions.size(), 1u);
      EXPECT_EQ(Revision(revisions[0]).interfaces_size(), 2);
      EXPECT_EQ(DescribeInterface("com.shop.Order:1.0").apps_size(), 1);
    } else {
      EXPECT_EQ(instances, 0);
      EXPECT_EQ(DescribeInterface("com.shop.Order:1.0").apps_size(), 0);
    }
    EXPECT_EQ(sidecar.Stop(SIGTERM), 0) << sidecar.Log();
    EXPECT_TRUE(order.WaitForData({}, seconds(5)).has_value());
    EXPECT_EQ(DescribeInterface("com.shop.Cart:1.0").interface_publishers(), 0u);
    AppRevisions("shop", &instances);
    EXPECT_EQ(instances, 0);
  }
}

TEST_F(SidecarAppDiscoveryTest, LocalApiPublishesAndUnpublishesWithNewRevisions) {
  BackendProcess app("api-app");
  ASSERT_TRUE(app.Start());
  SidecarProcess sidecar(R"(
workers: 1
admin: 127.0.0.1:0
registry_servers: [")" + registry_.grpc_address() +
                         R"("]
app: { name: api-shop, discovery: app }
listeners:
  - name: inbound
    address: 127.0.0.1:0
    publish: {}
    routes:
      - cluster: local
clusters:
  - name: local
    endpoints: [")" + app.address() +
                         R"("]
)");
  ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
  const std::string admin = sidecar.admin();
  std::string endpoint = "http://" + sidecar.listener("inbound");
  // Bad input: 400 with a message; nothing is published.
  auto bad = Admin(admin, "/registry/publish", "{\"interface\": ", true);
  EXPECT_EQ(bad.first, 400);
  EXPECT_NE(bad.second.find("bad JSON"), std::string::npos) << bad.second;
  EXPECT_EQ(Admin(admin, "/registry/publish", "[1,2]", true).first, 400);
  EXPECT_EQ(Admin(admin, "/registry/publish", "{\"group\":\"SOFA\"}", true).first, 400);
  EXPECT_EQ(Admin(admin, "/registry/publish", "{\"interface\":\"a\",\"x\":[1]}", true).first, 400);
  EXPECT_EQ(Admin(admin, "/registry/unpublish", "{\"data_id\":\"never.published\"}", true).first,
            404);
  EXPECT_TRUE(AppRevisions("api-shop").empty());

  // Publish one interface: a revision, one instance.
  auto first = Admin(admin, "/registry/publish",
                     R"({"interface":"com.api.Cart","version":"1.0","weight":100,
                        "params":{"serialization":"json"}})",
                     true);
  ASSERT_EQ(first.first, 200) << first.second << sidecar.Log();
  std::string r1 = JsonString(first.second, "revision");
  ASSERT_FALSE(r1.empty()) << first.second;
  EXPECT_EQ(AppRevisions("api-shop"), std::vector<std::string>{r1});
  auto meta = Revision(r1);
  ASSERT_EQ(meta.interfaces_size(), 1);
  EXPECT_EQ(meta.interfaces(0).key().data_id(), "com.api.Cart:1.0");
  EXPECT_EQ(meta.interfaces(0).params().at("weight"), "100");
  EXPECT_EQ(meta.interfaces(0).params().at("serialization"), "json");

  // A second interface: a new revision; the old record is replaced. An old
  // subscriber of the new interface sees the sidecar's endpoint.
  auto client = MakeClient({registry_.grpc_address()}, "old-consumer");
  PushCollector order;
  auto sub = client->Subscribe({Key("com.api.Order")}, order.Callback());
  ASSERT_TRUE(sub.ok());
  auto second = Admin(admin, "/registry/publish", R"({"data_id":"com.api.Order"})", true);
  ASSERT_EQ(second.first, 200) << second.second;
  std::string r2 = JsonString(second.second, "revision");
  EXPECT_NE(r2, r1);
  EXPECT_EQ(AppRevisions("api-shop"), std::vector<std::string>{r2});
  EXPECT_EQ(Revision(r2).interfaces_size(), 2);
  ASSERT_TRUE(order.WaitForData({endpoint + "?protocol=http"}, seconds(5)).has_value());

  // Unpublish it: back to the first content, hence the first revision id.
  auto third = Admin(admin, "/registry/unpublish", R"({"data_id":"com.api.Order"})", true);
  ASSERT_EQ(third.first, 200) << third.second;
  EXPECT_EQ(JsonString(third.second, "revision"), r1);
  EXPECT_EQ(AppRevisions("api-shop"), std::vector<std::string>{r1});
  ASSERT_TRUE(order.WaitForData({}, seconds(5)).has_value());
  EXPECT_EQ(sidecar.Stop(SIGTERM), 0) << sidecar.Log();
  EXPECT_TRUE(AppRevisions("api-shop").empty());
}

TEST_F(SidecarAppDiscoveryTest, OutboundAppModeRoutesToMigratedAndLegacyProvidersWithoutFailures) {
  BackendProcess a("a"), b("b");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  // Instance a has migrated (app-level only); instance b of the same app
  // still publishes interface-level.
  SidecarProcess inbound_a(InboundConfig("app", a));
  ASSERT_TRUE(inbound_a.Start()) << inbound_a.Log();
  SidecarProcess inbound_b(InboundConfig("interface", b));
  ASSERT_TRUE(inbound_b.Start()) << inbound_b.Log();
  SidecarProcess outbound(R"(
workers: 2
admin: 127.0.0.1:0
registry_servers: [")" + registry_.grpc_address() +
                          R"("]
app: { name: storefront, discovery: app, mapping_refresh_ms: 300 }
listeners:
  - name: outbound
    address: 127.0.0.1:0
    routes:
      - cluster: cart
        retry: { attempts: 2 }
clusters:
  - name: cart
    registry: { data_id: "com.shop.Cart:1.0" }
)");
  ASSERT_TRUE(outbound.Start()) << outbound.Log();
  std::string url = "http://" + outbound.listener("outbound") + "/slow?ms=15";
  // Both providers answer: the app record of a and the interface-level
  // record of b (found in the app's datum: a migration union).
  std::string seen;
  ASSERT_TRUE(Eventually(
      [&] {
        seen += RunCommand({"/usr/bin/curl", "-s", url, url, url, url}, seconds(10)).second;
        return CountOf(seen, "a slow") > 0 && CountOf(seen, "b slow") > 0;
      },
      seconds(15)))
      << seen << outbound.Log();
  // Fed app-level: one app subscription, not the interface's.
  auto state = Admin(outbound.admin(), "/registry").second;
  EXPECT_NE(state.find("\"source\":\"app\""), std::string::npos) << state;
  EXPECT_NE(state.find("\"apps\":[\"shop\"]"), std::string::npos) << state;
  auto cart = DescribeInterface("com.shop.Cart:1.0");
  EXPECT_EQ(cart.interface_publishers(), 1u);  // b's, still

  // ~300 sequential requests (about 5 s) while b leaves (its sidecar
  // withdraws on SIGTERM, then drains); a stays.
  std::vector<std::string> args = {"/usr/bin/curl", "-s", "-w", "%{http_code}\n"};
  for (int i = 0; i < 300; ++i) args.push_back(url);
  std::pair<int, std::string> result;
  std::thread traffic([&] { result = RunCommand(args, seconds(60)); });
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(inbound_b.Stop(SIGTERM), 0) << inbound_b.Log();
  traffic.join();
  const std::string& out = result.second;
  EXPECT_EQ(CountOf(out, "slow\n200\n"), 300) << out.substr(0, 400) << outbound.Log();
  EXPECT_GT(CountOf(out, "b slow"), 10);
  auto tail = RunCommand({"/usr/bin/curl", "-s", url, url, url}, seconds(20)).second;
  EXPECT_EQ(tail, "a slow\na slow\na slow\n");
  EXPECT_EQ(outbound.Stop(SIGTERM), 0);
  EXPECT_EQ(inbound_a.Stop(SIGTERM), 0);
}

TEST_F(SidecarAppDiscoveryTest, OutboundAppModeUsesTheInterfaceWhileAPublisherHasNoApp) {
  BackendProcess a("a"), b("b");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  SidecarProcess inbound_a(InboundConfig("app", a));
  ASSERT_TRUE(inbound_a.Start()) << inbound_a.Log();
  // b is published interface-level by a client that gives no app name: no
  // app datum holds it, only the interface's own (derived) data.
  RegistryClientOptions options;
  options.servers = {registry_.grpc_address()};
  options.client_id = "legacy-no-app";
  auto legacy = RegistryClient::Create(options);
  ASSERT_TRUE(legacy.ok());
  auto published =
      (*legacy)->Publish({Key("com.shop.Cart:1.0"), {"http://" + b.address()}, "", "", {}});
  ASSERT_TRUE(published.ok()) << published.status();
  SidecarProcess outbound(R"(
workers: 1
admin: 127.0.0.1:0
registry_servers: [")" + registry_.grpc_address() +
                          R"("]
app: { name: storefront, discovery: app, mapping_refresh_ms: 200 }
listeners:
  - name: outbound
    address: 127.0.0.1:0
    routes:
      - cluster: cart
clusters:
  - name: cart
    registry: { data_id: "com.shop.Cart:1.0" }
)");
  ASSERT_TRUE(outbound.Start()) << outbound.Log();
  std::string url = "http://" + outbound.listener("outbound") + "/";
  std::string seen;
  ASSERT_TRUE(Eventually(
      [&] {
        seen += RunCommand({"/usr/bin/curl", "-s", url, url, url, url}, seconds(10)).second;
        return CountOf(seen, "a\n") > 0 && CountOf(seen, "b\n") > 0;
      },
      seconds(15)))
      << seen << outbound.Log();
  auto state = Admin(outbound.admin(), "/registry").second;
  EXPECT_NE(state.find("\"source\":\"interface\""), std::string::npos) << state;
  // The unattributed publisher leaves: the next refresh moves the cluster to
  // app-level data alone, and only a answers.
  ASSERT_TRUE((*published)->Unregister().ok());
  ASSERT_TRUE(Eventually(
      [&] {
        return Admin(outbound.admin(), "/registry").second.find("\"source\":\"app\"") !=
               std::string::npos;
      },
      seconds(5)))
      << Admin(outbound.admin(), "/registry").second;
  EXPECT_EQ(RunCommand({"/usr/bin/curl", "-s", url, url, url}, seconds(10)).second, "a\na\na\n");
  EXPECT_EQ(outbound.Stop(SIGTERM), 0);
  EXPECT_EQ(inbound_a.Stop(SIGTERM), 0);
}

// examples/app-discovery.yaml, with its addresses replaced: it publishes
// app-level, old subscribers see it, its outbound cluster (fed app-level)
// reaches the app, and its local API changes the revision.
TEST_F(SidecarAppDiscoveryTest, ExampleRunsAsDocumented) {
  BackendProcess app("example-app");
  ASSERT_TRUE(app.Start());
  std::ifstream in(CAIRN_SOURCE_DIR "/examples/app-discovery.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  auto replace = [&config](const std::string& from, const std::string& to) {
    for (size_t pos = config.find(from); pos != std::string::npos; pos = config.find(from, pos)) {
      config.replace(pos, from.size(), to);
      pos += to.size();
    }
  };
  replace("127.0.0.1:9600", registry_.grpc_address());
  replace("127.0.0.1:8080", app.address());
  for (const char* port : {"15020", "15021", "15022"}) {
    replace(std::string("127.0.0.1:") + port, "127.0.0.1:0");
  }
  replace("mapping_refresh_ms: 5000", "mapping_refresh_ms: 300");
  SidecarProcess sidecar(config);
  ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
  auto client = MakeClient({registry_.grpc_address()}, "old-consumer");
  PushCollector cart;
  auto sub = client->Subscribe({Key("com.example.Cart:1.0")}, cart.Callback());
  ASSERT_TRUE(sub.ok());
  std::string endpoint = "http://" + sidecar.listener("inbound");
  ASSERT_TRUE(
      cart.WaitForData({endpoint + "?protocol=http&serialization=json&version=1.0&weight=100"},
                       seconds(10))
          .has_value())
      << sidecar.Log();
  std::string url = "http://" + sidecar.listener("outbound") + "/";
  EXPECT_TRUE(Eventually(
      [&] {
        return RunCommand({"/usr/bin/curl", "-s", url}, seconds(10)).second == "example-app\n";
      },
      seconds(10)))
      << sidecar.Log();
  auto before = AppRevisions("shop");
  ASSERT_EQ(before.size(), 1u);
  auto added = Admin(sidecar.admin(), "/registry/publish",
                     R"({"interface":"com.example.Order","version":"1.0","weight":100})", true);
  EXPECT_EQ(added.first, 200) << added.second;
  auto after = AppRevisions("shop");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0], before[0]);
  EXPECT_EQ(Revision(after[0]).interfaces_size(), 3);
  EXPECT_EQ(sidecar.Stop(SIGTERM), 0) << sidecar.Log();
}

}  // namespace
}  // namespace cairn::testing
