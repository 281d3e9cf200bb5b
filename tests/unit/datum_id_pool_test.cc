#include "registry/data/datum_id_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace cairn {
namespace {

pb::DataInfoKey Key(const std::string& data_id) {
  pb::DataInfoKey key;
  key.set_data_id(data_id);
  return NormalizeKey(key);
}

TEST(DatumIdPoolTest, OneSharedIdPerDataInfoIdWhileInUse) {
  DatumIdPool pool;
  auto a = pool.Get(Key("svc.a"));
  auto a_again = pool.Get(Key("svc.a"));
  auto b = pool.Get(Key("svc.b"));
  EXPECT_EQ(a, a_again);
  EXPECT_NE(a, b);
  EXPECT_EQ(a->data_info_id, DataInfoId(Key("svc.a")));
  EXPECT_EQ(a->key.data_id(), "svc.a");
  EXPECT_EQ(b->key.group(), Key("svc.b").group());
}

TEST(DatumIdPoolTest, AnUnusedIdIsReleasedAndMadeAgain) {
  DatumIdPool pool;
  std::weak_ptr<const DatumId> first = pool.Get(Key("svc.a"));
  EXPECT_TRUE(first.expired()) << "the pool does not keep ids alive";
  auto second = pool.Get(Key("svc.a"));
  EXPECT_EQ(second->key.data_id(), "svc.a");
}

TEST(DatumIdPoolTest, ExpiredEntriesAreSweptSoTheTableStaysBounded) {
  DatumIdPool pool;
  std::vector<std::shared_ptr<const DatumId>> kept;
  for (int i = 0; i < 10000; ++i) {
    auto id = pool.Get(Key("svc." + std::to_string(i)));
    if (i % 100 == 0) kept.push_back(id);  // 100 stay in use
  }
  EXPECT_LT(pool.table_size(), 2100u);  // about twice what was live at the last sweep
  for (const auto& id : kept) EXPECT_EQ(pool.Get(id->key), id) << "live ids survive sweeps";
}

}  // namespace
}  // namespace cairn
