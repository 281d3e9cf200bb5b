// Faults of the data and meta roles under production-shaped load
// (cluster_faults_fixture.h): every dataId has 12 canary publishers from 6
// clients spread over both sessions, churn clients publish, republish and
// unregister from their own threads while the fault happens, and subscribers
// on both sessions check every push by registration id.
//
// Each test asserts: no push with a false removal or a duplicate id, no churn
// operation failed, and every view equal to what the clients had
// acknowledged within the fault's time budget (normal build; scaled under
// the sanitizers, see TimeScale()). The harness's timings are the base of
// every budget: data membership lease 2 s (etcd checks expiries every
// 500 ms), slot rebuild timeout 2 s, session lease 4 s.
#include <csignal>
#include <optional>
#include <thread>

#include "cluster_faults_fixture.h"

namespace cairn::cluster::faults {
namespace {

using cairn::testing::Eventually;

constexpr milliseconds kLease(2000);
constexpr milliseconds kRebuildTimeout(2000);

// The dead server's key goes with its lease (<= 2.5 s), the meta leader then
// promotes the followers of its slots at once, and the sessions re-route
// their queued writes to the promoted leaders, which already hold the data:
// lease + 3 s for the writes held meanwhile and the pushes they cause.
TEST_F(ClusterFaultsTest, DataServerKilledDuringChurn) {
  StartChurn(milliseconds(5), 60);  // a publish storm
  std::this_thread::sleep_for(milliseconds(500));
  anomalies_->Mark("kill -9 d2");
  Clock::time_point killed = Clock::now();
  cluster_.Find("d2")->process->Signal(SIGKILL);
  std::this_thread::sleep_for(milliseconds(1500));
  StopChurn();
  ExpectConvergedWithin("kill -9 of a data server", killed, kLease + seconds(3));
  ExpectNoChurnFailures();
  EXPECT_TRUE(Eventually([&] { return Balanced({"d1", "d3"}); }, Scaled(seconds(20))));
  // Still converged once the slots settled on the two survivors.
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoAnomalies("kill -9 of a data server");
}

// Two of the three data servers die at once: the slots they both held have
// no copy left, and the survivor must rebuild them from the sessions (and
// serve nothing before it holds every live session's part). Budget: lease
// + rebuild timeout + 3 s. Then both come back and the slots move again
// (through followers that copy first): 5 s from the restart for the views,
// which must not lose anyone while the table settles.
TEST_F(ClusterFaultsTest, TwoDataServersKilledAtOnceThenRestarted) {
  Clock::time_point killed = DuringChurn([&] {
    cluster_.Find("d2")->process->Signal(SIGKILL);
    cluster_.Find("d3")->process->Signal(SIGKILL);
  });
  ExpectConvergedWithin("kill -9 of two data servers", killed,
                        kLease + kRebuildTimeout + seconds(3));
  // d1 leads every slot (it has no live peer to hold a follower copy).
  EXPECT_TRUE(Eventually(
      [&] {
        auto table = Table();
        if (!table.ok()) return false;
        for (const auto& slot : table->slots()) {
          if (slot.leader() != "d1") return false;
        }
        return true;
      },
      Scaled(seconds(10))));
  Clock::time_point restarted = DuringChurn([&] {
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d3"), nullptr) << cluster_.Logs();
  });
  ExpectConvergedWithin("two data servers restarted", restarted, seconds(5));
  EXPECT_TRUE(Eventually(
      [&] {
        return Balanced({"d1", "d2", "d3"});
      },
      Scaled(seconds(30))))
      << cluster_.Logs();
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("kill -9 of two data servers, then restarted");
}

// kill -9 and back under the same id before the membership lease ran out:
// the slot table does not change, yet the restarted server has lost
// everything it led and followed. The sessions notice through their change
// feed and re-send their part; it may serve only once it holds every live
// session's part. Budget: restart (< 1 s) + rebuild timeout + 2 s.
TEST_F(ClusterFaultsTest, DataServerRestartedWithinItsLease) {
  int64_t table_before = TableRevision();
  ASSERT_GT(table_before, 0);
  auto slots_before = Table();
  ASSERT_TRUE(slots_before.ok());
  milliseconds restart_took{0};
  Clock::time_point killed = DuringChurn([&] {
    Clock::time_point at = Clock::now();
    cluster_.Find("d2")->process->Signal(SIGKILL);
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    restart_took = std::chrono::duration_cast<milliseconds>(Clock::now() - at);
  });
  std::printf("d2 was back %ld ms after the kill\n", static_cast<long>(restart_took.count()));
  ExpectConvergedWithin("data server restarted within its lease", killed,
                        seconds(1) + kRebuildTimeout + seconds(2));
  // Past the old lease: the table never changed (else this was another fault).
  std::this_thread::sleep_for(kLease + milliseconds(1000));
  if (TableRevision() != table_before) {
    auto slots_after = Table();
    ASSERT_TRUE(slots_after.ok());
    int changed = 0;
    for (int i = 0; i < slots_after->slots_size() && i < slots_before->slots_size(); ++i) {
      const auto& was = slots_before->slots(i);
      const auto& is = slots_after->slots(i);
      if (was.leader() != is.leader() || was.followers_size() != is.followers_size() ||
          (is.followers_size() > 0 && was.followers(0) != is.followers(0))) {
        ++changed;
      }
    }
    ADD_FAILURE() << "the slot table changed (epoch " << slots_before->epoch() << " -> "
                  << slots_after->epoch() << ", " << changed
                  << " slots on other servers) although d2 was back after " << restart_took.count()
                  << " ms, within its lease\n"
                  << cluster_.Logs();
  }
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("data server restarted within its lease");
}

// Both of them killed and back at once, within their lease (the table does
// not change): the slots held only by d2 and d3 have no copy anywhere, and
// their restarted leaders may serve only what every live session re-sent.
// Budget as for one server restarted within its lease.
TEST_F(ClusterFaultsTest, TwoDataServersRestartedWithinTheirLease) {
  Clock::time_point killed = DuringChurn([&] {
    cluster_.Find("d2")->process->Signal(SIGKILL);
    cluster_.Find("d3")->process->Signal(SIGKILL);
    ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs();
    ASSERT_NE(cluster_.Start("data", "d3"), nullptr) << cluster_.Logs();
  });
  ExpectConvergedWithin("two data servers restarted within their lease", killed,
                        seconds(1) + kRebuildTimeout + seconds(2));
  EXPECT_TRUE(Eventually(
      [&] {
        return Balanced({"d1", "d2", "d3"});
      },
      Scaled(seconds(30))))
      << cluster_.Logs();
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("two data servers restarted within their lease");
}

// kill -9, the table moves on without it (its lease ran out), then it comes
// back under the same id as an empty server and takes slots again: each
// moved slot must be copied before the new leader serves. Budget for the
// kill as above; 5 s from the restart for the views (not for the table,
// which moves a few slots per step).
TEST_F(ClusterFaultsTest, DataServerRestartedUnderTheSameIdAfterItsLease) {
  Clock::time_point killed = DuringChurn([&] { cluster_.Find("d2")->process->Signal(SIGKILL); });
  ExpectConvergedWithin("kill -9 of a data server", killed, kLease + seconds(3));
  ASSERT_TRUE(Eventually([&] { return Balanced({"d1", "d3"}); }, Scaled(seconds(20))));
  Clock::time_point restarted =
      DuringChurn([&] { ASSERT_NE(cluster_.Start("data", "d2"), nullptr) << cluster_.Logs(); });
  ExpectConvergedWithin("data server back under its id", restarted, seconds(5));
  EXPECT_TRUE(Eventually(
      [&] {
        return Balanced({"d1", "d2", "d3"});
      },
      Scaled(seconds(30))))
      << cluster_.Logs();
  // The slots moved back onto d2 while nothing changed: still complete.
  std::this_thread::sleep_for(kRebuildTimeout);
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("data server restarted under its id after its lease");
}

// The meta leader dies; the standby takes over within the meta lease
// (asserted separately), and then a fourth data server joins: slots move to
// it a few per step, each copied before it is served. Budget for the views:
// 5 s from the join (the moves need no lease to run out).
TEST_F(ClusterFaultsTest, MetaLeaderKilledThenDataServerJoins) {
  ASSERT_NE(cluster_.Start("meta", "m2"), nullptr);
  cluster_.Find("m1")->process->Signal(SIGKILL);
  ASSERT_TRUE(Eventually(
      [&] {
        auto kv = etcd_->Get(keys_.MetaLeader());
        return kv.ok() && kv->value == "m2";
      },
      Scaled(seconds(10))));
  Clock::time_point joined =
      DuringChurn([&] { ASSERT_NE(cluster_.Start("data", "d4"), nullptr) << cluster_.Logs(); });
  ExpectConvergedWithin("a data server joined (slots move)", joined, seconds(5));
  EXPECT_TRUE(Eventually(
      [&] {
        return Balanced({"d1", "d2", "d3", "d4"});
      },
      Scaled(seconds(30))))
      << cluster_.Logs();
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("meta leader killed, then a data server joined");
}

// SIGTERM: the server revokes its lease, the meta leader promotes its slots'
// followers at once and the server serves until it leads nothing. No lease
// to wait for: 4 s for the views (the churn runs the first 1.5 s).
TEST_F(ClusterFaultsTest, GracefulDataShutdownHandsSlotsOver) {
  std::optional<int> code;
  std::thread stopper;
  Clock::time_point stopped = DuringChurn(
      [&] { stopper = std::thread([&] { code = cluster_.Stop("d1", SIGTERM, seconds(30)); }); },
      milliseconds(300), milliseconds(1500));
  ExpectConvergedWithin("graceful data shutdown", stopped, seconds(4));
  stopper.join();
  EXPECT_EQ(code, 0) << cluster_.Logs();
  EXPECT_NE(cluster_.Find("d1")->process->Output().find("drained"), std::string::npos)
      << cluster_.Find("d1")->process->Output();
  EXPECT_TRUE(Eventually([&] { return Balanced({"d2", "d3"}); }, Scaled(seconds(20))));
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("graceful data shutdown");
  // Every role stops cleanly on SIGTERM (exit 0; sanitizer builds report
  // leaks through the exit code).
  TearDown();  // the clients first, so the sessions do not wait for them
  for (const char* id : {"s1", "s2", "d2", "d3", "m1"}) {
    EXPECT_EQ(cluster_.Stop(id, SIGTERM, seconds(30)), 0) << id << "\n"
                                                          << cluster_.Find(id)->process->Output();
  }
}

}  // namespace
}  // namespace cairn::cluster::faults
