// Delta pushes (Hello.accepts_delta_pushes): the registry's side
// (FillPushDelta, PushPayloadCache::DeltaBody, PushEngine) and the client's
// (PushAssembler), and that the two together always give the subscriber what
// a whole push would.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "client/push_assembler.h"
#include "registry/data/local_data_server.h"
#include "registry/session/push_engine.h"
#include "registry/session/push_payload.h"

namespace cairn {
namespace {

using google::protobuf::util::MessageDifferencer;

pb::DataInfoKey Key() {
  pb::DataInfoKey key;
  key.set_data_id("svc");
  return NormalizeKey(key);
}

std::shared_ptr<const PublisherRecord> Record(const std::string& reg_id, const std::string& zone,
                                              std::vector<std::string> data, uint64_t version = 1) {
  auto r = std::make_shared<PublisherRecord>();
  r->datum = MakeDatumId(Key());
  r->registration_id = reg_id;
  r->zone = zone;
  r->app_name = "app";
  r->data = std::move(data);
  r->version = version;
  return r;
}

std::shared_ptr<DatumSnapshot> Snapshot(uint64_t version,
                                        std::vector<std::shared_ptr<const PublisherRecord>> pubs) {
  auto s = std::make_shared<DatumSnapshot>();
  s->key = Key();
  s->data_info_id = DataInfoId(s->key);
  s->version = version;
  std::sort(pubs.begin(), pubs.end(),
            [](const auto& a, const auto& b) { return a->registration_id < b->registration_id; });
  s->publishers = std::move(pubs);
  return s;
}

pb::Push Whole(const DatumSnapshot& s, pb::Scope scope = pb::SCOPE_DATACENTER,
               const std::string& zone = "z1") {
  pb::Push push;
  FillPushDatum(s, scope, zone, &push);
  return push;
}

std::vector<std::string> Ids(const pb::Push& push) {
  std::vector<std::string> out;
  for (const auto& zone : push.zones()) {
    for (const auto& p : zone.publishers()) out.push_back(zone.zone() + "/" + p.registration_id());
  }
  return out;
}

TEST(PushDeltaTest, ADeltaCarriesOnlyTheAddedAndChangedAndNamesTheRemoved) {
  auto keep = Record("p1", "z1", {"a"});
  auto base = Snapshot(
      10, {keep, Record("p2", "z1", {"b"}), Record("p3", "z2", {"c"}), Record("p4", "z1", {"d"})});
  // p1: the same record; p2: another record, same content; p3: changed;
  // p4: removed; p5: added.
  auto now = Snapshot(11, {keep, Record("p2", "z1", {"b"}), Record("p3", "z2", {"c2"}, 2),
                           Record("p5", "z2", {"e"})});
  pb::Push delta;
  FillPushDelta(*base, *now, pb::SCOPE_DATACENTER, "z1", &delta);
  EXPECT_EQ(delta.version(), 11u);
  EXPECT_EQ(delta.base_version(), 10u);
  EXPECT_FALSE(delta.empty());
  EXPECT_EQ(Ids(delta), (std::vector<std::string>{"z2/p3", "z2/p5"}));
  EXPECT_EQ(delta.zones(0).publishers(0).data(0), "c2");
  ASSERT_EQ(delta.removed_size(), 1);
  EXPECT_EQ(delta.removed(0), "p4");
}

TEST(PushDeltaTest, AZoneScopedDeltaRemovesAPublisherThatLeftTheZone) {
  auto base = Snapshot(1, {Record("p1", "z1", {"a"}), Record("p2", "z2", {"b"})});
  auto now = Snapshot(2, {Record("p1", "z2", {"a"}, 2), Record("p2", "z2", {"b2"}, 2)});
  pb::Push delta;
  FillPushDelta(*base, *now, pb::SCOPE_ZONE, "z1", &delta);
  EXPECT_TRUE(delta.empty()) << "nothing is left in z1";
  EXPECT_EQ(delta.zones_size(), 0) << "p2 changed, but outside the subscriber's zone";
  ASSERT_EQ(delta.removed_size(), 1);
  EXPECT_EQ(delta.removed(0), "p1");
}

TEST(PushDeltaTest, TheCacheMakesDeltasOnlyFromTheVersionBeforeTheNewest) {
  PushPayloadCache cache;
  std::vector<std::shared_ptr<const PublisherRecord>> pubs;
  for (int i = 0; i < 50; ++i) pubs.push_back(Record("p" + std::to_string(i), "z1", {"x"}));
  auto v1 = Snapshot(1, pubs);
  pubs[7] = Record("p7", "z1", {"y"}, 2);
  auto v2 = Snapshot(2, pubs);
  pubs[8] = Record("p8", "z1", {"y"}, 2);
  auto v3 = Snapshot(3, pubs);
  cache.Observe(v1);
  cache.Observe(v2);
  auto delta = cache.DeltaBody(*v2, 1, pb::SCOPE_DATACENTER, "z1");
  ASSERT_NE(delta, nullptr);
  EXPECT_LT(delta->size(), cache.Body(*v2, pb::SCOPE_DATACENTER, "z1")->size() / 10);
  EXPECT_EQ(cache.DeltaBody(*v2, 1, pb::SCOPE_DATACENTER, "z1"), delta) << "built once, shared";
  cache.Observe(v1);  // late: ignored
  EXPECT_EQ(cache.DeltaBody(*v2, 1, pb::SCOPE_DATACENTER, "z1"), delta);
  cache.Observe(v3);
  EXPECT_EQ(cache.DeltaBody(*v3, 1, pb::SCOPE_DATACENTER, "z1"), nullptr) << "v1 is gone";
  EXPECT_NE(cache.DeltaBody(*v3, 2, pb::SCOPE_DATACENTER, "z1"), nullptr);
  EXPECT_EQ(cache.DeltaBody(*v2, 1, pb::SCOPE_DATACENTER, "z1"), nullptr) << "v2 is not newest";
}

TEST(PushDeltaTest, NoDeltaWhenItWouldNotBeSmallerThanTheWhole) {
  PushPayloadCache cache;
  auto v1 = Snapshot(1, {Record("p1", "z1", {"a"})});
  auto v2 = Snapshot(2, {Record("p1", "z1", {"b"}, 2)});  // everything changed
  cache.Observe(v1);
  cache.Observe(v2);
  EXPECT_EQ(cache.DeltaBody(*v2, 1, pb::SCOPE_DATACENTER, "z1"), nullptr);
}

TEST(PushDeltaTest, TheAssemblerAsksForTheWholeDatumWhenItHoldsAnotherBase) {
  PushAssembler assembler;
  auto v1 = Snapshot(1, {Record("p1", "z1", {"a"})});
  auto v2 = Snapshot(2, {Record("p1", "z1", {"a"}), Record("p2", "z1", {"b"})});
  auto v3 = Snapshot(3, {Record("p2", "z1", {"b"})});
  pb::Push delta23;
  FillPushDelta(*v2, *v3, pb::SCOPE_DATACENTER, "z1", &delta23);
  pb::Push copy = delta23;
  EXPECT_EQ(assembler.Apply(copy), PushAssembler::Outcome::kNeedFull) << "no state yet";
  pb::Push whole = Whole(*v1);
  EXPECT_EQ(assembler.Apply(whole), PushAssembler::Outcome::kWhole);
  copy = delta23;
  EXPECT_EQ(assembler.Apply(copy), PushAssembler::Outcome::kNeedFull) << "holds 1, delta on 2";
  EXPECT_EQ(assembler.version(), 1u);
  pb::Push delta12;
  FillPushDelta(*v1, *v2, pb::SCOPE_DATACENTER, "z1", &delta12);
  EXPECT_EQ(assembler.Apply(delta12), PushAssembler::Outcome::kApplied);
  EXPECT_TRUE(MessageDifferencer::Equals(delta12, Whole(*v2)));
  copy = delta12;
  copy.set_base_version(1);
  EXPECT_EQ(assembler.Apply(copy), PushAssembler::Outcome::kStale) << "a replay of 2";
  EXPECT_EQ(assembler.Apply(delta23), PushAssembler::Outcome::kApplied);
  EXPECT_TRUE(MessageDifferencer::Equals(delta23, Whole(*v3)));
}

// Random histories: a subscriber fed a whole push and then deltas always
// holds exactly what a whole push of the newest version shows, in every
// scope, also when publishers move between zones and the datum empties.
TEST(PushDeltaTest, DeltasAppliedInTurnEqualTheWholePushEveryTime) {
  std::mt19937 rng(20261207);
  const std::vector<std::string> zones = {"z1", "z2", "z3"};
  for (pb::Scope scope : {pb::SCOPE_DATACENTER, pb::SCOPE_ZONE}) {
    std::map<std::string, std::shared_ptr<const PublisherRecord>> current;
    auto snapshot_of = [&](uint64_t version) {
      std::vector<std::shared_ptr<const PublisherRecord>> pubs;
      for (auto& [id, r] : current) pubs.push_back(r);
      return Snapshot(version, pubs);
    };
    PushAssembler assembler;
    auto previous = snapshot_of(1);
    pb::Push first = Whole(*previous, scope, "z2");
    ASSERT_EQ(assembler.Apply(first), PushAssembler::Outcome::kWhole);
    for (uint64_t version = 2; version < 400; ++version) {
      int changes = 1 + static_cast<int>(rng() % 4);
      for (int c = 0; c < changes; ++c) {
        std::string id = "p" + std::to_string(rng() % 30);
        switch (rng() % 4) {
          case 0:
            current.erase(id);
            break;
          case 1:  // the same content as another record
            if (current.count(id)) current[id] = std::make_shared<PublisherRecord>(*current[id]);
            break;
          default:
            current[id] =
                Record(id, zones[rng() % zones.size()], {std::to_string(rng() % 5)}, version);
        }
      }
      auto now = snapshot_of(version);
      pb::Push delta;
      FillPushDelta(*previous, *now, scope, "z2", &delta);
      ASSERT_EQ(assembler.Apply(delta), PushAssembler::Outcome::kApplied);
      ASSERT_TRUE(MessageDifferencer::Equals(delta, Whole(*now, scope, "z2")))
          << "scope " << scope << " version " << version << "\n"
          << delta.DebugString() << "\nexpected\n"
          << Whole(*now, scope, "z2").DebugString();
      previous = now;
    }
  }
}

// The engine: a subscriber whose client accepts deltas gets a whole push
// first, then, once it acknowledged, deltas; one that cannot apply a delta
// gets the whole datum again; a client that did not ask never gets one.
class PushEngineDeltaTest : public ::testing::Test {
 protected:
  class Transport : public PushEngine::Transport {
   public:
    bool SendPush(uint64_t, EncodedPush&& push) override {
      pb::ServerMessage message;
      EXPECT_TRUE(message.ParseFromString(push.Flatten()));
      sent.push_back(message.push());
      return true;
    }
    std::vector<pb::Push> sent;
  };

  PushEngineDeltaTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        engine_(loop_, data_, transport_, metrics_, PushEngine::Options()) {}

  uint64_t Publish(const std::string& reg_id, uint64_t version, std::string data) {
    auto r = std::make_shared<PublisherRecord>(*Record(reg_id, "z1", {std::move(data)}, version));
    r->owner = std::make_shared<const OwnerRef>(OwnerRef{"local", 9, "", ""});
    uint64_t out = 0;
    data_.Publish(r, [&out](absl::StatusOr<uint64_t> v) { out = *v; });
    return out;
  }
  uint64_t Subscribe(bool accepts_deltas) {
    PushEngine::SubscriberSpec spec{"sub", Key(), pb::SCOPE_DATACENTER, "z1", 7};
    spec.accepts_deltas = accepts_deltas;
    return engine_.Subscribe(std::move(spec));
  }
  void AckLast(uint64_t sub, bool need_full = false) {
    engine_.OnAck(sub, transport_.sent.back().push_id(), need_full);
    loop_.PollForTest();
  }

  EventLoop loop_;
  RegistryMetrics metrics_;
  Transport transport_;
  LocalDataServer data_;
  PushEngine engine_;
};

TEST_F(PushEngineDeltaTest, AfterTheFirstAckOnlyChangesTravel) {
  for (int i = 0; i < 20; ++i) Publish("p" + std::to_string(i), 1, "x");
  uint64_t sub = Subscribe(true);
  loop_.PollForTest();
  ASSERT_EQ(transport_.sent.size(), 1u);
  EXPECT_EQ(transport_.sent[0].base_version(), 0u) << "the first push is whole";
  EXPECT_EQ(transport_.sent[0].zones(0).publishers_size(), 20);
  uint64_t first_version = transport_.sent[0].version();
  AckLast(sub);
  uint64_t v = Publish("p3", 2, "y");
  loop_.PollForTest();
  ASSERT_EQ(transport_.sent.size(), 2u);
  const pb::Push& delta = transport_.sent[1];
  EXPECT_EQ(delta.version(), v);
  EXPECT_EQ(delta.base_version(), first_version);
  ASSERT_EQ(delta.zones_size(), 1);
  ASSERT_EQ(delta.zones(0).publishers_size(), 1);
  EXPECT_EQ(delta.zones(0).publishers(0).data(0), "y");
  EXPECT_EQ(metrics_.delta_pushes.Value(), 1);

  // The client could not apply it: the whole datum comes next.
  AckLast(sub, /*need_full=*/true);
  ASSERT_EQ(transport_.sent.size(), 3u);
  EXPECT_EQ(transport_.sent[2].base_version(), 0u);
  EXPECT_EQ(transport_.sent[2].version(), v);
  EXPECT_EQ(transport_.sent[2].zones(0).publishers_size(), 20);
  EXPECT_EQ(metrics_.delta_need_full.Value(), 1);
}

TEST_F(PushEngineDeltaTest, AClientThatDidNotAskGetsWholePushes) {
  for (int i = 0; i < 20; ++i) Publish("p" + std::to_string(i), 1, "x");
  uint64_t sub = Subscribe(false);
  loop_.PollForTest();
  AckLast(sub);
  Publish("p3", 2, "y");
  loop_.PollForTest();
  ASSERT_EQ(transport_.sent.size(), 2u);
  EXPECT_EQ(transport_.sent[1].base_version(), 0u);
  EXPECT_EQ(transport_.sent[1].zones(0).publishers_size(), 20);
  EXPECT_EQ(metrics_.delta_pushes.Value(), 0);
}

}  // namespace
}  // namespace cairn
