// Listener limits (issue 16) in the sidecar config, and the admin token's
// parsing: defaults, values, and table tests of bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include "sidecar/config/sidecar_config.h"
#include "sidecar/server/admin_auth.h"

namespace cairn::sidecar {
namespace {

std::string Config(const std::string& listener_keys, const std::string& top = "") {
  return top + R"(
listeners:
  - name: in
    address: 127.0.0.1:15006
)" + listener_keys +
         R"(
    routes:
      - direct_response: { status: 200 }
)";
}

TEST(SidecarLimitsConfigTest, DefaultsAreWhatTheHeaderSays) {
  auto c = ParseSidecarConfig(Config(""));
  ASSERT_TRUE(c.ok()) << c.status();
  const ListenerConfig& l = c->listeners[0];
  EXPECT_EQ(l.request_header_timeout_ms, 10000u);
  EXPECT_EQ(l.idle_timeout_ms, 300000u);
  EXPECT_EQ(l.max_connections, 10000u);
  EXPECT_EQ(l.http2_max_reset_burst, 1000u);
  EXPECT_EQ(l.http2_resets_per_s, 33u);
  EXPECT_EQ(l.http2_max_continuations, 8u);
  EXPECT_EQ(c->admin_token_file, "");
}

TEST(SidecarLimitsConfigTest, KeysAreReadAndDumped) {
  auto c = ParseSidecarConfig(Config(R"(    request_header_timeout_ms: 1500
    idle_timeout_ms: 0
    max_connections: 7
    http2_max_reset_burst: 100
    http2_resets_per_s: 5
    http2_max_continuations: 3
)",
                                     "admin_token_file: /run/cairn/token\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  const ListenerConfig& l = c->listeners[0];
  EXPECT_EQ(l.request_header_timeout_ms, 1500u);
  EXPECT_EQ(l.idle_timeout_ms, 0u);
  EXPECT_EQ(l.max_connections, 7u);
  EXPECT_EQ(l.http2_max_reset_burst, 100u);
  EXPECT_EQ(l.http2_resets_per_s, 5u);
  EXPECT_EQ(l.http2_max_continuations, 3u);
  EXPECT_EQ(c->admin_token_file, "/run/cairn/token");
  std::string dump = DumpSidecarConfig(*c);
  for (const char* expected :
       {"request_header_timeout_ms: 1500", "idle_timeout_ms: 0", "max_connections: 7",
        "http2_max_reset_burst: 100", "http2_resets_per_s: 5", "http2_max_continuations: 3",
        "admin_token_file: /run/cairn/token"}) {
    EXPECT_NE(dump.find(expected), std::string::npos) << expected << "\n" << dump;
  }
}

TEST(SidecarLimitsConfigTest, BadValuesNameTheKey) {
  struct Case {
    std::string keys;
    std::string error;
  };
  for (const Case& bad : std::vector<Case>{
           {"    request_header_timeout_ms: -1\n", "listeners[0].request_header_timeout_ms"},
           {"    request_header_timeout_ms: 86400001\n", "listeners[0].request_header_timeout_ms"},
           {"    idle_timeout_ms: 99999999999\n", "listeners[0].idle_timeout_ms"},
           {"    idle_timeout_ms: 86400001\n", "listeners[0].idle_timeout_ms"},
           {"    max_connections: lots\n", "listeners[0].max_connections"},
           {"    http2_max_reset_burst: [1]\n", "listeners[0].http2_max_reset_burst"},
           {"    http2_resets_per_s: 1.5\n", "listeners[0].http2_resets_per_s"},
           {"    header_timeout_ms: 10\n", "listeners[0].header_timeout_ms: unknown key"},
       }) {
    auto c = ParseSidecarConfig(Config(bad.keys));
    ASSERT_FALSE(c.ok()) << bad.keys;
    EXPECT_NE(c.status().message().find(bad.error), std::string::npos)
        << bad.keys << " -> " << c.status();
  }
}

TEST(AdminTokenTest, LoadTrimsAndRefusesUselessTokens) {
  const std::string path = ::testing::TempDir() + "/cairn_admin_token_test";
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::trunc) << text; };
  write("abc123\n");
  auto token = LoadAdminToken(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "abc123");
  write("  \tT0k3n-_.~+/=  \r\n\n");
  token = LoadAdminToken(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "T0k3n-_.~+/=");
  for (const std::string& bad :
       {std::string(""), std::string(" \n\t\r\n"), std::string("two words"),
        std::string("tab\tinside"), std::string("nul\0byte", 8), std::string("del\x7f")}) {
    write(bad);
    token = LoadAdminToken(path);
    EXPECT_FALSE(token.ok()) << "'" << bad << "'";
    if (!token.ok()) {
      EXPECT_NE(token.status().message().find(path), std::string::npos) << token.status();
    }
  }
  EXPECT_FALSE(LoadAdminToken(path + ".missing").ok());
  std::remove(path.c_str());
}

TEST(AdminTokenTest, BearerHeaderTable) {
  const std::string token = "s3cret";
  struct Case {
    std::optional<std::string> header;
    bool matches;
  };
  for (const Case& c : std::vector<Case>{
           {"Bearer s3cret", true},
           {"bearer s3cret", true},
           {"BEARER s3cret", true},
           {"Bearer   s3cret  ", true},
           {std::nullopt, false},
           {"", false},
           {"Bearer", false},
           {"Bearer ", false},
           {"Bearer s3cre", false},
           {"Bearer s3cret2", false},
           {"Bearer S3CRET", false},
           {"Basic s3cret", false},
           {"s3cret", false},
           {"Bearers3cret", false},
           {"Bearer s3cret s3cret", false},
           {std::string("Bearer s3cret\0", 14), false},
       }) {
    std::optional<std::string_view> header;
    if (c.header) header = *c.header;
    EXPECT_EQ(BearerTokenMatches(header, token), c.matches) << (c.header ? *c.header : "(none)");
  }
  // No token configured matches nothing, not even an empty bearer.
  EXPECT_FALSE(BearerTokenMatches(std::string_view("Bearer "), ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace cairn::sidecar
