// Authorization in cluster mode (issue 16): the session role checks every
// client request with the same session server as standalone. A real cluster
// with mTLS on every hop (meta, two data servers, two sessions; certificates
// from scripts/dev-certs): s1 runs the built-in default policy, s2 a policy
// file that SIGHUP reloads.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "client/registry_client.h"
#include "cluster_harness.h"

namespace cairn::cluster {
namespace {

using cairn::testing::BinDir;
using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using cairn::testing::RunCommand;
using cairn::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

// The data of the newest push, flattened, and whether any push ever held
// `poison`.
class LastView {
 public:
  PushCallback Callback() {
    return [this](const pb::Push& push) {
      std::set<std::string> data;
      for (const auto& zone : push.zones()) {
        for (const auto& publisher : zone.publishers()) {
          data.insert(publisher.data().begin(), publisher.data().end());
        }
      }
      std::lock_guard lock(mu_);
      for (const std::string& d : data) seen_.insert(d);
      view_ = std::move(data);
    };
  }
  bool Is(const std::set<std::string>& want) {
    std::lock_guard lock(mu_);
    return view_ == want;
  }
  bool EverSaw(const std::string& data) {
    std::lock_guard lock(mu_);
    return seen_.count(data) > 0;
  }

 private:
  std::mutex mu_;
  std::set<std::string> view_;
  std::set<std::string> seen_;
};

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

class ClusterAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [code, output] =
        RunCommand({CAIRN_SOURCE_DIR "/scripts/dev-certs", certs_.path()}, seconds(60));
    ASSERT_EQ(code, 0) << output;
    policy_ = certs_.File("policy.yaml");
    WritePolicy(kOnlyAppB);
    cluster_.UseTls(certs_.path());
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s2", {"--policy", policy_}), nullptr) << cluster_.Logs();
  }

  void WritePolicy(const std::string& text) {
    std::ofstream(policy_ + ".tmp") << text;
    std::filesystem::rename(policy_ + ".tmp", policy_);
  }

  std::unique_ptr<RegistryClient> Client(const std::string& session, const std::string& name,
                                         const std::string& app_name) {
    RegistryClientOptions options;
    options.servers = {cluster_.Find(session)->grpc_address};
    options.client_id = name + "@" + session;
    options.app_name = app_name;
    options.keepalive_interval = milliseconds(1000);
    options.reconnect_backoff_max = milliseconds(500);
    options.request_timeout = seconds(10);
    options.tls = cluster_.ClientTls(name);
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  std::pair<int, std::string> CtlAs(const std::string& session, const std::string& name,
                                    std::vector<std::string> args) {
    args.insert(args.begin(), BinDir() + "/cairnctl");
    args.insert(args.end(), {"--server", cluster_.Find(session)->grpc_address, "--cacert",
                             certs_.File("ca.crt"), "--cert", certs_.File(name + ".crt"), "--key",
                             certs_.File(name + ".key"), "--timeout", "10"});
    return RunCommand(args, seconds(30));
  }

  TempDir certs_;
  std::string policy_;
  ClusterHarness cluster_{16, 2};
};

TEST_F(ClusterAuthzTest, SessionRoleEnforcesDefaultAndFilePolicies) {
  // ---- s1, the default: app-b's record is safe from app-a.
  auto app_b = Client("s1", "app-b", "app-b");
  auto app_a = Client("s1", "app-a", "app-a");
  auto app_c = Client("s2", "app-c", "app-c");  // subscribes through the other session
  ASSERT_TRUE(app_a && app_b && app_c);
  auto b_pub = app_b->Publish({Key("com.acme.Payment"), {"10.2.0.2:8080"}});
  ASSERT_TRUE(b_pub.ok()) << b_pub.status() << cluster_.Logs();
  LastView view;
  auto sub = app_c->Subscribe({Key("com.acme.Payment")}, view.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(Eventually([&] { return view.Is({"10.2.0.2:8080"}); }, seconds(15)))
      << cluster_.Logs();

  auto claim_b = app_a->Publish({Key("com.acme.Payment"), {"10.6.6.6:8080"}, "app-b"});
  EXPECT_EQ(claim_b.status().code(), absl::StatusCode::kPermissionDenied) << claim_b.status();
  EXPECT_NE(claim_b.status().message().find("default-publish-own-app"), std::string::npos)
      << claim_b.status();
  EXPECT_NE(claim_b.status().message().find("spiffe://cairn.local/app/app-a"), std::string::npos)
      << claim_b.status();
  auto own = app_a->Publish({Key("com.acme.Cart"), {"10.2.0.1:8080"}});
  EXPECT_TRUE(own.ok()) << own.status();
  // A change of app-b's still reaches the subscriber, and nothing of app-a's ever did.
  ASSERT_TRUE((*b_pub)->Republish({"10.2.0.2:8080", "10.2.0.2:8081"}).ok());
  EXPECT_TRUE(Eventually([&] { return view.Is({"10.2.0.2:8080", "10.2.0.2:8081"}); }, seconds(15)));
  EXPECT_FALSE(view.EverSaw("10.6.6.6:8080"));
  // Counted on s1's /metrics.
  auto [mcode, metrics] = RunCommand(
      {"/usr/bin/curl", "-sS", "http://" + cluster_.Find("s1")->admin_address + "/metrics"},
      seconds(10));
  EXPECT_NE(metrics.find(
                "cairn_registry_denied_total{op=\"publish\",rule=\"default-publish-own-app\"} 1"),
            std::string::npos)
      << metrics;
  // Queries: the admin certificate yes, an app's no.
  auto [acode, admin_out] = CtlAs("s1", "cairnctl", {"describe", "com.acme.Payment"});
  EXPECT_EQ(acode, 0) << admin_out;
  EXPECT_NE(admin_out.find("10.2.0.2:8081"), std::string::npos) << admin_out;
  auto [qcode, app_out] = CtlAs("s1", "app-a", {"list"});
  EXPECT_EQ(qcode, 1) << app_out;
  EXPECT_NE(app_out.find("PERMISSION_DENIED"), std::string::npos) << app_out;

  // ---- s2, a policy file: only app-b publishes svc.*, until a reload.
  auto a2 = Client("s2", "app-a", "app-a");
  ASSERT_TRUE(a2);
  auto denied = a2->Publish({Key("svc.cluster"), {"10.2.0.1:1"}});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
  WritePolicy(kAppAToo);
  ASSERT_EQ(::kill(cluster_.Find("s2")->process->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually(
      [&] { return cluster_.MemberLog("s2").find("policy reloaded from") != std::string::npos; },
      seconds(10)))
      << cluster_.MemberLog("s2");
  auto allowed = a2->Publish({Key("svc.cluster"), {"10.2.0.1:1"}});
  EXPECT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(cluster_.Find("s2")->process->Running());
}

}  // namespace
}  // namespace cairn::cluster
