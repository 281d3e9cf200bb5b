// LeaderElection and membership against a real etcd, with real processes
// (cairn_test_coord_member) for the participants that get killed.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <sstream>
#include <thread>

#include "coord/leader_election.h"
#include "coord/membership.h"
#include "etcd_process.h"

namespace cairn::coord {
namespace {

using cairn::testing::BinDir;
using cairn::testing::ChildProcess;
using cairn::testing::EtcdProcess;
using cairn::testing::Eventually;
using cairn::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr char kKey[] = "/cairn/test/meta/leader";

class CoordTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(etcd_.Start()) << etcd_.Log(); }

  // Each participant gets its own client (its own channel), as separate
  // processes would.
  std::unique_ptr<EtcdClient> NewClient() {
    EtcdOptions options;
    options.endpoints = {etcd_.endpoint()};
    options.request_timeout = milliseconds(1000);
    auto client = EtcdClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  std::unique_ptr<ChildProcess> StartMember(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {BinDir() + "/cairn_test_coord_member", "--etcd",
                                     etcd_.endpoint(), "--ttl", "2"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return ChildProcess::Start(argv, dir_.File("member-" + std::to_string(members_++)));
  }

  EtcdProcess etcd_;
  TempDir dir_;
  int members_ = 0;
};

// Records the transitions an election reports.
struct Transitions {
  std::mutex mu;
  std::vector<bool> seen;
  LeaderElection::ChangeCallback callback() {
    return [this](bool leader) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(leader);
    };
  }
  std::vector<bool> get() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
};

ElectionOptions Options(const std::string& value) {
  ElectionOptions options;
  options.key = kKey;
  options.value = value;
  options.ttl = seconds(2);
  return options;
}

TEST_F(CoordTest, TwoCandidatesOneLeaderAndResignHandsOver) {
  auto client_a = NewClient();
  auto client_b = NewClient();
  Transitions ta, tb;
  LeaderElection a(*client_a, Options("a"), ta.callback());
  LeaderElection b(*client_b, Options("b"), tb.callback());
  a.Start();
  b.Start();
  ASSERT_TRUE(Eventually([&] { return a.IsLeader() != b.IsLeader(); }, seconds(5)));
  std::this_thread::sleep_for(milliseconds(500));  // and it stays that way
  ASSERT_NE(a.IsLeader(), b.IsLeader());
  LeaderElection& leader = a.IsLeader() ? a : b;
  LeaderElection& standby = a.IsLeader() ? b : a;
  Transitions& leader_log = a.IsLeader() ? ta : tb;
  const std::string leader_value = a.IsLeader() ? "a" : "b";
  EXPECT_EQ(leader.Leader(), leader_value);
  EXPECT_TRUE(Eventually([&] { return standby.Leader() == leader_value; }, seconds(3)));
  auto stored = client_a->Get(kKey);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->value, leader_value);
  EXPECT_EQ(leader.leader_revision(), stored->create_revision);
  EXPECT_EQ(standby.leader_revision(), 0);

  // Resigning deletes the key: the standby takes over at once, not after a TTL.
  auto resigned_at = Clock::now();
  leader.Resign();
  EXPECT_FALSE(leader.IsLeader());
  ASSERT_TRUE(Eventually([&] { return standby.IsLeader(); }, seconds(3)));
  EXPECT_LT(Clock::now() - resigned_at, milliseconds(1500));
  EXPECT_EQ(leader_log.get(), (std::vector<bool>{true, false}));
  EXPECT_EQ(client_a->Get(kKey)->value, leader_value == "a" ? "b" : "a");
  EXPECT_GT(standby.leader_revision(), stored->create_revision);  // a new term
}

TEST_F(CoordTest, StandbyTakesOverWithinTheTtlWhenTheLeaderIsKilled) {
  auto leader = StartMember({"--elect", kKey, "--value", "doomed"});
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(leader->WaitForOutput("leader", seconds(10))) << leader->Output();

  auto client = NewClient();
  Transitions log;
  LeaderElection standby(*client, Options("standby"), log.callback());
  standby.Start();
  ASSERT_TRUE(Eventually([&] { return standby.Leader() == "doomed"; }, seconds(3)));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_FALSE(standby.IsLeader());

  auto killed_at = Clock::now();
  leader->Signal(SIGKILL);
  leader->Wait(seconds(5));
  ASSERT_TRUE(Eventually([&] { return standby.IsLeader(); }, seconds(6)));
  auto took = Clock::now() - killed_at;
  // The dead leader's lease (TTL 2 s, renewed every ~0.7 s) runs out between
  // ~1.3 s and 2 s after the kill; etcd checks expiries every 500 ms.
  EXPECT_LT(took, milliseconds(3500));
  EXPECT_GT(took, milliseconds(500));
  EXPECT_EQ(standby.Leader(), "standby");
  EXPECT_EQ(log.get(), (std::vector<bool>{true}));
}

TEST_F(CoordTest, SigtermedLeaderResignsAndTheStandbyTakesOverAtOnce) {
  auto leader = StartMember({"--elect", kKey, "--value", "polite"});
  ASSERT_TRUE(leader->WaitForOutput("leader", seconds(10))) << leader->Output();
  auto client = NewClient();
  LeaderElection standby(*client, Options("standby"), nullptr);
  standby.Start();
  ASSERT_TRUE(Eventually([&] { return standby.Leader() == "polite"; }, seconds(3)));
  auto stopped_at = Clock::now();
  leader->Signal(SIGTERM);
  EXPECT_EQ(leader->Wait(seconds(5)), 0);
  ASSERT_TRUE(Eventually([&] { return standby.IsLeader(); }, seconds(3)));
  EXPECT_LT(Clock::now() - stopped_at, milliseconds(1000));
}

// One candidate's leadership on the machine-wide monotonic clock, from its
// "sample" lines (coord_member.cc): the spans in which IsLeader() said true,
// from just before the first `true` to just after the last one.
struct LeaderSpan {
  long long from_us;
  long long to_us;  // LLONG_MAX: still leading when the output was read
};

std::vector<LeaderSpan> LeaderSpans(const std::string& output) {
  std::vector<LeaderSpan> spans;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string sample, what;
    long long t = 0;
    words >> sample >> what >> t;
    if (sample != "sample") continue;
    if (what == "leader") {
      spans.push_back({t, LLONG_MAX});
    } else if ((what == "follower" || what == "end") && !spans.empty() &&
               spans.back().to_us == LLONG_MAX) {
      spans.back().to_us = t;
    }
  }
  return spans;
}

bool SampledLeader(const std::string& output) {
  auto spans = LeaderSpans(output);
  return !spans.empty() && spans.back().to_us == LLONG_MAX;
}

// Every moment at which both candidates said they lead, as text ("" if none).
std::string Overlaps(const std::string& a_output, const std::string& b_output) {
  std::string out;
  for (const auto& a : LeaderSpans(a_output)) {
    for (const auto& b : LeaderSpans(b_output)) {
      long long from = std::max(a.from_us, b.from_us);
      long long to = std::min(a.to_us, b.to_us);
      if (from <= to) {
        out += "both led for " +
               (to == LLONG_MAX ? std::string("ever") : std::to_string(to - from)) +
               " us from t=" + std::to_string(from) + "\n";
      }
    }
  }
  return out;
}

// The election callbacks a member printed ("leader" / "follower" lines).
std::vector<std::string> PrintedTransitions(const std::string& output) {
  std::vector<std::string> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "leader" || line == "follower") out.push_back(line);
  }
  return out;
}

class TwoCandidatesTest : public CoordTest {
 protected:
  // Starts candidate a, waits until it leads, then candidate b, both
  // sampling IsLeader() every 200 us.
  void StartBoth() {
    a_ = StartMember({"--elect", kKey, "--value", "a", "--sample-us", "200"});
    ASSERT_NE(a_, nullptr);
    ASSERT_TRUE(a_->WaitForOutput("sample leader", seconds(10))) << a_->Output();
    b_ = StartMember({"--elect", kKey, "--value", "b", "--sample-us", "200"});
    ASSERT_NE(b_, nullptr);
    client_ = NewClient();
    ASSERT_NE(client_, nullptr);
    // b has read the key and waits as a standby.
    std::this_thread::sleep_for(milliseconds(1000));
    ASSERT_EQ(Holder(), "a");
    ASSERT_FALSE(SampledLeader(b_->Output())) << b_->Output();
  }
  std::string Holder() {
    auto kv = client_->Get(kKey);
    return kv.ok() ? kv->value : "";
  }
  // Stops both (a SIGCONT first, in case a is frozen) and asserts they never
  // led at the same moment.
  void StopBothAndCheck() {
    a_->Signal(SIGCONT);
    a_->Signal(SIGTERM);
    b_->Signal(SIGTERM);
    EXPECT_EQ(a_->Wait(seconds(10)), 0);
    EXPECT_EQ(b_->Wait(seconds(10)), 0);
    EXPECT_EQ(Overlaps(a_->Output(), b_->Output()), "") << "a:\n"
                                                        << a_->Output() << "b:\n"
                                                        << b_->Output();
    EXPECT_FALSE(LeaderSpans(a_->Output()).empty());
    EXPECT_FALSE(LeaderSpans(b_->Output()).empty());
  }

  std::unique_ptr<ChildProcess> a_, b_;
  std::unique_ptr<EtcdClient> client_;
};

// An operator revokes the leader's lease behind its back: it must notice,
// step down, and win a new term. (Not a no-overlap case: until its next
// renewal it cannot know; writes are fenced on the term for that.)
TEST_F(CoordTest, LeaderWhoseLeaseIsRevokedStepsDownAndCampaignsAgain) {
  auto client = NewClient();
  Transitions log;
  LeaderElection election(*client, Options("solo"), log.callback());
  election.Start();
  ASSERT_TRUE(Eventually([&] { return election.IsLeader(); }, seconds(3)));
  int64_t first_term = election.leader_revision();
  auto kv = client->Get(kKey);
  ASSERT_TRUE(kv.ok());
  ASSERT_TRUE(client->RevokeLease(kv->lease).ok());
  ASSERT_TRUE(Eventually([&] { return log.get().size() >= 3; }, seconds(5)));
  EXPECT_EQ(log.get(), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(election.IsLeader());
  EXPECT_GT(election.leader_revision(), first_term);
}

// The leader loses its lease: it freezes (SIGSTOP: a long GC pause, a VM
// stall) for longer than its TTL, etcd expires the lease and b takes over.
// When a resumes, its keeper knows the TTL has run out since its last
// renewal: no IsLeader() answer of a may say true once b leads (sampled
// every 200 us in both processes, on one clock, through the whole test). a
// then steps down and campaigns again, as b's standby.
TEST_F(TwoCandidatesTest, LeaderThatLosesItsLeaseStepsDownAndCampaignsAgain) {
  StartBoth();
  a_->Signal(SIGSTOP);
  auto frozen_at = Clock::now();
  ASSERT_TRUE(b_->WaitForOutput("sample leader", seconds(8))) << b_->Output();
  // The TTL (2 s) counts from a's last renewal, up to ~0.7 s before the stop.
  EXPECT_GT(Clock::now() - frozen_at, milliseconds(1200));
  EXPECT_EQ(Holder(), "b");
  std::this_thread::sleep_for(milliseconds(500));  // b leads while a is frozen
  a_->Signal(SIGCONT);
  ASSERT_TRUE(a_->WaitForOutput("follower", seconds(5))) << a_->Output();
  // Both keep campaigning: a stays b's standby.
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(Holder(), "b");
  EXPECT_TRUE(SampledLeader(b_->Output())) << b_->Output();
  EXPECT_FALSE(SampledLeader(a_->Output())) << a_->Output();
  EXPECT_EQ(PrintedTransitions(a_->Output()), (std::vector<std::string>{"leader", "follower"}));
  EXPECT_EQ(PrintedTransitions(b_->Output()), (std::vector<std::string>{"leader"}));
  StopBothAndCheck();
}

TEST_F(CoordTest, MembershipJoinLeaveAndDeathAreSeenByWatchers) {
  const std::string prefix = "/cairn/test/members/data/";
  auto client = NewClient();
  std::mutex mu;
  std::vector<PrefixWatcher::Snapshot> history;
  PrefixWatcher watcher(*client, prefix, [&](const PrefixWatcher::Snapshot& s) {
    std::lock_guard<std::mutex> lock(mu);
    history.push_back(s);
  });
  ASSERT_TRUE(watcher.Start().ok());
  EXPECT_TRUE(watcher.Get().empty());

  auto client_a = NewClient();
  MemberRegistration a(*client_a, prefix + "a", "127.0.0.1:1001", seconds(2));
  ASSERT_TRUE(a.Start().ok());
  auto client_b = NewClient();
  MemberRegistration b(*client_b, prefix + "b", "127.0.0.1:1002", seconds(2));
  ASSERT_TRUE(b.Start().ok());
  auto doomed = StartMember({"--member", prefix + "c", "--value", "127.0.0.1:1003"});
  ASSERT_TRUE(doomed->WaitForOutput("registered", seconds(10))) << doomed->Output();

  PrefixWatcher::Snapshot all = {
      {"a", "127.0.0.1:1001"}, {"b", "127.0.0.1:1002"}, {"c", "127.0.0.1:1003"}};
  ASSERT_TRUE(Eventually([&] { return watcher.Get() == all; }, seconds(3)));
  // A second watcher started now reads the same set.
  PrefixWatcher late(*client, prefix);
  ASSERT_TRUE(late.Start().ok());
  EXPECT_EQ(late.Get(), all);

  // Registrations are renewed: still there after several TTLs.
  std::this_thread::sleep_for(seconds(3));
  EXPECT_EQ(watcher.Get(), all);
  EXPECT_TRUE(a.registered());

  // A clean leave is seen at once.
  auto left_at = Clock::now();
  b.Leave();
  ASSERT_TRUE(Eventually([&] { return watcher.Get().count("b") == 0; }, seconds(2)));
  EXPECT_LT(Clock::now() - left_at, milliseconds(1000));
  EXPECT_FALSE(b.registered());

  // A killed member disappears when its lease runs out.
  doomed->Signal(SIGKILL);
  doomed->Wait(seconds(5));
  ASSERT_TRUE(Eventually([&] { return watcher.Get().count("c") == 0; }, seconds(5)));
  EXPECT_EQ(watcher.Get(), (PrefixWatcher::Snapshot{{"a", "127.0.0.1:1001"}}));
  EXPECT_TRUE(Eventually([&] { return late.Get() == watcher.Get(); }, seconds(2)));

  // Someone deletes a live member's key: the member puts it back.
  ASSERT_TRUE(client->Delete(prefix + "a").ok());
  EXPECT_TRUE(Eventually([&] { return watcher.Get().count("a") == 1; }, seconds(3)));

  // The callback saw every step, ending with the current set.
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(history.size(), 6u);
  EXPECT_TRUE(history.front().empty());
  EXPECT_EQ(history.back(), watcher.Get());
}

// Incremental mode (the session's revision catalog): the first call holds
// the whole prefix, later ones only what changed.
TEST_F(CoordTest, IncrementalWatcherTellsOnlyWhatChanged) {
  const std::string prefix = "/cairn/test/catalog/";
  auto client = NewClient();
  ASSERT_TRUE(client->Put(prefix + "a", "1").ok());
  ASSERT_TRUE(client->Put(prefix + "b", "2").ok());
  std::mutex mu;
  std::vector<PrefixWatcher::Changes> calls;
  PrefixWatcher watcher(*client, prefix,
                        PrefixWatcher::ChangesCallback([&](PrefixWatcher::Changes changes) {
                          std::lock_guard<std::mutex> lock(mu);
                          calls.push_back(std::move(changes));
                        }));
  ASSERT_TRUE(watcher.Start().ok());
  ASSERT_TRUE(client->Put(prefix + "c", "3").ok());
  ASSERT_TRUE(client->Delete(prefix + "a").ok());
  ASSERT_TRUE(client->Put(prefix + "b", "4").ok());
  // Applied in order, the calls rebuild what etcd holds.
  PrefixWatcher::Snapshot want = {{"b", "4"}, {"c", "3"}};
  auto rebuilt = [&] {
    std::lock_guard<std::mutex> lock(mu);
    PrefixWatcher::Snapshot state;
    for (const auto& call : calls) {
      if (call.reset) state.clear();
      for (const auto& name : call.deletes) state.erase(name);
      for (const auto& [name, value] : call.puts) state[name] = value;
    }
    return state;
  };
  ASSERT_TRUE(Eventually([&] { return rebuilt() == want; }, seconds(3)));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(calls.size(), 2u);
  EXPECT_TRUE(calls[0].reset);
  EXPECT_EQ(calls[0].puts, (PrefixWatcher::Snapshot{{"a", "1"}, {"b", "2"}}));
  size_t told = 0;  // keys named after the first read: each change once
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_FALSE(calls[i].reset);
    told += calls[i].puts.size() + calls[i].deletes.size();
  }
  EXPECT_EQ(told, 3u);
  EXPECT_TRUE(watcher.Get().empty()) << "incremental mode keeps no copy";
}

TEST_F(CoordTest, RegistrationAndWatcherSurviveAnEtcdRestart) {
  const std::string prefix = "/cairn/test/members/session/";
  auto client = NewClient();
  PrefixWatcher watcher(*client, prefix);
  ASSERT_TRUE(watcher.Start().ok());
  MemberRegistration a(*client, prefix + "a", "x", seconds(2));
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(Eventually([&] { return watcher.Get().size() == 1; }, seconds(3)));
  ASSERT_TRUE(etcd_.Restart()) << etcd_.Log();
  // etcd keeps leases across a restart (their TTL is refreshed): the
  // member stays, and a new one is seen through the resumed watch.
  MemberRegistration b(*client, prefix + "b", "y", seconds(2));
  b.Start().IgnoreError();  // may race the restart: it retries in the background
  EXPECT_TRUE(Eventually([&] { return b.registered(); }, seconds(5)));
  EXPECT_TRUE(Eventually([&] { return watcher.Get().size() == 2; }, seconds(10)));
  std::this_thread::sleep_for(seconds(3));
  EXPECT_EQ(watcher.Get().size(), 2u);
  EXPECT_TRUE(a.registered());
}

}  // namespace
}  // namespace cairn::coord
