// SlotRebuilds: a new slot leader serves the slot only once every live
// session has re-sent its part, whatever the order of syncs, joins and
// departures; and only the session lease ends a wait for a silent session.
#include "registry/cluster/slot_rebuilds.h"

#include <gtest/gtest.h>

namespace cairn::cluster {
namespace {

using std::chrono::milliseconds;

class SlotRebuildsTest : public ::testing::Test {
 protected:
  SlotRebuilds rebuilds_{{milliseconds(3000), milliseconds(30000)}};
  SteadyTime t0_ = SteadyNow();
  SteadyTime At(int ms) { return t0_ + milliseconds(ms); }
};

TEST_F(SlotRebuildsTest, ServedOnlyWhenEveryLiveSessionSynced) {
  rebuilds_.Begin(7, t0_);
  std::set<std::string> live = {"s1@1", "s2@1"};
  EXPECT_TRUE(rebuilds_.TakeReady(live, At(10)).empty());
  rebuilds_.Synced(7, "s2@1");
  EXPECT_TRUE(rebuilds_.TakeReady(live, At(20)).empty());
  rebuilds_.Synced(7, "s1@1");
  auto ready = rebuilds_.TakeReady(live, At(30));
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].slot, 7u);
  EXPECT_TRUE(ready[0].complete);
  EXPECT_FALSE(rebuilds_.Rebuilding(7));
}

// The restarted data server's first view once lacked the sessions: a slot
// with no live session known is served at once, so the view must be whole
// (ClusterView); here, a session that appears later (it starts watching)
// is waited for as long as the slot still rebuilds.
TEST_F(SlotRebuildsTest, ASessionThatAppearsWhileRebuildingIsWaitedFor) {
  rebuilds_.Begin(1, t0_);
  rebuilds_.Begin(2, t0_);
  rebuilds_.Synced(1, "s1@1");
  rebuilds_.Synced(2, "s1@1");
  std::set<std::string> live = {"s1@1", "s2@1"};  // s2 started watching
  EXPECT_TRUE(rebuilds_.TakeReady(live, At(100)).empty());
  rebuilds_.Synced(2, "s2@1");
  auto ready = rebuilds_.TakeReady(live, At(200));
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].slot, 2u);
  EXPECT_TRUE(rebuilds_.Rebuilding(1));
}

TEST_F(SlotRebuildsTest, ASessionThatLeftIsNotWaitedFor) {
  rebuilds_.Begin(3, t0_);
  rebuilds_.Synced(3, "s1@1");
  EXPECT_TRUE(rebuilds_.TakeReady({"s1@1", "s2@1"}, At(10)).empty());
  auto ready = rebuilds_.TakeReady({"s1@1"}, At(20));  // s2 died: left membership
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0].complete);
}

// A restarted session is a new incarnation: the old one's sync does not
// stand for it.
TEST_F(SlotRebuildsTest, AnOldIncarnationsSyncDoesNotCount) {
  rebuilds_.Begin(4, t0_);
  rebuilds_.Synced(4, "s1@1");
  EXPECT_TRUE(rebuilds_.TakeReady({"s1@2"}, At(10)).empty());
  rebuilds_.Synced(4, "s1@2");
  EXPECT_EQ(rebuilds_.TakeReady({"s1@2"}, At(20)).size(), 1u);
}

TEST_F(SlotRebuildsTest, TheRebuildTimeoutOnlyWarnsAndTheLeaseEndsTheWait) {
  rebuilds_.Begin(5, t0_);
  rebuilds_.Synced(5, "s1@1");
  std::set<std::string> live = {"s1@1", "s2@1"};
  EXPECT_TRUE(rebuilds_.Overdue(live, At(2999)).empty());
  auto overdue = rebuilds_.Overdue(live, At(3000));
  ASSERT_EQ(overdue.size(), 1u);
  EXPECT_EQ(overdue[5], std::vector<std::string>{"s2@1"});
  EXPECT_TRUE(rebuilds_.TakeReady(live, At(29999)).empty());
  auto ready = rebuilds_.TakeReady(live, At(30000));
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_FALSE(ready[0].complete);
  EXPECT_EQ(ready[0].missing, std::vector<std::string>{"s2@1"});
}

TEST_F(SlotRebuildsTest, BeginAgainForgetsSyncsOfTheEarlierLeadership) {
  rebuilds_.Begin(6, t0_);
  rebuilds_.Synced(6, "s1@1");
  rebuilds_.End(6);             // led elsewhere for a while
  rebuilds_.Synced(6, "s1@1");  // a late sync: ignored, not rebuilding
  EXPECT_FALSE(rebuilds_.Rebuilding(6));
  rebuilds_.Begin(6, At(1000));
  EXPECT_TRUE(rebuilds_.TakeReady({"s1@1"}, At(1001)).empty());
  // The give-up clock starts at the new Begin.
  EXPECT_TRUE(rebuilds_.TakeReady({"s1@1"}, At(30999)).empty());
  EXPECT_EQ(rebuilds_.TakeReady({"s1@1"}, At(31000)).size(), 1u);
}

}  // namespace
}  // namespace cairn::cluster
