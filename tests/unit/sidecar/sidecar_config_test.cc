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
  for (const char* name :
       {"outbound-http-registry.yaml", "inbound-publish.yaml", "grpc-route.yaml"}) {
    auto c = LoadSidecarConfig(std::string(CAIRN_SOURCE_DIR "/examples/") + name);
    EXPECT_TRUE(c.ok()) << name << ": " << c.status();
  }
}

}  // namespace
}  // namespace cairn::sidecar
