// mTLS between sidecars (issue 16), with real processes and real
// certificates from scripts/dev-certs:
//
//   curl / h2load --http--> sidecar A (app-a) --mTLS, h2--> sidecar B (app-b) --> backend "b"
//                                        \--mTLS--> sidecar C (app-c, an impostor) --> backend "c"
//
// A's clusters verify the upstream's certificate names app-b; B's routes
// check the caller's identity against allow lists.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bolt_test_client.h"
#include "dev_certs.h"
#include "process.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Curl(std::vector<std::string> args, int* code = nullptr) {
  args.insert(args.begin(), {"/usr/bin/curl", "-sS", "--max-time", "10"});
  auto [rc, out] = RunCommand(args, seconds(20));
  if (code != nullptr) *code = rc;
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An inbound sidecar: TLS listener with client certificates required,
// forwarding to `backend`. /status is only for app-c; the rest only for
// spiffe://cairn.local/app/app-a.
std::string InboundConfig(const std::string& certs, const std::string& name,
                          const std::string& backend, const std::string& access_log) {
  return "workers: 2\nadmin: 127.0.0.1:0\naccess_log: " + access_log + R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    tls:
      cert: )" +
         certs + "/sidecar-" + name + ".crt\n      key: " + certs + "/sidecar-" + name +
         ".key\n      ca: " + certs + R"(/ca.crt
      require_client_cert: true
    routes:
      - match: { prefix: /status }
        allow: [app-c]
        cluster: local
      - match: { prefix: / }
        allow: ["spiffe://cairn.local/app/app-a"]
        cluster: local
clusters:
  - name: local
    endpoints: [")" +
         backend + "\"]\n";
}

// The outbound sidecar of app-a. Cluster `b`: B over mTLS + h2, must be
// app-b. `impostor`: only C, also expected to be app-b. `mixed`: C and B,
// with retries: every request must end at B.
std::string OutboundConfig(const std::string& certs, const std::string& b, const std::string& c,
                           uint32_t idle_timeout_ms = 60000) {
  std::string tls = "    tls: { cert: " + certs + "/sidecar-app-a.crt, key: " + certs +
                    "/sidecar-app-a.key, ca: " + certs +
                    "/ca.crt, verify_app: true, expect_app: app-b }\n";
  return R"(workers: 2
admin: 127.0.0.1:0
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - match: { prefix: /impostor }
        cluster: impostor
      - match: { prefix: /, headers: [{ name: x-cluster, value: mixed }] }
        cluster: mixed
        retry: { attempts: 2 }
      - match: { prefix: / }
        cluster: b
clusters:
  - name: b
    protocol: http2
    idle_timeout_ms: )" +
         std::to_string(idle_timeout_ms) + "\n    endpoints: [\"" + b + "\"]\n" + tls +
         "  - name: impostor\n    endpoints: [\"" + c + "\"]\n" + tls +
         "  - name: mixed\n    outlier: { consecutive_failures: 0 }\n    endpoints: [\"" + c +
         "\", \"" + b + "\"]\n" + tls;
}

class SidecarTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = dir_.File("certs");
    ASSERT_EQ(MakeDevCerts(certs_, {"sidecar-app-a", "sidecar-app-b", "sidecar-app-c", "app-c"}),
              "");
    backend_b_ = std::make_unique<BackendProcess>("b");
    backend_c_ = std::make_unique<BackendProcess>("c");
    ASSERT_TRUE(backend_b_->Start());
    ASSERT_TRUE(backend_c_->Start());
    b_ = std::make_unique<SidecarProcess>(
        InboundConfig(certs_, "app-b", backend_b_->address(), dir_.File("b-access.log")));
    ASSERT_TRUE(b_->Start()) << b_->Log();
    c_ = std::make_unique<SidecarProcess>(
        InboundConfig(certs_, "app-c", backend_c_->address(), dir_.File("c-access.log")));
    ASSERT_TRUE(c_->Start()) << c_->Log();
  }

  void StartOutbound(uint32_t idle_timeout_ms = 60000) {
    a_ = std::make_unique<SidecarProcess>(
        OutboundConfig(certs_, b_->listener("inbound"), c_->listener("inbound"), idle_timeout_ms));
    ASSERT_TRUE(a_->Start()) << a_->Log();
  }

  void TearDown() override {
    for (auto* s : {a_.get(), b_.get(), c_.get()}) {
      if (s != nullptr && s->process() != nullptr && s->process()->Running()) {
        EXPECT_EQ(s->Stop(SIGTERM), 0) << s->Log();
      }
    }
  }

  std::string Url(const std::string& path) { return "http://" + a_->listener("http") + path; }
  std::string BUrl(const std::string& path) { return "https://" + b_->listener("inbound") + path; }

  // A counter of A's /metrics (0 when absent).
  double Metric(const std::string& series) {
    std::string text = Curl({"http://" + a_->admin() + "/metrics"});
    size_t at = text.find(series + " ");
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size() + 1));
  }

  TempDir dir_;
  std::string certs_;
  std::unique_ptr<BackendProcess> backend_b_, backend_c_;
  std::unique_ptr<SidecarProcess> a_, b_, c_;
};

TEST_F(SidecarTlsTest, SidecarToSidecarCallOverMtls) {
  StartOutbound();
  EXPECT_EQ(Curl({Url("/")}), "b\n");
  std::string echoed = Curl({"-X", "POST", "--data-binary", "over tls", Url("/echo")});
  EXPECT_EQ(echoed, "over tls");
  // B saw the caller's identity (its access log names it).
  ASSERT_TRUE(Eventually(
      [&] {
        return ReadFile(dir_.File("b-access.log")).find("peer=spiffe://cairn.local/app/app-a") !=
               std::string::npos;
      },
      seconds(5)))
      << ReadFile(dir_.File("b-access.log"));
  // ALPN gave h2 to a client that offers it (curl straight to B, as app-a).
  std::string direct =
      Curl({"-i", "--cacert", certs_ + "/ca.crt", "--cert", certs_ + "/sidecar-app-a.crt", "--key",
            certs_ + "/sidecar-app-a.key", BUrl("/")});
  EXPECT_EQ(direct.rfind("HTTP/2 200", 0), 0u) << direct;
  // And http/1.1 to one that asks for it.
  std::string h1 =
      Curl({"-i", "--http1.1", "--cacert", certs_ + "/ca.crt", "--cert",
            certs_ + "/sidecar-app-a.crt", "--key", certs_ + "/sidecar-app-a.key", BUrl("/")});
  EXPECT_EQ(h1.rfind("HTTP/1.1 200", 0), 0u) << h1;
}

TEST_F(SidecarTlsTest, ProviderWhoseCertificateNamesAnotherAppIsRefused) {
  StartOutbound();
  // Only the impostor (its certificate says app-c): 503, nothing reaches it.
  std::string refused = Curl({"-i", Url("/impostor")});
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("expected app 'app-b'"), std::string::npos) << refused;
  EXPECT_EQ(ReadFile(dir_.File("c-access.log")), "");
  EXPECT_GE(Metric("cairn_sidecar_upstream_tls_failures_total{cluster=\"impostor\"}"), 1);
  // Impostor and the real provider in one cluster: the refused connection is
  // a connect failure, the retry goes to B; no request ever ends at C.
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(Curl({"-H", "x-cluster: mixed", Url("/")}), "b\n") << "request " << i;
  EXPECT_EQ(ReadFile(dir_.File("c-access.log")), "");
  EXPECT_GE(Metric("cairn_sidecar_upstream_tls_failures_total{cluster=\"mixed\"}"), 1);
}

TEST_F(SidecarTlsTest, CallerNotOnTheRoutesAllowListGets403) {
  StartOutbound();
  // /status allows app-c only: A (app-a) is refused by B.
  std::string refused = Curl({"-i", Url("/status?code=200")});
  EXPECT_EQ(refused.rfind("HTTP/1.1 403", 0), 0u) << refused;
  EXPECT_NE(refused.find("spiffe://cairn.local/app/app-a is not allowed"), std::string::npos)
      << refused;
  // app-c may call it; app-c may not call the rest.
  std::vector<std::string> as_c = {
      "--cacert", certs_ + "/ca.crt",    "--cert", certs_ + "/app-c.crt",
      "--key",    certs_ + "/app-c.key", "-w",     " %{http_code}"};
  auto with = [](std::vector<std::string> v, const std::string& url) {
    v.push_back(url);
    return v;
  };
  EXPECT_EQ(Curl(with(as_c, BUrl("/status?code=200"))), "b 200\n 200");
  std::string other = Curl(with(as_c, BUrl("/")));
  EXPECT_NE(other.find(" 403"), std::string::npos) << other;
}

TEST_F(SidecarTlsTest, ClientWithoutAValidCertificateCannotHandshake) {
  StartOutbound();
  int rc = 0;
  // No client certificate.
  std::string out = Curl({"--cacert", certs_ + "/ca.crt", BUrl("/")}, &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.find("b\n"), std::string::npos) << out;
  // A certificate for the right name from another CA.
  std::string other = dir_.File("other-ca");
  ASSERT_EQ(MakeDevCerts(other, {"sidecar-app-a"}), "");
  out = Curl({"--cacert", certs_ + "/ca.crt", "--cert", other + "/sidecar-app-a.crt", "--key",
              other + "/sidecar-app-a.key", BUrl("/")},
             &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.find("b\n"), std::string::npos) << out;
  // Plaintext to the TLS port.
  out = Curl({"http://" + b_->listener("inbound") + "/"}, &rc);
  EXPECT_NE(rc, 0) << out;
  // None of it reached the backend, and B keeps serving.
  EXPECT_EQ(ReadFile(dir_.File("b-access.log")), "");
  EXPECT_EQ(Curl({Url("/")}), "b\n");
}

// Both sides' pairs are replaced (same CA, new keys) while h2load keeps
// sending through A -> B; A's upstream connections idle out between bursts,
// so new handshakes happen on both sides after the rotation.
TEST_F(SidecarTlsTest, CertificatesRotatedUnderTrafficWithoutFailedRequests) {
  StartOutbound(/*idle_timeout_ms=*/300);
  ASSERT_EQ(Curl({Url("/")}), "b\n");
  auto serial = [&] {
    auto [rc, out] =
        RunCommand({"/bin/sh", "-c",
                    "openssl s_client -connect " + b_->listener("inbound") + " -CAfile " + certs_ +
                        "/ca.crt -cert " + certs_ + "/sidecar-app-a.crt -key " + certs_ +
                        "/sidecar-app-a.key </dev/null 2>/dev/null | openssl x509 "
                        "-noout -serial"},
                   seconds(10));
    return rc == 0 ? out : std::string();
  };
  std::string serial_before = serial();
  ASSERT_NE(serial_before, "");

  std::atomic<bool> stop{false};
  std::atomic<int> bursts{0};
  std::string failures;
  long total = 0, ok = 0;
  std::thread traffic([&] {
    // Bounded: at most 60 bursts of 300 requests, about 15 s.
    auto deadline = std::chrono::steady_clock::now() + seconds(15);
    for (int i = 0; i < 60 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      auto [rc, out] =
          RunCommand({"/usr/bin/h2load", "--h1", "-n", "300", "-c", "4", Url("/")}, seconds(20));
      std::smatch m;
      if (std::regex_search(out, m, std::regex(R"(requests: (\d+) total.* (\d+) succeeded)"))) {
        total += std::stol(m[1]);
        ok += std::stol(m[2]);
      }
      std::smatch s;
      if (!std::regex_search(out, s, std::regex(R"(status codes: (\d+) 2xx)")) ||
          std::stol(s[1]) != 300) {
        failures += out;
      }
      ++bursts;
      std::this_thread::sleep_for(milliseconds(1400));  // > idle timeout + the 1 s idle sweep
    }
  });
  ASSERT_TRUE(Eventually([&] { return bursts >= 2; }, seconds(20)));
  // New pairs from the same CA, swapped in by rename.
  std::string fresh = dir_.File("fresh");
  std::filesystem::create_directories(fresh);
  std::filesystem::copy_file(certs_ + "/ca.crt", fresh + "/ca.crt");
  std::filesystem::copy_file(certs_ + "/ca.key", fresh + "/ca.key");
  ASSERT_EQ(MakeDevCerts(fresh, {"sidecar-app-a", "sidecar-app-b"}), "");
  for (std::string name : {"sidecar-app-a", "sidecar-app-b"}) {
    for (std::string ext : {".key", ".crt"}) {
      std::filesystem::rename(fresh + "/" + name + ext, certs_ + "/" + name + ext);
    }
  }
  EXPECT_TRUE(a_->process()->WaitForOutput("TLS certificate reloaded", seconds(5))) << a_->Log();
  EXPECT_TRUE(b_->process()->WaitForOutput("TLS certificate reloaded", seconds(5))) << b_->Log();
  int after = bursts + 3;
  Eventually([&] { return bursts >= after; }, seconds(15));
  stop = true;
  traffic.join();
  EXPECT_GE(bursts.load(), after);
  EXPECT_GT(total, 0);
  EXPECT_EQ(ok, total);
  EXPECT_EQ(failures, "");
  // B serves the new certificate to new handshakes, and A's new pair is
  // accepted by B (the last bursts made new upstream connections).
  std::string serial_after = serial();
  EXPECT_NE(serial_after, "");
  EXPECT_NE(serial_after, serial_before);
  EXPECT_EQ(Curl({Url("/")}), "b\n");
}

// SIGHUP reads the files again at once (no wait for the mtime poll).
TEST_F(SidecarTlsTest, SighupReloadsTheCertificates) {
  StartOutbound();
  b_->process()->Signal(SIGHUP);
  EXPECT_TRUE(b_->process()->WaitForOutput("received SIGHUP", seconds(5))) << b_->Log();
  EXPECT_TRUE(b_->process()->WaitForOutput("TLS certificate reloaded", seconds(5))) << b_->Log();
  EXPECT_EQ(Curl({Url("/")}), "b\n");
}

// verify_app with registry endpoints: the app comes from the registry's
// app-level record. An impostor registers as app-b but holds app-c's
// certificate: the outbound side refuses it and every request ends at the
// real app-b.
TEST(SidecarTlsRegistryTest, ImpostorRegisteredUnderAnotherAppsNameIsRefused) {
  TempDir dir;
  std::string certs = dir.File("certs");
  ASSERT_EQ(MakeDevCerts(certs, {"sidecar-app-a", "sidecar-app-b", "sidecar-app-c"}), "");
  RegistryProcess registry;
  ASSERT_TRUE(registry.Start()) << registry.Log();
  BackendProcess backend_b("b"), backend_c("c");
  ASSERT_TRUE(backend_b.Start());
  ASSERT_TRUE(backend_c.Start());
  auto inbound = [&](const std::string& cert, const BackendProcess& backend) {
    return "workers: 1\nadmin: 127.0.0.1:0\nregistry_servers: [\"" + registry.grpc_address() +
           R"("]
app: { name: app-b, discovery: app }
listeners:
  - name: inbound
    address: 127.0.0.1:0
    tls: { cert: )" +
           certs + "/" + cert + ".crt, key: " + certs + "/" + cert + ".key, ca: " + certs +
           R"(/ca.crt, require_client_cert: true }
    publish:
      interfaces: [{ data_id: "com.shop.Cart:1.0" }]
    routes:
      - cluster: local
clusters:
  - name: local
    endpoints: [")" +
           backend.address() + "\"]\n";
  };
  SidecarProcess b(inbound("sidecar-app-b", backend_b));
  ASSERT_TRUE(b.Start()) << b.Log();
  SidecarProcess c(inbound("sidecar-app-c", backend_c));
  ASSERT_TRUE(c.Start()) << c.Log();
  SidecarProcess a("workers: 1\nadmin: 127.0.0.1:0\nregistry_servers: [\"" +
                   registry.grpc_address() + R"("]
app: { name: app-a, discovery: app, mapping_refresh_ms: 300 }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - cluster: cart
        retry: { attempts: 2 }
clusters:
  - name: cart
    registry: { data_id: "com.shop.Cart:1.0" }
    outlier: { consecutive_failures: 0 }
    tls: { cert: )" +
                   certs + "/sidecar-app-a.crt, key: " + certs +
                   "/sidecar-app-a.key, ca: " + certs + "/ca.crt, verify_app: true }\n");
  ASSERT_TRUE(a.Start()) << a.Log();
  std::string url = "http://" + a.listener("http") + "/";
  // Both instances are known once the impostor has been refused once.
  ASSERT_TRUE(Eventually(
      [&] {
        Curl({url});
        return a.Log().find("expected app 'app-b'") != std::string::npos;
      },
      seconds(20)))
      << a.Log();
  std::string out, expected;
  for (int i = 0; i < 20; ++i) {
    out += Curl({url});
    expected += "b\n";
  }
  EXPECT_EQ(out, expected) << a.Log();
  EXPECT_NE(a.Log().find("peer certificate names spiffe://cairn.local/app/app-c"),
            std::string::npos)
      << a.Log();
  for (auto* s : {&a, &b, &c}) EXPECT_EQ(s->Stop(SIGTERM), 0) << s->Log();
}

// Bolt over mTLS: a Bolt client -> sidecar A (bolt listener) -> mTLS ->
// sidecar B (bolt listener with TLS) -> Bolt provider; and a B that is the
// wrong app is refused (the call fails, nothing reaches its provider).
TEST(SidecarTlsBoltTest, BoltCallsOverMtls) {
  TempDir dir;
  std::string certs = dir.File("certs");
  ASSERT_EQ(MakeDevCerts(certs, {"sidecar-app-a", "sidecar-app-b"}), "");
  BackendProcess provider("p", "cairn_test_bolt_backend");
  ASSERT_TRUE(provider.Start());
  SidecarProcess b(
      "workers: 1\nadmin: 127.0.0.1:0\nlisteners:\n  - name: bolt\n"
      "    address: 127.0.0.1:0\n    protocol: bolt\n    tls: { cert: " +
      certs + "/sidecar-app-b.crt, key: " + certs + "/sidecar-app-b.key, ca: " + certs +
      R"(/ca.crt, require_client_cert: true }
    bolt_routes:
      - cluster: local
clusters:
  - name: local
    protocol: bolt
    endpoints: [")" +
      provider.address() + "\"]\n");
  ASSERT_TRUE(b.Start()) << b.Log();
  auto outbound = [&](const std::string& app) {
    return "workers: 1\nadmin: 127.0.0.1:0\nlisteners:\n  - name: bolt\n"
           "    address: 127.0.0.1:0\n    protocol: bolt\n    bolt_routes:\n"
           "      - cluster: b\n        retry: { attempts: 0 }\nclusters:\n  - name: b\n"
           "    protocol: bolt\n    endpoints: [\"" +
           b.listener("bolt") + "\"]\n    tls: { cert: " + certs +
           "/sidecar-app-a.crt, key: " + certs + "/sidecar-app-a.key, ca: " + certs +
           "/ca.crt, verify_app: true, expect_app: " + app + " }\n";
  };
  SidecarProcess a(outbound("app-b"));
  ASSERT_TRUE(a.Start()) << a.Log();
  BoltClient client;
  ASSERT_TRUE(client.Connect(a.listener("bolt")));
  for (uint32_t id = 1; id <= 5; ++id) {
    BoltCall call;
    call.id = id;
    ASSERT_TRUE(client.Call(call));
    auto reply = client.Read(seconds(10));
    ASSERT_TRUE(reply.has_value()) << a.Log() << b.Log();
    EXPECT_EQ(reply->request_id, id);
    EXPECT_EQ(reply->status, BoltStatus::kSuccess) << a.Log();
    EXPECT_EQ(reply->content, "hello");
  }
  // The same B expected to be app-c: refused, the call gets an error.
  SidecarProcess wrong(outbound("app-c"));
  ASSERT_TRUE(wrong.Start()) << wrong.Log();
  BoltClient refused;
  ASSERT_TRUE(refused.Connect(wrong.listener("bolt")));
  BoltCall call;
  call.id = 9;
  ASSERT_TRUE(refused.Call(call));
  auto reply = refused.Read(seconds(10));
  ASSERT_TRUE(reply.has_value()) << wrong.Log();
  EXPECT_NE(reply->status, BoltStatus::kSuccess);
  EXPECT_NE(wrong.Log().find("expected app 'app-c'"), std::string::npos) << wrong.Log();
  for (auto* s : {&a, &wrong, &b}) EXPECT_EQ(s->Stop(SIGTERM), 0) << s->Log();
}

}  // namespace
}  // namespace cairn::testing
