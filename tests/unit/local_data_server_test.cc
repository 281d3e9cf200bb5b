#include "registry/data/local_data_server.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

class RecordingListener : public DataChangeListener {
 public:
  void OnDatumChanged(const std::string& id, uint64_t version) override {
    changes.emplace_back(id, version);
  }
  std::vector<std::pair<std::string, uint64_t>> changes;
};

std::shared_ptr<PublisherRecord> Record(const std::string& reg_id, uint64_t version,
                                        std::vector<std::string> data, uint64_t conn = 1) {
  auto r = std::make_shared<PublisherRecord>();
  pb::DataInfoKey key;
  key.set_data_id("svc");
  r->datum = MakeDatumId(NormalizeKey(key));
  r->registration_id = reg_id;
  r->version = version;
  r->data = std::move(data);
  r->zone = "z1";
  r->owner =
      std::make_shared<const OwnerRef>(OwnerRef{"local", conn, "client", "ipv4:127.0.0.1:1"});
  return r;
}

class LocalDataServerTest : public ::testing::Test {
 protected:
  LocalDataServerTest() : server_(16, *VersionClock::Open(nullptr)) {
    server_.AddListener(&listener_);
  }
  absl::StatusOr<uint64_t> Publish(std::shared_ptr<PublisherRecord> r) {
    absl::StatusOr<uint64_t> out = absl::UnknownError("no callback");
    server_.Publish(std::move(r), [&out](absl::StatusOr<uint64_t> v) { out = v; });
    return out;
  }
  std::shared_ptr<const DatumSnapshot> Fetch(const std::string& id) {
    std::shared_ptr<const DatumSnapshot> out;
    server_.Fetch(id, [&out](std::shared_ptr<const DatumSnapshot> s) { out = std::move(s); });
    return out;
  }
  LocalDataServer server_;
  RecordingListener listener_;
};

TEST_F(LocalDataServerTest, AHeldSnapshotNeverChangesAndPublishersStaySorted) {
  ASSERT_TRUE(Publish(Record("p2", 1, {"b"})).ok());
  ASSERT_TRUE(Publish(Record("p1", 1, {"a"})).ok());
  std::string id = Record("x", 0, {})->data_info_id();
  std::shared_ptr<const DatumSnapshot> held = Fetch(id);
  EXPECT_EQ(Fetch(id), held) << "no change: the same snapshot";
  uint64_t held_version = held->version;

  ASSERT_TRUE(Publish(Record("p3", 1, {"c"})).ok());   // insert at the end
  ASSERT_TRUE(Publish(Record("p0", 1, {"z"})).ok());   // insert at the front
  ASSERT_TRUE(Publish(Record("p1", 2, {"a2"})).ok());  // replace
  server_.Unpublish(id, "p2", OwnerRef{"local", 1, "", ""}, [](absl::StatusOr<uint64_t>) {});
  // The snapshot someone held is untouched (copy on write)...
  EXPECT_EQ(held->version, held_version);
  ASSERT_EQ(held->publishers.size(), 2u);
  EXPECT_EQ(held->publishers[0]->data[0], "a");
  // ...and the current one has every change, in registration-id order.
  auto now = Fetch(id);
  EXPECT_GT(now->version, held_version);
  std::vector<std::string> ids;
  for (const auto& r : now->publishers) ids.push_back(r->registration_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"p0", "p1", "p3"}));
  EXPECT_EQ(now->publishers[1]->data[0], "a2");
  EXPECT_EQ(server_.publisher_count(), 3u);
}

TEST_F(LocalDataServerTest, EveryChangeGetsAHigherVersionAndIsAnnounced) {
  auto v1 = Publish(Record("p1", 1, {"a"}));
  auto v2 = Publish(Record("p2", 1, {"b"}));
  ASSERT_TRUE(v1.ok() && v2.ok());
  EXPECT_GT(*v2, *v1);
  ASSERT_EQ(listener_.changes.size(), 2u);
  EXPECT_EQ(listener_.changes[1].second, *v2);
  auto snap = Fetch(Record("x", 0, {})->data_info_id());
  EXPECT_EQ(snap->version, *v2);
  ASSERT_EQ(snap->publishers.size(), 2u);
  EXPECT_EQ(snap->publishers[0]->registration_id, "p1");
  EXPECT_EQ(server_.publisher_count(), 2u);
}

TEST_F(LocalDataServerTest, OlderPublisherVersionIsRefusedAndChangesNothing) {
  ASSERT_TRUE(Publish(Record("p1", 5, {"new"})).ok());
  auto refused = Publish(Record("p1", 4, {"old"}));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("older version 4"), std::string::npos);
  auto snap = Fetch(Record("x", 0, {})->data_info_id());
  EXPECT_EQ(snap->publishers[0]->data, std::vector<std::string>{"new"});
  EXPECT_EQ(listener_.changes.size(), 1u);
}

TEST_F(LocalDataServerTest, IdenticalReplayKeepsTheVersionButMovesOwnership) {
  auto v1 = Publish(Record("p1", 3, {"a"}, /*conn=*/1));
  auto v2 = Publish(Record("p1", 3, {"a"}, /*conn=*/2));  // reconnect replay
  EXPECT_EQ(*v1, *v2);
  EXPECT_EQ(listener_.changes.size(), 1u);
  // The old stream ending no longer removes the publisher.
  std::string id = Record("x", 0, {})->data_info_id();
  server_.Unpublish(id, "p1", OwnerRef{"local", 1, "", ""}, [](auto) {});
  EXPECT_EQ(Fetch(id)->publishers.size(), 1u);
  server_.Unpublish(id, "p1", OwnerRef{"local", 2, "", ""}, [](auto) {});
  auto snap = Fetch(id);
  EXPECT_TRUE(snap->publishers.empty());
  EXPECT_GT(snap->version, *v2);  // the removal is a new version
}

TEST_F(LocalDataServerTest, SnapshotIsSharedUntilTheNextChange) {
  ASSERT_TRUE(Publish(Record("p1", 1, {"a"})).ok());
  std::string id = Record("x", 0, {})->data_info_id();
  auto first = Fetch(id);
  EXPECT_EQ(first.get(), Fetch(id).get());
  ASSERT_TRUE(Publish(Record("p1", 2, {"b"})).ok());
  auto second = Fetch(id);
  EXPECT_NE(first.get(), second.get());
  EXPECT_EQ(first->publishers[0]->data, std::vector<std::string>{"a"});  // old one unchanged
  EXPECT_EQ(second->publishers[0]->data, std::vector<std::string>{"b"});
}

TEST_F(LocalDataServerTest, UnknownDatumFetchesAsEmptyVersionZero) {
  auto snap = Fetch("nothing#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP");
  EXPECT_EQ(snap->version, 0u);
  EXPECT_TRUE(snap->publishers.empty());
  EXPECT_EQ(snap->key.data_id(), "nothing");
}

TEST_F(LocalDataServerTest, ListShowsSlotsAndCounts) {
  ASSERT_TRUE(Publish(Record("p1", 1, {"a"})).ok());
  auto list = server_.List("");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].publishers, 1u);
  EXPECT_EQ(list[0].slot, SlotOf(list[0].data_info_id, 16));
  EXPECT_TRUE(server_.List("zzz").empty());
}

}  // namespace
}  // namespace cairn
