#include "sidecar/config/sidecar_config.h"

#include <gtest/gtest.h>

namespace cairn::sidecar {
namespace {

constexpr char kValid[] = R"(
workers: 2
listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { prefix: /api, headers: [{ name: X-Canary, value: "1" }] }
        weighted_clusters: [{ cluster: a, weight: 9 }, { cluster: b, weight: 1 }]
        retry: { attempts: 2, on_5xx: true }
      - match: { path: /ping }
        direct_response: { status: 200, body: pong }
      - cluster: a
  - name: raw
    address: 127.0.0.1:15002
    protocol: tcp
    tcp_cluster: b
clusters:
  - name: a
    endpoints: ["127.0.0.1:8080", "127.0.0.1:8081?weight=3"]
    lb: least_request
    health_check: { type: http, path: /ready }
  - name: b
    registry: { data_id: com.example.Echo }
)";

TEST(SidecarConfigTest, ParsesAValidConfigWithDefaults) {
  auto c = ParseSidecarConfig(kValid);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->workers, 2u);
  EXPECT_EQ(c->admin, "127.0.0.1:9901");
  ASSERT_EQ(c->listeners.size(), 2u);
  const auto& routes = c->listeners[0].routes;
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].prefix, "/api");
  ASSERT_EQ(routes[0].headers.size(), 1u);
  EXPECT_EQ(routes[0].headers[0].name, "x-canary");  // lower-cased
  EXPECT_EQ(routes[0].weighted_clusters[0].weight, 9u);
  EXPECT_EQ(routes[0].retry.attempts, 2u);
  EXPECT_TRUE(routes[0].retry.on_5xx);
  EXPECT_EQ(routes[0].timeout_ms, 15000u);
  EXPECT_EQ(routes[1].direct_response->body, "pong");
  EXPECT_EQ(routes[2].prefix, "/");
  EXPECT_EQ(c->listeners[0].protocol, "auto");
  EXPECT_EQ(c->FindCluster("a")->lb, "least_request");
  EXPECT_EQ(c->FindCluster("a")->health_check.path, "/ready");
  EXPECT_EQ(c->FindCluster("b")->registry->data_id, "com.example.Echo");
  EXPECT_EQ(c->FindCluster("b")->limits.max_connections, 1024u);
  EXPECT_EQ(c->listeners[0].http2_flush_delay_us, 0u);
  EXPECT_EQ(c->listeners[0].http2_flush_batch, 8u);
}

TEST(SidecarConfigTest, ErrorsNameTheKeyPath) {
  struct Case {
    std::string yaml;
    std::string expected;
  } cases[] = {
      {"listeners: [{name: l, address: '127.0.0.1:1', routes: [{cluster: nope}]}]",
       "listeners[0].routes[0].cluster: no cluster named 'nope'"},
      {"listeners: [{name: l, address: '127.0.0.1:1', routes: [{cluster: a, timout_ms: 5}]}]\n"
       "clusters: [{name: a, endpoints: ['127.0.0.1:2']}]",
       "listeners[0].routes[0].timout_ms: unknown key"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: tcp, tcp_cluster: a}]\n"
       "clusters: [{name: a, endpoints: ['127.0.0.1:2'], lb: fastest}]",
       "clusters[0].lb: unknown policy 'fastest'"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: tcp, tcp_cluster: a}]\n"
       "clusters: [{name: a}]",
       "clusters[0]: exactly one of endpoints and registry is required"},
      {"listeners: [{name: l, address: '127.0.0.1:1', routes: [{}]}]",
       "listeners[0].routes[0]: exactly one of cluster, weighted_clusters, direct_response"},
      {"listeners: [{name: l, address: '127.0.0.1:1', http2_flush_delay_us: 20000,"
       " routes: [{cluster: a}]}]\nclusters: [{name: a, endpoints: ['127.0.0.1:2']}]",
       "listeners[0].http2_flush_delay_us: at most 10000"},
      {"workers: many\nlisteners: []", "workers: bad value"},
      {"listeners: []", "listeners: at least one is required"},
      {"{{{", "YAML:"},
  };
  for (const auto& c : cases) {
    auto parsed = ParseSidecarConfig(c.yaml);
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_NE(std::string(parsed.status().message()).find(c.expected), std::string::npos)
        << parsed.status().message() << "\nwanted: " << c.expected;
  }
}

TEST(SidecarConfigTest, DumpRoundTrips) {
  auto c = ParseSidecarConfig(kValid);
  ASSERT_TRUE(c.ok());
  std::string dumped = DumpSidecarConfig(*c);
  auto again = ParseSidecarConfig(dumped);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << dumped;
  EXPECT_EQ(DumpSidecarConfig(*again), dumped);
  EXPECT_EQ(again->listeners[0].routes[0].weighted_clusters[1].cluster, "b");
}

}  // namespace
}  // namespace cairn::sidecar

namespace cairn::sidecar {
namespace {

// The commented examples in examples/ must stay valid.
TEST(SidecarConfigTest, EveryExampleLoads) {
  for (const char* name : {"outbound-http-registry.yaml", "inbound-publish.yaml", "grpc-route.yaml",
                           "bolt-outbound.yaml", "dubbo-outbound.yaml"}) {
    auto c = LoadSidecarConfig(std::string(CAIRN_SOURCE_DIR "/examples/") + name);
    EXPECT_TRUE(c.ok()) << name << ": " << c.status();
  }
}

}  // namespace
}  // namespace cairn::sidecar

namespace cairn::sidecar {
namespace {

constexpr char kBolt[] = R"(
listeners:
  - name: mixed
    address: 127.0.0.1:15031
    bolt_routes:
      - match: { service: "com.foo.Bar:1.0" }
        cluster: rpc
      - match: { service_prefix: "com.foo." }
        cluster: rpc
        timeout_ms: 800
        retry: { attempts: 1, on_reset: true }
      - cluster: rpc
  - name: bolt
    address: 127.0.0.1:15032
    protocol: bolt
    bolt_routes: [{ cluster: rpc }]
clusters:
  - name: rpc
    protocol: bolt
    endpoints: ["127.0.0.1:12200"]
    heartbeat_interval_ms: 5000
)";

TEST(SidecarConfigTest, BoltRoutesAndClustersWithDefaults) {
  auto c = ParseSidecarConfig(kBolt);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto& routes = c->listeners[0].RoutesOf("bolt");
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(c->listeners[0].protocol, "auto");
  EXPECT_TRUE(c->listeners[0].routes.empty());
  EXPECT_EQ(routes[0].service, "com.foo.Bar:1.0");
  EXPECT_EQ(routes[0].timeout_ms, 15000u);
  EXPECT_EQ(routes[0].retry.attempts, 2u);
  EXPECT_TRUE(routes[0].retry.on_connect_failure);
  EXPECT_FALSE(routes[0].retry.on_reset);
  EXPECT_EQ(routes[1].service_prefix, "com.foo.");
  EXPECT_EQ(routes[1].timeout_ms, 800u);
  EXPECT_EQ(routes[1].retry.attempts, 1u);
  EXPECT_TRUE(routes[1].retry.on_reset);
  EXPECT_TRUE(routes[2].service.empty() && routes[2].service_prefix.empty());
  EXPECT_EQ(c->listeners[1].protocol, "bolt");
  EXPECT_EQ(c->FindCluster("rpc")->protocol, "bolt");
  EXPECT_EQ(c->FindCluster("rpc")->heartbeat_interval_ms, 5000u);
  EXPECT_EQ(ParseSidecarConfig("listeners: [{name: l, address: '127.0.0.1:1', protocol: bolt, "
                               "bolt_routes: [{cluster: b}]}]\n"
                               "clusters: [{name: b, protocol: bolt, endpoints: ['127.0.0.1:2']}]")
                ->FindCluster("b")
                ->heartbeat_interval_ms,
            15000u);

  std::string dumped = DumpSidecarConfig(*c);
  auto again = ParseSidecarConfig(dumped);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << dumped;
  EXPECT_EQ(DumpSidecarConfig(*again), dumped);
  EXPECT_EQ(again->listeners[0].RoutesOf("bolt")[1].retry.attempts, 1u);
  EXPECT_NE(dumped.find("heartbeat_interval_ms: 5000"), std::string::npos) << dumped;
}

TEST(SidecarConfigTest, AnAutoListenerTakesRoutesOfEveryRpcProtocolAndDumpsThem) {
  auto c = ParseSidecarConfig(
      "listeners: [{name: l, address: '127.0.0.1:1', routes: [{cluster: h}],"
      " bolt_routes: [{cluster: b}],"
      " dubbo_routes: [{match: {service: org.example.Demo}, cluster: d, timeout_ms: 700}]}]\n"
      "clusters: [{name: b, protocol: bolt, endpoints: ['127.0.0.1:2']},"
      " {name: d, protocol: dubbo, endpoints: ['127.0.0.1:3']},"
      " {name: h, endpoints: ['127.0.0.1:4']}]");
  ASSERT_TRUE(c.ok()) << c.status();
  const ListenerConfig& l = c->listeners[0];
  EXPECT_EQ(l.rpc_routes.size(), 2u);
  ASSERT_EQ(l.RoutesOf("dubbo").size(), 1u);
  EXPECT_EQ(l.RoutesOf("dubbo")[0].service, "org.example.Demo");
  EXPECT_EQ(l.RoutesOf("dubbo")[0].timeout_ms, 700u);
  EXPECT_EQ(l.RoutesOf("bolt")[0].cluster, "b");
  EXPECT_TRUE(l.RoutesOf("thrift").empty());
  std::string dumped = DumpSidecarConfig(*c);
  EXPECT_NE(dumped.find("dubbo_routes"), std::string::npos) << dumped;
  auto again = ParseSidecarConfig(dumped);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << dumped;
  EXPECT_EQ(DumpSidecarConfig(*again), dumped);
}

TEST(SidecarConfigTest, BoltErrorsNameTheKeyPath) {
  const std::string bolt_cluster =
      "\nclusters: [{name: b, protocol: bolt, endpoints: ['127.0.0.1:2']},"
      " {name: h, endpoints: ['127.0.0.1:3']}]";
  struct Case {
    std::string yaml;
    std::string expected;
  } cases[] = {
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{cluster: h}]}]" + bolt_cluster,
       "listeners[0].bolt_routes[0].cluster: cluster 'h' is not protocol bolt"},
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{cluster: nope}]}]" +
           bolt_cluster,
       "listeners[0].bolt_routes[0].cluster: no cluster named 'nope'"},
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{}]}]" + bolt_cluster,
       "listeners[0].bolt_routes[0].cluster: required"},
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{cluster: b, "
       "match: {service: a, service_prefix: b}}]}]" +
           bolt_cluster,
       "listeners[0].bolt_routes[0].match: at most one of service and service_prefix"},
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{cluster: b, "
       "match: {servise: a}}]}]" +
           bolt_cluster,
       "listeners[0].bolt_routes[0].match.servise: unknown key"},
      {"listeners: [{name: l, address: '127.0.0.1:1', bolt_routes: [{cluster: b, "
       "retry: {on_5xx: true}}]}]" +
           bolt_cluster,
       "listeners[0].bolt_routes[0].retry.on_5xx: unknown key"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: http1, "
       "routes: [{cluster: h}], bolt_routes: [{cluster: b}]}]" +
           bolt_cluster,
       "listeners[0].bolt_routes: only for protocol bolt or auto"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: bolt}]" + bolt_cluster,
       "listeners[0]: a bolt listener needs bolt_routes"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: bolt, "
       "routes: [{cluster: h}], bolt_routes: [{cluster: b}]}]" +
           bolt_cluster,
       "listeners[0].routes: a bolt listener takes bolt_routes only"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: auto}]" + bolt_cluster,
       "listeners[0]: an auto listener needs routes, bolt_routes or dubbo_routes"},
      {"listeners: [{name: l, address: '127.0.0.1:1', routes: [{cluster: b}]}]" + bolt_cluster,
       "listeners[0].routes[0].cluster: cluster 'b' speaks bolt"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: tcp, tcp_cluster: b}]\n"
       "clusters: [{name: b, protocol: bolt, endpoints: ['127.0.0.1:2'], "
       "health_check: {type: http}}]",
       "clusters[0].health_check.type: a bolt cluster supports tcp checks only"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: tcp, tcp_cluster: b}]\n"
       "clusters: [{name: b, protocol: thrift, endpoints: ['127.0.0.1:2']}]",
       "clusters[0].protocol: must be http1, http2, tcp, bolt or dubbo"},
      // Dubbo takes the same schema, under its own key and protocol.
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: dubbo, "
       "dubbo_routes: [{cluster: b}]}]" +
           bolt_cluster,
       "listeners[0].dubbo_routes[0].cluster: cluster 'b' is not protocol dubbo"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: bolt, "
       "bolt_routes: [{cluster: b}], dubbo_routes: [{cluster: b}]}]" +
           bolt_cluster,
       "listeners[0].dubbo_routes: only for protocol dubbo or auto"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: dubbo}]" + bolt_cluster,
       "listeners[0]: a dubbo listener needs dubbo_routes"},
      {"listeners: [{name: l, address: '127.0.0.1:1', protocol: http1, routes: [{cluster: d}]}]\n"
       "clusters: [{name: d, protocol: dubbo, endpoints: ['127.0.0.1:2']}]",
       "listeners[0].routes[0].cluster: cluster 'd' speaks dubbo: route to it from dubbo_routes"},
  };
  for (const auto& c : cases) {
    auto parsed = ParseSidecarConfig(c.yaml);
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_NE(std::string(parsed.status().message()).find(c.expected), std::string::npos)
        << parsed.status().message() << "\nwanted: " << c.expected;
  }
}

}  // namespace
}  // namespace cairn::sidecar
