// The registry's xDS server (issue 18) at the protocol level: raw ADS streams
// (ads_test_client.h) against a real `cairn registry`, services published
// the production way (several publishers per service, over two
// RegistryClients in different zones). Covers the resources of a service,
// the version/nonce/ACK/NACK rules, exact names and subscription changes,
// the CDS/EDS-before-LDS/RDS order, reconnects, bad requests, the stream cap
// and the NACK metric.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ads_test_client.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
namespace core = ::envoy::config::core::v3;
using ::envoy::config::cluster::v3::Cluster;
using ::envoy::config::endpoint::v3::ClusterLoadAssignment;
using ::envoy::config::listener::v3::Listener;
using ::envoy::config::route::v3::RouteConfiguration;
using ::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

constexpr char kEcho[] = "cairn.xds.Echo";
constexpr char kOther[] = "cairn.xds.Other";
// How long "no response" is awaited.
constexpr milliseconds kQuiet(300);
const std::vector<std::string> kAllTypes = {kLdsType, kRdsType, kCdsType, kEdsType};

// "zone address wN HEALTH" per endpoint, sorted; an unset weight counts 1.
std::vector<std::string> Endpoints(const ClusterLoadAssignment& cla) {
  std::vector<std::string> out;
  for (const auto& locality : cla.endpoints()) {
    for (const auto& lb : locality.lb_endpoints()) {
      const auto& sa = lb.endpoint().address().socket_address();
      uint32_t weight = lb.has_load_balancing_weight() ? lb.load_balancing_weight().value() : 1;
      out.push_back(locality.locality().zone() + " " + sa.address() + ":" +
                    std::to_string(sa.port_value()) + " w" + std::to_string(weight) + " " +
                    core::HealthStatus_Name(lb.health_status()));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t EndpointCount(const xds::DiscoveryResponse& response, const std::string& name) {
  auto all = ByName<ClusterLoadAssignment>(response);
  return all.count(name) ? Endpoints(all[name]).size() : 0;
}

std::set<std::string> Names(const xds::DiscoveryResponse& response) {
  std::set<std::string> out;
  if (response.type_url() == kLdsType) {
    for (const auto& [name, r] : ByName<Listener>(response)) out.insert(name);
  } else if (response.type_url() == kRdsType) {
    for (const auto& [name, r] : ByName<RouteConfiguration>(response)) out.insert(name);
  } else if (response.type_url() == kCdsType) {
    for (const auto& [name, r] : ByName<Cluster>(response)) out.insert(name);
  } else if (response.type_url() == kEdsType) {
    for (const auto& [name, r] : ByName<ClusterLoadAssignment>(response)) out.insert(name);
  }
  return out;
}

uint64_t VersionNumber(const std::string& version) {
  uint64_t n = 0;
  for (char c : version) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

// Reads responses, ACKing each, until one of `type` satisfies `done`.
template <typename Done>
std::optional<xds::DiscoveryResponse> Await(AdsStream& stream, const std::string& type, Done done,
                                            milliseconds timeout = seconds(10)) {
  auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 1000 && Clock::now() < deadline; ++i) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    auto response = stream.Next(std::max(left, milliseconds(1)));
    if (!response) break;
    stream.Ack(*response);
    if (response->type_url() == type && done(*response)) return response;
  }
  return std::nullopt;
}

// Reads and ACKs whatever arrives until `quiet` passes without a response.
int Drain(AdsStream& stream, milliseconds quiet = milliseconds(500)) {
  int n = 0;
  for (; n < 100; ++n) {
    auto response = stream.Next(quiet);
    if (!response) break;
    stream.Ack(*response);
  }
  return n;
}

void ExpectNoResponse(AdsStream& stream, const std::string& why) {
  auto response = stream.Next(kQuiet);
  if (response) ADD_FAILURE() << why << ": unexpected response " << response->DebugString();
}

class XdsProtocolTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<RegistryProcess>(std::move(flags));
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_a_ = MakeClient({server_->grpc_address()}, "xds-pub-a");
    client_b_ = MakeClient({server_->grpc_address()}, "xds-pub-b");
    ASSERT_TRUE(client_a_ && client_b_);
  }
  void TearDown() override {
    publishers_.clear();
    client_a_.reset();
    client_b_.reset();
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }

  std::shared_ptr<Publisher> Publish(RegistryClient* client, const std::string& data_id,
                                     std::vector<std::string> data, const std::string& zone,
                                     std::map<std::string, std::string> attributes = {}) {
    auto handle = client->Publish({Key(data_id), std::move(data), "", zone, attributes});
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (!handle.ok()) return nullptr;
    publishers_.push_back(*handle);
    return *handle;
  }

  // kEcho: two publishers on client A (zone-a), two on client B (zone-b).
  void PublishEcho() {
    Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7001"}, "zone-a", {{"weight", "5"}});
    Publish(client_a_.get(), kEcho, {"127.0.0.1:7002"}, "zone-a", {{"health", "unhealthy"}});
    Publish(client_b_.get(), kEcho,
            {"bolt://127.0.0.1:12200", "http://127.0.0.1:7003", "grpc://127.0.0.1:7004"}, "zone-b",
            {{"weight", "3"}, {"health", "draining"}});
    Publish(client_b_.get(), kEcho, {"h2c://127.0.0.1:7005"}, "zone-b", {{"health", "degraded"}});
  }
  const std::vector<std::string> kEchoEndpoints = {
      "zone-a 127.0.0.1:7001 w5 HEALTHY", "zone-a 127.0.0.1:7002 w1 UNHEALTHY",
      "zone-b 127.0.0.1:7004 w3 DRAINING", "zone-b 127.0.0.1:7005 w1 DEGRADED"};

  // A new stream is served: CDS for `name` arrives with it.
  void ExpectServing(const std::string& name, const std::string& after) {
    AdsStream stream(server_->grpc_address(), "xds-probe");
    ASSERT_TRUE(stream.Subscribe(kCdsType, {name}));
    auto cds = Await(
        stream, kCdsType, [&](const auto& r) { return Names(r).count(name) > 0; }, seconds(5));
    EXPECT_TRUE(cds.has_value()) << "no CDS on a new stream after " << after << "\n"
                                 << server_->Log();
  }

  double MetricSum(const std::string& metric) {
    auto [code, text] = RunCommand(
        {"/usr/bin/curl", "-sS", "http://" + server_->admin_address() + "/metrics"}, seconds(10));
    EXPECT_EQ(code, 0) << text;
    double sum = 0;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(start, end - start);
      start = end + 1;
      if (line.rfind(metric, 0) != 0) continue;
      char next = line.size() > metric.size() ? line[metric.size()] : '\0';
      if (next != '{' && next != ' ') continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }

  std::unique_ptr<RegistryProcess> server_;
  std::unique_ptr<RegistryClient> client_a_, client_b_;
  std::vector<std::shared_ptr<Publisher>> publishers_;
};

TEST_F(XdsProtocolTest, AServiceIsAListenerARouteAClusterAndItsEndpoints) {
  Start();
  PublishEcho();
  AdsStream stream(server_->grpc_address());
  for (const auto& type : kAllTypes) ASSERT_TRUE(stream.Subscribe(type, {kEcho}));

  std::map<std::string, xds::DiscoveryResponse> latest;
  std::set<std::string> nonces;  // unique per stream, across types
  auto deadline = Clock::now() + seconds(10);
  while (Clock::now() < deadline &&
         !(latest.size() == 4 && EndpointCount(latest[kEdsType], kEcho) == 4 &&
           Names(latest[kLdsType]).count(kEcho) && Names(latest[kRdsType]).count(kEcho) &&
           Names(latest[kCdsType]).count(kEcho))) {
    auto response = stream.Next(seconds(1));
    if (!response) {
      if (stream.finished()) break;
      continue;
    }
    for (const auto& any : response->resources()) {
      EXPECT_EQ(any.type_url(), response->type_url());
    }
    EXPECT_TRUE(nonces.insert(response->nonce()).second) << "nonce reused: " << response->nonce();
    stream.Ack(*response);
    latest[response->type_url()] = *response;
  }
  ASSERT_EQ(latest.size(), 4u) << server_->Log();

  // LDS: a Listener named exactly kEcho, an api_listener HCM -> RDS kEcho over ADS.
  auto listeners = ByName<Listener>(latest[kLdsType]);
  ASSERT_EQ(listeners.size(), 1u);
  ASSERT_TRUE(listeners.count(kEcho));
  const Listener& listener = listeners[kEcho];
  ASSERT_TRUE(listener.has_api_listener());
  HttpConnectionManager hcm;
  ASSERT_TRUE(listener.api_listener().api_listener().UnpackTo(&hcm))
      << listener.api_listener().api_listener().type_url();
  ASSERT_TRUE(hcm.has_rds());
  EXPECT_TRUE(hcm.rds().config_source().has_ads());
  EXPECT_EQ(hcm.rds().route_config_name(), kEcho);
  ASSERT_FALSE(hcm.http_filters().empty());
  EXPECT_EQ(hcm.http_filters().rbegin()->typed_config().type_url(),
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");

  // RDS: one virtual host for every domain, one catch-all route -> cluster kEcho.
  auto routes = ByName<RouteConfiguration>(latest[kRdsType]);
  ASSERT_EQ(routes.size(), 1u);
  ASSERT_TRUE(routes.count(kEcho));
  ASSERT_EQ(routes[kEcho].virtual_hosts_size(), 1);
  const auto& vhost = routes[kEcho].virtual_hosts(0);
  EXPECT_EQ(std::vector<std::string>(vhost.domains().begin(), vhost.domains().end()),
            std::vector<std::string>{"*"});
  ASSERT_EQ(vhost.routes_size(), 1);
  EXPECT_EQ(vhost.routes(0).match().path_specifier_case(),
            ::envoy::config::route::v3::RouteMatch::kPrefix);
  EXPECT_EQ(vhost.routes(0).match().prefix(), "");
  EXPECT_EQ(vhost.routes(0).route().cluster(), kEcho);

  // CDS: an EDS cluster over ADS, round robin.
  auto clusters = ByName<Cluster>(latest[kCdsType]);
  ASSERT_EQ(clusters.size(), 1u);
  ASSERT_TRUE(clusters.count(kEcho));
  const Cluster& cluster = clusters[kEcho];
  EXPECT_EQ(cluster.type(), Cluster::EDS);
  EXPECT_TRUE(cluster.eds_cluster_config().eds_config().has_ads());
  EXPECT_EQ(cluster.eds_cluster_config().service_name(), kEcho);
  EXPECT_EQ(cluster.lb_policy(), Cluster::ROUND_ROBIN);

  // EDS: one LbEndpoint per publisher, zones as localities, weight and health
  // from the attributes, the grpc URL preferred over http and bolt.
  auto assignments = ByName<ClusterLoadAssignment>(latest[kEdsType]);
  ASSERT_EQ(assignments.size(), 1u);
  ASSERT_TRUE(assignments.count(kEcho));
  EXPECT_EQ(Endpoints(assignments[kEcho]), kEchoEndpoints);
  std::map<std::string, uint32_t> locality_weights;
  for (const auto& locality : assignments[kEcho].endpoints()) {
    EXPECT_TRUE(locality.has_load_balancing_weight()) << locality.locality().zone();
    locality_weights[locality.locality().zone()] = locality.load_balancing_weight().value();
  }
  EXPECT_EQ(locality_weights, (std::map<std::string, uint32_t>{{"zone-a", 6}, {"zone-b", 4}}));
}

TEST_F(XdsProtocolTest, VersionsNoncesAcksAndNacks) {
  Start();
  PublishEcho();
  AdsStream stream(server_->grpc_address());
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kEcho}));
  std::set<std::string> nonces;
  auto note = [&](const xds::DiscoveryResponse& r) {
    EXPECT_FALSE(r.nonce().empty());
    EXPECT_TRUE(nonces.insert(r.nonce()).second) << "nonce reused: " << r.nonce();
  };

  // Steady state: all four publishers, ACKed; the ACK gets no answer.
  std::optional<xds::DiscoveryResponse> first;
  for (int i = 0; i < 10 && !(first && EndpointCount(*first, kEcho) == 4); ++i) {
    first = stream.Next(seconds(5));
    ASSERT_TRUE(first.has_value()) << server_->Log();
    note(*first);
    ASSERT_TRUE(stream.Ack(*first));
  }
  ASSERT_EQ(EndpointCount(*first, kEcho), 4u);
  ExpectNoResponse(stream, "after an ACK");

  // A publish: exactly one new response, a new version.
  Publish(client_b_.get(), kEcho, {"grpc://127.0.0.1:7006"}, "zone-b");
  auto second = stream.Next(seconds(5));
  ASSERT_TRUE(second.has_value());
  note(*second);
  EXPECT_EQ(second->type_url(), kEdsType);
  EXPECT_EQ(EndpointCount(*second, kEcho), 5u);
  EXPECT_GT(VersionNumber(second->version_info()), VersionNumber(first->version_info()))
      << first->version_info() << " -> " << second->version_info();
  ASSERT_TRUE(stream.Ack(*second));
  ExpectNoResponse(stream, "one publish, one response");

  // A stale nonce is ignored, even one that changes the names.
  ASSERT_TRUE(stream.SendWith(kEdsType, {kEcho, kOther}, first->version_info(), first->nonce()));
  Publish(client_a_.get(), kOther, {"grpc://127.0.0.1:7100"}, "zone-a");
  ExpectNoResponse(stream, "a stale-nonce request");

  // A NACK: the rejected content is not sent again...
  auto changed = Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7007"}, "zone-a");
  auto third = stream.Next(seconds(5));
  ASSERT_TRUE(third.has_value());
  note(*third);
  EXPECT_EQ(EndpointCount(*third, kEcho), 6u);
  EXPECT_EQ(Names(*third), std::set<std::string>{kEcho}) << "the stale request was not ignored";
  ASSERT_TRUE(stream.Nack(*third, "rejected by the test"));
  ExpectNoResponse(stream, "after a NACK");
  // ...a later real change is.
  ASSERT_TRUE(changed && changed->Republish({"grpc://127.0.0.1:7008"}).ok());
  auto fourth = stream.Next(seconds(5));
  ASSERT_TRUE(fourth.has_value());
  note(*fourth);
  EXPECT_GT(VersionNumber(fourth->version_info()), VersionNumber(third->version_info()));
  auto endpoints = Endpoints(ByName<ClusterLoadAssignment>(*fourth)[kEcho]);
  EXPECT_EQ(std::count(endpoints.begin(), endpoints.end(), "zone-a 127.0.0.1:7008 w1 HEALTHY"), 1)
      << ::testing::PrintToString(endpoints);
  ASSERT_TRUE(stream.Ack(*fourth));
  ExpectNoResponse(stream, "after the ACK of the change");

  // One response in flight: changes while it awaits its ACK coalesce into
  // one response after the ACK.
  Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7010"}, "zone-a");
  auto fifth = stream.Next(seconds(5));
  ASSERT_TRUE(fifth.has_value());
  note(*fifth);
  EXPECT_EQ(EndpointCount(*fifth, kEcho), 7u);
  Publish(client_b_.get(), kEcho, {"grpc://127.0.0.1:7011"}, "zone-b");
  Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7012"}, "zone-a");
  ExpectNoResponse(stream, "changes while a response awaits its ACK");
  ASSERT_TRUE(stream.Ack(*fifth));
  auto sixth = stream.Next(seconds(5));
  ASSERT_TRUE(sixth.has_value());
  note(*sixth);
  EXPECT_EQ(EndpointCount(*sixth, kEcho), 9u);
  EXPECT_GT(VersionNumber(sixth->version_info()), VersionNumber(fifth->version_info()));
  ASSERT_TRUE(stream.Ack(*sixth));
  ExpectNoResponse(stream, "two changes coalesced into one response");

  // The NACK is counted.
  EXPECT_EQ(MetricSum("cairn_xds_nacks_total"), 1) << "one NACK was sent";
  EXPECT_GT(MetricSum("cairn_xds_acks_total"), 0);
}

TEST_F(XdsProtocolTest, NamesMatchExactlyAndSubscriptionsChange) {
  Start();
  PublishEcho();
  Publish(client_b_.get(), kOther, {"grpc://127.0.0.1:7100"}, "zone-b");
  AdsStream stream(server_->grpc_address());

  // An unknown name is simply absent; no error, the stream stays.
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kEcho, "cairn.xds.NoSuch"}));
  auto eds = Await(stream, kEdsType, [](const auto& r) { return EndpointCount(r, kEcho) == 4; });
  ASSERT_TRUE(eds.has_value()) << server_->Log();
  EXPECT_EQ(Names(*eds), std::set<std::string>{kEcho});
  Drain(stream);
  EXPECT_FALSE(stream.finished());

  // Add a name.
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kEcho, "cairn.xds.NoSuch", kOther}));
  eds = Await(stream, kEdsType, [](const auto& r) { return Names(r).count(kOther) > 0; });
  ASSERT_TRUE(eds.has_value());
  // EDS, like RDS, may hold only what changed (SotW: clients keep the rest).
  EXPECT_THAT(Names(*eds), ::testing::IsSubsetOf(std::vector<std::string>{kEcho, kOther}));
  EXPECT_EQ(EndpointCount(*eds, kOther), 1u);
  Drain(stream);

  // Remove one.
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kOther}));
  eds = Await(stream, kEdsType, [](const auto& r) { return Names(r).count(kEcho) == 0; });
  ASSERT_TRUE(eds.has_value());
  EXPECT_THAT(Names(*eds), ::testing::IsSubsetOf(std::vector<std::string>{kOther}));
  Drain(stream);
  // A removed name is no longer followed.
  Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7009"}, "zone-a");
  ExpectNoResponse(stream, "a change of an unsubscribed name");

  // The full dataInfoId text is a name too, answered under that name.
  const std::string full = std::string(kEcho) + "#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP";
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kOther, full}));
  eds = Await(stream, kEdsType, [&](const auto& r) { return Names(r).count(full) > 0; });
  ASSERT_TRUE(eds.has_value()) << "no EDS for " << full;
  EXPECT_THAT(Names(*eds), ::testing::IsSubsetOf(std::vector<std::string>{kOther, full}));
  EXPECT_EQ(EndpointCount(*eds, full), 5u);

  // Wildcard CDS: every known service.
  ASSERT_TRUE(stream.Subscribe(kCdsType, {}));
  auto cds = Await(stream, kCdsType, [](const auto& r) { return Names(r).size() >= 2; });
  ASSERT_TRUE(cds.has_value());
  EXPECT_TRUE(Names(*cds).count(kEcho)) << ::testing::PrintToString(Names(*cds));
  EXPECT_TRUE(Names(*cds).count(kOther)) << ::testing::PrintToString(Names(*cds));
  // A new service joins the wildcard.
  Publish(client_a_.get(), "cairn.xds.Third", {"grpc://127.0.0.1:7200"}, "zone-a");
  cds = Await(stream, kCdsType, [](const auto& r) { return Names(r).count("cairn.xds.Third"); });
  EXPECT_TRUE(cds.has_value()) << "wildcard CDS did not add a new service";
  EXPECT_FALSE(stream.finished());
}

TEST_F(XdsProtocolTest, ClustersAndEndpointsComeBeforeListenersAndRoutes) {
  Start();
  PublishEcho();
  const std::string late = "cairn.xds.Late";
  AdsStream stream(server_->grpc_address());
  // Asked for in the order LDS, RDS, CDS, EDS: the answer order is the server's.
  for (const auto& type : kAllTypes) ASSERT_TRUE(stream.Subscribe(type, {late}));
  Drain(stream);  // answers without the unknown name, if any

  Publish(client_a_.get(), late, {"grpc://127.0.0.1:7300"}, "zone-a");
  Publish(client_b_.get(), late, {"grpc://127.0.0.1:7301"}, "zone-b");
  std::map<std::string, int> position;  // type -> index of its first response naming `late`
  std::vector<std::string> order;
  auto deadline = Clock::now() + seconds(10);
  for (int i = 0; i < 100 && position.size() < 4 && Clock::now() < deadline; ++i) {
    auto response = stream.Next(seconds(1));
    if (!response) {
      if (stream.finished()) break;
      continue;
    }
    stream.Ack(*response);
    order.push_back(response->type_url().substr(response->type_url().rfind('.') + 1) + "(" +
                    std::to_string(Names(*response).size()) + ")");
    if (Names(*response).count(late) && !position.count(response->type_url())) {
      position[response->type_url()] = i;
    }
  }
  ASSERT_EQ(position.size(), 4u) << ::testing::PrintToString(order) << "\n" << server_->Log();
  int last_of_cds_eds = std::max(position[kCdsType], position[kEdsType]);
  int first_of_lds_rds = std::min(position[kLdsType], position[kRdsType]);
  EXPECT_LT(last_of_cds_eds, first_of_lds_rds) << ::testing::PrintToString(order);
}

TEST_F(XdsProtocolTest, ANewStreamGetsEverythingAgain) {
  Start();
  PublishEcho();
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("stream " + std::to_string(round + 1));
    AdsStream stream(server_->grpc_address(), "xds-reconnect");
    for (const auto& type : kAllTypes) ASSERT_TRUE(stream.Subscribe(type, {kEcho}));
    std::set<std::string> seen;
    auto deadline = Clock::now() + seconds(10);
    for (int i = 0; i < 100 && seen.size() < 4 && Clock::now() < deadline; ++i) {
      auto response = stream.Next(seconds(1));
      if (!response) {
        if (stream.finished()) break;
        continue;
      }
      stream.Ack(*response);
      bool complete = Names(*response).count(kEcho) &&
                      (response->type_url() != kEdsType || EndpointCount(*response, kEcho) == 4);
      if (complete) seen.insert(response->type_url());
    }
    EXPECT_EQ(seen.size(), 4u) << ::testing::PrintToString(seen);
    stream.Close();
  }
}

TEST_F(XdsProtocolTest, BadRequestsEndTheStreamAndTheServerKeepsServing) {
  Start();
  PublishEcho();
  const std::string address = server_->grpc_address();
  {
    const std::string bogus = "type.googleapis.com/envoy.config.bogus.v3.Bogus";
    AdsStream stream(address);
    ASSERT_TRUE(stream.Subscribe(bogus, {kEcho}));
    auto status = stream.Finished(seconds(5));
    ASSERT_TRUE(status.has_value()) << "an unknown type_url did not end the stream";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status->error_message();
    EXPECT_NE(status->error_message().find(bogus), std::string::npos) << status->error_message();
  }
  ExpectServing(kEcho, "an unknown type_url");
  {
    AdsStream stream(address, /*node_id=*/"");
    ASSERT_TRUE(stream.Subscribe(kCdsType, {kEcho}));
    auto status = stream.Finished(seconds(5));
    ASSERT_TRUE(status.has_value()) << "a first request without node.id did not end the stream";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status->error_message();
  }
  ExpectServing(kEcho, "a request without node.id");
  {
    // Field 1 with wire type 7 (there is none): no protobuf parser accepts it.
    const std::string garbage("\x0f\xff\xff\xff not a DiscoveryRequest \x00\x07", 30);
    auto status = SendRawBytes(address, garbage, seconds(5));
    ASSERT_TRUE(status.has_value()) << "garbage did not end the call";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status->error_message();
  }
  ExpectServing(kEcho, "garbage bytes");
  {
    AdsStream stream(address);
    std::vector<std::string> names;
    for (int i = 0; i < 1001; ++i) names.push_back("cairn.xds.N" + std::to_string(i));
    ASSERT_TRUE(stream.Subscribe(kEdsType, names));
    auto status = stream.Finished(seconds(5));
    ASSERT_TRUE(status.has_value()) << "1001 names did not end the stream";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status->error_message();
  }
  ExpectServing(kEcho, "too many names");
  // A well-formed stream is not ended by any of that.
  AdsStream stream(address);
  ASSERT_TRUE(stream.Subscribe(kEdsType, {kEcho}));
  EXPECT_TRUE(Await(stream, kEdsType, [](const auto& r) {
                return EndpointCount(r, kEcho) == 4;
              }).has_value());
  EXPECT_FALSE(stream.finished());
}

TEST_F(XdsProtocolTest, StreamsOverTheCapAreRefused) {
  TempDir dir;
  const std::string config = dir.File("registry.yaml");
  {
    std::ofstream out(config);
    out << "xds_max_streams: 2\n";
  }
  Start({"--config", config});
  PublishEcho();
  auto served = [&](AdsStream& stream) {
    return stream.Subscribe(kEdsType, {kEcho}) &&
           Await(
               stream, kEdsType, [](const auto& r) { return Names(r).count(kEcho) > 0; },
               seconds(5))
               .has_value();
  };
  auto first = std::make_unique<AdsStream>(server_->grpc_address(), "xds-cap-1");
  AdsStream second(server_->grpc_address(), "xds-cap-2");
  ASSERT_TRUE(served(*first)) << server_->Log();
  ASSERT_TRUE(served(second));
  EXPECT_EQ(MetricSum("cairn_xds_streams"), 2);
  {
    AdsStream third(server_->grpc_address(), "xds-cap-3");
    third.Subscribe(kEdsType, {kEcho});
    auto status = third.Finished(seconds(5));
    ASSERT_TRUE(status.has_value()) << "a third stream was not refused";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status->error_message();
  }
  EXPECT_GT(MetricSum("cairn_xds_rejected_streams_total"), 0);
  // Room again once one ends.
  first.reset();
  bool again = false;
  for (int i = 0; i < 10 && !again; ++i) {
    AdsStream stream(server_->grpc_address(), "xds-cap-again");
    again = served(stream);
  }
  EXPECT_TRUE(again) << "no stream served after one of two ended";
  EXPECT_FALSE(second.finished());
}

}  // namespace
}  // namespace cairn::testing

namespace cairn::testing {
namespace {

// Incremental xDS over a real DeltaAggregatedResources stream: versioned
// resources, absent names as removed, only what changed after an ACK, and a
// client's death leaving exactly its endpoints out.
TEST_F(XdsProtocolTest, DeltaStreamSendsWhatChanged) {
  Start();
  PublishEcho();
  auto channel = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = xds::AggregatedDiscoveryService::NewStub(channel);
  grpc::ClientContext context;
  // Every read below expects a response; the deadline bounds them all.
  context.set_deadline(std::chrono::system_clock::now() + seconds(30));
  auto stream = stub->DeltaAggregatedResources(&context);
  xds::DeltaDiscoveryRequest subscribe;
  subscribe.mutable_node()->set_id("delta-node");
  subscribe.set_type_url(kEdsType);
  subscribe.add_resource_names_subscribe(kEcho);
  subscribe.add_resource_names_subscribe("cairn.test.Nobody");
  ASSERT_TRUE(stream->Write(subscribe));

  // Reads (and ACKs) until kEcho's endpoints are `want`; returns the last
  // response holding kEcho.
  auto read_until = [&](size_t want) -> std::optional<xds::DeltaDiscoveryResponse> {
    for (int i = 0; i < 50; ++i) {
      xds::DeltaDiscoveryResponse response;
      if (!stream->Read(&response)) return std::nullopt;
      xds::DeltaDiscoveryRequest ack;
      ack.set_type_url(kEdsType);
      ack.set_response_nonce(response.nonce());
      if (!stream->Write(ack)) return std::nullopt;
      for (const auto& resource : response.resources()) {
        ClusterLoadAssignment cla;
        if (resource.name() == kEcho && resource.resource().UnpackTo(&cla) &&
            Endpoints(cla).size() == want) {
          return response;
        }
      }
    }
    return std::nullopt;
  };
  auto first = read_until(4);
  ASSERT_TRUE(first.has_value()) << server_->Log();
  ASSERT_EQ(first->resources_size(), 1);
  EXPECT_GT(VersionNumber(first->resources(0).version()), 0u);
  EXPECT_EQ(first->removed_resources_size(), 1);
  EXPECT_EQ(first->removed_resources(0), "cairn.test.Nobody");

  // One more endpoint: only kEcho again, with a newer version, nothing removed.
  Publish(client_a_.get(), kEcho, {"grpc://127.0.0.1:7009"}, "zone-a");
  auto second = read_until(5);
  ASSERT_TRUE(second.has_value()) << server_->Log();
  EXPECT_EQ(second->resources_size(), 1);
  EXPECT_EQ(second->removed_resources_size(), 0);
  EXPECT_GT(VersionNumber(second->resources(0).version()),
            VersionNumber(first->resources(0).version()));

  // Client B goes away: its two endpoints leave, client A's three stay.
  // (publishers_ holds A, A, B, B from PublishEcho, then A's new one; a
  // handle keeps its client alive, so B's go first.)
  publishers_.erase(publishers_.begin() + 2, publishers_.begin() + 4);
  client_b_.reset();
  auto third = read_until(3);
  ASSERT_TRUE(third.has_value()) << server_->Log();
  context.TryCancel();
  stream->Finish();
}

}  // namespace
}  // namespace cairn::testing
