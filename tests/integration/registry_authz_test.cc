// Authorization in a real `cairn registry` over mTLS (issue 16): certificates
// from scripts/dev-certs, the C++ RegistryClient and cairnctl. Who may publish
// what under the built-in default and under a policy file, what a refused
// caller sees (PERMISSION_DENIED naming the rule and the identity, its stream
// still up), that refused data is unchanged for subscribers, the metric and
// the log, and policy reloads on SIGHUP.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "common/grpc_tls.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kOwnAppRule = "default-publish-own-app";

// One raw Session stream, for requests the C++ client does not let a test
// make (a registration id of its choosing). Bounded: every call has a
// deadline.
class RawSession {
 public:
  RawSession(const std::string& address, const TlsFiles& files, const std::string& client_id) {
    auto credentials = MakeChannelCredentials(files);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    stub_ = pb::Registry::NewStub(grpc::CreateChannel(address, *credentials));
    context_.set_deadline(std::chrono::system_clock::now() + seconds(30));
    stream_ = stub_->Session(&context_);
    pb::ClientMessage hello;
    hello.mutable_hello()->set_client_id(client_id);
    EXPECT_EQ(Send(std::move(hello)).code(), 0);
  }
  ~RawSession() {
    stream_->WritesDone();
    context_.TryCancel();
    (void)stream_->Finish();
  }
  // Sends `message` and returns the Result answering it (pushes skipped).
  pb::Result Send(pb::ClientMessage message) {
    uint64_t id = ++next_id_;
    message.set_request_id(id);
    if (!stream_->Write(message)) return Broken();
    pb::ServerMessage reply;
    for (int i = 0; i < 1000 && stream_->Read(&reply); ++i) {
      if (reply.has_result() && reply.result().request_id() == id) return reply.result();
    }
    return Broken();
  }
  pb::Result Publish(const std::string& reg_id, const std::string& data_id, const std::string& data,
                     const std::string& app_name) {
    pb::ClientMessage message;
    pb::Publish* publish = message.mutable_publish();
    publish->set_registration_id(reg_id);
    publish->mutable_key()->set_data_id(data_id);
    publish->add_data(data);
    publish->set_app_name(app_name);
    return Send(std::move(message));
  }

 private:
  static pb::Result Broken() {
    pb::Result result;
    result.set_code(-1);
    result.set_message("stream broken");
    return result;
  }
  std::unique_ptr<pb::Registry::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::ClientMessage, pb::ServerMessage>> stream_;
  uint64_t next_id_ = 0;
};

class RegistryAuthzTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    auto [code, output] =
        RunCommand({CAIRN_SOURCE_DIR "/scripts/dev-certs", certs_->path()}, seconds(60));
    ASSERT_EQ(code, 0) << output;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void TearDown() override {
    clients_.clear();  // before the server: their streams end cleanly
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }

  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--tls-cert", certs_->File("registry.crt"),
                                      "--tls-key",  certs_->File("registry.key"),
                                      "--tls-ca",   certs_->File("ca.crt")};
    flags.insert(flags.end(), extra.begin(), extra.end());
    server_ = std::make_unique<RegistryProcess>(flags);
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }

  // A client holding `name`'s certificate (its identity: spiffe://cairn.local/app/NAME),
  // saying app `app_name` in its Hello.
  RegistryClient* Client(const std::string& name, const std::string& app_name) {
    RegistryClientOptions options;
    options.servers = {server_->grpc_address()};
    options.client_id = name;
    options.app_name = app_name;
    options.keepalive_interval = milliseconds(300);
    options.reconnect_backoff_initial = milliseconds(50);
    options.reconnect_backoff_max = milliseconds(300);
    options.request_timeout = seconds(10);
    options.tls.ca_file = certs_->File("ca.crt");
    options.tls.cert_file = certs_->File(name + ".crt");
    options.tls.key_file = certs_->File(name + ".key");
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    clients_.push_back(std::move(*client));
    return clients_.back().get();
  }

  TlsFiles FilesOf(const std::string& name) {
    TlsFiles files;
    files.ca_file = certs_->File("ca.crt");
    files.cert_file = certs_->File(name + ".crt");
    files.key_file = certs_->File(name + ".key");
    return files;
  }

  // cairnctl with `name`'s certificate.
  std::pair<int, std::string> CtlAs(const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), BinDir() + "/cairnctl");
    args.insert(args.end(), {"--server", server_->grpc_address(), "--cacert",
                             certs_->File("ca.crt"), "--cert", certs_->File(name + ".crt"), "--key",
                             certs_->File(name + ".key"), "--timeout", "5"});
    return RunCommand(args, seconds(20));
  }

  std::string Metrics() {
    auto [code, text] = RunCommand(
        {"/usr/bin/curl", "-sS", "http://" + server_->admin_address() + "/metrics"}, seconds(10));
    EXPECT_EQ(code, 0) << text;
    return text;
  }

  void WritePolicy(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path);
  }

  static TempDir* certs_;
  std::unique_ptr<RegistryProcess> server_;
  std::vector<std::unique_ptr<RegistryClient>> clients_;
};
TempDir* RegistryAuthzTest::certs_ = nullptr;

TEST_F(RegistryAuthzTest, DefaultPolicyAppPublishesOnlyItsOwnApp) {
  StartServer();
  RegistryClient* app_b = Client("app-b", "app-b");
  RegistryClient* app_a = Client("app-a", "app-a");
  RegistryClient* app_c = Client("app-c", "app-c");
  ASSERT_TRUE(app_a && app_b && app_c);

  // app-b: an app-level instance serving com.acme.Payment, and an
  // interface-level record of it.
  auto revision = app_b->RegisterRevision({"app-b", {{Key("com.acme.Payment"), {}}}});
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto b_instance = app_b->PublishApp({"app-b", *revision, {"bolt://10.0.0.2:12200"}});
  ASSERT_TRUE(b_instance.ok()) << b_instance.status();
  auto b_interface = app_b->Publish({Key("com.acme.Payment"), {"10.0.0.2:8080"}});
  ASSERT_TRUE(b_interface.ok()) << b_interface.status();

  // app-c subscribes to app-b's instances and to the interface.
  PushCollector app_pushes, interface_pushes;
  auto sub_app = app_c->SubscribeApp("app-b", app_pushes.Callback());
  ASSERT_TRUE(sub_app.ok()) << sub_app.status();
  auto sub_interface = app_c->Subscribe({Key("com.acme.Payment")}, interface_pushes.Callback());
  ASSERT_TRUE(sub_interface.ok()) << sub_interface.status();
  // The app's view also holds its interface-level record (a migration).
  ASSERT_TRUE(
      app_pushes.WaitForData({"10.0.0.2:8080", "bolt://10.0.0.2:12200"}, seconds(10)).has_value())
      << (app_pushes.Count() > 0 ? app_pushes.All().back().DebugString() : "no push");
  // The interface's view: the record and the app instance rendered for it.
  ASSERT_TRUE(Eventually(
      [&] {
        return interface_pushes.Count() > 0 && AllData(interface_pushes.All().back()).size() == 2;
      },
      seconds(10)))
      << (interface_pushes.Count() > 0 ? interface_pushes.All().back().DebugString() : "none");
  std::vector<std::string> interface_before = AllData(interface_pushes.All().back());

  // app-a's own data: allowed.
  auto a_own = app_a->Publish({Key("com.acme.Cart"), {"10.0.0.1:8080"}});
  ASSERT_TRUE(a_own.ok()) << a_own.status();
  auto a_revision = app_a->RegisterRevision({"app-a", {{Key("com.acme.Cart"), {}}}});
  ASSERT_TRUE(a_revision.ok()) << a_revision.status();
  auto a_instance = app_a->PublishApp({"app-a", *a_revision, {"bolt://10.0.0.1:12200"}});
  ASSERT_TRUE(a_instance.ok()) << a_instance.status();

  // app-a claiming app-b: an interface record naming app-b, app-b's app
  // record, a revision of app-b. Each refused, naming the rule and app-a.
  std::vector<absl::Status> refusals;
  refusals.push_back(
      app_a->Publish({Key("com.acme.Payment"), {"10.6.6.6:8080"}, "app-b"}).status());
  refusals.push_back(app_a->PublishApp({"app-b", *revision, {"bolt://10.6.6.6:12200"}}).status());
  refusals.push_back(
      app_a->RegisterRevision({"app-b", {{Key("com.acme.Evil"), {}}}, "evil-rev"}).status());
  for (const absl::Status& s : refusals) {
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_NE(s.message().find(kOwnAppRule), std::string::npos) << s;
    EXPECT_NE(s.message().find("spiffe://cairn.local/app/app-a"), std::string::npos) << s;
  }

  // The stream stayed up for what app-a may do.
  auto a_more = app_a->Publish({Key("com.acme.Cart"), {"10.0.0.1:8081"}});
  EXPECT_TRUE(a_more.ok()) << a_more.status();
  EXPECT_EQ(app_a->stats().connections, 1u);

  // app-b's data is unchanged: the admin sees one publisher of each, and a
  // marker change from app-b reaches the subscriber with nothing of app-a's.
  auto [dcode, describe] = CtlAs("cairnctl", {"describe", "com.acme.Payment"});
  EXPECT_EQ(dcode, 0) << describe;
  EXPECT_EQ(CountOf(describe, "10.0.0.2:8080"), 1) << describe;
  EXPECT_EQ(describe.find("10.6.6.6"), std::string::npos) << describe;
  auto [acode, app_view] = CtlAs("cairnctl", {"describe", "app:app-b"});
  EXPECT_EQ(acode, 0) << app_view;
  EXPECT_EQ(app_view.find("10.6.6.6"), std::string::npos) << app_view;
  ASSERT_TRUE((*b_interface)->Republish({"10.0.0.2:8080", "10.0.0.2:8081"}).ok());
  std::vector<std::string> interface_after = interface_before;
  interface_after.push_back("10.0.0.2:8081");
  ASSERT_TRUE(interface_pushes.WaitForData(interface_after, seconds(10)).has_value())
      << interface_pushes.All().back().DebugString();
  for (const pb::Push& push : interface_pushes.All()) {
    for (const std::string& data : AllData(push)) {
      EXPECT_EQ(data.find("10.6.6.6"), std::string::npos) << data;
    }
  }
  ASSERT_TRUE(
      app_pushes
          .WaitForData({"10.0.0.2:8080", "10.0.0.2:8081", "bolt://10.0.0.2:12200"}, seconds(10))
          .has_value());
  for (const pb::Push& push : app_pushes.All()) {
    for (const std::string& data : AllData(push)) {
      EXPECT_EQ(data.find("10.6.6.6"), std::string::npos) << data;
    }
  }

  // Counted by op and rule; logged once per identity and rule (3 denials).
  std::string metrics = Metrics();
  EXPECT_NE(metrics.find("cairn_registry_denied_total{op=\"publish\",rule=\"" +
                         std::string(kOwnAppRule) + "\"} 3"),
            std::string::npos)
      << metrics;
  std::string log = server_->Log();
  EXPECT_EQ(CountOf(log, "authorization: publish of"), 1) << log;
}

TEST_F(RegistryAuthzTest, AdminQueriesOthersAreRefused) {
  StartServer();
  RegistryClient* app_a = Client("app-a", "app-a");
  ASSERT_TRUE(app_a);
  auto held = app_a->Publish({Key("svc.a"), {"10.0.0.1:1"}});  // kept: a dropped handle unregisters
  ASSERT_TRUE(held.ok()) << held.status();

  // cairnctl's certificate (spiffe://cairn.local/admin/cairnctl) is admin.
  auto [lcode, list] = CtlAs("cairnctl", {"list"});
  EXPECT_EQ(lcode, 0) << list;
  EXPECT_NE(list.find("svc.a"), std::string::npos)
      << list << CtlAs("cairnctl", {"describe", "svc.a"}).second << server_->Log();
  auto [ccode, clients] = CtlAs("cairnctl", {"describe", "svc.a"});
  EXPECT_EQ(ccode, 0) << clients;

  // An app's certificate may not run the queries.
  auto [code, output] = CtlAs("app-a", {"list"});
  EXPECT_NE(code, 0) << output;
  EXPECT_NE(output.find("PERMISSION_DENIED"), std::string::npos) << output;
  EXPECT_NE(output.find("no-matching-rule"), std::string::npos) << output;
  // The admin may publish for any app (e.g. to repair a record).
  RawSession admin(server_->grpc_address(), FilesOf("cairnctl"), "admin");
  pb::Result result = admin.Publish("admin-1", "com.acme.Payment", "10.0.0.9:1", "app-b");
  EXPECT_EQ(result.code(), 0) << result.message();
}

TEST_F(RegistryAuthzTest, AdminHttpQueriesNeedTheTokenWhenOneIsSet) {
  TempDir dir;
  std::string token_file = dir.File("admin.token");
  std::ofstream(token_file) << "s3cret-token\n";
  StartServer({"--admin-token-file", token_file});
  std::string base = "http://" + server_->admin_address();
  auto get = [&](const std::string& path, std::vector<std::string> headers = {}) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "-o",
                                     "/dev/null",     "-w",  "%{http_code}"};
    for (const std::string& h : headers) argv.insert(argv.end(), {"-H", h});
    argv.push_back(base + path);
    return RunCommand(argv, seconds(10)).second;
  };
  EXPECT_EQ(get("/api/v1/datainfos"), "401");
  EXPECT_EQ(get("/api/v1/apps"), "401");
  EXPECT_EQ(get("/api/v1/datainfos", {"Authorization: Bearer wrong"}), "401");
  EXPECT_EQ(get("/api/v1/datainfos", {"Authorization: Bearer s3cret-token"}), "200");
  EXPECT_EQ(get("/api/v1/apps", {"authorization: bearer s3cret-token"}), "200");
  EXPECT_EQ(get("/health"), "200");
  EXPECT_EQ(get("/metrics"), "200");

  // An unreadable token file stops startup, naming it.
  RegistryProcess bad({"--admin-token-file", dir.File("missing.token")});
  EXPECT_FALSE(bad.Start());
  EXPECT_NE(bad.Log().find("missing.token"), std::string::npos) << bad.Log();
}

TEST_F(RegistryAuthzTest, TakingOverAnotherIdentitysRegistrationIsRefused) {
  StartServer();
  RawSession app_b(server_->grpc_address(), FilesOf("app-b"), "b");
  pb::Result b_result = app_b.Publish("reg-b-1", "shared.Interface", "10.0.0.2:1", "app-b");
  ASSERT_EQ(b_result.code(), 0) << b_result.message();

  // app-a may publish shared.Interface for itself, but not by re-sending
  // app-b's registration id (which would move app-b's publisher to it).
  RawSession app_a(server_->grpc_address(), FilesOf("app-a"), "a");
  pb::Result a_result = app_a.Publish("reg-b-1", "shared.Interface", "10.6.6.6:1", "app-a");
  EXPECT_EQ(a_result.code(), static_cast<int>(absl::StatusCode::kPermissionDenied))
      << a_result.message();
  EXPECT_NE(a_result.message().find("registration-owner"), std::string::npos) << a_result.message();
  pb::Result a_own = app_a.Publish("reg-a-1", "shared.Interface", "10.0.0.1:1", "app-a");
  EXPECT_EQ(a_own.code(), 0) << a_own.message();

  auto [code, describe] = CtlAs("cairnctl", {"describe", "shared.Interface"});
  EXPECT_EQ(code, 0) << describe;
  EXPECT_NE(describe.find("10.0.0.2:1"), std::string::npos) << describe;
  EXPECT_NE(describe.find("10.0.0.1:1"), std::string::npos) << describe;
  EXPECT_EQ(describe.find("10.6.6.6"), std::string::npos) << describe;

  // The same client identity on a new stream (a reconnect) takes it back.
  RawSession app_b_again(server_->grpc_address(), FilesOf("app-b"), "b");
  pb::Result again = app_b_again.Publish("reg-b-1", "shared.Interface", "10.0.0.2:2", "app-b");
  EXPECT_EQ(again.code(), 0) << again.message();
}

constexpr const char* kOnlyAppB = R"(admins: ["spiffe://cairn.local/admin/*"]
rules:
  - name: svc-providers
    ops: [publish]
    identities: [app:app-b]
    data_ids: ["svc.*"]
  - name: subscribe-all
    ops: [subscribe]
    identities: ["*"]
    data_ids: ["*"]
)";
constexpr const char* kAppAToo = R"(admins: ["spiffe://cairn.local/admin/*"]
rules:
  - name: svc-providers
    ops: [publish]
    identities: [app:app-b, app:app-a]
    data_ids: ["svc.*"]
)";

TEST_F(RegistryAuthzTest, PolicyFileAndSighupReload) {
  TempDir dir;
  std::string policy = dir.File("policy.yaml");
  WritePolicy(policy, kOnlyAppB);
  StartServer({"--policy", policy});
  RegistryClient* app_a = Client("app-a", "app-a");
  ASSERT_TRUE(app_a);
  auto denied = app_a->Publish({Key("svc.x"), {"10.0.0.1:1"}});
  ASSERT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
  EXPECT_NE(denied.status().message().find("no-matching-rule"), std::string::npos)
      << denied.status();

  // A new policy and SIGHUP: app-a may publish now.
  WritePolicy(policy, kAppAToo);
  ASSERT_EQ(::kill(server_->process()->pid(), SIGHUP), 0);
  ASSERT_TRUE(
      Eventually([&] { return CountOf(server_->Log(), "policy reloaded from") >= 1; }, seconds(5)))
      << server_->Log();
  EXPECT_NE(server_->Log().find("received SIGHUP"), std::string::npos) << server_->Log();
  auto allowed = app_a->Publish({Key("svc.x"), {"10.0.0.1:1"}});
  EXPECT_TRUE(allowed.ok()) << allowed.status();

  // A broken file: the reload fails, the log says why, the old policy holds.
  WritePolicy(policy, "rules:\n  - name: [oops\n");
  ASSERT_EQ(::kill(server_->process()->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually(
      [&] { return server_->Log().find("policy reload failed") != std::string::npos; }, seconds(5)))
      << server_->Log();
  auto still = app_a->Publish({Key("svc.y"), {"10.0.0.1:2"}});
  EXPECT_TRUE(still.ok()) << still.status();
  EXPECT_TRUE(server_->process()->Running());

  // The file changed back without a signal: picked up by the poll.
  WritePolicy(policy, kOnlyAppB);
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {  // at most ~5 s
    std::this_thread::sleep_for(milliseconds(100));
    refused = absl::IsPermissionDenied(app_a->Publish({Key("svc.z"), {"10.0.0.1:3"}}).status());
  }
  EXPECT_TRUE(refused) << server_->Log();
}

TEST_F(RegistryAuthzTest, PolicyWithoutClientCertificatesIsAStartupError) {
  TempDir dir;
  std::string policy = dir.File("policy.yaml");
  WritePolicy(policy, kOnlyAppB);
  RegistryProcess plain({"--policy", policy});
  EXPECT_FALSE(plain.Start());
  EXPECT_NE(plain.Log().find("policy needs client certificates"), std::string::npos) << plain.Log();
  // A policy that does not parse stops startup too, naming the line.
  WritePolicy(policy, "rules:\n  - name: a\n    ops: [pubish]\n");
  RegistryProcess bad({"--tls-cert", certs_->File("registry.crt"), "--tls-key",
                       certs_->File("registry.key"), "--tls-ca", certs_->File("ca.crt"), "--policy",
                       policy});
  EXPECT_FALSE(bad.Start());
  EXPECT_NE(bad.Log().find("policy.yaml:3: rules[0].ops: 'pubish'"), std::string::npos)
      << bad.Log();
}

}  // namespace
}  // namespace cairn::testing
