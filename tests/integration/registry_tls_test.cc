// The standalone registry over TLS as users run it: a real `cairn registry`
// with certificates from scripts/dev-certs, the C++ RegistryClient and
// cairnctl. Also table tests of the `tls:` config keys (bad input).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "dev_certs.h"
#include "registry/server/registry_config.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::unique_ptr<RegistryClient> TlsClient(const std::string& server, const std::string& id,
                                          TlsFiles tls, milliseconds request_timeout) {
  RegistryClientOptions options;
  options.servers = {server};
  options.client_id = id;
  // The app the certificate names (dev-certs: spiffe://TD/app/NAME), so an
  // authorization policy's default (publish as your own app) lets it publish.
  options.app_name =
      tls.cert_file.empty() ? "test-app" : std::filesystem::path(tls.cert_file).stem().string();
  options.keepalive_interval = milliseconds(300);
  options.reconnect_backoff_initial = milliseconds(50);
  options.reconnect_backoff_max = milliseconds(300);
  options.request_timeout = request_timeout;
  options.tls = std::move(tls);
  auto client = RegistryClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// The serial number of the certificate a TLS server on `address` presents
// ("serial=..."), read with the openssl tool; empty if none.
std::string PresentedSerial(const std::string& address, const std::string& certs) {
  std::string script = "openssl s_client -connect " + address + " -alpn h2 -CAfile " + certs +
                       "/ca.crt -cert " + certs + "/app-a.crt -key " + certs +
                       "/app-a.key </dev/null 2>/dev/null | openssl x509 -noout -serial";
  auto [code, output] = RunCommand({"/bin/sh", "-c", script}, seconds(20));
  if (code != 0 || output.rfind("serial=", 0) != 0) return "";
  return output.substr(0, output.find('\n'));
}

std::string SerialOfFile(const std::string& cert) {
  auto [code, output] =
      RunCommand({"/usr/bin/openssl", "x509", "-noout", "-serial", "-in", cert}, seconds(20));
  return code == 0 ? output.substr(0, output.find('\n')) : "";
}

class RegistryTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    ASSERT_EQ(MakeDevCerts(certs_->path()), "");
    ASSERT_EQ(MakeDevCerts(certs_->File("other")), "");  // a second, unrelated CA
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void TearDown() override {
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }
  // Starts a registry with the certificates in `server_dir` (registry.crt and
  // .key, signed by ca.crt there) plus `extra` flags.
  void StartServer(const std::string& server_dir, std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--tls-cert", server_dir + "/registry.crt",
                                      "--tls-key",  server_dir + "/registry.key",
                                      "--tls-ca",   certs_->File("ca.crt")};
    flags.insert(flags.end(), extra.begin(), extra.end());
    server_ = std::make_unique<RegistryProcess>(flags);
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
  static TlsFiles Files(const std::string& dir, const std::string& name, std::string ca = "") {
    TlsFiles files;
    files.ca_file = ca.empty() ? certs_->File("ca.crt") : ca;
    if (!name.empty()) {
      files.cert_file = dir + "/" + name + ".crt";
      files.key_file = dir + "/" + name + ".key";
    }
    return files;
  }
  std::vector<std::string> Ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), BinDir() + "/cairnctl");
    args.push_back("--server");
    args.push_back(server_->grpc_address());
    return args;
  }
  std::vector<std::string> CtlAs(const std::string& name, std::vector<std::string> args) const {
    args = Ctl(std::move(args));
    args.insert(args.end(), {"--cacert", certs_->File("ca.crt"), "--cert",
                             certs_->File(name + ".crt"), "--key", certs_->File(name + ".key")});
    return args;
  }
  // The registry still answers a client with a good certificate.
  void ExpectStillServing() {
    auto [code, output] = RunCommand(CtlAs("cairnctl", {"list"}), seconds(15));
    EXPECT_EQ(code, 0) << output;
    EXPECT_TRUE(server_->process()->Running()) << server_->Log();
  }

  static TempDir* certs_;
  std::unique_ptr<RegistryProcess> server_;
};
TempDir* RegistryTlsTest::certs_ = nullptr;

TEST_F(RegistryTlsTest, ClientsWithCertsFromTheCaPublishAndSubscribe) {
  StartServer(certs_->path());
  EXPECT_NE(server_->Log().find("mTLS (client certificates required)"), std::string::npos)
      << server_->Log();
  auto publisher =
      TlsClient(server_->grpc_address(), "pub", Files(certs_->path(), "app-a"), seconds(10));
  auto subscriber =
      TlsClient(server_->grpc_address(), "sub", Files(certs_->path(), "app-b"), seconds(10));
  ASSERT_TRUE(publisher && subscriber);
  auto handle = publisher->Publish({Key("svc.tls"), {"10.0.0.1:443"}, "", "", {}});
  ASSERT_TRUE(handle.ok()) << handle.status();
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.tls")}, pushes.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(pushes.WaitForData({"10.0.0.1:443"}, seconds(10)).has_value());

  // cairnctl with the admin certificate sees it too.
  auto [code, output] = RunCommand(CtlAs("cairnctl", {"describe", "svc.tls"}), seconds(15));
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("10.0.0.1:443"), std::string::npos) << output;
}

TEST_F(RegistryTlsTest, ClientWithoutCertificateCannotConnect) {
  StartServer(certs_->path());
  // C++ client: trusts the CA but has no certificate of its own.
  auto client =
      TlsClient(server_->grpc_address(), "nocert", Files(certs_->path(), ""), milliseconds(1500));
  ASSERT_TRUE(client);
  auto handle = client->Publish({Key("svc.nocert"), {"10.0.0.9:1"}, "", "", {}});
  ASSERT_FALSE(handle.ok());
  EXPECT_TRUE(absl::IsUnavailable(handle.status()) || absl::IsDeadlineExceeded(handle.status()))
      << handle.status();
  EXPECT_EQ(client->stats().connections, 0u);

  // cairnctl: exit 4 (unreachable) with a message that points at the cause.
  auto [code, output] = RunCommand(
      Ctl({"publish", "svc.nocert", "x", "--timeout", "2", "--cacert", certs_->File("ca.crt")}),
      seconds(20));
  EXPECT_EQ(code, 4) << output;
  EXPECT_NE(output.find("client certificate (--cert/--key)"), std::string::npos) << output;
  auto [lcode, loutput] =
      RunCommand(Ctl({"list", "--timeout", "2", "--cacert", certs_->File("ca.crt")}), seconds(20));
  EXPECT_EQ(lcode, 4) << loutput;
  ExpectStillServing();
  auto [dcode, doutput] = RunCommand(CtlAs("cairnctl", {"list"}), seconds(15));
  EXPECT_EQ(doutput.find("svc.nocert"), std::string::npos) << doutput;
  // Every attempt failed its handshake, but the log says so once per 10 s
  // (cmd/grpc_log.h), not once per attempt: a client cannot fill the disk.
  EXPECT_GE(client->stats().connect_failures, 3u);
  std::string log = server_->Log();
  const int lines = CountOf(log, "TLS handshake refused");
  EXPECT_GE(lines, 1) << log;
  EXPECT_LE(lines, 2) << log;  // 2 only if this test ran past 10 s
  EXPECT_NE(log.find("peer did not return a certificate"), std::string::npos) << log;
}

TEST_F(RegistryTlsTest, ClientWithCertFromAnotherCaCannotConnect) {
  StartServer(certs_->path());
  std::string other = certs_->File("other");
  // Trusts the right CA, but its own certificate comes from another one.
  auto client =
      TlsClient(server_->grpc_address(), "foreign", Files(other, "app-a"), milliseconds(1500));
  ASSERT_TRUE(client);
  auto handle = client->Publish({Key("svc.foreign"), {"10.0.0.8:1"}, "", "", {}});
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(client->stats().connections, 0u);

  auto [code, output] =
      RunCommand(Ctl({"list", "--timeout", "2", "--cacert", certs_->File("ca.crt"), "--cert",
                      other + "/app-a.crt", "--key", other + "/app-a.key"}),
                 seconds(20));
  EXPECT_EQ(code, 4) << output;
  EXPECT_NE(output.find("UNAVAILABLE"), std::string::npos) << output;
  EXPECT_NE(output.find("issued by the CA it trusts"), std::string::npos) << output;
  // Wholly the other CA's world: the server's certificate fails verification.
  auto [ocode, ooutput] =
      RunCommand(Ctl({"list", "--timeout", "2", "--cacert", other + "/ca.crt", "--cert",
                      other + "/app-a.crt", "--key", other + "/app-a.key"}),
                 seconds(20));
  EXPECT_EQ(ocode, 4) << ooutput;
  EXPECT_NE(ooutput.find("certificate verify failed"), std::string::npos) << ooutput;
  ExpectStillServing();
}

TEST_F(RegistryTlsTest, PlaintextClientFailsCleanly) {
  StartServer(certs_->path());
  auto client = MakeClient({server_->grpc_address()}, "plain");
  ASSERT_TRUE(client);
  EXPECT_FALSE(client->WaitConnected(milliseconds(1500)).ok());
  EXPECT_EQ(client->stats().connections, 0u);

  auto [code, output] = RunCommand(Ctl({"list", "--timeout", "2"}), seconds(20));
  EXPECT_EQ(code, 4) << output;
  EXPECT_NE(output.find("if the registry uses TLS, pass --cacert"), std::string::npos) << output;
  ExpectStillServing();
}

TEST_F(RegistryTlsTest, RotatedServerCertificateIsUsedForNewConnectionsOpenStreamsStay) {
  // The server's own copy of its pair, which the test replaces.
  std::string live = certs_->File("live");
  std::filesystem::create_directories(live);
  for (const char* f : {"registry.crt", "registry.key"}) {
    std::filesystem::copy_file(certs_->File(f), live + "/" + f);
  }
  std::string config = certs_->File("rotation.yaml");
  std::ofstream(config) << "tls:\n  refresh_interval_s: 1\n";
  StartServer(live, {"--config", config});
  std::string before = SerialOfFile(live + "/registry.crt");
  ASSERT_FALSE(before.empty());
  ASSERT_EQ(PresentedSerial(server_->grpc_address(), certs_->path()), before);

  auto subscriber =
      TlsClient(server_->grpc_address(), "sub", Files(certs_->path(), "app-b"), seconds(10));
  ASSERT_TRUE(subscriber);
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.rotate")}, pushes.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();

  // A new pair for the same name from the same CA, moved into place by rename.
  std::string fresh = certs_->File("fresh");
  std::filesystem::create_directories(fresh);
  std::filesystem::copy_file(certs_->File("ca.crt"), fresh + "/ca.crt");
  std::filesystem::copy_file(certs_->File("ca.key"), fresh + "/ca.key");
  ASSERT_EQ(MakeDevCerts(fresh, {"registry"}), "");
  std::string after = SerialOfFile(fresh + "/registry.crt");
  ASSERT_FALSE(after.empty());
  ASSERT_NE(after, before);
  std::filesystem::rename(fresh + "/registry.key", live + "/registry.key");
  std::filesystem::rename(fresh + "/registry.crt", live + "/registry.crt");

  EXPECT_TRUE(
      Eventually([&] { return PresentedSerial(server_->grpc_address(), certs_->path()) == after; },
                 seconds(15)))
      << server_->Log();
  // A client connecting now works, and its publish reaches the subscriber
  // over the stream opened before the rotation, which never reconnected.
  auto publisher =
      TlsClient(server_->grpc_address(), "pub", Files(certs_->path(), "app-a"), seconds(10));
  ASSERT_TRUE(publisher);
  auto handle = publisher->Publish({Key("svc.rotate"), {"10.0.0.2:443"}, "", "", {}});
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_TRUE(pushes.WaitForData({"10.0.0.2:443"}, seconds(10)).has_value());
  EXPECT_EQ(subscriber->stats().connections, 1u);
  EXPECT_EQ(subscriber->stats().reconnects, 0u);
}

TEST_F(RegistryTlsTest, BadTlsFilesStopTheStartWithAClearMessage) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  std::string d = certs_->path();
  const std::vector<Case> cases = {
      {{"--tls-cert", d + "/missing.crt", "--tls-key", d + "/registry.key", "--tls-ca",
        d + "/ca.crt"},
       "cannot read the TLS certificate file '" + d + "/missing.crt'"},
      {{"--tls-cert", d + "/registry.crt", "--tls-key", d + "/app-a.key", "--tls-ca",
        d + "/ca.crt"},
       "does not match the certificate"},
      {{"--tls-cert", d + "/registry.crt", "--tls-ca", d + "/ca.crt"},
       "both a certificate and its key"},
      {{"--tls-ca", d + "/ca.crt"}, "a TLS server needs a certificate and key"},
      {{"--tls-cert", d + "/registry.crt", "--tls-key", d + "/registry.key", "--tls-ca",
        d + "/registry.key"},
       "holds no PEM certificate"},
      {{"--tls-cert", d + "/registry.crt", "--tls-key", d + "/registry.key", "--tls-client-cert",
        "sometimes"},
       "--tls-client-cert"},
  };
  for (const Case& c : cases) {
    TempDir data;
    std::vector<std::string> argv = {BinDir() + "/cairn", "registry",    "--listen",
                                     "127.0.0.1:0",       "--admin",     "127.0.0.1:0",
                                     "--data-dir",        data.File("d")};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    auto [code, output] = RunCommand(argv, seconds(20));
    EXPECT_NE(code, 0) << output;
    EXPECT_NE(output.find(c.message), std::string::npos) << c.message << "\n" << output;
  }
}

TEST_F(RegistryTlsTest, ServerWithoutCaServesTlsWithoutClientCertificates) {
  server_ = std::make_unique<RegistryProcess>(std::vector<std::string>{
      "--tls-cert", certs_->File("registry.crt"), "--tls-key", certs_->File("registry.key")});
  ASSERT_TRUE(server_->Start()) << server_->Log();
  auto [code, output] =
      RunCommand(Ctl({"list", "--timeout", "5", "--cacert", certs_->File("ca.crt")}), seconds(20));
  EXPECT_EQ(code, 0) << output;
  // A client that does not trust the server's CA still refuses it.
  auto [ocode, ooutput] = RunCommand(
      Ctl({"list", "--timeout", "2", "--cacert", certs_->File("other/ca.crt")}), seconds(20));
  EXPECT_EQ(ocode, 4) << ooutput;
}

TEST_F(RegistryTlsTest, OptionalClientCertificatesAreVerifiedWhenSent) {
  StartServer(certs_->path(), {"--tls-client-cert", "optional"});
  EXPECT_NE(server_->Log().find("TLS (client certificates optional)"), std::string::npos)
      << server_->Log();
  // No certificate: the connection is accepted; the caller is anonymous, so
  // what it may do is authorization's answer (the default lets anonymous
  // callers query nothing), not a failed handshake.
  auto [code, output] =
      RunCommand(Ctl({"list", "--timeout", "5", "--cacert", certs_->File("ca.crt")}), seconds(20));
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("PERMISSION_DENIED"), std::string::npos) << output;
  // A certificate from another CA is still refused.
  std::string other = certs_->File("other");
  auto [ocode, ooutput] =
      RunCommand(Ctl({"list", "--timeout", "2", "--cacert", certs_->File("ca.crt"), "--cert",
                      other + "/cairnctl.crt", "--key", other + "/cairnctl.key"}),
                 seconds(20));
  EXPECT_EQ(ocode, 4) << ooutput;
  ExpectStillServing();
}

// ---- The `tls:` and `etcd_tls:` config keys.

std::string WriteConfig(const TempDir& dir, const std::string& text) {
  static int n = 0;
  std::string path = dir.File("config-" + std::to_string(n++) + ".yaml");
  std::ofstream(path) << text;
  return path;
}

TEST(RegistryTlsConfigTest, KeysLoadIntoTlsFiles) {
  TempDir dir;
  auto c = LoadRegistryConfig(WriteConfig(dir,
                                          "tls:\n  cert: /c.crt\n  key: /c.key\n  ca: /ca.crt\n"
                                          "  client_cert: optional\n  refresh_interval_s: 2\n"
                                          "etcd_tls: {cert: /e.crt, key: /e.key, ca: /eca.crt}\n"),
                              RegistryConfig{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.cert_file, "/c.crt");
  EXPECT_EQ(c->tls.key_file, "/c.key");
  EXPECT_EQ(c->tls.ca_file, "/ca.crt");
  EXPECT_FALSE(c->tls.require_client_cert);
  EXPECT_EQ(c->tls.refresh_interval_s, 2u);
  EXPECT_EQ(c->etcd_tls.cert_file, "/e.crt");
  EXPECT_EQ(c->etcd_tls.ca_file, "/eca.crt");
  // Defaults: off, and client certificates required once a CA is named.
  RegistryConfig d;
  EXPECT_FALSE(d.tls.enabled());
  EXPECT_FALSE(d.etcd_tls.enabled());
  EXPECT_TRUE(d.tls.require_client_cert);
  EXPECT_EQ(TlsModeText(ServerTlsFiles(d)), "plaintext");
  d.tls.cert_file = "x";
  EXPECT_EQ(TlsModeText(ServerTlsFiles(d)), "TLS");  // no CA: no client certs asked
  d.tls.ca_file = "y";
  EXPECT_EQ(TlsModeText(ServerTlsFiles(d)), "mTLS (client certificates required)");
}

TEST(RegistryTlsConfigTest, BadInputIsAnErrorNamingTheKey) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"tls:\n  certificate: /c.crt\n", "tls: unknown key 'certificate'"},
      {"tls:\n  client_cert: maybe\n", "tls.client_cert: 'maybe' is not one of required"},
      {"etcd_tls:\n  client_cert: required\n", "etcd_tls: unknown key 'client_cert'"},
      {"tls: /c.crt\n", "tls: expected a mapping"},
      {"tls: [a, b]\n", "tls: expected a mapping"},
      {"tls:\n  refresh_interval_s: soon\n", "bad value in 'tls'"},
      {"tls:\n  cert: [1, 2]\n", "bad value in 'tls'"},
      {"tls:\n  ? [a]\n  : b\n", "tls: unknown key ''"},
  };
  for (const auto& [text, message] : cases) {
    auto c = LoadRegistryConfig(WriteConfig(dir, text), RegistryConfig{});
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(message), std::string::npos)
        << text << " -> " << c.status();
  }
  // An empty `tls:` is allowed (TLS stays off).
  auto c = LoadRegistryConfig(WriteConfig(dir, "tls:\n"), RegistryConfig{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tls.enabled());
}

TEST(RegistryTlsConfigTest, ValidationChecksTheFiles) {
  TempDir dir;
  RegistryConfig c;
  c.tls.cert_file = dir.File("none.crt");
  c.tls.key_file = dir.File("none.key");
  auto s = ValidateRegistryConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tls: cannot read the TLS certificate file"), std::string::npos) << s;
  c = RegistryConfig{};
  c.etcd_tls.cert_file = dir.File("e.crt");  // a client needs the CA
  s = ValidateRegistryConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("etcd_tls: "), std::string::npos) << s;
  c = RegistryConfig{};
  c.tls.ca_file = dir.File("ca.crt");  // a CA alone: no server pair
  c.tls.require_client_cert = true;
  EXPECT_FALSE(ValidateRegistryConfig(c).ok());
}

}  // namespace
}  // namespace cairn::testing
