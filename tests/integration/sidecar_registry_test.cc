// The sidecar with the registry: gRPC through the sidecar (the registry is
// the gRPC server), clusters fed by registry pushes while traffic flows, and
// an inbound listener that publishes its app.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// An example config from examples/ with its fixed addresses replaced (ports
// become 0, the registry and the app become the test's processes).
std::string Example(const std::string& name,
                    const std::vector<std::pair<std::string, std::string>>& replacements) {
  std::ifstream in(std::string(CAIRN_SOURCE_DIR "/examples/") + name);
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  for (const auto& [from, to] : replacements) {
    for (size_t pos = config.find(from); pos != std::string::npos; pos = config.find(from, pos)) {
      config.replace(pos, from.size(), to);
      pos += to.size();
    }
  }
  return config;
}

class SidecarRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(registry_.Start()) << registry_.Log(); }
  void TearDown() override {
    if (sidecar_ && sidecar_->process()->Running()) {
      EXPECT_EQ(sidecar_->Stop(SIGTERM), 0) << sidecar_->Log();
    }
  }
  void StartSidecar(const std::string& config) {
    sidecar_ = std::make_unique<SidecarProcess>(config);
    ASSERT_TRUE(sidecar_->Start()) << sidecar_->Log();
  }
  RegistryProcess registry_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

TEST_F(SidecarRegistryTest, GrpcUnaryAndBidiStreamsThroughTheSidecar) {
  StartSidecar(R"(
workers: 2
admin: 127.0.0.1:0
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocol: http2
    routes:
      - match: { prefix: /cairn.registry.v1.Registry/ }
        cluster: registry
        timeout_ms: 0
clusters:
  - name: registry
    protocol: http2
    endpoints: [")" +
               registry_.grpc_address() + R"("]
)");
  std::string via = sidecar_->listener("grpc");
  // A bidi Session stream through the sidecar: publish, subscribe, pushes.
  auto client = MakeClient({via}, "through-sidecar");
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WaitConnected(seconds(10)).ok());
  auto handle = client->Publish({Key("svc.grpc"), {"10.1.1.1:80"}, "", "", {}});
  ASSERT_TRUE(handle.ok()) << handle.status() << sidecar_->Log();
  PushCollector pushes;
  auto sub = client->Subscribe({Key("svc.grpc")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(pushes.WaitForData({"10.1.1.1:80"}, seconds(5)).has_value());
  ASSERT_TRUE((*handle)->Republish({"10.1.1.2:80"}).ok());
  EXPECT_TRUE(pushes.WaitForData({"10.1.1.2:80"}, seconds(5)).has_value());
  // Unary, with an error status carried in trailers.
  auto stub = pb::Registry::NewStub(grpc::CreateChannel(via, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ok_ctx;
  pb::ListDataInfosResponse list;
  ASSERT_TRUE(stub->ListDataInfos(&ok_ctx, pb::ListDataInfosRequest(), &list).ok());
  ASSERT_EQ(list.data_infos_size(), 1);
  EXPECT_EQ(list.data_infos(0).key().data_id(), "svc.grpc");
  grpc::ClientContext bad_ctx;
  pb::DescribeResponse described;
  auto status = stub->Describe(&bad_ctx, pb::DescribeRequest(), &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "data_id must not be empty");
}

TEST_F(SidecarRegistryTest, RegistryEndpointsChangeWhileRequestsFlowWithoutFailures) {
  BackendProcess a("a"), b("b");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  TempDir dir;
  auto publish = [&](const std::string& address, const std::string& file) {
    return ChildProcess::Start({BinDir() + "/cairnctl", "publish", "svc.http", address, "--server",
                                registry_.grpc_address()},
                               dir.File(file));
  };
  auto pub_a = publish(a.address(), "pub-a");
  ASSERT_TRUE(pub_a->WaitForOutput("published", seconds(10)));
  StartSidecar(R"(
workers: 2
admin: 127.0.0.1:0
registry_servers: [")" +
               registry_.grpc_address() + R"("]
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - cluster: svc
clusters:
  - name: svc
    registry: { data_id: svc.http }
)");
  std::string url = "http://" + sidecar_->listener("http") + "/slow?ms=15";
  ASSERT_TRUE(Eventually(
      [&] {
        return RunCommand({"/usr/bin/curl", "-s", url}, seconds(10)).second == "a slow\n";
      },
      seconds(10)))
      << sidecar_->Log();
  // ~400 sequential requests (about 6 s) while the endpoints change twice.
  std::vector<std::string> args = {"/usr/bin/curl", "-s", "-w", "%{http_code}\n"};
  for (int i = 0; i < 400; ++i) args.push_back(url);
  std::pair<int, std::string> result;
  std::thread traffic([&] { result = RunCommand(args, seconds(60)); });
  std::this_thread::sleep_for(milliseconds(1500));
  auto pub_b = publish(b.address(), "pub-b");
  ASSERT_TRUE(pub_b->WaitForOutput("published", seconds(10)));
  std::this_thread::sleep_for(milliseconds(1500));
  pub_a->Signal(SIGTERM);  // a leaves the registry (the process a keeps serving)
  pub_a->Wait(seconds(10));
  traffic.join();
  const std::string& out = result.second;
  EXPECT_EQ(CountOf(out, "slow\n200\n"), 400) << out.substr(0, 400);
  EXPECT_GT(CountOf(out, "b slow"), 50);
  // After a's withdrawal only b answers.
  auto tail = RunCommand({"/usr/bin/curl", "-s", url, url, url}, seconds(20)).second;
  EXPECT_EQ(tail, "b slow\nb slow\nb slow\n");
}

TEST_F(SidecarRegistryTest, InboundListenerPublishesWhileHealthyAndWithdrawsOnShutdown) {
  BackendProcess app("app");
  ASSERT_TRUE(app.Start());
  StartSidecar(R"(
workers: 1
admin: 127.0.0.1:0
registry_servers: [")" +
               registry_.grpc_address() + R"("]
listeners:
  - name: inbound
    address: 127.0.0.1:0
    publish: { data_id: svc.inbound, app: demo }
    publish_health_cluster: local
    routes:
      - cluster: local
clusters:
  - name: local
    endpoints: [")" +
               app.address() + R"("]
    health_check: { type: http, path: /health, interval_ms: 200, timeout_ms: 200, unhealthy_threshold: 1 }
)");
  auto client = MakeClient({registry_.grpc_address()}, "watcher");
  PushCollector pushes;
  auto sub = client->Subscribe({Key("svc.inbound")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  std::string endpoint = "http://" + sidecar_->listener("inbound");
  ASSERT_TRUE(pushes.WaitForData({endpoint}, seconds(10)).has_value()) << sidecar_->Log();
  // The published endpoint serves the app.
  EXPECT_EQ(RunCommand({"/usr/bin/curl", "-s", endpoint + "/"}, seconds(10)).second, "app\n");
  // The app dies: the sidecar withdraws it.
  app.Stop(SIGKILL);
  ASSERT_TRUE(pushes.WaitForData({}, seconds(10)).has_value()) << sidecar_->Log();
  // It comes back: published again.
  BackendProcess again("app");
  ASSERT_TRUE(again.Start(app.port()));
  ASSERT_TRUE(pushes.WaitForData({endpoint}, seconds(10)).has_value()) << sidecar_->Log();
  // SIGTERM: withdrawn before the sidecar exits.
  EXPECT_EQ(sidecar_->Stop(SIGTERM), 0);
  EXPECT_TRUE(pushes.WaitForData({}, seconds(5)).has_value());
}

TEST_F(SidecarRegistryTest, ExamplesRunAsDocumented) {
  BackendProcess app("echo-app");
  ASSERT_TRUE(app.Start());
  const std::vector<std::pair<std::string, std::string>> common = {
      {"127.0.0.1:9600", registry_.grpc_address()},
      {"127.0.0.1:8080", app.address()},
      {"127.0.0.1:150", "127.0.0.1:0#"},  // every example port 150xx -> 0
  };
  auto fix = [&](std::string config) {
    // "127.0.0.1:0#06" -> "127.0.0.1:0": drop what followed the rewritten prefix.
    for (size_t pos = config.find(":0#"); pos != std::string::npos; pos = config.find(":0#", pos)) {
      config.erase(pos + 2, 3);
    }
    return config;
  };
  // Inbound: publishes the app under com.example.Echo.
  SidecarProcess inbound(fix(Example("inbound-publish.yaml", common)));
  ASSERT_TRUE(inbound.Start()) << inbound.Log();
  auto watcher = MakeClient({registry_.grpc_address()}, "watcher");
  PushCollector pushes;
  auto sub = watcher->Subscribe({Key("com.example.Echo")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  std::string inbound_endpoint = "http://" + inbound.listener("inbound");
  ASSERT_TRUE(pushes.WaitForData({inbound_endpoint}, seconds(10)).has_value()) << inbound.Log();
  // Outbound: finds com.example.Echo in the registry (the inbound sidecar) and calls it.
  SidecarProcess outbound(fix(Example("outbound-http-registry.yaml", common)));
  ASSERT_TRUE(outbound.Start()) << outbound.Log();
  std::string url = "http://" + outbound.listener("outbound") + "/";
  EXPECT_TRUE(Eventually(
      [&] {
        return RunCommand({"/usr/bin/curl", "-s", url}, seconds(10)).second == "echo-app\n";
      },
      seconds(10)))
      << outbound.Log();
  // gRPC: cairnctl talks to the registry through the sidecar.
  SidecarProcess grpc(fix(Example("grpc-route.yaml", common)));
  ASSERT_TRUE(grpc.Start()) << grpc.Log();
  auto [code, list] =
      RunCommand({BinDir() + "/cairnctl", "list", "--server", grpc.listener("grpc")}, seconds(20));
  EXPECT_EQ(code, 0) << list;
  EXPECT_NE(list.find("com.example.Echo"), std::string::npos) << list;
  EXPECT_EQ(outbound.Stop(SIGTERM), 0);
  EXPECT_EQ(grpc.Stop(SIGTERM), 0);
  EXPECT_EQ(inbound.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace cairn::testing
