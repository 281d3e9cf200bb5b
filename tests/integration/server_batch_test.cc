// Server batches (registry.proto, Hello.accepts_server_batches) against the
// real `cairn registry` process on 127.0.0.1: a change seen by many
// subscribers of one connection leaves in fewer gRPC messages than pushes,
// every subscriber still gets exactly its push, acks inside a client Batch
// are applied, a client that did not ask never sees a batch, and
// RegistryClient with and without batches shows the same data.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::seconds;

constexpr int kSubscribers = 100;

class ServerBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RegistryProcess>();
    ASSERT_TRUE(server_->Start()) << server_->Log();
    stub_ = pb::Registry::NewStub(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    stub_.reset();  // its channel first: the server's shutdown would wait for it
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }

  std::unique_ptr<RegistryProcess> server_;
  std::unique_ptr<pb::Registry::Stub> stub_;
};

using RawSession = grpc::ClientReaderWriter<pb::ClientMessage, pb::ServerMessage>;

pb::ClientMessage Hello(const std::string& client_id, bool batches) {
  pb::ClientMessage m;
  m.set_request_id(1);
  m.mutable_hello()->set_client_id(client_id);
  m.mutable_hello()->set_accepts_server_batches(batches);
  return m;
}

pb::ClientMessage PublishMessage(const std::string& data, uint64_t version) {
  pb::ClientMessage m;
  m.set_request_id(100 + version);
  m.mutable_publish()->set_registration_id("p1");
  m.mutable_publish()->mutable_key()->set_data_id("svc.fan");
  m.mutable_publish()->add_data(data);
  m.mutable_publish()->set_version(version);
  return m;
}

// What one subscriber connection read: pushes by subscriber, and how many
// gRPC messages carried them.
struct Received {
  std::map<std::string, std::vector<pb::Push>> pushes;  // by registration id
  int messages = 0;
  int batches = 0;
};

// Reads until every subscriber has a push of `version` or newer (or the
// stream ends), counting the messages that carried pushes.
void ReadPushes(RawSession& stream, uint64_t version, Received& got) {
  auto done = [&] {
    if (std::ssize(got.pushes) < kSubscribers) return false;
    for (const auto& [id, pushes] : got.pushes) {
      if (pushes.back().version() < version) return false;
    }
    return true;
  };
  pb::ServerMessage m;
  while (!done() && stream.Read(&m)) {
    std::vector<pb::ServerMessage> inner;
    if (m.has_batch()) {
      ++got.batches;
      inner.assign(m.batch().messages().begin(), m.batch().messages().end());
    } else {
      inner.push_back(m);
    }
    bool carried_push = false;
    for (const auto& one : inner) {
      ASSERT_FALSE(one.has_batch()) << "batches do not nest";
      if (!one.has_push()) continue;
      carried_push = true;
      got.pushes[one.push().registration_id()].push_back(one.push());
    }
    if (carried_push) ++got.messages;
  }
}

// One Batch acknowledging the newest push of every subscriber.
pb::ClientMessage AckAll(const Received& got, uint64_t request_id) {
  pb::ClientMessage batch;
  batch.set_request_id(request_id);
  for (const auto& [id, pushes] : got.pushes) {
    pb::ClientMessage* ack = batch.mutable_batch()->add_messages();
    ack->mutable_push_ack()->set_registration_id(id);
    ack->mutable_push_ack()->set_push_id(pushes.back().push_id());
  }
  return batch;
}

// Subscribes kSubscribers times to svc.fan on one raw stream, publishes a
// change from another stream, and returns what the subscriber stream read
// for that change (the initial pushes acknowledged with one Batch).
void RunFanOut(pb::Registry::Stub& stub, bool batches, Received& change) {
  grpc::ClientContext pub_context, sub_context;
  pub_context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  sub_context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  auto publisher = stub.Session(&pub_context);
  ASSERT_TRUE(publisher->Write(Hello("batch-pub", false)));
  ASSERT_TRUE(publisher->Write(PublishMessage("10.0.0.1:80", 1)));
  pb::ServerMessage answer;
  while (publisher->Read(&answer) &&
         !(answer.has_result() && answer.result().request_id() == 101)) {
  }
  ASSERT_EQ(answer.result().code(), 0) << answer.result().message();

  auto subscriber = stub.Session(&sub_context);
  ASSERT_TRUE(subscriber->Write(Hello("batch-sub", batches)));
  for (int i = 0; i < kSubscribers; ++i) {
    pb::ClientMessage m;
    m.set_request_id(1000 + static_cast<uint64_t>(i));
    m.mutable_subscribe()->set_registration_id("s" + std::to_string(i));
    m.mutable_subscribe()->mutable_key()->set_data_id("svc.fan");
    ASSERT_TRUE(subscriber->Write(m));
  }
  Received initial;
  ReadPushes(*subscriber, 1, initial);
  ASSERT_EQ(std::ssize(initial.pushes), kSubscribers);
  // Acks inside a Batch: refused by a server that does not take them (an
  // INVALID_ARGUMENT Result for request 7); accepted, they release the
  // next push of each subscriber.
  ASSERT_TRUE(subscriber->Write(AckAll(initial, 7)));

  ASSERT_TRUE(publisher->Write(PublishMessage("10.0.0.2:80", 2)));
  ReadPushes(*subscriber, 2, change);
  ASSERT_EQ(std::ssize(change.pushes), kSubscribers);
  ASSERT_TRUE(subscriber->Write(AckAll(change, 8)));

  // Every subscriber saw each version once, with the new data last.
  for (const auto& [id, pushes] : change.pushes) {
    const pb::Push& last = pushes.back();
    EXPECT_EQ(AllData(last), std::vector<std::string>{"10.0.0.2:80"}) << id;
    std::set<uint64_t> versions;
    for (const auto& p : pushes) EXPECT_TRUE(versions.insert(p.version()).second) << id;
  }
  // The acks of the Batch were applied: the registry shows every subscriber
  // as having confirmed the newest version.
  uint64_t newest = change.pushes.begin()->second.back().version();
  bool all_acked = false;
  for (int attempt = 0; attempt < 50 && !all_acked; ++attempt) {
    grpc::ClientContext context;
    pb::DescribeRequest request;
    request.mutable_key()->set_data_id("svc.fan");
    pb::DescribeResponse described;
    ASSERT_TRUE(stub.Describe(&context, request, &described).ok());
    ASSERT_EQ(described.subscribers_size(), kSubscribers);
    all_acked = true;
    for (const auto& s : described.subscribers()) all_acked &= s.acked_version() == newest;
    if (!all_acked) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(all_acked) << "the acks sent in one Batch were not all applied";
  publisher->WritesDone();
  subscriber->WritesDone();
  sub_context.TryCancel();
  pub_context.TryCancel();
}

TEST_F(ServerBatchTest, AChangeForManySubscribersOfOneConnectionLeavesInFewerMessages) {
  Received change;
  RunFanOut(*stub_, /*batches=*/true, change);
  if (HasFatalFailure()) return;
  // 100 pushes queued back to back on one stream: the first leaves alone,
  // those that queue behind it leave together.
  EXPECT_GE(change.batches, 1);
  EXPECT_LT(change.messages, kSubscribers) << "pushes should share messages";
}

TEST_F(ServerBatchTest, AClientThatDidNotAskGetsOnePushPerMessage) {
  Received change;
  RunFanOut(*stub_, /*batches=*/false, change);
  if (HasFatalFailure()) return;
  EXPECT_EQ(change.batches, 0);
  EXPECT_EQ(change.messages, kSubscribers);
}

TEST_F(ServerBatchTest, RegistryClientWithAndWithoutBatchesSeesTheSameData) {
  auto publisher = MakeClient({server_->grpc_address()}, "pub");
  ASSERT_NE(publisher, nullptr);
  std::vector<std::shared_ptr<Publisher>> handles;
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) {
    want.push_back("10.1.0." + std::to_string(i) + ":80");
    auto handle = publisher->Publish({Key("svc.both"), {want.back()}, "", "", {}});
    ASSERT_TRUE(handle.ok()) << handle.status();
    handles.push_back(std::move(*handle));
  }
  std::vector<std::unique_ptr<RegistryClient>> clients;
  std::vector<std::unique_ptr<PushCollector>> collectors;
  std::vector<std::shared_ptr<Subscription>> subscriptions;
  for (bool batches : {true, false}) {
    RegistryClientOptions options;
    options.servers = {server_->grpc_address()};
    options.client_id = batches ? "sub-batches" : "sub-single";
    options.server_batches = batches;
    auto client = RegistryClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    for (int i = 0; i < 30; ++i) {  // 30 subscriptions per client
      collectors.push_back(std::make_unique<PushCollector>());
      auto sub = (*client)->Subscribe({Key("svc.both")}, collectors.back()->Callback());
      ASSERT_TRUE(sub.ok()) << sub.status();
      subscriptions.push_back(std::move(*sub));
    }
    clients.push_back(std::move(*client));
  }
  auto all_see = [&](const std::vector<std::string>& data) {
    std::optional<uint64_t> version;
    for (auto& c : collectors) {
      auto push = c->WaitForData(data, seconds(10));
      if (!push.has_value()) return false;
      if (version.has_value() && *version != push->version()) return false;
      version = push->version();
    }
    return true;
  };
  ASSERT_TRUE(all_see(want));
  for (int round = 0; round < 5; ++round) {
    int i = round * 3;
    want[static_cast<size_t>(i)] = "10.9." + std::to_string(round) + ".1:80";
    ASSERT_TRUE(handles[static_cast<size_t>(i)]->Republish({want[static_cast<size_t>(i)]}).ok());
    ASSERT_TRUE(all_see(want)) << "round " << round;
  }
  ASSERT_TRUE(handles[19]->Unregister().ok());
  want.pop_back();
  ASSERT_TRUE(all_see(want));
}

}  // namespace
}  // namespace cairn::testing
