#include "registry/session/push_engine.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "registry/data/local_data_server.h"

namespace cairn {
namespace {

// Keeps what was sent decoded (as a client would see it) and the shared
// bodies (to check who shares what).
class FakeTransport : public PushEngine::Transport {
 public:
  bool SendPush(uint64_t connection_id, EncodedPush&& push) override {
    if (refuse) return false;
    pb::ServerMessage message;
    EXPECT_TRUE(message.ParseFromString(push.Flatten()));
    sent.emplace_back(connection_id, std::move(message));
    bodies.push_back(push.body);
    return true;
  }
  bool refuse = false;
  std::vector<std::pair<uint64_t, pb::ServerMessage>> sent;
  std::vector<std::shared_ptr<const std::string>> bodies;
};

class PushEngineTest : public ::testing::Test {
 protected:
  PushEngineTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        engine_(loop_, data_, transport_, metrics_, Options()) {}

  static PushEngine::Options Options() {
    PushEngine::Options o;
    o.ack_timeout = std::chrono::milliseconds(20);
    o.max_backoff = std::chrono::milliseconds(40);
    o.max_attempts = 3;
    return o;
  }
  static pb::DataInfoKey Key() {
    pb::DataInfoKey key;
    key.set_data_id("svc");
    return NormalizeKey(key);
  }
  uint64_t Publish(const std::string& reg_id, uint64_t version, const std::string& zone,
                   std::vector<std::string> data) {
    auto r = std::make_shared<PublisherRecord>();
    r->datum = MakeDatumId(Key());
    r->registration_id = reg_id;
    r->version = version;
    r->zone = zone;
    r->data = std::move(data);
    r->owner = std::make_shared<const OwnerRef>(OwnerRef{"local", 9, "", ""});
    uint64_t out = 0;
    data_.Publish(r, [&out](absl::StatusOr<uint64_t> v) { out = *v; });
    return out;
  }
  uint64_t Subscribe(pb::Scope scope = pb::SCOPE_DATACENTER, const std::string& zone = "z1") {
    return engine_.Subscribe({"sub-1", Key(), scope, zone, /*connection_id=*/7});
  }
  void Poll() { loop_.PollForTest(); }
  // Runs the loop until the timers due within `ms` fired.
  void RunFor(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      loop_.PollForTest();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  const pb::Push& LastPush() { return transport_.sent.back().second.push(); }

  EventLoop loop_;
  RegistryMetrics metrics_;
  FakeTransport transport_;
  LocalDataServer data_;
  PushEngine engine_;
};

TEST_F(PushEngineTest, SubscribeGetsAnImmediateEmptyPush) {
  Subscribe();
  EXPECT_TRUE(transport_.sent.empty());  // queued, not sent inline
  Poll();
  ASSERT_EQ(transport_.sent.size(), 1u);
  EXPECT_EQ(transport_.sent[0].first, 7u);
  EXPECT_TRUE(LastPush().empty());
  EXPECT_EQ(LastPush().version(), 0u);
  EXPECT_EQ(LastPush().registration_id(), "sub-1");
}

TEST_F(PushEngineTest, ChangesDuringAnInflightPushAreCoalescedIntoTheNewest) {
  uint64_t sub = Subscribe();
  Poll();
  ASSERT_EQ(transport_.sent.size(), 1u);
  uint64_t first_push = LastPush().push_id();
  uint64_t newest = 0;
  for (int i = 1; i <= 5; ++i) newest = Publish("p1", i, "z1", {"v" + std::to_string(i)});
  Poll();
  EXPECT_EQ(transport_.sent.size(), 1u) << "no second push while the first is unacknowledged";
  engine_.OnAck(sub, first_push);
  Poll();
  ASSERT_EQ(transport_.sent.size(), 2u);
  EXPECT_EQ(LastPush().version(), newest);
  EXPECT_EQ(LastPush().zones(0).publishers(0).data(0), "v5");
  EXPECT_GE(metrics_.pushes_coalesced.Value(), 4);
  engine_.OnAck(sub, LastPush().push_id());
  Poll();
  EXPECT_EQ(transport_.sent.size(), 2u) << "nothing new: no push";
  EXPECT_EQ(engine_.View(sub)->acked_version, newest);
}

TEST_F(PushEngineTest, AStaleAckDoesNotReleaseTheNextPush) {
  uint64_t sub = Subscribe();
  Poll();
  Publish("p1", 1, "z1", {"a"});
  engine_.OnAck(sub, 12345);  // not the in-flight push id
  Poll();
  EXPECT_EQ(transport_.sent.size(), 1u);
}

TEST_F(PushEngineTest, UnackedPushIsRetriedThenTheSubscriberIsPausedUntilItAcks) {
  uint64_t sub = Subscribe();
  Poll();
  // Never ack: 20 ms, then 40 ms (capped) between attempts; 3 attempts in all.
  RunFor(250);
  EXPECT_EQ(transport_.sent.size(), 3u);
  EXPECT_TRUE(engine_.View(sub)->stalled);
  EXPECT_EQ(metrics_.pushes_given_up.Value(), 1);
  size_t before = transport_.sent.size();
  Publish("p1", 1, "z1", {"a"});
  RunFor(100);
  EXPECT_EQ(transport_.sent.size(), before) << "a paused subscriber is not hammered";
  // A late ack of the last push resumes it with the newest data.
  engine_.OnAck(sub, LastPush().push_id());
  Poll();
  ASSERT_EQ(transport_.sent.size(), before + 1);
  EXPECT_FALSE(LastPush().empty());
  EXPECT_FALSE(engine_.View(sub)->stalled);
}

TEST_F(PushEngineTest, RefusedSendIsRetriedLater) {
  transport_.refuse = true;
  uint64_t sub = Subscribe();
  Poll();
  EXPECT_TRUE(transport_.sent.empty());
  transport_.refuse = false;
  RunFor(60);
  ASSERT_EQ(transport_.sent.size(), 1u);
  engine_.OnAck(sub, LastPush().push_id());
  // The ack released the subscriber: the next change goes out at once.
  uint64_t version = Publish("p1", 1, "z1", {"a"});
  Poll();
  ASSERT_EQ(transport_.sent.size(), 2u);
  EXPECT_EQ(LastPush().version(), version);
}

TEST_F(PushEngineTest, ZoneScopeSeesOnlyItsZoneAndZonesAreGrouped) {
  Publish("p1", 1, "z1", {"a"});
  Publish("p2", 1, "z2", {"b"});
  Publish("p3", 1, "z1", {"c"});
  engine_.Subscribe({"zone-sub", Key(), pb::SCOPE_ZONE, "z2", 1});
  engine_.Subscribe({"dc-sub", Key(), pb::SCOPE_DATACENTER, "z2", 2});
  Poll();
  ASSERT_EQ(transport_.sent.size(), 2u);
  const pb::Push* zone_push = &transport_.sent[0].second.push();
  const pb::Push* dc_push = &transport_.sent[1].second.push();
  if (zone_push->registration_id() != "zone-sub") std::swap(zone_push, dc_push);
  ASSERT_EQ(zone_push->zones_size(), 1);
  EXPECT_EQ(zone_push->zones(0).zone(), "z2");
  ASSERT_EQ(dc_push->zones_size(), 2);
  EXPECT_EQ(dc_push->zones(0).zone(), "z1");
  EXPECT_EQ(dc_push->zones(0).publishers_size(), 2);
  EXPECT_EQ(dc_push->version(), zone_push->version());
}

TEST_F(PushEngineTest, ZoneScopeWithNothingInItsZoneIsMarkedEmpty) {
  Publish("p1", 1, "z1", {"a"});
  engine_.Subscribe({"zone-sub", Key(), pb::SCOPE_ZONE, "elsewhere", 1});
  Poll();
  ASSERT_EQ(transport_.sent.size(), 1u);
  EXPECT_TRUE(LastPush().empty());
  EXPECT_GT(LastPush().version(), 0u);
}

TEST_F(PushEngineTest, SubscribersOfOneVersionAndViewShareOneEncodedDatum) {
  Publish("p1", 1, "z1", {"a"});
  Publish("p2", 1, "z2", {"b"});
  const std::vector<uint64_t> ids = {
      engine_.Subscribe({"sub-a", Key(), pb::SCOPE_DATACENTER, "z1", 1}),
      engine_.Subscribe({"sub-b", Key(), pb::SCOPE_GLOBAL, "z2", 2}),
      engine_.Subscribe({"sub-z", Key(), pb::SCOPE_ZONE, "z2", 3})};
  Poll();
  ASSERT_EQ(transport_.sent.size(), 3u);  // in subscription order
  // Datacenter and global see the same publishers: one body; the zone view its own.
  EXPECT_EQ(transport_.bodies[0], transport_.bodies[1]);
  EXPECT_NE(transport_.bodies[0], transport_.bodies[2]);
  EXPECT_EQ(engine_.payload_cache().builds(), 2u);
  EXPECT_EQ(transport_.sent[0].second.push().registration_id(), "sub-a");
  EXPECT_EQ(transport_.sent[1].second.push().registration_id(), "sub-b");
  EXPECT_EQ(transport_.sent[1].second.push().zones_size(), 2);
  EXPECT_EQ(transport_.sent[2].second.push().zones_size(), 1);

  // A change: the next pushes carry a new body with the new data.
  for (size_t i = 0; i < ids.size(); ++i) {
    engine_.OnAck(ids[i], transport_.sent[i].second.push().push_id());
  }
  uint64_t version = Publish("p2", 2, "z2", {"b2"});
  Poll();
  ASSERT_EQ(transport_.sent.size(), 6u);
  std::map<std::string, size_t> second;  // registration id -> index (any order)
  for (size_t i = 3; i < 6; ++i) second[transport_.sent[i].second.push().registration_id()] = i;
  EXPECT_EQ(transport_.bodies[second["sub-a"]], transport_.bodies[second["sub-b"]]);
  EXPECT_NE(transport_.bodies[second["sub-a"]], transport_.bodies[0]);
  EXPECT_NE(transport_.bodies[second["sub-z"]], transport_.bodies[2]);
  EXPECT_EQ(engine_.payload_cache().builds(), 4u);
  for (size_t i = 3; i < 6; ++i) {
    const pb::Push& push = transport_.sent[i].second.push();
    EXPECT_EQ(push.version(), version);
    EXPECT_EQ(push.zones(push.zones_size() - 1).publishers(0).data(0), "b2");
  }
  // The last subscriber gone: nothing of the datum stays cached.
  for (uint64_t id : ids) engine_.Unsubscribe(id);
  EXPECT_EQ(engine_.payload_cache().datum_count(), 0u);
}

TEST_F(PushEngineTest, UnsubscribedSubscriberGetsNothingMore) {
  uint64_t sub = Subscribe();
  engine_.Unsubscribe(sub);
  Poll();
  EXPECT_TRUE(transport_.sent.empty());
  Publish("p1", 1, "z1", {"a"});
  Poll();
  EXPECT_TRUE(transport_.sent.empty());
  EXPECT_EQ(engine_.subscriber_count(), 0u);
}

// A change the engine was never told of (cluster mode: a lost change feed)
// is pushed once the data service says the datum may have changed.
TEST_F(PushEngineTest, DatumsThatMayHaveChangedAreFetchedAgain) {
  uint64_t sub = Subscribe();
  Poll();
  engine_.OnAck(sub, LastPush().push_id());
  data_.RemoveListener(&engine_);
  uint64_t missed = Publish("p1", 1, "z1", {"a"});
  data_.AddListener(&engine_);
  Poll();
  ASSERT_EQ(transport_.sent.size(), 1u);
  engine_.OnDatumsMaybeChanged([](const std::string& id) { return id != DataInfoId(Key()); });
  Poll();
  EXPECT_EQ(transport_.sent.size(), 1u) << "another datum: nothing to fetch";
  engine_.OnDatumsMaybeChanged([](const std::string& id) { return id == DataInfoId(Key()); });
  Poll();
  ASSERT_EQ(transport_.sent.size(), 2u);
  EXPECT_EQ(LastPush().version(), missed);
  EXPECT_EQ(LastPush().zones(0).publishers(0).data(0), "a");
}

}  // namespace
}  // namespace cairn
