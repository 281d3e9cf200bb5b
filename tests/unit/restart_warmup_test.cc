// The restart warm-up of a standalone registry (docs/ARCHITECTURE.md,
// "Restart and reconnect"): the tracker of returning clients, the session
// server withholding pushes while it lasts, and the recorder that keeps the
// connected clients in the store for the next run.
#include "registry/session/restart_warmup.h"

#include <gtest/gtest.h>

#include <thread>

#include "registry/data/local_data_server.h"
#include "registry/server/connected_clients.h"
#include "registry/session/session_server.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

// ---- RestartWarmup: who is still awaited

TEST(RestartWarmupTest, AClientReturnsWhenItsAnnouncedReplayIsAnswered) {
  RestartWarmup warmup({{"a", 1}, {"b", 1}});
  EXPECT_EQ(warmup.expected(), 2u);
  warmup.OnHello(1, "a", 2);
  EXPECT_EQ(warmup.awaited(), 2u) << "a said Hello but has not replayed yet";
  warmup.OnRegistrationAnswered(1);
  EXPECT_EQ(warmup.awaited(), 2u);
  warmup.OnRegistrationAnswered(1);
  EXPECT_EQ(warmup.awaited(), 1u);
  EXPECT_FALSE(warmup.AllReturned());
  EXPECT_EQ(warmup.AwaitedSummary(10), "'b'");
  warmup.OnHello(2, "b", 0);  // nothing to replay: back at its Hello
  EXPECT_TRUE(warmup.AllReturned());
  // More answers on a returned stream change nothing.
  warmup.OnRegistrationAnswered(1);
  EXPECT_EQ(warmup.awaited(), 0u);
}

TEST(RestartWarmupTest, NewClientsDoNotCountAndDoNotExtendIt) {
  RestartWarmup warmup({{"a", 1}});
  warmup.OnHello(1, "newcomer", 0);
  warmup.OnHello(2, "other", 3);
  for (int i = 0; i < 3; ++i) warmup.OnRegistrationAnswered(2);
  EXPECT_EQ(warmup.awaited(), 1u);
  warmup.OnHello(3, "a", 1);
  warmup.OnRegistrationAnswered(3);
  EXPECT_TRUE(warmup.AllReturned());
}

TEST(RestartWarmupTest, AStreamThatEndsMidReplayLeavesItsClientAwaited) {
  RestartWarmup warmup({{"a", 1}});
  warmup.OnHello(1, "a", 2);
  warmup.OnRegistrationAnswered(1);
  warmup.OnDisconnect(1);
  warmup.OnRegistrationAnswered(1);  // a late answer of the dead stream
  EXPECT_EQ(warmup.awaited(), 1u);
  warmup.OnHello(2, "a", 2);  // the client's next stream replays all again
  warmup.OnRegistrationAnswered(2);
  EXPECT_EQ(warmup.awaited(), 1u);
  warmup.OnRegistrationAnswered(2);
  EXPECT_TRUE(warmup.AllReturned());
}

TEST(RestartWarmupTest, ASharedClientIdIsAwaitedAsOftenAsItWasConnected) {
  RestartWarmup warmup({{"", 2}, {"x", 1}});
  EXPECT_EQ(warmup.expected(), 3u);
  warmup.OnHello(1, "", 0);
  EXPECT_EQ(warmup.awaited(), 2u);
  EXPECT_EQ(warmup.AwaitedSummary(10), "'', 'x'");
  warmup.OnHello(2, "", 0);
  warmup.OnHello(3, "", 0);  // a third stream with that id: a new client
  EXPECT_EQ(warmup.awaited(), 1u);
  warmup.OnHello(4, "x", 0);
  EXPECT_TRUE(warmup.AllReturned());
}

TEST(RestartWarmupTest, ASecondHelloOnAStreamStartsItsCountAgain) {
  RestartWarmup warmup({{"a", 1}});
  warmup.OnHello(1, "a", 1);
  warmup.OnHello(1, "a", 2);
  warmup.OnRegistrationAnswered(1);
  EXPECT_EQ(warmup.awaited(), 1u);
  warmup.OnRegistrationAnswered(1);
  EXPECT_TRUE(warmup.AllReturned());
}

// ---- SessionServer: pushes withheld while the warm-up lasts

class FakeStream : public ClientStream {
 public:
  bool Send(pb::ServerMessage&& message, bool /*droppable*/) override {
    messages.push_back(std::move(message));
    return true;
  }
  void Close(const absl::Status&) override {}
  void MessageHandled() override {}
  std::vector<pb::Push> Pushes() const {
    std::vector<pb::Push> out;
    for (const auto& m : messages) {
      if (m.has_push()) out.push_back(m.push());
    }
    return out;
  }
  size_t Results() const {
    size_t n = 0;
    for (const auto& m : messages) n += m.has_result() ? 1 : 0;
    return n;
  }
  std::vector<pb::ServerMessage> messages;
};

pb::ClientMessage HelloMsg(uint64_t request_id, const std::string& client_id, uint32_t replay) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_hello()->set_client_id(client_id);
  m.mutable_hello()->set_replay_registrations(replay);
  return m;
}

pb::ClientMessage PublishMsg(uint64_t request_id, const std::string& reg_id) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_publish()->set_registration_id(reg_id);
  m.mutable_publish()->mutable_key()->set_data_id("svc");
  m.mutable_publish()->add_data(reg_id + ":80");
  return m;
}

pb::ClientMessage BatchOfPublishes(uint64_t request_id, const std::vector<std::string>& ids) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  uint64_t inner_id = request_id * 100;
  for (const auto& id : ids) *m.mutable_batch()->add_messages() = PublishMsg(++inner_id, id);
  return m;
}

pb::ClientMessage SubscribeMsg(uint64_t request_id, const std::string& reg_id) {
  pb::ClientMessage m;
  m.set_request_id(request_id);
  m.mutable_subscribe()->set_registration_id(reg_id);
  m.mutable_subscribe()->mutable_key()->set_data_id("svc");
  return m;
}

size_t PublishersIn(const pb::Push& push) {
  size_t n = 0;
  for (const auto& zone : push.zones()) n += zone.publishers_size();
  return n;
}

class SessionWarmupTest : public ::testing::Test {
 protected:
  SessionWarmupTest()
      : loop_("test"),
        data_(8, *VersionClock::Open(nullptr)),
        warmup_metrics_(metrics_.registry()),
        session_(loop_, data_, metrics_, SessionOptions{}) {}
  std::pair<uint64_t, std::shared_ptr<FakeStream>> Connect() {
    auto stream = std::make_shared<FakeStream>();
    uint64_t id = session_.OnConnect("ipv4:127.0.0.1:" + std::to_string(++port_), stream);
    return {id, stream};
  }
  void Poll() { loop_.PollForTest(); }

  EventLoop loop_;
  RegistryMetrics metrics_;
  LocalDataServer data_;
  RestartWarmupMetrics warmup_metrics_;
  SessionServer session_;
  int port_ = 1000;
};

TEST_F(SessionWarmupTest, NoPushUntilEveryPreviousClientHasReplayed) {
  session_.BeginRestartWarmup({{"sub", 1}, {"pub-a", 1}, {"pub-b", 1}}, milliseconds(60000),
                              warmup_metrics_);
  ASSERT_TRUE(session_.warming_up());
  EXPECT_EQ(warmup_metrics_.active.Value(), 1);
  EXPECT_EQ(warmup_metrics_.awaited.Value(), 3);

  // The subscriber comes back first: answered, but not pushed.
  auto [sub_conn, sub] = Connect();
  session_.OnMessage(sub_conn, HelloMsg(1, "sub", 1));
  session_.OnMessage(sub_conn, SubscribeMsg(2, "s1"));
  Poll();
  EXPECT_EQ(sub->Results(), 2u);
  EXPECT_TRUE(sub->Pushes().empty());
  EXPECT_EQ(warmup_metrics_.awaited.Value(), 2);

  // One publisher client replays its two publishers (as a batch).
  auto [a_conn, a] = Connect();
  session_.OnMessage(a_conn, HelloMsg(1, "pub-a", 2));
  session_.OnMessage(a_conn, BatchOfPublishes(2, {"a1", "a2"}));
  Poll();
  EXPECT_TRUE(sub->Pushes().empty()) << "pushed a view without pub-b's publisher";
  // A client new since the restart neither extends nor ends the warm-up.
  auto [n_conn, n] = Connect();
  session_.OnMessage(n_conn, HelloMsg(1, "newcomer", 0));
  Poll();
  EXPECT_TRUE(session_.warming_up());

  auto [b_conn, b] = Connect();
  session_.OnMessage(b_conn, HelloMsg(1, "pub-b", 1));
  session_.OnMessage(b_conn, PublishMsg(2, "b1"));
  EXPECT_FALSE(session_.warming_up());
  Poll();
  // The first push after the warm-up holds every replayed publisher.
  ASSERT_EQ(sub->Pushes().size(), 1u);
  EXPECT_EQ(PublishersIn(sub->Pushes()[0]), 3u);
  EXPECT_EQ(warmup_metrics_.active.Value(), 0);
  EXPECT_EQ(warmup_metrics_.awaited.Value(), 0);
}

TEST_F(SessionWarmupTest, TheTimeoutEndsItWithAPushOfTheCurrentView) {
  session_.BeginRestartWarmup({{"sub", 1}, {"gone", 1}}, milliseconds(100), warmup_metrics_);
  auto [sub_conn, sub] = Connect();
  session_.OnMessage(sub_conn, HelloMsg(1, "sub", 1));
  session_.OnMessage(sub_conn, SubscribeMsg(2, "s1"));
  auto [p_conn, p] = Connect();
  session_.OnMessage(p_conn, PublishMsg(1, "p1"));  // no Hello: not one of "gone"
  Poll();
  EXPECT_TRUE(sub->Pushes().empty());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (session_.warming_up() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
    Poll();
  }
  EXPECT_FALSE(session_.warming_up());
  Poll();
  ASSERT_EQ(sub->Pushes().size(), 1u);
  EXPECT_EQ(PublishersIn(sub->Pushes()[0]), 1u);
  EXPECT_EQ(warmup_metrics_.awaited.Value(), 1) << "'gone' never came back";
  EXPECT_GE(warmup_metrics_.duration.Value(), 0.09);
}

TEST_F(SessionWarmupTest, NothingToWaitForMeansNoWarmup) {
  session_.BeginRestartWarmup({}, milliseconds(60000), warmup_metrics_);
  EXPECT_FALSE(session_.warming_up());
  session_.BeginRestartWarmup({{"a", 1}}, milliseconds(0), warmup_metrics_);
  EXPECT_FALSE(session_.warming_up());
  auto [conn, stream] = Connect();
  session_.OnMessage(conn, SubscribeMsg(1, "s1"));
  Poll();
  EXPECT_EQ(stream->Pushes().size(), 1u);
}

TEST_F(SessionWarmupTest, ConnectedClientsCountsStreamsThatSaidHello) {
  uint64_t generation = session_.connected_clients_generation();
  auto [c1, s1] = Connect();
  auto [c2, s2] = Connect();
  auto [c3, s3] = Connect();  // never says Hello
  session_.OnMessage(c1, HelloMsg(1, "a", 0));
  session_.OnMessage(c2, HelloMsg(1, "a", 0));
  EXPECT_NE(session_.connected_clients_generation(), generation);
  EXPECT_EQ(session_.ConnectedClients(), (RestartWarmup::ClientCounts{{"a", 2}}));
  generation = session_.connected_clients_generation();
  session_.OnDisconnect(c3, "test");
  EXPECT_EQ(session_.connected_clients_generation(), generation);
  session_.OnDisconnect(c1, "test");
  EXPECT_NE(session_.connected_clients_generation(), generation);
  EXPECT_EQ(session_.ConnectedClients(), (RestartWarmup::ClientCounts{{"a", 1}}));
}

// ---- ConnectedClientsRecorder: the set kept for the next run

class MemoryStore : public KvStore {
 public:
  absl::StatusOr<std::string> Get(std::string_view key) override {
    std::lock_guard lock(mu);
    auto it = values.find(std::string(key));
    if (it == values.end()) return absl::NotFoundError("absent");
    return it->second;
  }
  absl::Status Put(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu);
    values[std::string(key)] = std::string(value);
    ++puts;
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view key) override {
    std::lock_guard lock(mu);
    values.erase(std::string(key));
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, std::string>> Scan(std::string_view) override {
    return absl::UnimplementedError("unused");
  }
  int Puts() {
    std::lock_guard lock(mu);
    return puts;
  }
  std::mutex mu;
  std::map<std::string, std::string> values;
  int puts = 0;
};

TEST(ConnectedClientsRecorderTest, EncodingRoundTripsIdsWithSpacesAndTheEmptyId) {
  RestartWarmup::ClientCounts clients{{"", 3}, {"app one", 1}, {"b", 2}};
  EXPECT_EQ(ConnectedClientsRecorder::Decode(ConnectedClientsRecorder::Encode(clients)), clients);
  EXPECT_TRUE(ConnectedClientsRecorder::Decode("garbage\n\n7\n").empty());
}

TEST(ConnectedClientsRecorderTest, WritesOffTheCallerAtMostOncePerPeriodAndKeepsTheNewest) {
  MemoryStore store;
  EXPECT_TRUE(ConnectedClientsRecorder::Load(store).empty());
  ConnectedClientsRecorder recorder(store, milliseconds(300));
  recorder.Offer({{"a", 1}});
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500 && recorder.writes() == 0; ++i)
      std::this_thread::sleep_for(milliseconds(2));
    return recorder.writes() == 1;
  }());
  // Within the period: coalesced, the newest wins.
  recorder.Offer({{"b", 1}});
  recorder.Offer({{"c", 2}});
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(store.Puts(), 1);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(store.Puts(), 2);
  EXPECT_EQ(ConnectedClientsRecorder::Load(store), (RestartWarmup::ClientCounts{{"c", 2}}));
  // Stop writes the final set at once, and nothing is written after it.
  recorder.Stop(RestartWarmup::ClientCounts{{"d", 1}});
  recorder.Offer({{"e", 1}});
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(ConnectedClientsRecorder::Load(store), (RestartWarmup::ClientCounts{{"d", 1}}));
}

}  // namespace
}  // namespace cairn
