// The standalone registry as users run it: the real `cairn registry`
// process on 127.0.0.1, real gRPC clients (the C++ RegistryClient, raw
// stubs), real cairnctl processes and curl.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kKeepaliveMs = 1500;

class RegistryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RegistryProcess>(
        std::vector<std::string>{"--keepalive-timeout-ms", std::to_string(kKeepaliveMs),
                                 "--min-keepalive-timeout-ms", "500"});
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
  // A clean shutdown exits 0; under ASan/UBSan a report at exit would not.
  void TearDown() override {
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }
  std::unique_ptr<RegistryClient> Client(const std::string& id) {
    auto client = MakeClient({server_->grpc_address()}, id);
    EXPECT_NE(client, nullptr);
    EXPECT_TRUE(client->WaitConnected(seconds(10)).ok());
    return client;
  }
  std::string Cairnctl() const { return BinDir() + "/cairnctl"; }

  std::unique_ptr<RegistryProcess> server_;
};

TEST_F(RegistryIntegrationTest, PublishThenSubscribeSeesIt) {
  auto publisher = Client("pub");
  auto subscriber = Client("sub");
  auto handle =
      publisher->Publish({Key("svc.echo"), {"bolt://127.0.0.1:12200?weight=100"}, "", "", {}});
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_GT((*handle)->datum_version(), 0u);
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.echo")}, pushes.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto push = pushes.WaitForData({"bolt://127.0.0.1:12200?weight=100"}, seconds(5));
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->version(), (*handle)->datum_version());
  EXPECT_FALSE(push->empty());
}

TEST_F(RegistryIntegrationTest, EmptyDatumIsPushedMarkedEmptyAtOnce) {
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.nobody")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Eventually([&] { return pushes.Count() >= 1; }, seconds(5)));
  EXPECT_TRUE(pushes.All()[0].empty());
}

TEST_F(RegistryIntegrationTest, SecondPublisherPushesANewVersion) {
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.two")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  auto a = Client("a");
  auto b = Client("b");
  auto pa = a->Publish({Key("svc.two"), {"10.0.0.1:80"}, "", "", {}});
  ASSERT_TRUE(pa.ok());
  auto first = pushes.WaitForData({"10.0.0.1:80"}, seconds(5));
  ASSERT_TRUE(first.has_value());
  auto pb_ = b->Publish({Key("svc.two"), {"10.0.0.2:80"}, "", "", {}});
  ASSERT_TRUE(pb_.ok());
  auto second = pushes.WaitForData({"10.0.0.1:80", "10.0.0.2:80"}, seconds(5));
  ASSERT_TRUE(second.has_value());
  EXPECT_GT(second->version(), first->version());
  // Republish replaces the data under a newer version.
  ASSERT_TRUE((*pa)->Republish({"10.0.0.3:80"}).ok());
  auto third = pushes.WaitForData({"10.0.0.2:80", "10.0.0.3:80"}, seconds(5));
  ASSERT_TRUE(third.has_value());
  EXPECT_GT(third->version(), second->version());
}

TEST_F(RegistryIntegrationTest, KilledPublisherProcessIsRemovedAndSubscribersPushed) {
  TempDir dir;
  auto publisher = ChildProcess::Start({Cairnctl(), "publish", "svc.kill", "bolt://127.0.0.1:1",
                                        "--server", server_->grpc_address()},
                                       dir.File("pub.out"));
  ASSERT_NE(publisher, nullptr);
  ASSERT_TRUE(publisher->WaitForOutput("published", seconds(10))) << publisher->Output();
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.kill")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(pushes.WaitForData({"bolt://127.0.0.1:1"}, seconds(5)).has_value());
  auto killed_at = std::chrono::steady_clock::now();
  publisher->Signal(SIGKILL);
  auto removal = pushes.WaitForData({}, milliseconds(kKeepaliveMs + 1000));
  ASSERT_TRUE(removal.has_value()) << "publisher not removed within the keepalive timeout";
  EXPECT_TRUE(removal->empty());
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, milliseconds(kKeepaliveMs + 1000));
}

TEST_F(RegistryIntegrationTest, FrozenPublisherIsRemovedByTheKeepaliveTimeout) {
  // SIGSTOP keeps the TCP connection open but silences the client: only the
  // server's keepalive timeout can notice.
  TempDir dir;
  auto publisher = ChildProcess::Start({Cairnctl(), "publish", "svc.frozen", "bolt://127.0.0.1:2",
                                        "--server", server_->grpc_address()},
                                       dir.File("pub.out"));
  ASSERT_NE(publisher, nullptr);
  ASSERT_TRUE(publisher->WaitForOutput("published", seconds(10))) << publisher->Output();
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.frozen")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(pushes.WaitForData({"bolt://127.0.0.1:2"}, seconds(5)).has_value());
  auto frozen_at = std::chrono::steady_clock::now();
  publisher->Signal(SIGSTOP);
  // cairnctl asks for the server default (1500 ms here); allow the sweep and
  // the client's own ping interval on top.
  auto removal = pushes.WaitForData({}, seconds(30));
  auto elapsed = std::chrono::steady_clock::now() - frozen_at;
  publisher->Signal(SIGKILL);
  ASSERT_TRUE(removal.has_value());
  EXPECT_GE(elapsed, milliseconds(kKeepaliveMs - 600)) << "removed before the timeout";
  EXPECT_LT(elapsed, milliseconds(kKeepaliveMs + 6000));
}

TEST_F(RegistryIntegrationTest, RestartedServerGetsEverythingReplayed) {
  auto publisher = Client("pub");
  auto subscriber = Client("sub");
  auto handle = publisher->Publish({Key("svc.restart"), {"127.0.0.1:7001"}, "", "", {}});
  ASSERT_TRUE(handle.ok());
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.restart")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  auto before = pushes.WaitForData({"127.0.0.1:7001"}, seconds(5));
  ASSERT_TRUE(before.has_value());
  size_t pushes_before = pushes.Count();

  ASSERT_TRUE(server_->Restart()) << server_->Log();
  // After the replay the datum is rebuilt; any push the subscriber gets is at
  // a newer version (the version clock survives restarts) and it ends with
  // the same data.
  ASSERT_TRUE(Eventually(
      [&] {
        auto all = pushes.All();
        return all.size() > pushes_before && AllData(all.back()) == AllData(*before);
      },
      seconds(15)))
      << server_->Log();
  for (const auto& push : pushes.All()) EXPECT_GE(push.version(), before->version());
  EXPECT_GT(pushes.All().back().version(), before->version());
  // The replayed publisher still works.
  ASSERT_TRUE((*handle)->Republish({"127.0.0.1:7002"}).ok());
  EXPECT_TRUE(pushes.WaitForData({"127.0.0.1:7002"}, seconds(5)).has_value());
}

TEST_F(RegistryIntegrationTest, ClientMovesOnFromADeadServerInItsList) {
  // Port 1 on loopback refuses connections: the client must go to the next server.
  auto client = MakeClient({"127.0.0.1:1", server_->grpc_address()}, "failover");
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WaitConnected(seconds(10)).ok());
  EXPECT_EQ(client->ConnectedServer(), server_->grpc_address());
  auto handle = client->Publish({Key("svc.failover"), {"x"}, "", "", {}});
  EXPECT_TRUE(handle.ok()) << handle.status();
}

// ---- raw gRPC: what any-language clients see ----

// Delta pushes, production shape: 30 publishers of one service over three
// clients, a subscriber that takes deltas and one that does not. After every
// kind of change (republish, unregister, a whole client gone) both see the
// same data, and the registry sent deltas (the last changes touch one
// publisher of 30).
TEST_F(RegistryIntegrationTest, DeltaAndWholePushSubscribersSeeTheSameData) {
  std::vector<std::unique_ptr<RegistryClient>> publishers;
  std::vector<std::shared_ptr<Publisher>> handles;
  std::vector<std::string> want;
  for (int c = 0; c < 3; ++c) {
    publishers.push_back(Client("pub-" + std::to_string(c)));
    for (int i = 0; i < 10; ++i) {
      std::string data = "10.0." + std::to_string(c) + "." + std::to_string(i) + ":80";
      auto handle = publishers.back()->Publish({Key("svc.delta"), {data}, "", "", {}});
      ASSERT_TRUE(handle.ok()) << handle.status();
      handles.push_back(std::move(*handle));
      want.push_back(data);
    }
  }
  auto delta_client = Client("sub-delta");
  RegistryClientOptions whole_options;
  whole_options.servers = {server_->grpc_address()};
  whole_options.client_id = "sub-whole";
  whole_options.delta_pushes = false;
  auto whole_client = RegistryClient::Create(whole_options);
  ASSERT_TRUE(whole_client.ok()) << whole_client.status();
  PushCollector deltas, wholes;
  auto s1 = delta_client->Subscribe({Key("svc.delta")}, deltas.Callback());
  auto s2 = (*whole_client)->Subscribe({Key("svc.delta")}, wholes.Callback());
  ASSERT_TRUE(s1.ok() && s2.ok());
  auto both_see = [&](const std::vector<std::string>& data) {
    auto a = deltas.WaitForData(data, seconds(10));
    auto b = wholes.WaitForData(data, seconds(10));
    return a.has_value() && b.has_value() && a->version() == b->version();
  };
  ASSERT_TRUE(both_see(want));

  ASSERT_TRUE(handles[4]->Republish({"10.9.9.4:80"}).ok());
  want[4] = "10.9.9.4:80";
  ASSERT_TRUE(both_see(want));
  ASSERT_TRUE(handles[15]->Unregister().ok());
  want.erase(want.begin() + 15);
  ASSERT_TRUE(both_see(want));
  // pub-2's stream ends: its ten publishers go at once.
  publishers[2].reset();
  want.erase(want.begin() + 19, want.end());
  ASSERT_TRUE(both_see(want));
  ASSERT_TRUE(handles[7]->Republish({"10.9.9.7:80"}).ok());
  want[7] = "10.9.9.7:80";
  ASSERT_TRUE(both_see(want));

  auto [code, metrics] = RunCommand(
      {"/usr/bin/curl", "-sS", "http://" + server_->admin_address() + "/metrics"}, seconds(10));
  ASSERT_EQ(code, 0);
  auto at = metrics.find("\ncairn_registry_delta_pushes_total ");
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::stod(metrics.substr(at + 35)), 2) << "the one-publisher changes went as deltas";
  EXPECT_NE(metrics.find("\ncairn_registry_delta_need_full_total 0"), std::string::npos);
}

class RawStream {
 public:
  explicit RawStream(const std::string& address)
      : stub_(pb::Registry::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    context_.set_deadline(std::chrono::system_clock::now() + seconds(60));
    stream_ = stub_->Session(&context_);
  }
  ~RawStream() { Cancel(); }
  void Cancel() { context_.TryCancel(); }
  bool Write(const pb::ClientMessage& m) { return stream_->Write(m); }
  // Reads until a Result for request_id arrives (skipping pushes/pongs).
  std::optional<pb::Result> ResultFor(uint64_t request_id) {
    pb::ServerMessage m;
    while (stream_->Read(&m)) {
      if (m.has_result() && m.result().request_id() == request_id) return m.result();
      if (m.has_push()) pushes.push_back(m.push());
    }
    return std::nullopt;
  }
  bool Read(pb::ServerMessage* m) { return stream_->Read(m); }
  grpc::Status Finish() { return stream_->Finish(); }
  std::vector<pb::Push> pushes;

 private:
  std::unique_ptr<pb::Registry::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::ClientMessage, pb::ServerMessage>> stream_;
};

pb::ClientMessage PublishMessage(uint64_t request_id, const std::string& reg_id,
                                 const std::string& data_id, uint64_t version,
                                 const std::string& data = "x") {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_publish()->set_registration_id(reg_id);
  m.mutable_publish()->mutable_key()->set_data_id(data_id);
  m.mutable_publish()->add_data(data);
  m.mutable_publish()->set_version(version);
  return m;
}

TEST_F(RegistryIntegrationTest, BadInputGetsAClearStatusAndTheStreamKeepsServing) {
  RawStream raw(server_->grpc_address());
  ASSERT_TRUE(raw.Write(PublishMessage(1, "r1", "", 1)));
  auto r1 = raw.ResultFor(1);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r1->message(), "data_id must not be empty");

  ASSERT_TRUE(raw.Write(PublishMessage(2, "r2", std::string(300, 'x'), 1)));
  auto r2 = raw.ResultFor(2);
  EXPECT_EQ(r2->code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r2->message().find("limit is 256"), std::string::npos) << r2->message();

  // A field this server does not know (number 99 inside Publish).
  pb::ClientMessage unknown = PublishMessage(3, "r3", "svc.bad", 1);
  std::string bytes = unknown.publish().SerializeAsString() + std::string("\x98\x06\x01", 3);
  ASSERT_TRUE(unknown.mutable_publish()->ParseFromString(bytes));
  ASSERT_TRUE(raw.Write(unknown));
  auto r3 = raw.ResultFor(3);
  EXPECT_EQ(r3->code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r3->message().find("unknown field number 99"), std::string::npos) << r3->message();

  pb::ClientMessage empty;
  empty.set_request_id(4);
  ASSERT_TRUE(raw.Write(empty));
  EXPECT_EQ(raw.ResultFor(4)->code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(raw.Write(PublishMessage(5, "r5", "svc.bad", 7, "v7")));
  EXPECT_EQ(raw.ResultFor(5)->code(), grpc::StatusCode::OK);
  ASSERT_TRUE(raw.Write(PublishMessage(6, "r5", "svc.bad", 6, "v6")));
  auto r6 = raw.ResultFor(6);
  EXPECT_EQ(r6->code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(r6->message().find("older version 6"), std::string::npos);

  // The accepted publisher is intact and visible to others.
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.bad")}, pushes.Callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(pushes.WaitForData({"v7"}, seconds(5)).has_value());
}

TEST_F(RegistryIntegrationTest, OversizedMessageEndsOnlyThatStream) {
  RawStream raw(server_->grpc_address());
  pb::ClientMessage huge = PublishMessage(1, "big", "svc.big", 1, std::string(5 << 20, 'x'));
  raw.Write(huge);
  pb::ServerMessage m;
  while (raw.Read(&m)) {
  }
  grpc::Status status = raw.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  auto client = Client("after");
  EXPECT_TRUE(client->Publish({Key("svc.after"), {"ok"}, "", "", {}}).ok());
}

TEST_F(RegistryIntegrationTest, UndecodableMessageEndsOnlyThatStreamWithAStatus) {
  RawStream raw(server_->grpc_address());
  // proto3 strings must be UTF-8; the server cannot decode this message.
  ASSERT_TRUE(raw.Write(PublishMessage(1, "r\xff\xfe", "svc.utf8", 1)));
  pb::ServerMessage m;
  while (raw.Read(&m)) {
  }
  grpc::Status status = raw.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("UTF-8"), std::string::npos) << status.error_message();
  auto client = Client("after");
  EXPECT_TRUE(client->Publish({Key("svc.after"), {"ok"}, "", "", {}}).ok());
}

TEST_F(RegistryIntegrationTest, UnaryQueriesAndHealthService) {
  auto publisher = Client("query-client");
  // Handles unregister when destroyed: keep it for the whole test.
  auto handle = publisher->Publish({Key("svc.q"), {"127.0.0.1:1"}, "", "zone-a", {}});
  ASSERT_TRUE(handle.ok());
  auto channel = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = pb::Registry::NewStub(channel);
  {
    grpc::ClientContext ctx;
    pb::ListDataInfosRequest req;
    pb::ListDataInfosResponse resp;
    ASSERT_TRUE(stub->ListDataInfos(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.data_infos_size(), 1);
    EXPECT_EQ(resp.data_infos(0).key().data_id(), "svc.q");
    EXPECT_EQ(resp.data_infos(0).publishers(), 1u);
  }
  {
    grpc::ClientContext ctx;
    pb::DescribeRequest req;
    req.mutable_key()->set_data_id("svc.q");
    pb::DescribeResponse resp;
    ASSERT_TRUE(stub->Describe(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.publishers_size(), 1);
    EXPECT_EQ(resp.publishers(0).zone(), "zone-a");
    EXPECT_EQ(resp.publishers(0).owner().client_id(), "query-client");
  }
  {
    grpc::ClientContext ctx;
    pb::DescribeRequest req;  // no data_id
    pb::DescribeResponse resp;
    auto status = stub->Describe(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    // grpc.health.v1.Health/Check with an empty request: SERVING is field 1 = 1.
    grpc::GenericStub generic(channel);
    grpc::ClientContext ctx;
    grpc::Slice empty_slice;
    grpc::ByteBuffer request(&empty_slice, 1), response;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        std::lock_guard lock(mu);
                        status = s;
                        done = true;
                        cv.notify_all();
                      });
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(5), [&] { return done; }));
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    EXPECT_EQ(bytes, std::string("\x08\x01", 2));
  }
}

TEST_F(RegistryIntegrationTest, AdminHttpAnswersCurl) {
  auto publisher = Client("admin-client");
  auto handle = publisher->Publish({Key("svc.admin"), {"127.0.0.1:9"}, "", "", {}});
  ASSERT_TRUE(handle.ok());
  std::string base = "http://" + server_->admin_address();
  auto [hc, health] =
      RunCommand({"/usr/bin/curl", "-sS", "-w", "\n%{http_code}", base + "/health"}, seconds(10));
  EXPECT_EQ(hc, 0);
  EXPECT_NE(health.find("SERVING"), std::string::npos);
  EXPECT_NE(health.find("\n200"), std::string::npos);
  auto [mc, metrics] = RunCommand({"/usr/bin/curl", "-sS", base + "/metrics"}, seconds(10));
  EXPECT_NE(metrics.find("cairn_registry_publishers 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("cairn_registry_push_latency_seconds_bucket"), std::string::npos);
  auto [dc, describe] = RunCommand(
      {"/usr/bin/curl", "-sS", base + "/api/v1/datainfo?data_id=svc.admin"}, seconds(10));
  EXPECT_NE(describe.find("\"127.0.0.1:9\""), std::string::npos) << describe;
  EXPECT_NE(describe.find("admin-client"), std::string::npos);
  auto [cc, clients] =
      RunCommand({"/usr/bin/curl", "-sS", base + "/api/v1/clients?address=127.0.0.1"}, seconds(10));
  EXPECT_NE(clients.find("svc.admin"), std::string::npos) << clients;
  auto [nc, missing] =
      RunCommand({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", base + "/nope"},
                 seconds(10));
  EXPECT_EQ(missing, "404");
}

// ---- limits: a flood and a client that never acks ----

class RegistryLimitsTest : public RegistryIntegrationTest {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RegistryProcess>(
        std::vector<std::string>{"--max-registrations-per-client", "100", "--push-ack-timeout-ms",
                                 "100", "--push-max-attempts", "3"});
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
};

TEST_F(RegistryLimitsTest, FloodOfRegistrationsIsBoundedAndOthersKeepWorking) {
  RawStream raw(server_->grpc_address());
  for (int i = 1; i <= 150; ++i) {
    ASSERT_TRUE(raw.Write(
        PublishMessage(i, "flood-" + std::to_string(i), "svc.flood." + std::to_string(i), 1)));
  }
  int ok = 0, exhausted = 0;
  for (int i = 1; i <= 150; ++i) {
    auto r = raw.ResultFor(i);
    ASSERT_TRUE(r.has_value());
    if (r->code() == 0) ++ok;
    if (r->code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
  }
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(exhausted, 50);
  auto other = Client("other");
  EXPECT_TRUE(other->Publish({Key("svc.other"), {"fine"}, "", "", {}}).ok());
}

TEST_F(RegistryLimitsTest, SubscriberThatNeverAcksIsPausedNotHammered) {
  RawStream raw(server_->grpc_address());
  pb::ClientMessage sub;
  sub.set_request_id(1);
  sub.mutable_subscribe()->set_registration_id("mute");
  sub.mutable_subscribe()->mutable_key()->set_data_id("svc.mute");
  ASSERT_TRUE(raw.Write(sub));
  ASSERT_TRUE(raw.ResultFor(1).has_value());
  // Keep the stream alive with pings but never ack; count pushes for 2 s.
  std::atomic<int> pushes{0};
  std::thread reader([&] {
    pb::ServerMessage m;
    while (raw.Read(&m)) {
      if (m.has_push()) ++pushes;
    }
  });
  auto publisher = Client("pub");
  auto handle = publisher->Publish({Key("svc.mute"), {"a"}, "", "", {}});
  ASSERT_TRUE(handle.ok());
  for (int i = 0; i < 8; ++i) {
    pb::ClientMessage ping;
    ping.mutable_ping()->set_nonce(i);
    raw.Write(ping);
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_LE(pushes.load(), 3) << "retries must stop after push_max_attempts";
  EXPECT_GE(pushes.load(), 2) << "an unacked push is retried";
  // Everyone else is still served.
  auto other = Client("other");
  PushCollector collected;
  auto other_sub = other->Subscribe({Key("svc.mute")}, collected.Callback());
  ASSERT_TRUE(other_sub.ok());
  EXPECT_TRUE(collected.WaitForData({"a"}, seconds(5)).has_value());
  auto [code, metrics] = RunCommand(
      {"/usr/bin/curl", "-sS", "http://" + server_->admin_address() + "/metrics"}, seconds(10));
  EXPECT_NE(metrics.find("cairn_registry_pushes_total{result=\"given_up\"} 1"), std::string::npos)
      << metrics;
  raw.Cancel();  // unblocks the reader
  reader.join();
}

}  // namespace
}  // namespace cairn::testing
