// Sidecars that talk to a registry serving mTLS (issue 16): each sidecar
// presents its app's certificate (`registry_tls`), the registry's built-in
// policy lets an app publish only as itself, and app-level discovery works
// end to end with nothing but those certificates.
//
//   curl --> sidecar A (app-a, outbound, discovery app) --> sidecar B (app-b, inbound) --> "b"
//                                                      \-> sidecar C claims app-b with
//                                                          app-c's certificate: refused
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "dev_certs.h"
#include "process.h"

namespace cairn::testing {
namespace {

using std::chrono::seconds;

std::string Curl(const std::string& url) {
  auto [rc, out] = RunCommand({"/usr/bin/curl", "-sS", "--max-time", "5", url}, seconds(10));
  return out;
}

std::string RegistryTls(const std::string& certs, const std::string& name) {
  return "registry_tls: { cert: " + certs + "/" + name + ".crt, key: " + certs + "/" + name +
         ".key, ca: " + certs + "/ca.crt }\n";
}

// An inbound sidecar publishing com.shop.Cart:1.0 app-level as `app`,
// presenting `cert` to the registry.
std::string Inbound(const std::string& registry, const std::string& tls, const std::string& app,
                    const std::string& backend) {
  return "workers: 1\nadmin: 127.0.0.1:0\nregistry_servers: [\"" + registry + "\"]\n" + tls +
         "app: { name: " + app + R"(, discovery: app }
listeners:
  - name: inbound
    address: 127.0.0.1:0
    publish:
      interfaces: [{ data_id: "com.shop.Cart:1.0" }]
    routes:
      - cluster: local
clusters:
  - name: local
    endpoints: [")" +
         backend + "\"]\n";
}

std::string Outbound(const std::string& registry, const std::string& tls) {
  return "workers: 1\nadmin: 127.0.0.1:0\nregistry_servers: [\"" + registry + "\"]\n" + tls +
         R"(app: { name: app-a, discovery: app, mapping_refresh_ms: 300 }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - cluster: cart
clusters:
  - name: cart
    registry: { data_id: "com.shop.Cart:1.0" }
)";
}

class SidecarRegistryTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = dir_.File("certs");
    ASSERT_EQ(MakeDevCerts(certs_, {"registry", "sidecar-app-a", "sidecar-app-b", "sidecar-app-c"}),
              "");
    registry_ = std::make_unique<RegistryProcess>(
        std::vector<std::string>{"--tls-cert", certs_ + "/registry.crt", "--tls-key",
                                 certs_ + "/registry.key", "--tls-ca", certs_ + "/ca.crt"});
    ASSERT_TRUE(registry_->Start()) << registry_->Log();
    ASSERT_TRUE(backend_b_.Start());
    ASSERT_TRUE(backend_c_.Start());
  }
  void TearDown() override { EXPECT_EQ(registry_->Stop(SIGTERM), 0) << registry_->Log(); }

  TempDir dir_;
  std::string certs_;
  std::unique_ptr<RegistryProcess> registry_;
  BackendProcess backend_b_{"b"}, backend_c_{"c"};
};

TEST_F(SidecarRegistryTlsTest, AppLevelDiscoveryWorksWithOnlyTheAppsCertificates) {
  const std::string& reg = registry_->grpc_address();
  SidecarProcess b(
      Inbound(reg, RegistryTls(certs_, "sidecar-app-b"), "app-b", backend_b_.address()));
  ASSERT_TRUE(b.Start()) << b.Log();
  SidecarProcess a(Outbound(reg, RegistryTls(certs_, "sidecar-app-a")));
  ASSERT_TRUE(a.Start()) << a.Log();
  std::string url = "http://" + a.listener("http") + "/";
  ASSERT_TRUE(Eventually([&] { return Curl(url) == "b\n"; }, seconds(20)))
      << a.Log() << b.Log() << registry_->Log();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Curl(url), "b\n");
  // App-level discovery asks which apps serve the interface: an app may ask
  // (it learns what a subscription shows), so nothing falls back.
  EXPECT_EQ(a.Log().find("cannot read the apps serving"), std::string::npos) << a.Log();
  EXPECT_EQ(a.Log().find("PERMISSION_DENIED"), std::string::npos) << a.Log();
  EXPECT_EQ(a.Stop(SIGTERM), 0) << a.Log();
  EXPECT_EQ(b.Stop(SIGTERM), 0) << b.Log();
}

TEST_F(SidecarRegistryTlsTest, SidecarClaimingAnotherAppIsRefusedByTheRegistry) {
  const std::string& reg = registry_->grpc_address();
  SidecarProcess b(
      Inbound(reg, RegistryTls(certs_, "sidecar-app-b"), "app-b", backend_b_.address()));
  ASSERT_TRUE(b.Start()) << b.Log();
  // C says it is app-b but holds app-c's certificate.
  SidecarProcess c(
      Inbound(reg, RegistryTls(certs_, "sidecar-app-c"), "app-b", backend_c_.address()));
  ASSERT_TRUE(c.Start()) << c.Log();
  ASSERT_TRUE(Eventually([&] { return c.Log().find("PERMISSION_DENIED") != std::string::npos; },
                         seconds(20)))
      << c.Log();
  SidecarProcess a(Outbound(reg, RegistryTls(certs_, "sidecar-app-a")));
  ASSERT_TRUE(a.Start()) << a.Log();
  std::string url = "http://" + a.listener("http") + "/";
  ASSERT_TRUE(Eventually([&] { return Curl(url) == "b\n"; }, seconds(20))) << a.Log();
  std::string out, expected;
  for (int i = 0; i < 20; ++i) {
    out += Curl(url);
    expected += "b\n";
  }
  EXPECT_EQ(out, expected) << "the impostor's endpoint must never be listed";
  for (auto* s : {&a, &b, &c}) EXPECT_EQ(s->Stop(SIGTERM), 0) << s->Log();
}

TEST_F(SidecarRegistryTlsTest, SidecarWithoutACertificateGetsNothingFromATlsRegistry) {
  const std::string& reg = registry_->grpc_address();
  SidecarProcess b(
      Inbound(reg, RegistryTls(certs_, "sidecar-app-b"), "app-b", backend_b_.address()));
  ASSERT_TRUE(b.Start()) << b.Log();
  // Plaintext to a TLS port: the link never connects, so the cluster stays empty.
  SidecarProcess a(Outbound(reg, ""));
  ASSERT_TRUE(a.Start()) << a.Log();
  std::string url = "http://" + a.listener("http") + "/";
  for (int i = 0; i < 10; ++i) {
    EXPECT_NE(Curl(url), "b\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(a.Stop(SIGTERM), 0) << a.Log();
  EXPECT_EQ(b.Stop(SIGTERM), 0) << b.Log();
}

}  // namespace
}  // namespace cairn::testing
