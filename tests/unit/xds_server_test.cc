// XdsServer and the resources it serves, on a real LocalDataServer with fake
// streams: the protocol rules (versions, nonces, ACK/NACK, one response in
// flight, make before break, exact names) and the resource contents.
#include "registry/xds/xds_server.h"

#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "registry/data/local_data_server.h"

namespace cairn::xds {
namespace {

namespace endpoint = envoy::config::endpoint::v3;
namespace cluster = envoy::config::cluster::v3;

class FakeStream : public XdsStream {
 public:
  bool Send(EncodedResponse&& encoded) override {
    if (closed) return false;
    if (delta) {
      DeltaDiscoveryResponse response;
      EXPECT_TRUE(response.ParseFromString(encoded.Flatten()));
      delta_sent.push_back(std::move(response));
      return true;
    }
    DiscoveryResponse response;
    EXPECT_TRUE(response.ParseFromString(encoded.Flatten()));
    sent.push_back(std::move(response));
    for (auto& r : encoded.resources) bodies.push_back(r);
    return true;
  }
  void Close(const absl::Status& s) override {
    if (!closed) status = s;
    closed = true;
  }
  void RequestHandled() override { ++handled; }

  std::deque<DiscoveryResponse> sent;
  bool delta = false;  // parse as DeltaDiscoveryResponses into delta_sent
  std::deque<DeltaDiscoveryResponse> delta_sent;
  std::vector<std::shared_ptr<const std::string>> bodies;  // resources as sent
  bool closed = false;
  absl::Status status;
  int handled = 0;
};

class XdsServerTest : public ::testing::Test {
 protected:
  XdsServerTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        metrics_(registry_),
        server_(loop_, data_, metrics_, Options()) {}

  static XdsServerOptions Options() {
    XdsServerOptions o;
    o.max_resources_per_stream = 5;
    o.resources.ring_hash_services = {"svc.hash"};
    return o;
  }

  void Publish(const std::string& data_id, const std::string& reg_id, uint64_t version,
               std::vector<std::string> urls, const std::string& zone = "z1",
               std::map<std::string, std::string> attributes = {}) {
    pb::DataInfoKey key;
    key.set_data_id(data_id);
    auto r = std::make_shared<PublisherRecord>();
    r->datum = MakeDatumId(NormalizeKey(key));
    r->registration_id = reg_id;
    r->version = version;
    r->zone = zone;
    r->data = std::move(urls);
    r->attributes = std::move(attributes);
    r->owner = std::make_shared<const OwnerRef>(OwnerRef{"local", 9, "", ""});
    data_.Publish(r, [](absl::StatusOr<uint64_t> v) { ASSERT_TRUE(v.ok()); });
  }
  void Unpublish(const std::string& data_id, const std::string& reg_id) {
    pb::DataInfoKey key;
    key.set_data_id(data_id);
    data_.Unpublish(DataInfoId(NormalizeKey(key)), reg_id, OwnerRef{"local", 9, "", ""},
                    [](absl::StatusOr<uint64_t> v) { ASSERT_TRUE(v.ok()); });
  }

  uint64_t Connect(std::shared_ptr<FakeStream> stream) {
    return server_.OnConnect("127.0.0.1:1", std::move(stream));
  }
  void Request(uint64_t id, ResourceType type, std::vector<std::string> names,
               const std::string& version = "", const std::string& nonce = "",
               const std::string& nack = "") {
    DiscoveryRequest request;
    request.mutable_node()->set_id("node-1");
    request.set_type_url(std::string(TypeUrl(type)));
    for (auto& n : names) request.add_resource_names(n);
    request.set_version_info(version);
    request.set_response_nonce(nonce);
    if (!nack.empty()) request.mutable_error_detail()->set_message(nack);
    server_.OnRequest(id, std::move(request));
    loop_.PollForTest();
  }
  // ACKs (or NACKs) `response` with the names it was for.
  void Answer(uint64_t id, const DiscoveryResponse& response, std::vector<std::string> names,
              const std::string& nack = "") {
    auto type = TypeFromUrl(response.type_url());
    ASSERT_TRUE(type.has_value());
    Request(id, *type, std::move(names), response.version_info(), response.nonce(), nack);
  }
  uint64_t ConnectDelta(std::shared_ptr<FakeStream> stream) {
    stream->delta = true;
    return server_.OnConnect("127.0.0.1:2", std::move(stream), {}, /*delta=*/true);
  }
  void Delta(uint64_t id, ResourceType type, std::vector<std::string> subscribe,
             std::vector<std::string> unsubscribe = {}, const std::string& nonce = "",
             const std::string& nack = "", std::map<std::string, std::string> initial = {}) {
    DeltaDiscoveryRequest request;
    request.mutable_node()->set_id("node-d");
    request.set_type_url(std::string(TypeUrl(type)));
    for (auto& n : subscribe) request.add_resource_names_subscribe(n);
    for (auto& n : unsubscribe) request.add_resource_names_unsubscribe(n);
    request.set_response_nonce(nonce);
    if (!nack.empty()) request.mutable_error_detail()->set_message(nack);
    for (auto& [k, v] : initial) (*request.mutable_initial_resource_versions())[k] = v;
    server_.OnDeltaRequest(id, std::move(request));
    loop_.PollForTest();
  }
  uint64_t DatumVersion(const std::string& data_id) {
    uint64_t version = 0;
    data_.Fetch(data_id + "#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP",
                [&](std::shared_ptr<const DatumSnapshot> s) { version = s->version; });
    return version;
  }
  static std::vector<std::string> Names(const DeltaDiscoveryResponse& response) {
    std::vector<std::string> out;
    for (const auto& r : response.resources()) out.push_back(r.name());
    return out;
  }

  template <typename T>
  static std::vector<T> Unpack(const DiscoveryResponse& response) {
    std::vector<T> out;
    for (const auto& any : response.resources()) {
      T message;
      EXPECT_TRUE(message.ParseFromString(any.value()));
      EXPECT_EQ(any.type_url(), response.type_url());
      out.push_back(std::move(message));
    }
    return out;
  }
  static std::vector<std::string> Addresses(const endpoint::ClusterLoadAssignment& cla) {
    std::vector<std::string> out;
    for (const auto& locality : cla.endpoints()) {
      for (const auto& lb : locality.lb_endpoints()) {
        const auto& sa = lb.endpoint().address().socket_address();
        out.push_back(sa.address() + ":" + std::to_string(sa.port_value()));
      }
    }
    return out;
  }

  EventLoop loop_;
  LocalDataServer data_;
  prometheus::Registry registry_;
  XdsMetrics metrics_;
  XdsServer server_;
};

TEST_F(XdsServerTest, NamesMapToDataInfoIdsBothWays) {
  EXPECT_EQ(DataInfoIdOfName("cairn.example.Echo"),
            "cairn.example.Echo#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP");
  EXPECT_EQ(DataInfoIdOfName("svc#@#i1#@#g1"), "svc#@#i1#@#g1");
  EXPECT_EQ(NameOfDataInfoId("cairn.example.Echo#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"),
            "cairn.example.Echo");
  EXPECT_EQ(NameOfDataInfoId("svc#@#i1#@#g1"), "svc#@#i1#@#g1");
  EXPECT_FALSE(DataInfoIdOfName("").has_value());
  EXPECT_FALSE(DataInfoIdOfName(std::string(300, 'x')).has_value());
}

TEST_F(XdsServerTest, EndpointsFollowSchemesZonesWeightsHealthAndSkipWhatClientsReject) {
  Publish("svc", "a", 1, {"bolt://127.0.0.1:1", "grpc://127.0.0.1:2"}, "z1", {{"weight", "5"}});
  Publish("svc", "b", 1, {"grpc://localhost:3"}, "z1");  // not an IP: skipped
  Publish("svc", "c", 1, {"grpc://127.0.0.1:2"}, "z2");  // duplicate address
  Publish("svc", "d", 1, {"http://[::1]:4/path"}, "z2", {{"health", "draining"}});
  Publish("svc", "e", 1, {"10.0.0.1:5"}, "z2", {{"weight", "junk"}});  // bare HOST:PORT
  std::shared_ptr<const DatumSnapshot> snapshot;
  data_.Fetch("svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP",
              [&](std::shared_ptr<const DatumSnapshot> s) { snapshot = std::move(s); });
  endpoint::ClusterLoadAssignment cla;
  ASSERT_TRUE(cla.ParseFromString(BuildClusterLoadAssignment("svc", *snapshot, ResourceOptions())));
  EXPECT_EQ(cla.cluster_name(), "svc");
  ASSERT_EQ(cla.endpoints_size(), 2);
  EXPECT_EQ(cla.endpoints(0).locality().zone(), "z1");
  EXPECT_EQ(cla.endpoints(0).load_balancing_weight().value(), 5u);
  EXPECT_EQ(cla.endpoints(0).lb_endpoints(0).load_balancing_weight().value(), 5u);
  EXPECT_EQ(cla.endpoints(1).locality().zone(), "z2");
  EXPECT_EQ(cla.endpoints(1).load_balancing_weight().value(), 2u);
  EXPECT_EQ(Addresses(cla), (std::vector<std::string>{"127.0.0.1:2", "::1:4", "10.0.0.1:5"}));
  EXPECT_EQ(cla.endpoints(1).lb_endpoints(0).health_status(), envoy::config::core::v3::DRAINING);
  EXPECT_EQ(cla.endpoints(1).lb_endpoints(1).health_status(), envoy::config::core::v3::HEALTHY);
}

TEST_F(XdsServerTest, ListenerRouteAndClusterChainByOneName) {
  envoy::config::listener::v3::Listener listener;
  ASSERT_TRUE(listener.ParseFromString(BuildListener("svc")));
  EXPECT_EQ(listener.name(), "svc");
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
  ASSERT_TRUE(hcm.ParseFromString(listener.api_listener().api_listener().value()));
  EXPECT_EQ(hcm.rds().route_config_name(), "svc");
  EXPECT_TRUE(hcm.rds().config_source().has_ads());
  ASSERT_EQ(hcm.http_filters_size(), 1);
  EXPECT_EQ(hcm.http_filters(0).typed_config().type_url(),
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");

  envoy::config::route::v3::RouteConfiguration route;
  ASSERT_TRUE(route.ParseFromString(BuildRouteConfiguration("svc", ResourceOptions())));
  ASSERT_EQ(route.virtual_hosts_size(), 1);
  EXPECT_EQ(route.virtual_hosts(0).domains(0), "*");
  EXPECT_EQ(route.virtual_hosts(0).routes(0).route().cluster(), "svc");
  EXPECT_EQ(route.virtual_hosts(0).routes(0).route().hash_policy_size(), 0);

  cluster::Cluster c;
  ASSERT_TRUE(c.ParseFromString(BuildCluster("svc", ResourceOptions(), /*http2=*/false)));
  EXPECT_TRUE(c.typed_extension_protocol_options().empty());
  EXPECT_EQ(c.type(), cluster::Cluster::EDS);
  EXPECT_TRUE(c.eds_cluster_config().eds_config().has_ads());
  EXPECT_EQ(c.eds_cluster_config().service_name(), "svc");
  EXPECT_EQ(c.lb_policy(), cluster::Cluster::ROUND_ROBIN);

  ResourceOptions ring;
  ring.ring_hash_services = {"svc"};
  ASSERT_TRUE(c.ParseFromString(BuildCluster("svc", ring, /*http2=*/true)));
  EXPECT_EQ(c.lb_policy(), cluster::Cluster::RING_HASH);
  // Envoy must be told that gRPC endpoints speak HTTP/2.
  const auto& options = c.typed_extension_protocol_options();
  auto it = options.find("envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
  ASSERT_NE(it, options.end());
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions protocol;
  ASSERT_TRUE(protocol.ParseFromString(it->second.value()));
  EXPECT_TRUE(protocol.explicit_http_config().has_http2_protocol_options());
  ASSERT_TRUE(route.ParseFromString(BuildRouteConfiguration("svc", ring)));
  EXPECT_EQ(route.virtual_hosts(0).routes(0).route().hash_policy(0).header().header_name(),
            "x-cairn-hash-key");
}

TEST_F(XdsServerTest, UnknownNameIsAnsweredEmptyThenPushedWhenItAppears) {
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);
  EXPECT_EQ(stream->sent[0].resources_size(), 0);  // absent, not an error
  EXPECT_EQ(stream->sent[0].version_info(), "1");
  Answer(id, stream->sent[0], {"svc"});
  EXPECT_EQ(stream->sent.size(), 1u);  // an ACK gets no answer

  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(stream->sent[1].version_info(), "2");
  EXPECT_NE(stream->sent[1].nonce(), stream->sent[0].nonce());
  auto clas = Unpack<endpoint::ClusterLoadAssignment>(stream->sent[1]);
  ASSERT_EQ(clas.size(), 1u);
  EXPECT_EQ(Addresses(clas[0]), std::vector<std::string>{"127.0.0.1:7001"});
  EXPECT_FALSE(stream->closed);
}

TEST_F(XdsServerTest, OneResponseInFlightCoalescesChangesUntilTheAck) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);
  Publish("svc", "b", 1, {"grpc://127.0.0.1:7002"});
  Publish("svc", "c", 1, {"grpc://127.0.0.1:7003"});
  loop_.PollForTest();
  EXPECT_EQ(stream->sent.size(), 1u);  // waits for the ACK
  Answer(id, stream->sent[0], {"svc"});
  ASSERT_EQ(stream->sent.size(), 2u);
  auto clas = Unpack<endpoint::ClusterLoadAssignment>(stream->sent[1]);
  EXPECT_EQ(Addresses(clas.at(0)),
            (std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}));
}

TEST_F(XdsServerTest, NackIsCountedAndTheSameContentIsNotResent) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);
  Answer(id, stream->sent[0], {"svc"}, "bad endpoint");
  loop_.PollForTest();
  EXPECT_EQ(stream->sent.size(), 1u);  // no loop
  EXPECT_EQ(metrics_.nacks[static_cast<int>(ResourceType::kEndpoint)]->Value(), 1);
  auto clients = server_.ListClients("");
  ASSERT_EQ(clients.clients_size(), 1);
  EXPECT_EQ(clients.clients(0).types(0).nacks(), 1u);
  EXPECT_EQ(clients.clients(0).types(0).last_nack(), "bad endpoint");
  EXPECT_EQ(clients.clients(0).types(0).acked_version(), "");
  // A real change is sent.
  Publish("svc", "b", 1, {"grpc://127.0.0.1:7002"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  Answer(id, stream->sent[1], {"svc"});
  clients = server_.ListClients("");
  EXPECT_EQ(clients.clients(0).types(0).acked_version(), stream->sent[1].version_info());
  ASSERT_EQ(clients.clients(0).types(0).acked_size(), 1);
  EXPECT_EQ(clients.clients(0).types(0).acked(0).name(), "svc");
}

TEST_F(XdsServerTest, StaleNonceIsIgnored) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});
  Answer(id, stream->sent[0], {"svc"});
  Publish("svc", "b", 1, {"grpc://127.0.0.1:7002"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  // A request naming the first nonce (and another name) is stale: not an
  // ACK of the second response, and not a subscription change.
  Request(id, ResourceType::kEndpoint, {"svc", "other"}, stream->sent[0].version_info(),
          stream->sent[0].nonce());
  EXPECT_EQ(metrics_.stale_requests.Value(), 1);
  auto clients = server_.ListClients("");
  EXPECT_TRUE(clients.clients(0).types(0).awaiting_ack());
  EXPECT_EQ(clients.clients(0).types(0).resource_names_size(), 1);
}

TEST_F(XdsServerTest, ListenerAndClusterResponsesCarryEveryResourceEndpointsOnlyChanges) {
  Publish("a", "a1", 1, {"grpc://127.0.0.1:7001"});
  Publish("b", "b1", 1, {"grpc://127.0.0.1:7002"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kCluster, {"a", "b"});
  Request(id, ResourceType::kEndpoint, {"a", "b"});
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(stream->sent[0].resources_size(), 2);
  EXPECT_EQ(stream->sent[1].resources_size(), 2);
  Answer(id, stream->sent[0], {"a", "b"});
  Answer(id, stream->sent[1], {"a", "b"});
  Publish("b", "b2", 1, {"grpc://127.0.0.1:7003"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 3u);  // clusters did not change
  auto clas = Unpack<endpoint::ClusterLoadAssignment>(stream->sent[2]);
  ASSERT_EQ(clas.size(), 1u);
  EXPECT_EQ(clas[0].cluster_name(), "b");
  // Dropping a name re-sends the cluster list without it.
  Request(id, ResourceType::kCluster, {"a"}, stream->sent[0].version_info(),
          stream->sent[0].nonce());
  ASSERT_EQ(stream->sent.size(), 4u);
  auto clusters = Unpack<cluster::Cluster>(stream->sent[3]);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].name(), "a");
}

TEST_F(XdsServerTest, ClustersAndEndpointsGoBeforeListenersAndRoutes) {
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  for (auto type : {ResourceType::kListener, ResourceType::kRoute, ResourceType::kCluster,
                    ResourceType::kEndpoint}) {
    Request(id, type, {"svc"});
  }
  ASSERT_EQ(stream->sent.size(), 4u);  // four empty answers: nothing exists
  for (auto& r : stream->sent) Answer(id, r, {"svc"});
  stream->sent.clear();
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(stream->sent[0].type_url(), TypeUrl(ResourceType::kCluster));
  EXPECT_EQ(stream->sent[1].type_url(), TypeUrl(ResourceType::kEndpoint));
  Answer(id, stream->sent[0], {"svc"});
  EXPECT_EQ(stream->sent.size(), 2u);  // endpoints still unacknowledged
  Answer(id, stream->sent[1], {"svc"});
  ASSERT_EQ(stream->sent.size(), 4u);
  EXPECT_EQ(stream->sent[2].type_url(), TypeUrl(ResourceType::kListener));
  EXPECT_EQ(stream->sent[3].type_url(), TypeUrl(ResourceType::kRoute));
  EXPECT_EQ(Unpack<envoy::config::listener::v3::Listener>(stream->sent[2]).at(0).name(), "svc");
}

TEST_F(XdsServerTest, AHeldListenerGoesAfterTheWaitEvenWithoutAnAck) {
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kCluster, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);  // never acknowledged
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  Request(id, ResourceType::kListener, {"svc"});
  EXPECT_EQ(stream->sent.size(), 1u);  // held: a cluster response awaits its ACK
  auto deadline = std::chrono::steady_clock::now() + 3 * XdsServer::kMakeBeforeBreakWait;
  while (stream->sent.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    loop_.PollForTest();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(stream->sent[1].type_url(), TypeUrl(ResourceType::kListener));
}

TEST_F(XdsServerTest, HeldListenerAndRouteBothGoAfterTheWait) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});  // never acknowledged
  Request(id, ResourceType::kListener, {"svc"});
  Request(id, ResourceType::kRoute, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);
  auto start = std::chrono::steady_clock::now();
  while (stream->sent.size() < 3 &&
         std::chrono::steady_clock::now() < start + 3 * XdsServer::kMakeBeforeBreakWait) {
    loop_.PollForTest();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(stream->sent.size(), 3u);  // one timer each: neither waits for the other's
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            XdsServer::kMakeBeforeBreakWait + std::chrono::milliseconds(500));
}

TEST_F(XdsServerTest, WildcardListsAServiceAStreamAlreadyWatchesByName) {
  auto named = std::make_shared<FakeStream>();
  uint64_t named_id = Connect(named);
  Request(named_id, ResourceType::kEndpoint, {"svc"});  // before svc exists
  auto wild = std::make_shared<FakeStream>();
  uint64_t wild_id = Connect(wild);
  Request(wild_id, ResourceType::kCluster, {"*"});  // the explicit wildcard
  ASSERT_EQ(wild->sent.size(), 1u);
  EXPECT_EQ(wild->sent[0].resources_size(), 0);
  Answer(wild_id, wild->sent[0], {"*"});
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  loop_.PollForTest();
  ASSERT_EQ(wild->sent.size(), 2u);
  EXPECT_EQ(Unpack<cluster::Cluster>(wild->sent[1]).at(0).name(), "svc");
}

TEST_F(XdsServerTest, ANameLongerThanAnyDataInfoIdEndsTheStream) {
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {std::string(XdsServer::kMaxNameBytes + 1, 'x')});
  EXPECT_TRUE(stream->closed);
  EXPECT_EQ(stream->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.stream_count(), 0u);
}

TEST_F(XdsServerTest, StreamsShareTheEncodedResourceOfOneVersion) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto one = std::make_shared<FakeStream>();
  auto two = std::make_shared<FakeStream>();
  uint64_t id1 = Connect(one);
  uint64_t id2 = Connect(two);
  Request(id1, ResourceType::kEndpoint, {"svc"});
  Request(id2, ResourceType::kEndpoint, {"svc", "other"});
  ASSERT_EQ(one->bodies.size(), 1u);
  ASSERT_EQ(two->bodies.size(), 1u);
  EXPECT_EQ(one->bodies[0].get(), two->bodies[0].get());  // one encoding, two streams
  EXPECT_NE(one->sent[0].nonce(), "");
}

TEST_F(XdsServerTest, WildcardClusterListsEveryServiceAndFollowsNewOnes) {
  Publish("a", "a1", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kCluster, {});
  ASSERT_EQ(stream->sent.size(), 1u);
  EXPECT_EQ(Unpack<cluster::Cluster>(stream->sent[0]).at(0).name(), "a");
  Answer(id, stream->sent[0], {});
  Publish("b", "b1", 1, {"grpc://127.0.0.1:7002"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(stream->sent[1].resources_size(), 2);
  Answer(id, stream->sent[1], {});
  // An empty Listener request is not a wildcard: nothing to send.
  Request(id, ResourceType::kListener, {});
  ASSERT_EQ(stream->sent.size(), 3u);
  EXPECT_EQ(stream->sent[2].resources_size(), 0);
}

TEST_F(XdsServerTest, BadRequestsEndTheStreamWithAClearStatus) {
  auto no_node = std::make_shared<FakeStream>();
  uint64_t id = Connect(no_node);
  DiscoveryRequest request;
  request.set_type_url(std::string(TypeUrl(ResourceType::kListener)));
  server_.OnRequest(id, request);
  EXPECT_TRUE(no_node->closed);
  EXPECT_EQ(no_node->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_node->status.message().find("node.id"), std::string::npos);

  auto bad_type = std::make_shared<FakeStream>();
  id = Connect(bad_type);
  request.mutable_node()->set_id("n");
  request.set_type_url("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret");
  server_.OnRequest(id, request);
  EXPECT_TRUE(bad_type->closed);
  EXPECT_EQ(bad_type->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_type->status.message().find("tls.v3.Secret"), std::string::npos);

  auto too_many = std::make_shared<FakeStream>();
  id = Connect(too_many);
  Request(id, ResourceType::kEndpoint, {"a", "b", "c", "d", "e", "f"});
  EXPECT_TRUE(too_many->closed);
  EXPECT_EQ(too_many->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.stream_count(), 0u);  // each was dropped

  auto good = std::make_shared<FakeStream>();
  id = Connect(good);
  Request(id, ResourceType::kEndpoint, {"a"});
  EXPECT_FALSE(good->closed);
  EXPECT_EQ(good->sent.size(), 1u);
}

TEST_F(XdsServerTest, ADisconnectReleasesWatchesAndAReconnectGetsEverythingAgain) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto first = std::make_shared<FakeStream>();
  uint64_t id = Connect(first);
  Request(id, ResourceType::kCluster, {"svc"});
  Request(id, ResourceType::kEndpoint, {"svc"});
  Answer(id, first->sent[0], {"svc"});
  Answer(id, first->sent[1], {"svc"});
  EXPECT_EQ(metrics_.resources[static_cast<int>(ResourceType::kEndpoint)]->Value(), 1);
  EXPECT_EQ(metrics_.streams.Value(), 1);
  server_.OnDisconnect(id);
  EXPECT_EQ(metrics_.resources[static_cast<int>(ResourceType::kEndpoint)]->Value(), 0);
  EXPECT_EQ(metrics_.streams.Value(), 0);
  auto second = std::make_shared<FakeStream>();
  id = Connect(second);
  Request(id, ResourceType::kCluster, {"svc"});
  Request(id, ResourceType::kEndpoint, {"svc"});
  ASSERT_EQ(second->sent.size(), 2u);
  EXPECT_EQ(second->sent[0].resources_size(), 1);
  EXPECT_EQ(second->sent[1].resources_size(), 1);
  EXPECT_EQ(second->sent[1].version_info(), "1");
}

TEST_F(XdsServerTest, ClusterIsResentWhenItsEndpointsChangeProtocol) {
  Publish("svc", "a", 1, {"http://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kCluster, {"svc"});
  ASSERT_EQ(stream->sent.size(), 1u);
  EXPECT_TRUE(
      Unpack<cluster::Cluster>(stream->sent[0]).at(0).typed_extension_protocol_options().empty());
  Answer(id, stream->sent[0], {"svc"});
  Publish("svc", "a", 2, {"grpc://127.0.0.1:7001"});
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  EXPECT_EQ(Unpack<cluster::Cluster>(stream->sent[1]).at(0).typed_extension_protocol_options_size(),
            1);
  Answer(id, stream->sent[1], {"svc"});
  Publish("svc", "b", 1, {"grpc://127.0.0.1:7002"});  // same protocol: clusters unchanged
  loop_.PollForTest();
  EXPECT_EQ(stream->sent.size(), 2u);
}

TEST_F(XdsServerTest, DeltaSendsVersionedResourcesAndNamesAbsentNamesAsRemoved) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = ConnectDelta(stream);
  Delta(id, ResourceType::kEndpoint, {"svc", "nope"});
  ASSERT_EQ(stream->delta_sent.size(), 1u);
  const auto& first = stream->delta_sent[0];
  EXPECT_EQ(Names(first), std::vector<std::string>{"svc"});
  EXPECT_EQ(first.resources(0).version(), std::to_string(DatumVersion("svc")));
  endpoint::ClusterLoadAssignment cla;
  ASSERT_TRUE(first.resources(0).resource().UnpackTo(&cla));
  EXPECT_EQ(Addresses(cla), std::vector<std::string>{"127.0.0.1:7001"});
  EXPECT_EQ(first.removed_resources_size(), 1);
  EXPECT_EQ(first.removed_resources(0), "nope");
  Delta(id, ResourceType::kEndpoint, {}, {}, first.nonce());  // ACK
  EXPECT_EQ(stream->delta_sent.size(), 1u);

  // A change sends only that resource; "nope" is not repeated.
  Publish("svc", "b", 1, {"grpc://127.0.0.1:7002"});
  loop_.PollForTest();
  ASSERT_EQ(stream->delta_sent.size(), 2u);
  EXPECT_EQ(Names(stream->delta_sent[1]), std::vector<std::string>{"svc"});
  EXPECT_EQ(stream->delta_sent[1].removed_resources_size(), 0);
  EXPECT_NE(stream->delta_sent[1].nonce(), first.nonce());

  // A NACK is not answered with the same content.
  Delta(id, ResourceType::kEndpoint, {}, {}, stream->delta_sent[1].nonce(), "bad");
  EXPECT_EQ(stream->delta_sent.size(), 2u);
  EXPECT_EQ(metrics_.nacks[static_cast<int>(ResourceType::kEndpoint)]->Value(), 1);

  // Unsubscribed: changes no longer come.
  Delta(id, ResourceType::kEndpoint, {}, {"svc"});
  Publish("svc", "c", 1, {"grpc://127.0.0.1:7003"});
  loop_.PollForTest();
  EXPECT_EQ(stream->delta_sent.size(), 2u);
  auto clients = server_.ListClients("node-d");
  ASSERT_EQ(clients.clients_size(), 1);
  EXPECT_TRUE(clients.clients(0).delta());
}

TEST_F(XdsServerTest, DeltaDoesNotResendWhatAReconnectingClientHolds) {
  Publish("a", "a1", 1, {"grpc://127.0.0.1:7001"});
  Publish("b", "b1", 1, {"grpc://127.0.0.1:7002"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = ConnectDelta(stream);
  Delta(id, ResourceType::kEndpoint, {"a", "b"}, {}, "", "",
        {{"a", std::to_string(DatumVersion("a"))}, {"b", "1"}});
  ASSERT_EQ(stream->delta_sent.size(), 1u);
  EXPECT_EQ(Names(stream->delta_sent[0]), std::vector<std::string>{"b"});  // a is current
}

TEST_F(XdsServerTest, DeltaWildcardClustersSendOnlyNewServices) {
  Publish("a", "a1", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = ConnectDelta(stream);
  Delta(id, ResourceType::kCluster, {});  // the first request naming nothing: wildcard
  ASSERT_EQ(stream->delta_sent.size(), 1u);
  EXPECT_EQ(Names(stream->delta_sent[0]), std::vector<std::string>{"a"});
  Delta(id, ResourceType::kCluster, {}, {}, stream->delta_sent[0].nonce());
  Publish("b", "b1", 1, {"grpc://127.0.0.1:7002"});
  loop_.PollForTest();
  ASSERT_EQ(stream->delta_sent.size(), 2u);
  EXPECT_EQ(Names(stream->delta_sent[1]), std::vector<std::string>{"b"});
}

TEST_F(XdsServerTest, LastPublisherGoneLeavesAnEmptyAssignment) {
  Publish("svc", "a", 1, {"grpc://127.0.0.1:7001"});
  auto stream = std::make_shared<FakeStream>();
  uint64_t id = Connect(stream);
  Request(id, ResourceType::kEndpoint, {"svc"});
  Answer(id, stream->sent[0], {"svc"});
  Unpublish("svc", "a");
  loop_.PollForTest();
  ASSERT_EQ(stream->sent.size(), 2u);
  auto clas = Unpack<endpoint::ClusterLoadAssignment>(stream->sent[1]);
  ASSERT_EQ(clas.size(), 1u);
  EXPECT_TRUE(Addresses(clas[0]).empty());
}

}  // namespace
}  // namespace cairn::xds
