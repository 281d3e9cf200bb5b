#include "registry/session/session_server.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "registry/data/local_data_server.h"

namespace cairn {
namespace {

class FakeStream : public ClientStream {
 public:
  bool Send(pb::ServerMessage&& message, bool /*droppable*/) override {
    if (closed) return false;
    messages.push_back(std::move(message));
    return true;
  }
  void Close(const absl::Status& status) override {
    closed = true;
    close_status = status;
  }
  void MessageHandled() override { ++handled; }

  std::vector<pb::Result> Results() const {
    std::vector<pb::Result> out;
    for (const auto& m : messages) {
      if (m.has_result()) out.push_back(m.result());
    }
    return out;
  }
  std::vector<pb::Push> Pushes() const {
    std::vector<pb::Push> out;
    for (const auto& m : messages) {
      if (m.has_push()) out.push_back(m.push());
    }
    return out;
  }
  std::vector<pb::ServerMessage> messages;
  bool closed = false;
  absl::Status close_status;
  int handled = 0;
};

class SessionServerTest : public ::testing::Test {
 protected:
  SessionServerTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        session_(loop_, data_, metrics_, Options()) {}
  static SessionOptions Options() {
    SessionOptions o;
    o.max_registrations_per_client = 3;
    o.keepalive_timeout = std::chrono::milliseconds(600);
    o.min_keepalive_timeout = std::chrono::milliseconds(200);
    return o;
  }
  std::pair<uint64_t, std::shared_ptr<FakeStream>> Connect(const std::string& peer) {
    auto stream = std::make_shared<FakeStream>();
    uint64_t id = session_.OnConnect(peer, stream);
    return {id, stream};
  }
  static pb::ClientMessage PublishMsg(uint64_t request_id, const std::string& reg_id,
                                      uint64_t version, std::vector<std::string> data,
                                      const std::string& data_id = "svc") {
    pb::ClientMessage m;
    m.set_request_id(request_id);
    pb::Publish* p = m.mutable_publish();
    p->set_registration_id(reg_id);
    p->mutable_key()->set_data_id(data_id);
    for (auto& d : data) p->add_data(d);
    p->set_version(version);
    return m;
  }
  static pb::ClientMessage SubscribeMsg(uint64_t request_id, const std::string& reg_id) {
    pb::ClientMessage m;
    m.set_request_id(request_id);
    m.mutable_subscribe()->set_registration_id(reg_id);
    m.mutable_subscribe()->mutable_key()->set_data_id("svc");
    return m;
  }
  static pb::ClientMessage AckMsg(const pb::Push& push) {
    pb::ClientMessage m;
    m.mutable_push_ack()->set_registration_id(push.registration_id());
    m.mutable_push_ack()->set_push_id(push.push_id());
    return m;
  }
  void Poll() { loop_.PollForTest(); }

  EventLoop loop_;
  RegistryMetrics metrics_;
  LocalDataServer data_;
  SessionServer session_;
};

TEST_F(SessionServerTest, PublishIsPushedToSubscriberAndRemovedWhenPublisherDisconnects) {
  auto [sub_conn, sub] = Connect("ipv4:127.0.0.1:1000");
  auto [pub_conn, pub] = Connect("ipv4:127.0.0.1:2000");
  session_.OnMessage(sub_conn, SubscribeMsg(1, "s1"));
  Poll();
  ASSERT_EQ(sub->Pushes().size(), 1u);
  EXPECT_TRUE(sub->Pushes()[0].empty());
  session_.OnMessage(sub_conn, AckMsg(sub->Pushes()[0]));

  session_.OnMessage(pub_conn, PublishMsg(7, "p1", 1, {"bolt://127.0.0.1:12200"}));
  ASSERT_EQ(pub->Results().size(), 1u);
  EXPECT_EQ(pub->Results()[0].request_id(), 7u);
  EXPECT_EQ(pub->Results()[0].code(), 0);
  uint64_t published_version = pub->Results()[0].datum_version();
  Poll();
  ASSERT_EQ(sub->Pushes().size(), 2u);
  const pb::Push push = sub->Pushes()[1];
  EXPECT_EQ(push.version(), published_version);
  ASSERT_EQ(push.zones_size(), 1);
  EXPECT_EQ(push.zones(0).zone(), "DEFAULT_ZONE");
  EXPECT_EQ(push.zones(0).publishers(0).data(0), "bolt://127.0.0.1:12200");
  session_.OnMessage(sub_conn, AckMsg(push));

  session_.OnDisconnect(pub_conn, "test");
  Poll();
  ASSERT_EQ(sub->Pushes().size(), 3u);
  EXPECT_TRUE(sub->Pushes()[2].empty());
  EXPECT_GT(sub->Pushes()[2].version(), published_version);
  EXPECT_EQ(session_.publisher_count(), 0u);
  EXPECT_EQ(metrics_.publishers.Value(), 0);
}

TEST_F(SessionServerTest, PrepareForShutdownEndsEveryStreamWithoutUnpublishingOneByOne) {
  auto [a_conn, a] = Connect("ipv4:127.0.0.1:1000");
  auto [b_conn, b] = Connect("ipv4:127.0.0.1:2000");
  session_.OnMessage(a_conn, PublishMsg(1, "p1", 1, {"a"}));
  session_.OnMessage(b_conn, PublishMsg(1, "p2", 1, {"b"}));
  std::shared_ptr<const DatumSnapshot> before;
  data_.Fetch("svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", [&](auto s) { before = s; });
  ASSERT_EQ(before->publishers.size(), 2u);

  session_.PrepareForShutdown();
  EXPECT_TRUE(a->closed);
  EXPECT_TRUE(b->closed);
  EXPECT_EQ(a->close_status.code(), absl::StatusCode::kUnavailable);
  // The streams' ends arrive as disconnects, as from gRPC.
  session_.OnDisconnect(a_conn, "closed");
  session_.OnDisconnect(b_conn, "closed");
  EXPECT_EQ(session_.connection_count(), 0u);
  std::shared_ptr<const DatumSnapshot> after;
  data_.Fetch("svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", [&](auto s) { after = s; });
  EXPECT_EQ(after->version, before->version) << "no datum change while shutting down";
  EXPECT_EQ(after->publishers.size(), 2u);
}

TEST_F(SessionServerTest, EveryMessageIsAcknowledgedToTheStreamForFlowControl) {
  auto [conn, stream] = Connect("ipv4:127.0.0.1:1000");
  session_.OnMessage(conn, PublishMsg(1, "p1", 1, {"a"}));
  pb::ClientMessage ping;
  ping.mutable_ping()->set_nonce(42);
  session_.OnMessage(conn, ping);
  EXPECT_EQ(stream->handled, 2);
  EXPECT_EQ(stream->messages.back().pong().nonce(), 42u);
}

TEST_F(SessionServerTest, BadInputIsRefusedWithAClearStatusAndTheStreamKeepsWorking) {
  auto [conn, stream] = Connect("ipv4:127.0.0.1:1000");
  session_.OnMessage(conn, PublishMsg(1, "p1", 1, {"a"}, /*data_id=*/""));
  pb::ClientMessage empty;
  empty.set_request_id(2);
  session_.OnMessage(conn, empty);
  session_.OnMessage(conn, PublishMsg(3, "p1", 5, {"a"}));
  session_.OnMessage(conn, PublishMsg(4, "p1", 4, {"older"}));
  session_.OnMessage(conn, PublishMsg(5, "p1", 6, {"a"}, "other-service"));
  pb::ClientMessage unregister;
  unregister.set_request_id(6);
  unregister.mutable_unregister()->set_registration_id("nope");
  session_.OnMessage(conn, unregister);
  auto results = stream->Results();
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(results[0].code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(results[0].message(), "data_id must not be empty");
  EXPECT_EQ(results[1].code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(results[2].code(), 0);
  EXPECT_EQ(results[3].code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(results[4].code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(results[4].message().find("already used"), std::string::npos);
  EXPECT_EQ(results[5].code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_FALSE(stream->closed);
  EXPECT_EQ(session_.publisher_count(), 1u);  // the accepted one is intact
}

TEST_F(SessionServerTest, RegistrationLimitPerStreamIsEnforced) {
  auto [conn, stream] = Connect("ipv4:127.0.0.1:1000");
  for (int i = 0; i < 4; ++i) {
    session_.OnMessage(
        conn, PublishMsg(i + 1, "p" + std::to_string(i), 1, {"a"}, "svc" + std::to_string(i)));
  }
  auto results = stream->Results();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[2].code(), 0);
  EXPECT_EQ(results[3].code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  // Republishing an existing registration is still allowed at the limit.
  session_.OnMessage(conn, PublishMsg(9, "p0", 2, {"b"}, "svc0"));
  EXPECT_EQ(stream->Results().back().code(), 0);
}

TEST_F(SessionServerTest, ReconnectTakesOverPublishersWithoutAGap) {
  auto [sub_conn, sub] = Connect("ipv4:127.0.0.1:1000");
  session_.OnMessage(sub_conn, SubscribeMsg(1, "s1"));
  auto [old_conn, old_stream] = Connect("ipv4:127.0.0.1:2000");
  session_.OnMessage(old_conn, PublishMsg(1, "p1", 3, {"a"}));
  auto [new_conn, new_stream] = Connect("ipv4:127.0.0.1:2001");
  session_.OnMessage(new_conn, PublishMsg(1, "p1", 3, {"a"}));  // replay
  EXPECT_EQ(new_stream->Results().back().code(), 0);
  session_.OnDisconnect(old_conn, "old stream finally noticed dead");
  std::shared_ptr<const DatumSnapshot> snap;
  data_.Fetch("svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", [&](auto s) { snap = s; });
  ASSERT_EQ(snap->publishers.size(), 1u);
  EXPECT_EQ(snap->publishers[0]->owner->connection_id, new_conn);
  pb::DescribeRequest describe;
  describe.mutable_key()->set_data_id("svc");
  absl::StatusOr<pb::DescribeResponse> described = absl::UnknownError("no reply");
  session_.DescribeAsync(describe, [&](auto reply) { described = std::move(reply); });
  ASSERT_TRUE(described.ok()) << described.status();
  ASSERT_EQ(described->publishers_size(), 1);
  EXPECT_EQ(described->publishers(0).owner().address(), "ipv4:127.0.0.1:2001");
  ASSERT_EQ(described->subscribers_size(), 1);
}

TEST_F(SessionServerTest, EachStreamKeepsExactlyItsOwnPublishersThroughTakeoverAndUnregister) {
  auto [a_conn, a] = Connect("ipv4:127.0.0.1:1000");
  auto [b_conn, b] = Connect("ipv4:127.0.0.1:2000");
  for (int i = 0; i < 3; ++i) {
    session_.OnMessage(
        a_conn, PublishMsg(i + 1, "p" + std::to_string(i), 1, {"a"}, "svc" + std::to_string(i)));
  }
  session_.OnMessage(a_conn, PublishMsg(4, "p0", 2, {"a2"}, "svc0"));  // republish
  session_.OnMessage(b_conn, PublishMsg(1, "p1", 2, {"b"}, "svc1"));   // takeover
  pb::ClientMessage unregister;
  unregister.set_request_id(5);
  unregister.mutable_unregister()->set_registration_id("p2");
  session_.OnMessage(a_conn, unregister);
  for (const auto& r : a->Results()) EXPECT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(b->Results().back().code(), 0);
  // a: p0 only; b: p1. The freed slot lets a publish again (limit 3).
  auto publishers_of = [this](uint64_t conn) {
    std::set<std::string> ids;
    pb::QueryByClientResponse all = session_.QueryByClient({});
    for (const auto& c : all.clients()) {
      if (c.owner().connection_id() != conn) continue;
      for (const auto& p : c.publishers()) ids.insert(p.publisher().registration_id());
    }
    return ids;
  };
  EXPECT_EQ(publishers_of(a_conn), (std::set<std::string>{"p0"}));
  EXPECT_EQ(publishers_of(b_conn), (std::set<std::string>{"p1"}));
  EXPECT_EQ(session_.publisher_count(), 2u);
  // Unregistering a publisher another stream took over is refused.
  unregister.set_request_id(6);
  unregister.mutable_unregister()->set_registration_id("p1");
  session_.OnMessage(a_conn, unregister);
  EXPECT_EQ(a->Results().back().code(), static_cast<int>(absl::StatusCode::kNotFound));

  session_.OnDisconnect(a_conn, "test");
  EXPECT_EQ(session_.publisher_count(), 1u);
  EXPECT_EQ(publishers_of(b_conn), (std::set<std::string>{"p1"}));
  std::shared_ptr<const DatumSnapshot> svc0, svc1;
  data_.Fetch("svc0#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", [&](auto s) { svc0 = s; });
  data_.Fetch("svc1#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP", [&](auto s) { svc1 = s; });
  EXPECT_TRUE(svc0->publishers.empty());
  ASSERT_EQ(svc1->publishers.size(), 1u);
  EXPECT_EQ(svc1->publishers[0]->data[0], "b");
  session_.OnDisconnect(b_conn, "test");
  EXPECT_EQ(session_.publisher_count(), 0u);
}

TEST_F(SessionServerTest, SilentClientIsClosedAfterKeepaliveTimeoutAndItsDataRemoved) {
  auto [conn, stream] = Connect("ipv4:127.0.0.1:1000");
  session_.OnMessage(conn, PublishMsg(1, "p1", 1, {"a"}));
  session_.Start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!stream->closed && std::chrono::steady_clock::now() < deadline) {
    loop_.PollForTest();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(stream->closed);
  EXPECT_EQ(stream->close_status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(session_.connection_count(), 0u);
  EXPECT_EQ(session_.publisher_count(), 0u);
  EXPECT_EQ(metrics_.keepalive_expired.Value(), 1);
}

TEST_F(SessionServerTest, QueryByClientMatchesHostOrHostPort) {
  auto [a, sa] = Connect("ipv4:127.0.0.1:1000");
  auto [b, sb] = Connect("ipv4:127.0.0.2:1000");
  session_.OnMessage(a, PublishMsg(1, "p1", 1, {"a"}));
  pb::QueryByClientRequest by_host;
  by_host.set_address("127.0.0.1");
  auto r1 = session_.QueryByClient(by_host);
  ASSERT_EQ(r1.clients_size(), 1);
  EXPECT_EQ(r1.clients(0).publishers_size(), 1);
  EXPECT_EQ(r1.clients(0).publishers(0).key().data_id(), "svc");
  pb::QueryByClientRequest by_port;
  by_port.set_address("127.0.0.2:1000");
  EXPECT_EQ(session_.QueryByClient(by_port).clients_size(), 1);
  by_port.set_address("127.0.0.2:9999");
  EXPECT_EQ(session_.QueryByClient(by_port).clients_size(), 0);
}

}  // namespace
}  // namespace cairn
