// Unit tests of the sidecar's application-level discovery pieces that need
// no process: the `app` config section and listener interfaces, the local
// API's JSON subset, and the interface URL rule (which must match the
// registry's, since both render what old consumers see).
#include <gtest/gtest.h>

#include "registry/app/app_model.h"
#include "sidecar/config/sidecar_config.h"
#include "sidecar/discovery/interface_url.h"
#include "sidecar/discovery/local_json.h"

namespace cairn::sidecar {
namespace {

constexpr char kListener[] = R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    publish:
      app: shop
      interfaces:
        - { data_id: "com.shop.Cart:1.0", group: SOFA, params: { weight: 50, version: "1.0" } }
        - { data_id: "com.shop.Order:1.0" }
    routes: [{ cluster: local }]
clusters:
  - { name: local, endpoints: ["127.0.0.1:8080"] }
)";

TEST(SidecarAppConfigTest, DefaultsToInterfaceDiscovery) {
  auto c = ParseSidecarConfig(kListener);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->app.discovery, "interface");
  EXPECT_EQ(c->app.name, "");
  EXPECT_EQ(c->app.mapping_refresh_ms, 5000u);
  EXPECT_TRUE(c->app.local_api);
  const auto& interfaces = c->listeners[0].publish->interfaces;
  ASSERT_EQ(interfaces.size(), 2u);
  EXPECT_EQ(interfaces[0].group, "SOFA");
  EXPECT_EQ(interfaces[0].params.at("weight"), "50");
  EXPECT_TRUE(interfaces[1].params.empty());
  EXPECT_TRUE(c->listeners[0].publish->data_id.empty());
  std::string dump = DumpSidecarConfig(*c);
  EXPECT_NE(dump.find("discovery: interface"), std::string::npos) << dump;
  EXPECT_NE(dump.find("com.shop.Cart:1.0"), std::string::npos) << dump;
  // The dump is itself a valid config with the same meaning.
  auto again = ParseSidecarConfig(dump);
  ASSERT_TRUE(again.ok()) << again.status() << dump;
  EXPECT_EQ(again->listeners[0].publish->interfaces[0].params,
            c->listeners[0].publish->interfaces[0].params);
}

TEST(SidecarAppConfigTest, ParsesTheAppSection) {
  auto c = ParseSidecarConfig(std::string(kListener) +
                              "app: { name: shop2, discovery: app, zone: z1, "
                              "mapping_refresh_ms: 250, local_api: false }\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->app.name, "shop2");
  EXPECT_EQ(c->app.discovery, "app");
  EXPECT_EQ(c->app.zone, "z1");
  EXPECT_EQ(c->app.mapping_refresh_ms, 250u);
  EXPECT_FALSE(c->app.local_api);
}

TEST(SidecarAppConfigTest, TheExampleLoads) {
  auto c = LoadSidecarConfig(CAIRN_SOURCE_DIR "/examples/app-discovery.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->app.discovery, "app");
  EXPECT_EQ(c->listeners[0].publish->interfaces.size(), 2u);
}

TEST(SidecarAppConfigTest, RefusesBadValuesWithTheirPath) {
  auto bad_mode = ParseSidecarConfig(std::string(kListener) + "app: { discovery: apps }\n");
  EXPECT_EQ(bad_mode.status().message(), "app.discovery: must be interface, both or app");
  auto typo = ParseSidecarConfig(std::string(kListener) + "app: { discovery: app, nmae: x }\n");
  EXPECT_EQ(typo.status().message(), "app.nmae: unknown key");
  auto no_id = ParseSidecarConfig(R"(
listeners:
  - name: in
    address: 127.0.0.1:0
    publish: { interfaces: [ { params: { a: b } } ] }
    routes: [{ cluster: c }]
clusters: [{ name: c, endpoints: ["127.0.0.1:1"] }]
)");
  EXPECT_EQ(no_id.status().message(), "listeners[0].publish.interfaces[0].data_id: required");
  // App-level publishing needs an app name.
  auto no_app = ParseSidecarConfig(R"(
app: { discovery: both }
listeners:
  - name: in
    address: 127.0.0.1:0
    publish: { data_id: x }
    routes: [{ cluster: c }]
clusters: [{ name: c, endpoints: ["127.0.0.1:1"] }]
)");
  EXPECT_FALSE(no_app.ok());
  EXPECT_NE(no_app.status().message().find("app.name: required"), std::string::npos);
  auto fast = ParseSidecarConfig(std::string(kListener) + "app: { mapping_refresh_ms: 10 }\n");
  EXPECT_EQ(fast.status().message(), "app.mapping_refresh_ms: at least 100");
}

using discovery::ParseJsonObject;

TEST(LocalJsonTest, ParsesScalarsAndOneLevelOfObjects) {
  auto parsed = ParseJsonObject(
      R"( {"interface":"com.a\"b\\c","weight":100,"ok":true,"no":false,"gone":null,)"
      R"("neg":-1.5e3,"u":"\u00e9\ud83d\ude00","params":{"x":"1","y":2},"empty":{}} )");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->scalars.at("interface"), "com.a\"b\\c");
  EXPECT_EQ(parsed->scalars.at("weight"), "100");
  EXPECT_EQ(parsed->scalars.at("ok"), "true");
  EXPECT_EQ(parsed->scalars.at("no"), "false");
  EXPECT_EQ(parsed->scalars.count("gone"), 0u);
  EXPECT_EQ(parsed->scalars.at("neg"), "-1.5e3");
  EXPECT_EQ(parsed->scalars.at("u"), "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(parsed->objects.at("params").at("y"), "2");
  EXPECT_TRUE(parsed->objects.at("empty").empty());
  EXPECT_TRUE(ParseJsonObject("{}").ok());
}

TEST(LocalJsonTest, RefusesWhatItDoesNotAccept) {
  for (const char* text :
       {"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x", "{\"a\":[1]}",
        "{\"a\":{\"b\":{}}}", "{\"a\":1,\"a\":2}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":\"\x01\"}", "{a:1}", "{\"a\":tru}", "{\"a\":-}",
        "{\"a\":\"open"}) {
    auto parsed = ParseJsonObject(text);
    EXPECT_FALSE(parsed.ok()) << text;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().message().substr(0, 17), "bad JSON at byte ") << text;
    }
  }
}

// The sidecar renders interface URLs without protobuf; the registry renders
// the same thing for interface-level subscribers. They must agree.
TEST(InterfaceUrlTest, MatchesTheRegistryRendering) {
  const std::vector<std::vector<std::string>> endpoint_sets = {
      {"http://127.0.0.1:80"},
      {"bolt://10.0.0.1:12200", "http://10.0.0.1:8080"},
      {"bolt://h:1?x=1"},
      {},
  };
  const std::vector<std::map<std::string, std::string>> param_sets = {
      {},
      {{"protocol", "bolt"}, {"weight", "100"}},
      {{"protocol", "h2"}},
      {{"a b", "c&d=e%f?g#h"}, {"utf", "\xc3\xa9"}, {"z", ""}},
      {{"protocol", "http"}, {"version", "1.0"}},
  };
  for (const auto& endpoints : endpoint_sets) {
    for (const auto& params : param_sets) {
      EXPECT_EQ(discovery::RenderInterfaceUrls(endpoints, params),
                app::RenderInterfaceUrls(endpoints, params));
    }
  }
  EXPECT_EQ(discovery::RenderInterfaceUrls({"bolt://a:1", "http://a:2"}, {{"protocol", "bolt"}}),
            std::vector<std::string>{"bolt://a:1?protocol=bolt"});
  EXPECT_EQ(discovery::EndpointKey("bolt://a:1?x=1"), "bolt://a:1");
  EXPECT_EQ(discovery::EndpointKey("bolt://a:1"), "bolt://a:1");
}

}  // namespace
}  // namespace cairn::sidecar
