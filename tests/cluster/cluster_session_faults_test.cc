// Faults of the session role under production-shaped load
// (cluster_faults_fixture.h; the checks are the same as in
// cluster_faults_test.cc): a session killed while its clients move to the
// other one, and a session killed and restarted under the same id and
// address while its clients replay. Harness timings: session lease 4 s
// (the data servers keep a dead session's publishers that long), client
// reconnect backoff 100 ms doubling to 500 ms.
#include <csignal>

#include "cluster_faults_fixture.h"

namespace cairn::cluster::faults {
namespace {

using cairn::testing::Eventually;

constexpr milliseconds kSessionLease(4000);

class ClusterSessionFaultsTest : public ClusterFaultsTest {
 protected:
  // GET /api/v1/servers of a session.
  std::string ServerList(const std::string& session_id) {
    return cairn::testing::RunCommand(
               {"/usr/bin/curl", "-s",
                "http://" + cluster_.Find(session_id)->admin_address + "/api/v1/servers"},
               seconds(10))
        .second;
  }
};

// kill -9 of s1: its clients see the reset at once, reconnect to s2 after the
// first backoff and replay; the data servers hold s1's publishers meanwhile.
// Budget: 4 s from the kill (the churn runs the first second; reconnect
// <= 0.5 s, then one replay and a push per subscriber). After s1's lease ran
// out its copies go, and the replayed registrations must stay.
TEST_F(ClusterSessionFaultsTest, SessionKilledClientsMoveAndReplay) {
  std::string s1 = Address("s1");
  std::string s2 = Address("s2");
  std::string listed = ServerList("s2");
  EXPECT_NE(listed.find("\"" + s1 + "\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"" + s2 + "\""), std::string::npos) << listed;

  Clock::time_point killed = DuringChurn([&] { cluster_.Find("s1")->process->Signal(SIGKILL); });
  ExpectConvergedWithin("kill -9 of a session", killed, seconds(4));
  EXPECT_GE(subscriber_clients_[0]->stats().reconnects, 1u);
  EXPECT_GE(canary_clients_[0]->stats().reconnects, 1u);

  std::this_thread::sleep_for(kSessionLease + seconds(2));
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  listed = ServerList("s2");
  EXPECT_EQ(listed.find("\"" + s1 + "\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"" + s2 + "\""), std::string::npos) << listed;
  // Everything now goes through s2.
  Clock::time_point calm = DuringChurn([] {}, milliseconds(0), milliseconds(1000));
  ExpectConvergedWithin("churn through the surviving session", calm, seconds(3));
  ExpectNoChurnFailures();
  ExpectNoAnomalies("kill -9 of a session");
}

// kill -9 of s1 and a restart under the same id and address at once. Clients
// listing s1 then s2 move to s2; clients that know only s1 (pinned) retry it
// and replay on the new incarnation, one by one, while the data servers still
// hold the old incarnation's part: the new s1 must not make its part of any
// slot smaller than what its clients are still replaying. Budget: 5 s from
// the kill (restart < 1 s, backoff <= 0.5 s, replay, push).
TEST_F(ClusterSessionFaultsTest, SessionRestartedUnderItsIdWhileClientsReplay) {
  AddCanaryClient("pinned-0", {"s1"});
  AddCanaryClient("pinned-1", {"s1"});
  AddSubscriberClient("pinned-sub", {"s1"});
  ASSERT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(10)))) << Mismatch();
  std::string address = Address("s1");
  Clock::time_point killed = DuringChurn([&] {
    cluster_.Find("s1")->process->Signal(SIGKILL);
    ASSERT_NE(cluster_.Start("session", "s1"), nullptr) << cluster_.Logs();
  });
  EXPECT_EQ(Address("s1"), address);
  ExpectConvergedWithin("session restarted under its id", killed, seconds(5));
  for (auto& client : canary_clients_) EXPECT_TRUE(client->IsConnected());
  // Past the old incarnation's lease: nothing its clients replayed is lost.
  std::this_thread::sleep_for(kSessionLease + seconds(2));
  EXPECT_TRUE(Eventually([&] { return AllViewsMatch(); }, Scaled(seconds(3)))) << Mismatch();
  ExpectNoChurnFailures();
  ExpectNoAnomalies("session restarted under its id while its clients replay");
}

// Clients given the same list of sessions spread over them.
TEST_F(ClusterSessionFaultsTest, ClientsSpreadOverTheSessions) {
  std::vector<std::unique_ptr<RegistryClient>> more;
  for (int i = 0; i < 16; ++i) {
    RegistryClientOptions options;
    options.servers = {Address("s1"), Address("s2")};
    options.spread_over_servers = true;
    auto client = RegistryClient::Create(options);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->WaitConnected(seconds(10)).ok());
    more.push_back(std::move(*client));
  }
  auto streams = [&](const char* id) {
    return static_cast<int>(cluster_.Metric(id, "cairn_registry_connections"));
  };
  // Each session also holds half of the fixture's clients. With 16 more
  // spread at random, both get some (all 16 on one: p = 2^-15).
  const int fixture = kSubscriberClients + kCanaryClients + kChurnClients;
  EXPECT_GT(streams("s1"), fixture / 2);
  EXPECT_GT(streams("s2"), fixture / 2);
  EXPECT_EQ(streams("s1") + streams("s2"), fixture + 16);
}

}  // namespace
}  // namespace cairn::cluster::faults
