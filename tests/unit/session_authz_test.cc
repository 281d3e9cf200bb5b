// The session role with an authorizer (registry/auth): which stream requests
// are refused, that a refusal inside a Batch refuses only itself, that
// refused data is not stored, and registration takeovers across identities.
// Fake streams; the identities are what a client certificate would prove.
#include <gtest/gtest.h>

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
  void MessageHandled() override {}

  // The Results sent so far (also those inside ResultBatches), by request id.
  std::map<uint64_t, pb::Result> Results() const {
    std::map<uint64_t, pb::Result> out;
    for (const pb::ServerMessage& m : messages) {
      if (m.has_result()) out[m.result().request_id()] = m.result();
      for (const pb::Result& r : m.result_batch().results()) out[r.request_id()] = r;
    }
    return out;
  }

  std::vector<pb::ServerMessage> messages;
  bool closed = false;
};

Identity App(const std::string& app) {
  return IdentityFromCertificateNames({"spiffe://cairn.local/app/" + app}, "", true);
}

pb::ClientMessage Publish(uint64_t request_id, const std::string& reg_id,
                          const std::string& data_id, const std::string& app_name) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  pb::Publish* p = m.mutable_publish();
  p->set_registration_id(reg_id);
  p->mutable_key()->set_data_id(data_id);
  p->add_data("10.0.0.1:1/" + reg_id);
  p->set_app_name(app_name);
  p->set_version(1);
  return m;
}

pb::ClientMessage Subscribe(uint64_t request_id, const std::string& reg_id,
                            const std::string& data_id) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_subscribe()->set_registration_id(reg_id);
  m.mutable_subscribe()->mutable_key()->set_data_id(data_id);
  return m;
}

constexpr int kDenied = static_cast<int>(absl::StatusCode::kPermissionDenied);

class SessionAuthzTest : public ::testing::Test {
 protected:
  SessionAuthzTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        session_(loop_, data_, metrics_, {}),
        authorizer_(auth::DefaultPolicy(), &metrics_.denied) {
    session_.SetAuthorizer(&authorizer_);
  }

  uint64_t Connect(const Identity& identity, std::shared_ptr<RecordingStream>& stream) {
    stream = std::make_shared<RecordingStream>();
    return session_.OnConnect("ipv4:127.0.0.1:1000", stream, identity);
  }

  size_t PublishersOf(const std::string& data_id) {
    pb::DescribeRequest request;
    request.mutable_key()->set_data_id(data_id);
    size_t count = 0;
    session_.DescribeAsync(request, [&](absl::StatusOr<pb::DescribeResponse> r) {
      count = r.ok() ? r->publishers_size() : 0;
    });
    return count;
  }

  double Denied(const std::string& op, const std::string& rule) {
    return metrics_.denied.Add({{"op", op}, {"rule", rule}}).Value();
  }

  EventLoop loop_;
  RegistryMetrics metrics_;
  LocalDataServer data_;
  SessionServer session_;
  auth::Authorizer authorizer_;
};

TEST_F(SessionAuthzTest, OwnAppAllowedOthersRefusedAndNotStored) {
  std::shared_ptr<RecordingStream> a;
  uint64_t conn = Connect(App("app-a"), a);
  session_.OnMessage(conn, Publish(1, "r1", "com.acme.Cart", "app-a"));
  session_.OnMessage(conn, Publish(2, "r2", "com.acme.Payment", "app-b"));
  session_.OnMessage(conn, Publish(3, "r3", "app:app-b", ""));
  session_.OnMessage(conn, Publish(4, "r4", "com.acme.Orders", ""));  // takes app-a
  session_.OnMessage(conn, Subscribe(5, "s1", "app:app-b"));
  auto results = a->Results();
  EXPECT_EQ(results[1].code(), 0) << results[1].message();
  EXPECT_EQ(results[2].code(), kDenied);
  EXPECT_NE(results[2].message().find("default-publish-own-app"), std::string::npos)
      << results[2].message();
  EXPECT_NE(results[2].message().find("spiffe://cairn.local/app/app-a"), std::string::npos);
  EXPECT_EQ(results[3].code(), kDenied);
  EXPECT_EQ(results[4].code(), 0) << results[4].message();
  EXPECT_EQ(results[5].code(), 0) << results[5].message();
  EXPECT_FALSE(a->closed);
  EXPECT_EQ(PublishersOf("com.acme.Cart"), 1u);
  EXPECT_EQ(PublishersOf("com.acme.Payment"), 0u);
  EXPECT_EQ(PublishersOf("app:app-b"), 0u);
  EXPECT_EQ(Denied("publish", "default-publish-own-app"), 2);
}

TEST_F(SessionAuthzTest, RefusalInsideABatchRefusesOnlyItself) {
  std::shared_ptr<RecordingStream> a;
  uint64_t conn = Connect(App("app-a"), a);
  pb::ClientMessage batch;
  batch.set_request_id(100);
  *batch.mutable_batch()->add_messages() = Publish(11, "b1", "svc.one", "app-a");
  *batch.mutable_batch()->add_messages() = Publish(12, "b2", "svc.two", "app-b");
  *batch.mutable_batch()->add_messages() = Publish(13, "b3", "svc.three", "app-a");
  session_.OnMessage(conn, std::move(batch));
  auto results = a->Results();
  EXPECT_EQ(results[11].code(), 0) << results[11].message();
  EXPECT_EQ(results[12].code(), kDenied);
  EXPECT_EQ(results[13].code(), 0) << results[13].message();
  EXPECT_EQ(PublishersOf("svc.one"), 1u);
  EXPECT_EQ(PublishersOf("svc.two"), 0u);
  EXPECT_EQ(PublishersOf("svc.three"), 1u);
}

TEST_F(SessionAuthzTest, TakeoverOnlyBySameIdentityOrAdmin) {
  std::shared_ptr<RecordingStream> b, a, b2, admin;
  uint64_t conn_b = Connect(App("app-b"), b);
  session_.OnMessage(conn_b, Publish(1, "shared", "svc.shared", "app-b"));
  session_.OnMessage(conn_b, Subscribe(2, "sub", "svc.shared"));
  ASSERT_EQ(b->Results()[1].code(), 0);

  uint64_t conn_a = Connect(App("app-a"), a);
  session_.OnMessage(conn_a, Publish(1, "shared", "svc.shared", "app-a"));
  session_.OnMessage(conn_a, Subscribe(2, "sub", "svc.shared"));
  EXPECT_EQ(a->Results()[1].code(), kDenied);
  EXPECT_NE(a->Results()[1].message().find("registration-owner"), std::string::npos);
  EXPECT_EQ(a->Results()[2].code(), kDenied);
  EXPECT_EQ(Denied("publish", "registration-owner"), 1);
  EXPECT_EQ(Denied("subscribe", "registration-owner"), 1);

  // app-b reconnecting (same identity) takes its registration back.
  uint64_t conn_b2 = Connect(App("app-b"), b2);
  session_.OnMessage(conn_b2, Publish(1, "shared", "svc.shared", "app-b"));
  EXPECT_EQ(b2->Results()[1].code(), 0) << b2->Results()[1].message();

  // An admin may take any over.
  uint64_t conn_admin = Connect(
      IdentityFromCertificateNames({"spiffe://cairn.local/admin/cairnctl"}, "", true), admin);
  session_.OnMessage(conn_admin, Publish(1, "shared", "svc.shared", "app-b"));
  EXPECT_EQ(admin->Results()[1].code(), 0) << admin->Results()[1].message();
  EXPECT_EQ(PublishersOf("svc.shared"), 1u);
}

// A data role that answers publishes only when told (cluster mode answers
// over the network, later): everything else goes straight through.
class DeferredPublishes : public DataService {
 public:
  explicit DeferredPublishes(DataService& inner) : inner_(inner) {}
  void Publish(std::shared_ptr<const PublisherRecord> record, VersionCallback done) override {
    held_.emplace_back(std::move(record), std::move(done));
  }
  void Unpublish(const std::string& data_info_id, const std::string& registration_id,
                 const OwnerRef& owner, VersionCallback done) override {
    inner_.Unpublish(data_info_id, registration_id, owner, std::move(done));
  }
  void Fetch(const std::string& data_info_id, SnapshotCallback done) override {
    inner_.Fetch(data_info_id, std::move(done));
  }
  std::vector<DatumSummary> List(const std::string& prefix) const override {
    return inner_.List(prefix);
  }
  void AddListener(DataChangeListener* listener) override { inner_.AddListener(listener); }
  void RemoveListener(DataChangeListener* listener) override { inner_.RemoveListener(listener); }
  // Sends the held publishes on, in order.
  void Release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& [record, done] : held) inner_.Publish(std::move(record), std::move(done));
  }

 private:
  DataService& inner_;
  std::vector<std::pair<std::shared_ptr<const PublisherRecord>, VersionCallback>> held_;
};

// The takeover check also covers a registration whose first publish has not
// been answered yet: another identity racing it with the same id (and a
// higher version) is refused, not handed the victim's entry.
TEST(SessionAuthzRaceTest, TakeoverOfAPublishStillInFlightIsRefused) {
  EventLoop loop("test");
  RegistryMetrics metrics;
  LocalDataServer local(8, *VersionClock::Open(nullptr));
  DeferredPublishes data(local);
  SessionServer session(loop, data, metrics, {});
  auth::Authorizer authorizer(auth::DefaultPolicy(), &metrics.denied);
  session.SetAuthorizer(&authorizer);

  auto victim = std::make_shared<RecordingStream>();
  uint64_t conn_v = session.OnConnect("ipv4:127.0.0.1:1", victim, App("app-b"));
  session.OnMessage(conn_v, Publish(1, "r", "svc.shared", "app-b"));
  auto attacker = std::make_shared<RecordingStream>();
  uint64_t conn_a = session.OnConnect("ipv4:127.0.0.1:2", attacker, App("app-a"));
  pb::ClientMessage forged = Publish(1, "r", "svc.shared", "app-a");
  forged.mutable_publish()->set_version(2);
  session.OnMessage(conn_a, std::move(forged));
  data.Release();

  EXPECT_EQ(victim->Results()[1].code(), 0) << victim->Results()[1].message();
  EXPECT_EQ(attacker->Results()[1].code(), kDenied) << attacker->Results()[1].message();
  EXPECT_NE(attacker->Results()[1].message().find("registration-owner"), std::string::npos);
  pb::DescribeRequest request;
  request.mutable_key()->set_data_id("svc.shared");
  std::vector<std::string> data_seen;
  session.DescribeAsync(request, [&](absl::StatusOr<pb::DescribeResponse> r) {
    ASSERT_TRUE(r.ok());
    for (const auto& p : r->publishers()) {
      data_seen.assign(p.publisher().data().begin(), p.publisher().data().end());
    }
  });
  EXPECT_EQ(data_seen, std::vector<std::string>{"10.0.0.1:1/r"});
}

// A refused caller learns nothing about an id it may not use.
TEST_F(SessionAuthzTest, RefusedPublishDoesNotTellWhatAnIdIsUsedFor) {
  std::shared_ptr<RecordingStream> b, a;
  uint64_t conn_b = Connect(App("app-b"), b);
  session_.OnMessage(conn_b, Publish(1, "secret-id", "svc.private", "app-b"));
  ASSERT_EQ(b->Results()[1].code(), 0);
  uint64_t conn_a = Connect(App("app-a"), a);
  session_.OnMessage(conn_a, Publish(1, "secret-id", "svc.probe", "app-a"));
  EXPECT_EQ(a->Results()[1].code(), kDenied) << a->Results()[1].message();
  EXPECT_EQ(a->Results()[1].message().find("svc.private"), std::string::npos)
      << a->Results()[1].message();
}

TEST_F(SessionAuthzTest, RevisionOfAnotherAppRefused) {
  std::shared_ptr<RecordingStream> a;
  uint64_t conn = Connect(App("app-a"), a);
  pb::ClientMessage m;
  m.set_request_id(1);
  m.mutable_register_revision()->mutable_revision()->set_revision("r1");
  m.mutable_register_revision()->mutable_revision()->set_app_name("app-b");
  session_.OnMessage(conn, std::move(m));
  // No revision service is set: without the check this would be UNIMPLEMENTED.
  EXPECT_EQ(a->Results()[1].code(), kDenied) << a->Results()[1].message();
}

TEST_F(SessionAuthzTest, AnonymousStreamIsRefusedUnderTheDefault) {
  std::shared_ptr<RecordingStream> anon;
  uint64_t conn = Connect(Identity{}, anon);
  session_.OnMessage(conn, Publish(1, "x", "svc.x", "app-a"));
  session_.OnMessage(conn, Subscribe(2, "y", "svc.x"));
  EXPECT_EQ(anon->Results()[1].code(), kDenied);
  EXPECT_EQ(anon->Results()[2].code(), kDenied);
  EXPECT_NE(anon->Results()[2].message().find("no-matching-rule"), std::string::npos);
}

}  // namespace
}  // namespace cairn
