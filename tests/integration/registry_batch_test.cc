// Batched requests (registry.proto, "Batch") against the real `cairn
// registry` process on 127.0.0.1: raw gRPC batches and their limits, the
// client library's SessionStream coalescing queued publishes, and
// RegistryClient delivering every one of thousands of concurrent publishes.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/session_stream.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class RegistryBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RegistryProcess>();
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
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

  std::unique_ptr<RegistryProcess> server_;
};

pb::ClientMessage PublishMessage(uint64_t request_id, const std::string& reg_id,
                                 const std::string& data_id) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_publish()->set_registration_id(reg_id);
  m.mutable_publish()->mutable_key()->set_data_id(data_id);
  m.mutable_publish()->add_data("data-" + reg_id);
  m.mutable_publish()->set_version(1);
  return m;
}

size_t PublisherCount(const pb::Push& push) {
  size_t n = 0;
  for (const auto& zone : push.zones()) n += static_cast<size_t>(zone.publishers_size());
  return n;
}

// The next Result or ResultBatch on the stream, skipping anything else.
std::optional<pb::ServerMessage> NextAnswer(
    grpc::ClientReaderWriter<pb::ClientMessage, pb::ServerMessage>& stream) {
  pb::ServerMessage m;
  while (stream.Read(&m)) {
    if (m.has_result() || m.has_result_batch()) return m;
  }
  return std::nullopt;
}

TEST_F(RegistryBatchTest, RawBatchesAreAnsweredAndLimitsRefusedWhileTheStreamKeepsServing) {
  auto stub = pb::Registry::NewStub(
      grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(60));
  auto stream = stub->Session(&context);

  // A batch of three publishes: one ResultBatch with a Result each.
  pb::ClientMessage batch;
  for (int i = 1; i <= 3; ++i) {
    *batch.mutable_batch()->add_messages() =
        PublishMessage(i, "b" + std::to_string(i), "svc.raw-batch");
  }
  ASSERT_TRUE(stream->Write(batch));
  auto answer = NextAnswer(*stream);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->has_result_batch()) << answer->DebugString();
  ASSERT_EQ(answer->result_batch().results_size(), 3);
  for (const auto& result : answer->result_batch().results()) {
    EXPECT_EQ(result.code(), grpc::StatusCode::OK) << result.message();
    EXPECT_GT(result.datum_version(), 0u);
  }

  // Over the limit: one INVALID_ARGUMENT Result for the batch's own id.
  pb::ClientMessage too_big;
  too_big.set_request_id(50);
  for (int i = 0; i < 1001; ++i) {
    *too_big.mutable_batch()->add_messages() =
        PublishMessage(100 + i, "x" + std::to_string(i), "svc.raw-batch");
  }
  ASSERT_TRUE(stream->Write(too_big));
  answer = NextAnswer(*stream);
  ASSERT_TRUE(answer.has_value() && answer->has_result());
  EXPECT_EQ(answer->result().request_id(), 50u);
  EXPECT_EQ(answer->result().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(answer->result().message().find("1..1000"), std::string::npos)
      << answer->result().message();

  // A batch inside a batch: refused.
  pb::ClientMessage nested;
  nested.set_request_id(60);
  *nested.mutable_batch()->add_messages() = batch;
  ASSERT_TRUE(stream->Write(nested));
  answer = NextAnswer(*stream);
  ASSERT_TRUE(answer.has_value() && answer->has_result());
  EXPECT_EQ(answer->result().request_id(), 60u);
  EXPECT_EQ(answer->result().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(answer->result().message().find("do not nest"), std::string::npos);

  // An old-style single publish on the same stream: a plain Result.
  ASSERT_TRUE(stream->Write(PublishMessage(70, "single", "svc.raw-batch")));
  answer = NextAnswer(*stream);
  ASSERT_TRUE(answer.has_value() && answer->has_result()) << answer->DebugString();
  EXPECT_EQ(answer->result().request_id(), 70u);
  EXPECT_EQ(answer->result().code(), grpc::StatusCode::OK);

  // Exactly the four accepted publishers are visible to others.
  auto subscriber = Client("sub");
  PushCollector pushes;
  auto sub = subscriber->Subscribe({Key("svc.raw-batch")}, pushes.Callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_TRUE(
      pushes.WaitForData({"data-b1", "data-b2", "data-b3", "data-single"}, seconds(5)).has_value());
  context.TryCancel();
}

// Records what a SessionStream receives; the test thread waits on it.
class RecordingObserver final : public client_internal::StreamObserver {
 public:
  void OnStreamMessage(client_internal::SessionStream*, pb::ServerMessage message) override {
    std::lock_guard lock(mu_);
    if (message.has_result()) {
      ++messages_with_results;
      results.push_back(message.result());
    } else if (message.has_result_batch()) {
      ++messages_with_results;
      ++result_batches;
      for (const auto& r : message.result_batch().results()) results.push_back(r);
    }
    cv_.notify_all();
  }
  void OnStreamDrained(client_internal::SessionStream*) override {}
  void OnStreamDone(client_internal::SessionStream*, const grpc::Status&) override {
    std::lock_guard lock(mu_);
    done = true;
    cv_.notify_all();
  }
  template <typename Predicate>
  bool WaitFor(Predicate predicate, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, predicate);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<pb::Result> results;
  int messages_with_results = 0;
  int result_batches = 0;
  bool done = false;
};

TEST_F(RegistryBatchTest, SessionStreamCoalescesQueuedPublishesIntoBatches) {
  auto stub = pb::Registry::NewStub(
      grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  RecordingObserver observer;
  auto stream = std::make_unique<client_internal::SessionStream>(&observer, 1, "test");
  // Hello goes out first and alone; the 1,200 publishes queued behind it
  // leave as batches of at most kMaxBatchMessages.
  pb::ClientMessage hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_client_id("coalesce");
  ASSERT_TRUE(stream->Send(hello));
  constexpr int kPublishes = 1200;
  for (int i = 0; i < kPublishes; ++i) {
    ASSERT_TRUE(stream->Send(PublishMessage(2 + i, "c" + std::to_string(i), "svc.coalesce")));
  }
  stream->Start(stub.get());
  ASSERT_TRUE(observer.WaitFor(
      [&] { return observer.results.size() == kPublishes + 1 || observer.done; }, seconds(20)));
  {
    std::lock_guard lock(observer.mu_);
    std::set<uint64_t> ids;
    for (const auto& r : observer.results) {
      EXPECT_EQ(r.code(), grpc::StatusCode::OK) << r.message();
      ids.insert(r.request_id());
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(kPublishes + 1));
    // Hello's Result plus three batches (500 + 500 + 200).
    EXPECT_EQ(observer.result_batches, 3);
    EXPECT_EQ(observer.messages_with_results, 4);
  }
  stream->CloseWrites();
  ASSERT_TRUE(observer.WaitFor([&] { return observer.done; }, seconds(10)));
}

TEST_F(RegistryBatchTest, RegistryClientDeliversEveryPublishOfManyConcurrentCallers) {
  auto subscriber = Client("sub");
  std::mutex mu;
  std::condition_variable cv;
  size_t seen = 0;
  auto sub = subscriber->Subscribe({Key("svc.many")}, [&](const pb::Push& push) {
    std::lock_guard lock(mu);
    seen = PublisherCount(push);
    cv.notify_all();
  });
  ASSERT_TRUE(sub.ok()) << sub.status();

  // 50 threads x 100 blocking publishes on ONE client: the calls in flight at
  // once share the stream, so its writer coalesces them.
  auto publisher = Client("pub");
  constexpr int kThreads = 50;
  constexpr int kPerThread = 100;
  std::vector<std::vector<std::shared_ptr<Publisher>>> handles(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto handle = publisher->Publish(
            {Key("svc.many"), {"10.0." + std::to_string(t) + "." + std::to_string(i)}, "", "", {}});
        if (handle.ok()) {
          handles[t].push_back(std::move(*handle));
        } else {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, seconds(20), [&] { return seen == kThreads * kPerThread; }))
        << "subscriber sees " << seen;
  }
  // Dropping the handles unregisters them asynchronously (also coalesced).
  handles.clear();
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, seconds(20), [&] { return seen == 0; }))
      << "subscriber still sees " << seen;
}

}  // namespace
}  // namespace cairn::testing
