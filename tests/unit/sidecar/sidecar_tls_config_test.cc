// Sidecar TLS (issue 16): the `tls` keys of listeners and clusters, route
// allow lists (table tests of bad input), and the identity checks the
// connections apply (allow lists, upstream peer policy).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dev_certs.h"

#include "sidecar/config/sidecar_config.h"
#include "sidecar/network/tls_context.h"

namespace cairn::sidecar {
namespace {

std::string Config(const std::string& listener_extra, const std::string& route_extra = "",
                   const std::string& cluster_extra = "", const std::string& protocol = "auto") {
  return R"(
listeners:
  - name: in
    address: 127.0.0.1:15006
    protocol: )" +
         protocol + "\n" + listener_extra + R"(
    routes:
      - cluster: up
)" + route_extra +
         R"(
clusters:
  - name: up
    endpoints: ["127.0.0.1:8080"]
)" + cluster_extra;
}

TEST(SidecarTlsConfigTest, KeysAreRead) {
  auto c = ParseSidecarConfig(
      Config("    tls: { cert: /c.crt, key: /c.key, ca: /ca.crt, require_client_cert: true }",
             "        allow: [app-a, \"spiffe://cairn.local/app/app-b\"]",
             "    tls: { cert: /a.crt, key: /a.key, ca: /ca.crt, verify_app: true, expect_app: b, "
             "expect_identity: \"spiffe://cairn.local/app/b\" }\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->listeners[0].tls.has_value());
  EXPECT_EQ(c->listeners[0].tls->cert, "/c.crt");
  EXPECT_TRUE(c->listeners[0].tls->require_client_cert);
  EXPECT_EQ(c->listeners[0].routes[0].allow,
            (std::vector<std::string>{"app-a", "spiffe://cairn.local/app/app-b"}));
  ASSERT_TRUE(c->clusters[0].tls.has_value());
  EXPECT_TRUE(c->clusters[0].tls->verify_app);
  EXPECT_EQ(c->clusters[0].tls->expect_app, "b");
  EXPECT_EQ(c->clusters[0].tls->expect_identity, "spiffe://cairn.local/app/b");
  // /config shows them, and the dump parses back to the same values.
  std::string dumped = DumpSidecarConfig(*c);
  auto again = ParseSidecarConfig(dumped);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << dumped;
  ASSERT_TRUE(again->listeners[0].tls.has_value()) << dumped;
  EXPECT_EQ(again->listeners[0].tls->ca, "/ca.crt");
  EXPECT_TRUE(again->listeners[0].tls->require_client_cert);
  EXPECT_EQ(again->listeners[0].routes[0].allow, c->listeners[0].routes[0].allow);
  ASSERT_TRUE(again->clusters[0].tls.has_value()) << dumped;
  EXPECT_EQ(again->clusters[0].tls->expect_identity, "spiffe://cairn.local/app/b");
  EXPECT_TRUE(again->clusters[0].tls->verify_app);
  // Without the keys: plaintext, no allow list.
  auto plain = ParseSidecarConfig(Config(""));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->listeners[0].tls.has_value());
  EXPECT_FALSE(plain->clusters[0].tls.has_value());
  EXPECT_TRUE(plain->listeners[0].routes[0].allow.empty());
}

TEST(SidecarTlsConfigTest, BadInputIsRefusedWithTheKeyPath) {
  struct Case {
    std::string yaml;
    std::string error;  // a substring of the message
  };
  const std::string ok_cluster_tls = "    tls: { ca: /ca.crt }\n";
  std::vector<Case> cases = {
      {Config("    tls: { key: /c.key }"), "listeners[0].tls: cert and key go together"},
      {Config("    tls: { ca: /ca.crt }"), "listeners[0].tls.cert: required"},
      {Config("    tls: { cert: /c.crt, key: /c.key, require_client_cert: true }"),
       "listeners[0].tls.ca: required"},
      {Config("    tls: { cert: /c.crt, key: /c.key, verify_app: true }"),
       "listeners[0].tls.verify_app: unknown key"},
      {Config("    tls: { cert: /c.crt, key: /c.key, sni: x }"),
       "listeners[0].tls.sni: unknown key"},
      {Config("    tls: /c.crt"), "listeners[0].tls: expected a mapping"},
      {Config("    tls: { cert: /c.crt, key: /c.key, require_client_cert: maybe, ca: /ca }"),
       "listeners[0].tls.require_client_cert: bad value"},
      {Config("", "        allow: [app-a]"), "needs tls with ca on the listener"},
      {Config("    tls: { cert: /c.crt, key: /c.key }", "        allow: [app-a]"),
       "needs tls with ca on the listener"},
      {Config("", "        allow: app-a"), "listeners[0].routes[0].allow: bad value"},
      {Config("", "", "    tls: { cert: /a.crt, key: /a.key }\n"), "clusters[0].tls.ca: required"},
      {Config("", "", "    tls: { ca: /ca.crt, cert: /a.crt }\n"),
       "clusters[0].tls: cert and key go together"},
      {Config("", "", "    tls: { ca: /ca.crt, require_client_cert: true }\n"),
       "clusters[0].tls.require_client_cert: unknown key"},
      {Config("", "", "    tls: { ca: /ca.crt, expect_identity: app-b }\n"),
       "clusters[0].tls.expect_identity: a spiffe:// id"},
      {Config("", "", ok_cluster_tls + "    health_check: { type: http }\n"),
       "use tcp checks with tls"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseSidecarConfig(c.yaml);
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_NE(parsed.status().message().find(c.error), std::string::npos)
        << "got: " << parsed.status().message() << "\nwanted: " << c.error << "\n"
        << c.yaml;
  }
}

Identity Named(const std::string& spiffe_id, bool authenticated = true) {
  return IdentityFromCertificateNames({spiffe_id}, "", authenticated);
}

TEST(SidecarTlsConfigTest, AllowListsMatchSpiffeIdsOrAppNames) {
  Identity a = Named("spiffe://cairn.local/app/app-a");
  ASSERT_EQ(a.app, "app-a");
  EXPECT_TRUE(AllowListAdmits({"app-a"}, &a));
  EXPECT_TRUE(AllowListAdmits({"x", "spiffe://cairn.local/app/app-a"}, &a));
  EXPECT_FALSE(AllowListAdmits({"app-b"}, &a));
  EXPECT_FALSE(AllowListAdmits({"spiffe://other.domain/app/app-a"}, &a));
  EXPECT_FALSE(AllowListAdmits({"spiffe://cairn.local/app/app-a/x"}, &a));
  EXPECT_FALSE(AllowListAdmits({}, &a));
  // No certificate, an unverified one, or no TLS at all: never admitted.
  Identity unverified = Named("spiffe://cairn.local/app/app-a", false);
  EXPECT_FALSE(AllowListAdmits({"app-a"}, &unverified));
  Identity anonymous;
  EXPECT_FALSE(AllowListAdmits({"app-a", ""}, &anonymous));
  EXPECT_FALSE(AllowListAdmits({"app-a"}, nullptr));
  // An admin identity has no app: an empty entry does not match it.
  Identity admin = Named("spiffe://cairn.local/admin/cairnctl");
  EXPECT_FALSE(AllowListAdmits({""}, &admin));
  EXPECT_TRUE(AllowListAdmits({"spiffe://cairn.local/admin/cairnctl"}, &admin));
}

TlsPeerPolicy Policy(const std::string& app, const std::string& identity) {
  TlsPeerPolicy policy;
  policy.expected_app = app;
  policy.expected_identity = identity;
  return policy;
}

TEST(SidecarTlsConfigTest, PeerPolicyChecksAppAndIdentity) {
  Identity b = Named("spiffe://cairn.local/app/app-b");
  EXPECT_EQ(CheckPeerPolicy(b, {}), "");
  EXPECT_EQ(CheckPeerPolicy(b, Policy("app-b", "")), "");
  EXPECT_NE(CheckPeerPolicy(b, Policy("app-c", "")).find("expected app 'app-c'"),
            std::string::npos);
  EXPECT_EQ(CheckPeerPolicy(b, Policy("", "spiffe://cairn.local/app/app-b")), "");
  EXPECT_NE(CheckPeerPolicy(b, Policy("", "spiffe://other/app/app-b")), "");
  Identity cn_only = IdentityFromCertificateNames({}, "app-b", true);
  EXPECT_EQ(CheckPeerPolicy(cn_only, Policy("app-b", "")), "");
  EXPECT_NE(CheckPeerPolicy(cn_only, Policy("", "spiffe://cairn.local/app/app-b")), "");
  Identity unverified = Named("spiffe://cairn.local/app/app-b", false);
  EXPECT_NE(CheckPeerPolicy(unverified, Policy("app-b", "")), "");
}

TEST(SidecarTlsConfigTest, ContextErrorsNameTheFile) {
  auto missing = TlsContextSource::Create(TlsRole::kServer,
                                          {"/nonexistent/c.crt", "/nonexistent/c.key", "", false},
                                          {"h2", "http/1.1"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/c.crt"), std::string::npos)
      << missing.status();
  auto no_ca = TlsContextSource::Create(TlsRole::kClient, {}, {});
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.status().message().find("ca"), std::string::npos) << no_ca.status();
  auto bad_alpn = TlsContextSource::Create(TlsRole::kClient, {"", "", "/x", false}, {""});
  EXPECT_FALSE(bad_alpn.ok());
}

// Reloads: a changed pair is picked up; a broken one (a half-written file, a
// key of another certificate) keeps the previous context until fixed.
TEST(SidecarTlsConfigTest, ReloadTakesNewFilesAndKeepsTheOldOnesWhenBroken) {
  testing::TempDir dir;
  std::string certs = dir.File("certs");
  ASSERT_EQ(testing::MakeDevCerts(certs, {"app-a", "app-b"}), "");
  TlsFileSet files{certs + "/app-a.crt", certs + "/app-a.key", certs + "/ca.crt", true};
  auto source = TlsContextSource::Create(TlsRole::kServer, files, {"h2"});
  ASSERT_TRUE(source.ok()) << source.status();
  auto first = (*source)->Current();
  auto unchanged = (*source)->ReloadIfChanged();
  ASSERT_TRUE(unchanged.ok());
  EXPECT_FALSE(*unchanged);
  EXPECT_EQ((*source)->Current(), first);
  // The certificate of app-b with the key of app-a: refused, old one kept.
  std::filesystem::copy_file(certs + "/app-b.crt", certs + "/app-a.crt",
                             std::filesystem::copy_options::overwrite_existing);
  auto mismatched = (*source)->ReloadIfChanged();
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find("mismatch"), std::string::npos)
      << mismatched.status();
  EXPECT_EQ((*source)->Current(), first);
  // A half-written certificate: refused too.
  { std::ofstream(certs + "/app-a.crt", std::ios::trunc) << "-----BEGIN CERTIFICATE-----\nMIIB"; }
  EXPECT_FALSE((*source)->ReloadIfChanged().ok());
  EXPECT_EQ((*source)->Current(), first);
  // The matching key arrives: the next poll takes the new pair.
  std::filesystem::copy_file(certs + "/app-b.crt", certs + "/app-a.crt",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs + "/app-b.key", certs + "/app-a.key",
                             std::filesystem::copy_options::overwrite_existing);
  auto fixed = (*source)->ReloadIfChanged();
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_TRUE(*fixed);
  EXPECT_NE((*source)->Current(), first);
  EXPECT_EQ((*source)->reloads(), 1u);
  // SIGHUP's reload works without a change, too.
  auto second = (*source)->Current();
  EXPECT_TRUE((*source)->Reload().ok());
  EXPECT_NE((*source)->Current(), second);
}

}  // namespace
}  // namespace cairn::sidecar
