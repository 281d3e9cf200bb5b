// Cluster mode with TLS everywhere (issue 16), on a real cluster: an etcd that
// serves https and requires client certificates, a meta server, two data
// servers and a session, all with certificates from scripts/dev-certs. Client
// streams, session<->data and data<->data RPCs and every etcd call use mTLS.
// A data server without a valid certificate never becomes a member.
#include <gtest/gtest.h>
#include <signal.h>

#include <mutex>
#include <set>

#include "cairn/cluster/v1/cluster.grpc.pb.h"
#include "client/registry_client.h"
#include "cluster_harness.h"
#include "dev_certs.h"

namespace cairn::cluster {
namespace {

namespace cpb = ::cairn::cluster::v1;

using cairn::testing::BinDir;
using cairn::testing::ClusterHarness;
using cairn::testing::Eventually;
using cairn::testing::MakeDevCerts;
using cairn::testing::RunCommand;
using cairn::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return key;
}

// The data of the newest push, flattened.
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
      view_ = std::move(data);
    };
  }
  bool Is(const std::set<std::string>& want) {
    std::lock_guard lock(mu_);
    return view_ == want;
  }

 private:
  std::mutex mu_;
  std::set<std::string> view_;
};

class ClusterTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(MakeDevCerts(certs_.path()), "");
    ASSERT_EQ(MakeDevCerts(certs_.File("other")), "");  // a second, unrelated CA
    cluster_.UseTls(certs_.path());
    ASSERT_TRUE(cluster_.StartEtcd()) << cluster_.etcd().Log();
    ASSERT_NE(cluster_.Start("meta", "m1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d1"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
  }

  // A client of s1 with the pair `name` of the dev CA, as app `name`.
  std::unique_ptr<RegistryClient> Client(const std::string& name, TlsFiles tls,
                                         milliseconds request_timeout = seconds(10)) {
    RegistryClientOptions options;
    options.servers = {cluster_.Find("s1")->grpc_address};
    options.client_id = name;
    options.app_name = name;
    options.keepalive_interval = milliseconds(1000);  // the harness's sessions wait 3 s
    options.reconnect_backoff_max = milliseconds(500);
    options.request_timeout = request_timeout;
    options.tls = std::move(tls);
    auto client = RegistryClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // cairnctl CMD --etcd https://... with the admin certificate.
  std::pair<int, std::string> CtlEtcd(std::vector<std::string> args) {
    args.insert(args.begin(), BinDir() + "/cairnctl");
    args.insert(args.end(),
                {"--etcd", cluster_.etcd().url(), "--cacert", certs_.File("ca.crt"), "--cert",
                 certs_.File("cairnctl.crt"), "--key", certs_.File("cairnctl.key")});
    return RunCommand(args, seconds(20));
  }

  // Publishes through s1 over mTLS and sees the push on another client: the
  // session reached the slot's data servers.
  void ExpectPublishReachesSubscriber(const std::string& data_id) {
    auto provider = Client("app-a", cluster_.ClientTls("app-a"));
    auto consumer = Client("app-b", cluster_.ClientTls("app-b"));
    ASSERT_TRUE(provider && consumer);
    LastView view;
    auto subscription = consumer->Subscribe({Key(data_id)}, view.Callback());
    ASSERT_TRUE(subscription.ok()) << subscription.status();
    auto publisher = provider->Publish({Key(data_id), {"10.1.0.1:443"}, "", "", {}});
    ASSERT_TRUE(publisher.ok()) << publisher.status() << cluster_.Logs();
    EXPECT_TRUE(Eventually([&] { return view.Is({"10.1.0.1:443"}); }, seconds(15)))
        << cluster_.Logs();
  }

  TempDir certs_;
  ClusterHarness cluster_{16, 2};
};

TEST_F(ClusterTlsTest, PublishAndSubscribeWithMtlsOnEveryHop) {
  EXPECT_NE(cluster_.MemberLog("s1").find("(mTLS (client certificates required))"),
            std::string::npos)
      << cluster_.MemberLog("s1");
  EXPECT_NE(cluster_.MemberLog("d1").find(
                "(mTLS, peers verified against the CA and must be spiffe://cairn.local/registry)"),
            std::string::npos)
      << cluster_.MemberLog("d1");
  ExpectPublishReachesSubscriber("tls.cluster.svc");
  // Many data ids: slots on both data servers, each replicated to the other
  // (data<->data Replicate over mTLS).
  auto provider = Client("app-a", cluster_.ClientTls("app-a"));
  ASSERT_TRUE(provider);
  std::vector<std::shared_ptr<Publisher>> publishers;
  for (int i = 0; i < 20; ++i) {
    auto p = provider->Publish({Key("tls.many." + std::to_string(i)), {"10.1.1.1:1"}, "", "", {}});
    ASSERT_TRUE(p.ok()) << i << ": " << p.status();
    publishers.push_back(*p);
  }

  // The data servers' own port: only a peer with a certificate of the CA gets
  // through (a plaintext channel or one without a client pair does not).
  const std::string d1 = cluster_.Find("d1")->data_address;
  auto connects = [&](const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    auto channel = grpc::CreateChannel(d1, credentials);
    return channel->WaitForConnected(std::chrono::system_clock::now() + seconds(2));
  };
  auto peer = MakeChannelCredentials(cluster_.ClientTls("registry"));
  auto no_pair = MakeChannelCredentials(cluster_.ClientTls(""));
  ASSERT_TRUE(peer.ok() && no_pair.ok());
  EXPECT_TRUE(connects(*peer));
  EXPECT_FALSE(connects(grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(connects(*no_pair));

  // cairnctl reads the cluster from the TLS etcd with the admin certificate.
  auto [code, out] = CtlEtcd({"cluster"});
  EXPECT_EQ(code, 0) << out;
  for (const char* id : {"m1", "d1", "d2", "s1"}) {
    EXPECT_NE(out.find(id), std::string::npos) << id << "\n" << out;
  }
  auto [slots_code, slots_out] = CtlEtcd({"slots"});
  EXPECT_EQ(slots_code, 0) << slots_out;
  EXPECT_NE(slots_out.find("d1"), std::string::npos) << slots_out;
  EXPECT_NE(slots_out.find("d2"), std::string::npos) << slots_out;
  // Without a client certificate etcd refuses cairnctl.
  auto [plain_code, plain_out] =
      RunCommand({BinDir() + "/cairnctl", "cluster", "--etcd", cluster_.etcd().url(), "--cacert",
                  certs_.File("ca.crt"), "--timeout", "2"},
                 seconds(20));
  EXPECT_NE(plain_code, 0) << plain_out;
  // An https endpoint without TLS files is a usage error, not a hang.
  auto [bare_code, bare_out] = RunCommand(
      {BinDir() + "/cairnctl", "cluster", "--etcd", cluster_.etcd().url(), "--timeout", "2"},
      seconds(20));
  EXPECT_EQ(bare_code, 1) << bare_out;
  EXPECT_NE(bare_out.find("is https but no etcd TLS files"), std::string::npos) << bare_out;
}

TEST_F(ClusterTlsTest, ClientsWithoutAValidCertificateCannotUseTheSession) {
  auto plaintext = Client("plain", TlsFiles{}, milliseconds(1500));
  auto no_cert = Client("nocert", cluster_.ClientTls(""), milliseconds(1500));
  TlsFiles foreign = cluster_.ClientTls("");
  foreign.cert_file = certs_.File("other/app-a.crt");
  foreign.key_file = certs_.File("other/app-a.key");
  auto other_ca = Client("app-a", foreign, milliseconds(1500));
  ASSERT_TRUE(plaintext && no_cert && other_ca);
  for (auto* client : {plaintext.get(), no_cert.get(), other_ca.get()}) {
    auto p = client->Publish({Key("tls.refused"), {"10.9.9.9:1"}, "", "", {}});
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(client->stats().connections, 0u);
  }
  ExpectPublishReachesSubscriber("tls.after.refused");
}

// Only registry servers may call a data server: an app's certificate from
// the same CA connects (the chain verifies) but every call is refused, so an
// app cannot write around the session's policy.
TEST_F(ClusterTlsTest, AppCertificateFromTheSameCaCannotCallADataServer) {
  ClusterHarness::Member* d1 = cluster_.Find("d1");
  ASSERT_NE(d1, nullptr);
  for (const std::string name : {"app-a", "cairnctl", ""}) {
    SCOPED_TRACE(name);
    auto credentials = MakeChannelCredentials(cluster_.ClientTls(name));
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    auto stub = cpb::DataNode::NewStub(grpc::CreateChannel(d1->data_address, *credentials));
    grpc::ClientContext apply_context;
    apply_context.set_deadline(std::chrono::system_clock::now() + seconds(10));
    cpb::ApplyRequest apply;
    apply.set_session("forged");
    cpb::ApplyResponse applied;
    grpc::Status status = stub->Apply(&apply_context, apply, &applied);
    if (name.empty()) {
      // No client certificate: the TLS handshake itself fails.
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      continue;
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_NE(status.error_message().find("only spiffe://cairn.local/registry may call"),
              std::string::npos)
        << status.error_message();
    grpc::ClientContext summaries_context;
    summaries_context.set_deadline(std::chrono::system_clock::now() + seconds(10));
    cpb::SummariesResponse summaries;
    EXPECT_EQ(stub->Summaries(&summaries_context, cpb::SummariesRequest(), &summaries).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  ExpectPublishReachesSubscriber("tls.after.forged");
}

// The certificate of its gRPC port comes from another CA, though it may
// reach etcd: sessions could never call it. It finds that out by calling
// itself as a peer would, and exits before joining.
TEST_F(ClusterTlsTest, DataServerWhosePeersCannotVerifyItDoesNotJoin) {
  cluster_.UseMemberTls("d3", {certs_.File("other/registry.crt"), certs_.File("other/registry.key"),
                               "", certs_.File("registry.crt"), certs_.File("registry.key")});
  EXPECT_EQ(cluster_.Start("data", "d3"), nullptr);
  EXPECT_NE(cluster_.MemberLog("d3").find("not joining the cluster"), std::string::npos)
      << cluster_.MemberLog("d3");
  auto [code, out] = CtlEtcd({"cluster"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("d3"), std::string::npos) << out;
  auto [slots_code, slots_out] = CtlEtcd({"slots", "--all"});
  EXPECT_EQ(slots_out.find("d3"), std::string::npos) << slots_out;
  ExpectPublishReachesSubscriber("tls.after.d3");
}

// A data server wholly from another CA (its own CA too): etcd refuses its
// client certificate, so it never registers, never gets a slot, and the
// cluster serves on.
TEST_F(ClusterTlsTest, DataServerFromAnotherCaIsRefusedByEtcdAndGetsNoSlots) {
  cluster_.UseMemberTls("d4", {certs_.File("other/registry.crt"), certs_.File("other/registry.key"),
                               certs_.File("other/ca.crt"), "", ""});
  EXPECT_EQ(cluster_.Start("data", "d4"), nullptr);
  EXPECT_NE(cluster_.MemberLog("d4").find("cannot start the data role: UNAVAILABLE: etcd"),
            std::string::npos)
      << cluster_.MemberLog("d4");
  EXPECT_NE(cluster_.etcd().Log().find("tls: failed to verify client certificate"),
            std::string::npos)
      << cluster_.etcd().Log();
  auto [code, out] = CtlEtcd({"cluster"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("d4"), std::string::npos) << out;
  auto [slots_code, slots_out] = CtlEtcd({"slots", "--all"});
  EXPECT_EQ(slots_code, 0) << slots_out;
  EXPECT_EQ(slots_out.find("d4"), std::string::npos) << slots_out;
  ExpectPublishReachesSubscriber("tls.after.d4");
}

}  // namespace
}  // namespace cairn::cluster
