#include "registry/server/registry_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace cairn {
namespace {

std::string WriteFile(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()));
  std::ofstream(path) << text;
  return path.string();
}

TEST(RegistryConfigTest, DefaultsAreValidAndLoopback) {
  RegistryConfig c;
  EXPECT_TRUE(ValidateRegistryConfig(c).ok());
  EXPECT_EQ(c.listen, "127.0.0.1:9600");
  EXPECT_EQ(c.admin, "127.0.0.1:9603");
}

TEST(RegistryConfigTest, FileOverridesDefaults) {
  auto path =
      WriteFile("cairn-cfg-ok", "listen: 127.0.0.1:0\nslots: 64\nkeepalive_timeout_ms: 1000\n");
  auto c = LoadRegistryConfig(path, RegistryConfig{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_EQ(c->slots, 64u);
  EXPECT_EQ(c->keepalive_timeout_ms, 1000u);
  EXPECT_EQ(c->admin, "127.0.0.1:9603");  // untouched
  std::filesystem::remove(path);
}

TEST(RegistryConfigTest, UnknownKeysAndBadValuesAreErrorsNamingTheKey) {
  auto path = WriteFile("cairn-cfg-bad", "listne: 127.0.0.1:1\n");
  auto c = LoadRegistryConfig(path, RegistryConfig{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown key 'listne'"), std::string::npos);
  std::filesystem::remove(path);

  path = WriteFile("cairn-cfg-bad2", "slots: many\n");
  c = LoadRegistryConfig(path, RegistryConfig{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'slots'"), std::string::npos);
  std::filesystem::remove(path);

  EXPECT_FALSE(LoadRegistryConfig("/nonexistent/cairn.yaml", RegistryConfig{}).ok());
}

TEST(RegistryConfigTest, ValidationCatchesInconsistentTimeouts) {
  RegistryConfig c;
  c.keepalive_timeout_ms = 100;  // below the 500 ms minimum
  EXPECT_FALSE(ValidateRegistryConfig(c).ok());
  c = RegistryConfig{};
  c.slots = 0;
  EXPECT_FALSE(ValidateRegistryConfig(c).ok());
  c = RegistryConfig{};
  c.log_level = "loud";
  EXPECT_FALSE(ValidateRegistryConfig(c).ok());
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// config/registry.yaml documents every default: keep it true.
TEST(RegistryConfigTest, DocumentedExampleMatchesTheDefaults) {
  auto c = LoadRegistryConfig(CAIRN_SOURCE_DIR "/config/registry.yaml", RegistryConfig{});
  ASSERT_TRUE(c.ok()) << c.status();
  RegistryConfig d;
  EXPECT_EQ(c->listen, d.listen);
  EXPECT_EQ(c->admin, d.admin);
  EXPECT_EQ(c->slots, d.slots);
  EXPECT_EQ(c->keepalive_timeout_ms, d.keepalive_timeout_ms);
  EXPECT_EQ(c->min_keepalive_timeout_ms, d.min_keepalive_timeout_ms);
  EXPECT_EQ(c->max_keepalive_timeout_ms, d.max_keepalive_timeout_ms);
  EXPECT_EQ(c->max_registrations_per_client, d.max_registrations_per_client);
  EXPECT_EQ(c->push_ack_timeout_ms, d.push_ack_timeout_ms);
  EXPECT_EQ(c->push_max_backoff_ms, d.push_max_backoff_ms);
  EXPECT_EQ(c->push_max_attempts, d.push_max_attempts);
  EXPECT_EQ(c->stream_read_window, d.stream_read_window);
  EXPECT_EQ(c->stream_max_outbound, d.stream_max_outbound);
  EXPECT_EQ(c->ready_file, d.ready_file);
  EXPECT_EQ(c->log_level, d.log_level);
}

// The cluster keys are present (not just defaulted): loaded over other values,
// the file restores every default.
TEST(RegistryConfigTest, DocumentedExampleListsEveryClusterKey) {
  RegistryConfig other;
  other.roles = "meta";
  other.etcd = "127.0.0.1:1";
  other.cluster = "x";
  other.replicas = 9;
  other.lease_ttl_s = 9;
  other.max_slot_moves = 9;
  other.data_listen = "127.0.0.1:1";
  other.session_lease_ms = 9;
  other.rebuild_timeout_ms = 9;
  other.drain_timeout_ms = 9;
  other.anti_entropy_interval_ms = 9;
  other.datum_cache_idle_ms = 9;
  auto c = LoadRegistryConfig(CAIRN_SOURCE_DIR "/config/registry.yaml", other);
  ASSERT_TRUE(c.ok()) << c.status();
  RegistryConfig d;
  EXPECT_EQ(c->roles, d.roles);
  EXPECT_EQ(c->etcd, d.etcd);
  EXPECT_EQ(c->cluster, d.cluster);
  EXPECT_EQ(c->replicas, d.replicas);
  EXPECT_EQ(c->lease_ttl_s, d.lease_ttl_s);
  EXPECT_EQ(c->max_slot_moves, d.max_slot_moves);
  EXPECT_EQ(c->data_listen, d.data_listen);
  EXPECT_EQ(c->session_lease_ms, d.session_lease_ms);
  EXPECT_EQ(c->rebuild_timeout_ms, d.rebuild_timeout_ms);
  EXPECT_EQ(c->drain_timeout_ms, d.drain_timeout_ms);
  EXPECT_EQ(c->anti_entropy_interval_ms, d.anti_entropy_interval_ms);
  EXPECT_EQ(c->datum_cache_idle_ms, d.datum_cache_idle_ms);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// The xDS keys are in the documented file, and the endpoint schemes are
// checked: a misspelt one is refused with its name, not silently skipped.
TEST(RegistryConfigTest, XdsKeysAreDocumentedAndSchemesChecked) {
  RegistryConfig other;
  other.xds_enabled = false;
  other.xds_max_streams = 9;
  other.xds_max_resources_per_stream = 9;
  other.xds_ring_hash_services = "x";
  other.xds_endpoint_schemes = "tcp";
  auto c = LoadRegistryConfig(CAIRN_SOURCE_DIR "/config/registry.yaml", other);
  ASSERT_TRUE(c.ok()) << c.status();
  RegistryConfig d;
  EXPECT_EQ(c->xds_enabled, d.xds_enabled);
  EXPECT_EQ(c->xds_max_streams, d.xds_max_streams);
  EXPECT_EQ(c->xds_max_resources_per_stream, d.xds_max_resources_per_stream);
  EXPECT_EQ(c->xds_ring_hash_services, d.xds_ring_hash_services);
  EXPECT_EQ(c->xds_endpoint_schemes, d.xds_endpoint_schemes);

  auto options = XdsPartOptionsFrom(d);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->server.resources.endpoint_schemes,
            (std::vector<std::string>{"grpc", "h2c", "http", "https", "tcp", ""}));

  RegistryConfig bad;
  bad.xds_endpoint_schemes = "grpc,gprc";
  absl::Status s = ValidateRegistryConfig(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'gprc'"), absl::string_view::npos) << s;

  RegistryConfig ring;
  ring.xds_ring_hash_services = " a, b ,";
  options = XdsPartOptionsFrom(ring);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->server.resources.ring_hash_services.size(), 2u);
  EXPECT_EQ(options->server.resources.ring_hash_services.count("b"), 1u);
}

}  // namespace
}  // namespace cairn
