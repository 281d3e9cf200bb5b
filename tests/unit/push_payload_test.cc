#include "registry/session/push_payload.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "registry/session/push_engine.h"

namespace cairn {
namespace {

pb::DataInfoKey Key() {
  pb::DataInfoKey key;
  key.set_data_id("svc");
  return NormalizeKey(key);
}

std::shared_ptr<const PublisherRecord> Record(const std::string& reg_id, const std::string& zone,
                                              std::vector<std::string> data) {
  auto r = std::make_shared<PublisherRecord>();
  r->datum = MakeDatumId(Key());
  r->registration_id = reg_id;
  r->zone = zone;
  r->app_name = "app-" + reg_id;
  r->data = std::move(data);
  r->attributes = {{"weight", "10"}};
  r->version = 3;
  return r;
}

// p1 and p3 in zone z1, p2 in z2, at `version`.
DatumSnapshot Snapshot(uint64_t version) {
  DatumSnapshot s;
  s.key = Key();
  s.data_info_id = DataInfoId(s.key);
  s.version = version;
  s.publishers = {Record("p1", "z1", {"a", "a2"}), Record("p2", "z2", {"b"}),
                  Record("p3", "z1", {"c"})};
  return s;
}

PushEngine::SubscriberSpec Spec(const std::string& reg_id, pb::Scope scope,
                                const std::string& zone) {
  return PushEngine::SubscriberSpec{reg_id, Key(), scope, zone, 1};
}

pb::ServerMessage Decode(const EncodedPush& push) {
  pb::ServerMessage message;
  EXPECT_TRUE(message.ParseFromString(push.Flatten()));
  return message;
}

TEST(PushPayloadTest, EncodedPushIsTheSameMessageAsOneBuiltWhole) {
  PushPayloadCache cache;
  DatumSnapshot snapshot = Snapshot(42);
  for (pb::Scope scope : {pb::SCOPE_DATACENTER, pb::SCOPE_ZONE, pb::SCOPE_GLOBAL}) {
    auto spec = Spec("sub-1", scope, "z1");
    pb::ServerMessage whole = PushEngine::BuildPush(snapshot, spec, 77);
    EncodedPush encoded = PushEngine::EncodeFor(cache, snapshot, spec, 77);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Decode(encoded), whole))
        << "scope " << scope;
    // Byte for byte what protobuf writes (one attribute: the map order is fixed).
    EXPECT_EQ(encoded.Flatten(), whole.SerializeAsString()) << "scope " << scope;
    EXPECT_EQ(encoded.size(), whole.ByteSizeLong());
  }
}

TEST(PushPayloadTest, TwoSubscribersOfOneVersionGetTheSameBytes) {
  PushPayloadCache cache;
  DatumSnapshot snapshot = Snapshot(5);
  EncodedPush a =
      PushEngine::EncodeFor(cache, snapshot, Spec("sub-a", pb::SCOPE_DATACENTER, ""), 1);
  EncodedPush b =
      PushEngine::EncodeFor(cache, snapshot, Spec("sub-b", pb::SCOPE_DATACENTER, ""), 2);
  EXPECT_EQ(a.body, b.body);  // one shared buffer
  EXPECT_EQ(cache.builds(), 1u);
  EXPECT_NE(a.head, b.head);  // their own registration and push ids
  EXPECT_EQ(Decode(a).push().registration_id(), "sub-a");
  EXPECT_EQ(Decode(b).push().registration_id(), "sub-b");
  EXPECT_EQ(Decode(b).push().push_id(), 2u);
  EXPECT_EQ(Decode(b).push().zones_size(), 2);
}

TEST(PushPayloadTest, ANewVersionReplacesTheCachedBody) {
  PushPayloadCache cache;
  auto spec = Spec("sub", pb::SCOPE_DATACENTER, "");
  DatumSnapshot v5 = Snapshot(5);
  auto old_body = cache.Body(v5, spec.scope, spec.zone);
  DatumSnapshot v6 = Snapshot(6);
  v6.publishers.pop_back();  // p3 left
  auto new_body = cache.Body(v6, spec.scope, spec.zone);
  EXPECT_NE(old_body, new_body);
  EXPECT_EQ(cache.builds(), 2u);
  EXPECT_EQ(cache.datum_count(), 1u);  // one version per datum
  pb::ServerMessage m = Decode(EncodePush("sub", 9, Key(), new_body));
  EXPECT_EQ(m.push().version(), 6u);
  EXPECT_EQ(m.push().zones(0).publishers_size(), 1);  // z1 holds only p1 now
  // The old body stays valid for whoever still holds it.
  EXPECT_EQ(Decode(EncodePush("sub", 8, Key(), old_body)).push().version(), 5u);
}

TEST(PushPayloadTest, ZoneScopedViewsDifferFromEachOtherAndFromTheWholeDatum) {
  PushPayloadCache cache;
  DatumSnapshot snapshot = Snapshot(5);
  auto all = cache.Body(snapshot, pb::SCOPE_DATACENTER, "z1");
  auto z1 = cache.Body(snapshot, pb::SCOPE_ZONE, "z1");
  auto z1_again = cache.Body(snapshot, pb::SCOPE_ZONE, "z1");
  auto z2 = cache.Body(snapshot, pb::SCOPE_ZONE, "z2");
  auto none = cache.Body(snapshot, pb::SCOPE_ZONE, "z9");
  EXPECT_EQ(z1, z1_again);
  EXPECT_NE(*all, *z1);
  EXPECT_NE(*z1, *z2);
  EXPECT_EQ(cache.builds(), 4u);
  auto zones_of = [](const std::shared_ptr<const std::string>& body) {
    return Decode(EncodePush("s", 1, Key(), body)).push();
  };
  EXPECT_EQ(zones_of(all).zones_size(), 2);
  ASSERT_EQ(zones_of(z1).zones_size(), 1);
  EXPECT_EQ(zones_of(z1).zones(0).publishers_size(), 2);
  EXPECT_EQ(zones_of(z2).zones(0).zone(), "z2");
  EXPECT_TRUE(zones_of(none).empty());
  EXPECT_EQ(zones_of(none).version(), 5u);
}

TEST(PushPayloadTest, ForgetDropsTheDatum) {
  PushPayloadCache cache;
  DatumSnapshot snapshot = Snapshot(5);
  auto first = cache.Body(snapshot, pb::SCOPE_DATACENTER, "");
  cache.Forget(snapshot.data_info_id);
  EXPECT_EQ(cache.datum_count(), 0u);
  auto second = cache.Body(snapshot, pb::SCOPE_DATACENTER, "");
  EXPECT_NE(first, second);
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(cache.builds(), 2u);
}

TEST(PushPayloadTest, LargeDatumLengthPrefixIsEncodedCorrectly) {
  // Over 16 KB: the ServerMessage length needs a three-byte varint.
  DatumSnapshot s = Snapshot(7);
  s.publishers.clear();
  for (int i = 0; i < 200; ++i) {
    s.publishers.push_back(Record("p" + std::to_string(1000 + i), "z1", {std::string(100, 'x')}));
  }
  PushPayloadCache cache;
  auto spec = Spec("sub", pb::SCOPE_DATACENTER, "");
  EncodedPush encoded = PushEngine::EncodeFor(cache, s, spec, 3);
  ASSERT_GT(encoded.size(), 16384u);
  EXPECT_EQ(encoded.Flatten(), PushEngine::BuildPush(s, spec, 3).SerializeAsString());
}

}  // namespace
}  // namespace cairn
