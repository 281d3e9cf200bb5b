// The session role's handling of `Batch` messages (registry.proto, "Batch"):
// several publishes and unregisters in one stream message, answered by one
// ResultBatch; structural errors refuse the whole batch with one Result.
#include <gtest/gtest.h>

#include <set>

#include "registry/data/local_data_server.h"
#include "registry/session/session_server.h"

namespace cairn {
namespace {

class RecordingStream : public ClientStream {
 public:
  bool Send(pb::ServerMessage&& message, bool /*droppable*/) override {
    messages.push_back(std::move(message));
    return true;
  }
  void Close(const absl::Status& /*status*/) override { closed = true; }
  void MessageHandled() override { ++handled; }
  void SetServerBatches(bool on) override { accepts_batches = on; }

  std::vector<pb::ServerMessage> messages;
  bool accepts_batches = false;
  bool closed = false;
  int handled = 0;
};

pb::ClientMessage Publish(uint64_t request_id, const std::string& reg_id,
                          const std::string& data_id = "svc.batch") {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  pb::Publish* p = m.mutable_publish();
  p->set_registration_id(reg_id);
  p->mutable_key()->set_data_id(data_id);
  p->add_data("bolt://127.0.0.1:12200/" + reg_id);
  p->set_version(1);
  return m;
}

pb::ClientMessage Unregister(uint64_t request_id, const std::string& reg_id) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_unregister()->set_registration_id(reg_id);
  return m;
}

pb::ClientMessage BatchOf(uint64_t request_id, std::vector<pb::ClientMessage> inner) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  for (auto& message : inner) *m.mutable_batch()->add_messages() = std::move(message);
  return m;
}

class SessionBatchTest : public ::testing::Test {
 protected:
  SessionBatchTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        session_(loop_, data_, metrics_, {}) {
    stream_ = std::make_shared<RecordingStream>();
    conn_ = session_.OnConnect("ipv4:127.0.0.1:1000", stream_);
  }

  // The only message sent since the last call.
  pb::ServerMessage TakeOne() {
    EXPECT_EQ(stream_->messages.size(), 1u);
    pb::ServerMessage m = stream_->messages.empty() ? pb::ServerMessage() : stream_->messages[0];
    stream_->messages.clear();
    return m;
  }

  EventLoop loop_;
  RegistryMetrics metrics_;
  LocalDataServer data_;
  SessionServer session_;
  std::shared_ptr<RecordingStream> stream_;
  uint64_t conn_ = 0;
};

TEST_F(SessionBatchTest, EachInnerMessageGetsItsOwnResultInOneResultBatch) {
  session_.OnMessage(conn_, BatchOf(0, {Publish(11, "p1"), Publish(12, "p2"), Publish(13, "p3"),
                                        Unregister(14, "p2"), Publish(15, "bad", "")}));
  EXPECT_EQ(stream_->handled, 1);  // one stream message, one flow-control credit
  pb::ServerMessage answer = TakeOne();
  ASSERT_TRUE(answer.has_result_batch()) << answer.DebugString();
  const auto& results = answer.result_batch().results();
  ASSERT_EQ(results.size(), 5);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[i].request_id(), 11u + i);
    EXPECT_EQ(results[i].code(), 0) << results[i].message();
  }
  EXPECT_GT(results[0].datum_version(), 0u);
  EXPECT_GT(results[2].datum_version(), results[0].datum_version());
  EXPECT_EQ(results[4].request_id(), 15u);
  EXPECT_EQ(results[4].code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(results[4].message(), "data_id must not be empty");
  EXPECT_EQ(session_.publisher_count(), 2u);  // p1 and p3
  EXPECT_EQ(data_.publisher_count(), 2u);
}

TEST_F(SessionBatchTest, InnerMessagesWithoutRequestIdAreNotAnswered) {
  session_.OnMessage(conn_, BatchOf(0, {Publish(0, "p1"), Publish(21, "p2")}));
  pb::ServerMessage answer = TakeOne();
  ASSERT_EQ(answer.result_batch().results_size(), 1);
  EXPECT_EQ(answer.result_batch().results(0).request_id(), 21u);
  // Nothing asked for an answer: nothing is sent.
  session_.OnMessage(conn_, BatchOf(0, {Publish(0, "p3"), Publish(0, "p4")}));
  EXPECT_TRUE(stream_->messages.empty());
  EXPECT_EQ(session_.publisher_count(), 4u);
}

TEST_F(SessionBatchTest, BatchOverTheLimitIsRefusedWholeAndTheStreamKeepsServing) {
  std::vector<pb::ClientMessage> inner;
  for (int i = 0; i <= SessionServer::kMaxBatchMessages; ++i) {
    inner.push_back(Publish(100 + i, "p" + std::to_string(i)));
  }
  session_.OnMessage(conn_, BatchOf(99, std::move(inner)));
  pb::ServerMessage answer = TakeOne();
  ASSERT_TRUE(answer.has_result()) << answer.DebugString();
  EXPECT_EQ(answer.result().request_id(), 99u);
  EXPECT_EQ(answer.result().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(answer.result().message(), "a batch holds 1..1000 messages; this one holds 1001");
  EXPECT_EQ(session_.publisher_count(), 0u);  // none of it applied
  EXPECT_FALSE(stream_->closed);

  // Exactly at the limit is fine, and so is an ordinary publish afterwards.
  inner.clear();
  for (int i = 0; i < SessionServer::kMaxBatchMessages; ++i) {
    inner.push_back(Publish(2000 + i, "q" + std::to_string(i)));
  }
  session_.OnMessage(conn_, BatchOf(0, std::move(inner)));
  EXPECT_EQ(TakeOne().result_batch().results_size(), SessionServer::kMaxBatchMessages);
  session_.OnMessage(conn_, Publish(5000, "single"));
  pb::ServerMessage single = TakeOne();
  ASSERT_TRUE(single.has_result());
  EXPECT_EQ(single.result().code(), 0);
  EXPECT_EQ(session_.publisher_count(), 1001u);
}

TEST_F(SessionBatchTest, NestedBatchIsRefusedAndNothingOfItApplied) {
  session_.OnMessage(
      conn_, BatchOf(7, {Publish(1, "p1"), BatchOf(2, {Publish(3, "p3")}), Publish(4, "p4")}));
  pb::ServerMessage answer = TakeOne();
  ASSERT_TRUE(answer.has_result());
  EXPECT_EQ(answer.result().request_id(), 7u);
  EXPECT_EQ(answer.result().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(answer.result().message(),
            "message 1 of the batch is itself a batch; batches do not nest");
  EXPECT_EQ(session_.publisher_count(), 0u);
}

TEST_F(SessionBatchTest, OnlyPublishUnregisterAndPushAckMayBeBatchedAndAnEmptyBatchIsRefused) {
  pb::ClientMessage subscribe;
  subscribe.set_request_id(2);
  subscribe.mutable_subscribe()->set_registration_id("s1");
  subscribe.mutable_subscribe()->mutable_key()->set_data_id("svc.batch");
  session_.OnMessage(conn_, BatchOf(8, {Publish(1, "p1"), subscribe}));
  pb::ServerMessage answer = TakeOne();
  EXPECT_EQ(answer.result().request_id(), 8u);
  EXPECT_EQ(answer.result().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(answer.result().message().find("not a publish, unregister or push_ack"),
            std::string::npos);

  session_.OnMessage(conn_, BatchOf(9, {}));
  answer = TakeOne();
  EXPECT_EQ(answer.result().request_id(), 9u);
  EXPECT_EQ(answer.result().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(session_.publisher_count(), 0u);
  EXPECT_EQ(stream_->handled, 2);
}

TEST_F(SessionBatchTest, SinglePublishIsStillAnsweredWithAPlainResult) {
  session_.OnMessage(conn_, Publish(42, "p1"));
  pb::ServerMessage answer = TakeOne();
  ASSERT_TRUE(answer.has_result()) << answer.DebugString();
  EXPECT_EQ(answer.result().request_id(), 42u);
  EXPECT_EQ(answer.result().code(), 0);
  EXPECT_TRUE(answer.result().message().empty());
  EXPECT_GT(answer.result().datum_version(), 0u);
}

TEST_F(SessionBatchTest, BatchedPublishesReachSubscribersLikeSingleOnes) {
  auto sub_stream = std::make_shared<RecordingStream>();
  uint64_t sub_conn = session_.OnConnect("ipv4:127.0.0.1:2000", sub_stream);
  pb::ClientMessage subscribe;
  subscribe.set_request_id(1);
  subscribe.mutable_subscribe()->set_registration_id("s1");
  subscribe.mutable_subscribe()->mutable_key()->set_data_id("svc.batch");
  session_.OnMessage(sub_conn, subscribe);
  loop_.PollForTest();
  ASSERT_EQ(sub_stream->messages.size(), 2u);  // result, empty push
  pb::ClientMessage ack;
  ack.mutable_push_ack()->set_registration_id("s1");
  ack.mutable_push_ack()->set_push_id(sub_stream->messages[1].push().push_id());
  session_.OnMessage(sub_conn, ack);
  sub_stream->messages.clear();

  session_.OnMessage(conn_, BatchOf(0, {Publish(1, "p1"), Publish(2, "p2"), Publish(3, "p3")}));
  loop_.PollForTest();
  ASSERT_FALSE(sub_stream->messages.empty());
  const pb::Push& push = sub_stream->messages.back().push();
  ASSERT_EQ(push.zones_size(), 1);
  EXPECT_EQ(push.zones(0).publishers_size(), 3);
}

TEST_F(SessionBatchTest, PushAcksInABatchAreAppliedAndGetNoAnswer) {
  pb::ClientMessage hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_client_id("c1");
  hello.mutable_hello()->set_accepts_server_batches(true);
  session_.OnMessage(conn_, hello);
  EXPECT_TRUE(stream_->accepts_batches) << "the Hello's wish reaches the stream";
  for (const char* id : {"s1", "s2"}) {
    pb::ClientMessage subscribe;
    subscribe.mutable_subscribe()->set_registration_id(id);
    subscribe.mutable_subscribe()->mutable_key()->set_data_id("svc.batch");
    session_.OnMessage(conn_, subscribe);
  }
  loop_.PollForTest();
  std::vector<pb::ClientMessage> acks;
  for (const auto& m : stream_->messages) {
    if (!m.has_push()) continue;
    pb::ClientMessage ack;
    ack.mutable_push_ack()->set_registration_id(m.push().registration_id());
    ack.mutable_push_ack()->set_push_id(m.push().push_id());
    acks.push_back(std::move(ack));
  }
  ASSERT_EQ(acks.size(), 2u);
  stream_->messages.clear();

  // Both acks and a publish in one batch: one answer, for the publish only.
  acks.push_back(Publish(6, "p1"));
  session_.OnMessage(conn_, BatchOf(5, acks));
  loop_.PollForTest();
  int answers = 0;
  std::set<std::string> pushed;
  for (const auto& m : stream_->messages) {
    if (m.has_result_batch()) {
      ++answers;
      ASSERT_EQ(m.result_batch().results_size(), 1) << m.DebugString();
      EXPECT_EQ(m.result_batch().results(0).request_id(), 6u);
      EXPECT_EQ(m.result_batch().results(0).code(), 0);
    }
    EXPECT_FALSE(m.has_result()) << "an accepted batch has no Result: " << m.DebugString();
    // Without the acks applied, the next push would wait for the 2 s ack
    // timeout instead of following the publish at once.
    if (m.has_push() && m.push().zones_size() == 1) pushed.insert(m.push().registration_id());
  }
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(pushed, (std::set<std::string>{"s1", "s2"}));
}

}  // namespace
}  // namespace cairn
