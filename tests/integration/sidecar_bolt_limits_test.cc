// Limits against hostile Bolt clients on the real `cairn sidecar` (issue 16):
// a frame that never completes is cut by the listener's
// request_header_timeout_ms, a connection that carries nothing by its
// idle_timeout_ms; calls in flight and heartbeats keep a connection, and a
// well-behaved client is served meanwhile. Real provider:
// cairn_test_bolt_backend.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bolt_test_client.h"
#include "process.h"

namespace cairn::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kFrameTimeoutMs = 500;
constexpr int kIdleTimeoutMs = 1000;

std::string Config(const std::string& provider) {
  return "workers: 2\nadmin: 127.0.0.1:0\nlisteners:\n"
         "  - name: bolt\n    address: 127.0.0.1:0\n    protocol: bolt\n"
         "    request_header_timeout_ms: " +
         std::to_string(kFrameTimeoutMs) +
         "\n    idle_timeout_ms: " + std::to_string(kIdleTimeoutMs) +
         "\n    bolt_routes:\n      - match: { service: \"com.example.Echo:1.0\" }\n"
         "        cluster: echo\n"
         "clusters:\n  - name: echo\n    protocol: bolt\n    endpoints: [\"" +
         provider + "\"]\n";
}

class SidecarBoltLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    provider_ = std::make_unique<BackendProcess>("p", "cairn_test_bolt_backend");
    ASSERT_TRUE(provider_->Start());
    sidecar_ = std::make_unique<SidecarProcess>(Config(provider_->address()));
    ASSERT_TRUE(sidecar_->Start()) << sidecar_->Log();
  }
  void TearDown() override {
    if (sidecar_ && sidecar_->process()->Running()) {
      EXPECT_EQ(sidecar_->Stop(SIGTERM), 0) << sidecar_->Log();
    }
  }
  std::string Address() { return sidecar_->listener("bolt"); }
  // One call on `client`; true when it succeeded with its own content.
  static bool Echo(BoltClient& client, uint32_t id, int delay_ms = 0) {
    BoltCall call;
    call.id = id;
    call.content = "call-" + std::to_string(id);
    if (delay_ms > 0) call.headers = {{"x-delay-ms", std::to_string(delay_ms)}};
    if (!client.Call(call)) return false;
    auto reply = client.Read(seconds(10));
    return reply && reply->request_id == id && reply->status == BoltStatus::kSuccess &&
           reply->content == call.content;
  }
  // The sum of cairn_sidecar_downstream_timeouts_total over the lines of
  // this listener and `kind`.
  double Timeouts(const std::string& kind) {
    const std::string text = RunCommand({"/usr/bin/curl", "-sS", "--max-time", "10",
                                         "http://" + sidecar_->admin() + "/metrics"},
                                        seconds(20))
                                 .second;
    const std::string name = "\ncairn_sidecar_downstream_timeouts_total{";
    double sum = 0;
    for (size_t pos = text.find(name); pos != std::string::npos; pos = text.find(name, pos + 1)) {
      const std::string line = text.substr(pos + 1, text.find('\n', pos + 1) - pos - 1);
      if (line.find("kind=\"" + kind + "\"") == std::string::npos ||
          line.find("listener=\"bolt\"") == std::string::npos) {
        continue;
      }
      sum += std::atof(line.c_str() + line.rfind(' ') + 1);
    }
    return sum;
  }

  std::unique_ptr<BackendProcess> provider_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

TEST_F(SidecarBoltLimitsTest, FrameThatNeverCompletesIsCutWhileOthersAreServed) {
  const std::string call = EncodeCall(BoltCall{});
  // 100 clients each send the first 10 bytes of a call, then nothing.
  std::vector<std::unique_ptr<BoltClient>> stalled;
  for (int i = 0; i < 100; ++i) {
    auto client = std::make_unique<BoltClient>();
    ASSERT_TRUE(client->Connect(Address()));
    ASSERT_TRUE(client->Write(std::string_view(call).substr(0, 10)));
    stalled.push_back(std::move(client));
  }
  // One more sends a whole call and then half of the next: the first is
  // answered, then the connection is cut.
  BoltClient mixed;
  ASSERT_TRUE(mixed.Connect(Address()));
  BoltCall first;
  first.id = 7;
  ASSERT_TRUE(mixed.Write(EncodeCall(first) + call.substr(0, 20)));
  auto reply = mixed.Read(seconds(5));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 7u);
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);

  // A well-behaved client is served meanwhile.
  BoltClient good;
  ASSERT_TRUE(good.Connect(Address()));
  for (uint32_t id = 1; id <= 20; ++id) EXPECT_TRUE(Echo(good, id)) << id;

  const auto start = Clock::now();
  int closed = 0;
  for (auto& client : stalled) closed += client->WaitClosed(seconds(5)) ? 1 : 0;
  EXPECT_EQ(closed, 100);
  EXPECT_TRUE(mixed.WaitClosed(seconds(5)));
  // Closed by the frame timeout (0.5 s), not the idle one, and well before
  // the 5 s each wait allowed.
  EXPECT_LT(Clock::now() - start, seconds(3));
  EXPECT_TRUE(Echo(good, 21));  // the good client kept its connection
  EXPECT_EQ(Timeouts("header"), 101);
  EXPECT_EQ(Timeouts("idle"), 0);
}

TEST_F(SidecarBoltLimitsTest, IdleConnectionIsClosedButNotWhileACallRunsOrHeartbeatsCome) {
  BoltClient silent;
  ASSERT_TRUE(silent.Connect(Address()));
  BoltClient slow_call;  // a call that takes longer than the idle timeout
  ASSERT_TRUE(slow_call.Connect(Address()));
  BoltClient beating;  // heartbeats only, more often than the idle timeout
  ASSERT_TRUE(beating.Connect(Address()));
  const auto start = Clock::now();

  std::thread slow([&] { EXPECT_TRUE(Echo(slow_call, 1, kIdleTimeoutMs + 1000)); });
  uint32_t beats = 0;
  while (Clock::now() - start < milliseconds(3 * kIdleTimeoutMs)) {
    std::string frame;
    sidecar::bolt::EncodeHeartbeat(++beats, frame);
    ASSERT_TRUE(beating.Write(frame));
    auto ack = beating.Read(seconds(2));
    ASSERT_TRUE(ack.has_value()) << "heartbeat " << beats << " unanswered";
    EXPECT_EQ(ack->request_id, beats);
    std::this_thread::sleep_for(milliseconds(kIdleTimeoutMs / 4));
  }
  slow.join();
  // The silent one was closed after the idle timeout (not at once: the
  // heartbeats above ran for three timeouts on the same sidecar).
  EXPECT_TRUE(silent.WaitClosed(milliseconds(100)));
  // The slow call's connection became idle when its answer left: closed by
  // now or within one more timeout.
  EXPECT_TRUE(slow_call.WaitClosed(seconds(3)));
  // The heartbeating client still has its connection and can call.
  EXPECT_TRUE(Echo(beating, 1000));
}

TEST_F(SidecarBoltLimitsTest, SilentConnectionStaysUntilTheIdleTimeout) {
  BoltClient silent;
  ASSERT_TRUE(silent.Connect(Address()));
  const auto start = Clock::now();
  EXPECT_FALSE(silent.WaitClosed(milliseconds(kIdleTimeoutMs / 2)));
  EXPECT_TRUE(silent.WaitClosed(seconds(5)));
  const auto took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(kIdleTimeoutMs - 50));
  EXPECT_LT(took, milliseconds(kIdleTimeoutMs * 3));
}

}  // namespace
}  // namespace cairn::testing
