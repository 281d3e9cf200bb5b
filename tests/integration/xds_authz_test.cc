// The xDS server under mTLS and an authorization policy (issues 16, 18): an
// ADS stream is checked name by name as a subscribe of its dataId with the
// identity its certificate proved (a refused name is absent, like one that
// does not exist, and the refusal is counted), and `cairnctl xds` is an
// operator's query (`query` on "", which only admins and `*` rules match).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/grpc_tls.h"
#include "dev_certs.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::seconds;
namespace ads = ::envoy::service::discovery::v3;

constexpr char kEdsType[] = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

// app-b provides both services; app-a may subscribe to svc.* only.
constexpr const char* kPolicy = R"(admins: ["spiffe://cairn.local/admin/*"]
rules:
  - name: providers
    ops: [publish]
    identities: [app:app-b]
    data_ids: ["svc.*", "secret.*"]
  - name: consumers
    ops: [subscribe]
    identities: [app:app-a]
    data_ids: ["svc.*"]
)";

class XdsAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(MakeDevCerts(certs_.path()), "");
    std::string policy = dir_.File("policy.yaml");
    std::ofstream(policy) << kPolicy;
    server_ = std::make_unique<RegistryProcess>(std::vector<std::string>{
        "--tls-cert", certs_.File("registry.crt"), "--tls-key", certs_.File("registry.key"),
        "--tls-ca", certs_.File("ca.crt"), "--policy", policy});
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
  void TearDown() override {
    publishers_.clear();
    provider_.reset();
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }

  TlsFiles FilesOf(const std::string& name) {
    TlsFiles files;
    files.ca_file = certs_.File("ca.crt");
    files.cert_file = certs_.File(name + ".crt");
    files.key_file = certs_.File(name + ".key");
    return files;
  }

  std::pair<int, std::string> CtlAs(const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), BinDir() + "/cairnctl");
    args.insert(args.end(), {"--server", server_->grpc_address(), "--cacert", certs_.File("ca.crt"),
                             "--cert", certs_.File(name + ".crt"), "--key",
                             certs_.File(name + ".key"), "--timeout", "5"});
    return RunCommand(args, seconds(20));
  }

  TempDir certs_;
  TempDir dir_;
  std::unique_ptr<RegistryProcess> server_;
  std::unique_ptr<RegistryClient> provider_;
  std::vector<std::shared_ptr<Publisher>> publishers_;
};

TEST_F(XdsAuthzTest, NamesAreCheckedAsSubscribesAndListingIsTheOperators) {
  RegistryClientOptions options;
  options.servers = {server_->grpc_address()};
  options.client_id = "app-b";
  options.app_name = "app-b";
  options.tls = FilesOf("app-b");
  auto provider = RegistryClient::Create(options);
  ASSERT_TRUE(provider.ok()) << provider.status();
  provider_ = std::move(*provider);
  for (const char* id : {"svc.open", "secret.db"}) {
    auto handle = provider_->Publish({Key(id), {"grpc://127.0.0.1:7100"}});
    ASSERT_TRUE(handle.ok()) << id << ": " << handle.status();
    publishers_.push_back(*handle);
  }

  // app-a's ADS stream asks for both: only svc.open comes.
  auto credentials = MakeChannelCredentials(FilesOf("app-a"));
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  auto stub = ads::AggregatedDiscoveryService::NewStub(
      grpc::CreateChannel(server_->grpc_address(), *credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(20));
  auto stream = stub->StreamAggregatedResources(&context);
  ads::DiscoveryRequest request;
  request.mutable_node()->set_id("app-a-node");
  request.set_type_url(kEdsType);
  request.add_resource_names("svc.open");
  request.add_resource_names("secret.db");
  ASSERT_TRUE(stream->Write(request));
  ads::DiscoveryResponse response;
  ASSERT_TRUE(stream->Read(&response)) << server_->Log();
  std::set<std::string> names;
  for (const auto& any : response.resources()) {
    envoy::config::endpoint::v3::ClusterLoadAssignment cla;
    ASSERT_TRUE(any.UnpackTo(&cla));
    names.insert(cla.cluster_name());
  }
  EXPECT_EQ(names, std::set<std::string>{"svc.open"}) << server_->Log();
  // The refusal is counted like any other (op subscribe).
  auto [mcode, metrics] = RunCommand(
      {"/usr/bin/curl", "-sS", "http://" + server_->admin_address() + "/metrics"}, seconds(10));
  EXPECT_EQ(mcode, 0) << metrics;
  EXPECT_NE(metrics.find("cairn_registry_denied_total{op=\"subscribe\""), std::string::npos)
      << metrics;

  // The operator (an admin certificate) lists the xDS clients; an app may not.
  auto [code, out] = CtlAs("cairnctl", {"--output", "json", "xds"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("app-a-node"), std::string::npos) << out;
  auto [denied_code, denied] = CtlAs("app-a", {"xds"});
  EXPECT_NE(denied_code, 0) << denied;
  EXPECT_NE(denied.find("PERMISSION_DENIED"), std::string::npos) << denied;

  context.TryCancel();
  (void)stream->Finish();
}

}  // namespace
}  // namespace cairn::testing
