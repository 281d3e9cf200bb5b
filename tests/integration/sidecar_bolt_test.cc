// The sidecar's Bolt proxy as users run it: the real `cairn sidecar` between
// a Bolt client on a plain socket (bolt_test_client.h) and real providers
// (cairn_test_bolt_backend), with a real registry where endpoints change.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "bolt_test_client.h"
#include "process.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::string Curl(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/curl", "-sS", "--max-time", "20"});
  return RunCommand(args, seconds(30)).second;
}

// A sidecar config with one Bolt listener and one Bolt cluster. `routes`
// and `cluster` are appended to the listener's bolt_routes and the cluster.
std::string BoltConfig(const std::vector<std::string>& endpoints, const std::string& routes = "",
                       const std::string& cluster = "", int workers = 2) {
  std::string eps;
  for (const auto& e : endpoints) eps += "\"" + e + "\",";
  if (!eps.empty()) eps.pop_back();
  return "workers: " + std::to_string(workers) + R"(
admin: 127.0.0.1:0
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    bolt_routes:
      - match: { service: "com.example.Echo:1.0" }
        cluster: echo
      - match: { service_prefix: "com.example.short." }
        cluster: echo
        timeout_ms: 500
)" + routes +
         R"(
clusters:
  - name: echo
    protocol: bolt
    heartbeat_interval_ms: 1000
    endpoints: [)" +
         eps + "]\n" + cluster;
}

// Results of calls made by several client threads, one connection each.
struct LoadResult {
  std::mutex mu;
  std::map<BoltStatus, int> statuses;
  int missing = 0;                                                  // no reply at all
  std::vector<std::pair<Clock::time_point, std::string>> backends;  // successes

  void Add(const std::optional<BoltReply>& reply) {
    std::lock_guard lock(mu);
    if (!reply) {
      ++missing;
      return;
    }
    ++statuses[reply->status];
    if (reply->status == BoltStatus::kSuccess) {
      backends.emplace_back(Clock::now(), reply->Header("backend"));
    }
  }
  int Failed() {
    std::lock_guard lock(mu);
    int failed = missing;
    for (const auto& [status, n] : statuses) failed += status == BoltStatus::kSuccess ? 0 : n;
    return failed;
  }
  int Count(BoltStatus status) {
    std::lock_guard lock(mu);
    return statuses[status];
  }
  std::string Summary() {
    std::lock_guard lock(mu);
    std::string out = "missing=" + std::to_string(missing);
    for (const auto& [status, n] : statuses) {
      out += " " + std::string(sidecar::bolt::BoltStatusName(status)) + "=" + std::to_string(n);
    }
    return out;
  }
};

// `threads` clients, each making sequential calls (the provider delays each
// by `delay_ms`) until `duration` has passed.
std::vector<std::thread> StartLoad(const std::string& address, int threads, int delay_ms,
                                   milliseconds duration, LoadResult& result) {
  std::vector<std::thread> out;
  const auto deadline = Clock::now() + duration;
  for (int t = 0; t < threads; ++t) {
    out.emplace_back([&result, address, delay_ms, deadline, t] {
      BoltClient client;
      if (!client.Connect(address)) {
        result.Add(std::nullopt);
        return;
      }
      // Bounded by time and by count.
      for (uint32_t i = 1; i <= 100000 && Clock::now() < deadline; ++i) {
        BoltCall call;
        call.id = i;
        call.content = "load-" + std::to_string(t) + "-" + std::to_string(i);
        call.headers = {{"x-delay-ms", std::to_string(delay_ms)}};
        std::optional<BoltReply> reply;
        if (client.Call(call)) reply = client.Read(seconds(10));
        if (reply && (reply->request_id != i ||
                      (reply->status == BoltStatus::kSuccess && reply->content != call.content))) {
          reply.reset();  // a mismatched answer counts as none
        }
        result.Add(reply);
        if (!reply) return;  // the connection is unusable
      }
    });
  }
  return out;
}

class SidecarBoltTest : public ::testing::Test {
 protected:
  void StartBackends(int n) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(std::make_unique<BackendProcess>(
          std::string(1, static_cast<char>('a' + i)), "cairn_test_bolt_backend"));
      ASSERT_TRUE(backends_.back()->Start());
    }
  }
  std::vector<std::string> BackendAddresses() {
    std::vector<std::string> out;
    for (auto& b : backends_) out.push_back(b->address());
    return out;
  }
  void StartSidecar(const std::string& config) {
    sidecar_ = std::make_unique<SidecarProcess>(config);
    ASSERT_TRUE(sidecar_->Start()) << sidecar_->Log();
  }
  void TearDown() override {
    if (sidecar_ && sidecar_->process()->Running()) {
      EXPECT_EQ(sidecar_->Stop(SIGTERM), 0) << sidecar_->Log();
    }
  }
  std::string BackendLog(size_t i) { return backends_[i]->process()->Output(); }
  std::optional<BoltReply> CallOnce(BoltClient& client, const BoltCall& call) {
    if (!client.Call(call)) return std::nullopt;
    return client.Read(seconds(10));
  }

  std::vector<std::unique_ptr<BackendProcess>> backends_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

TEST_F(SidecarBoltTest, RoundTripRewritesTheRequestIdAndAnswersInKind) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));

  BoltCall call;
  call.id = 4000000001u;
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 4000000001u);
  EXPECT_EQ(reply->type, BoltType::kResponse);
  EXPECT_EQ(reply->cmdcode, BoltCmdCode::kResponse);
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);
  EXPECT_EQ(reply->protocol, BoltProtocol::kV1);
  EXPECT_EQ(reply->content, "hello");
  EXPECT_EQ(reply->Header("backend"), "a");
  // The provider saw the sidecar's own id on the shared upstream connection.
  EXPECT_NE(reply->Header("upstream-id"), "4000000001");
  EXPECT_FALSE(reply->Header("upstream-id").empty());

  // v2 with a CRC and protobuf: answered in kind, the CRC valid after the
  // id was restored (the client's decoder checks it).
  call.id = 77;
  call.framing = BoltFraming::V2(/*crc=*/true, sidecar::bolt::kCodecProtobuf);
  call.content = std::string("\0\x01\xffproto", 8);
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << client.malformed();
  EXPECT_EQ(reply->request_id, 77u);
  EXPECT_EQ(reply->protocol, BoltProtocol::kV2);
  EXPECT_EQ(reply->ver1, 2);
  EXPECT_TRUE(reply->has_crc);
  EXPECT_EQ(reply->codec, sidecar::bolt::kCodecProtobuf);
  EXPECT_EQ(reply->content, call.content);

  call.id = 78;
  call.framing = BoltFraming::V2(/*crc=*/false);
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 78u);
  EXPECT_EQ(reply->ver1, 1);
  EXPECT_FALSE(reply->has_crc);

  // sofa_head_target_service wins over service.
  call.id = 79;
  call.framing = BoltFraming::V1();
  call.service = "com.example.Unknown:9.9";
  call.headers = {{"sofa_head_target_service", kEchoService}};
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);
}

TEST_F(SidecarBoltTest, ManyConcurrentCallsOnOneConnectionComeBackOutOfOrder) {
  StartBackends(2);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  constexpr uint32_t kCalls = 200;
  std::string batch;
  for (uint32_t i = 0; i < kCalls; ++i) {
    BoltCall call;
    call.id = 1000 + i;
    call.content = "payload-" + std::to_string(i);
    // The first sent is answered last.
    call.headers = {{"x-delay-ms", std::to_string((kCalls - i) * 2)}};
    batch += EncodeCall(call);
  }
  ASSERT_TRUE(client.Write(batch));
  std::vector<uint32_t> order;
  std::map<std::string, int> by_backend;
  for (uint32_t i = 0; i < kCalls; ++i) {
    auto reply = client.Read(seconds(10));
    ASSERT_TRUE(reply.has_value()) << "after " << i << " replies\n" << sidecar_->Log();
    ASSERT_EQ(reply->status, BoltStatus::kSuccess);
    ASSERT_GE(reply->request_id, 1000u);
    EXPECT_EQ(reply->content, "payload-" + std::to_string(reply->request_id - 1000));
    order.push_back(reply->request_id);
    ++by_backend[reply->Header("backend")];
  }
  EXPECT_EQ(std::set<uint32_t>(order.begin(), order.end()).size(), kCalls);
  EXPECT_NE(order.front(), 1000u);  // not in send order
  EXPECT_GT(by_backend["a"], 0);
  EXPECT_GT(by_backend["b"], 0);
}

TEST_F(SidecarBoltTest, OnewayIsForwardedAndNeverAnswered) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  BoltCall oneway;
  oneway.id = 1;
  oneway.oneway = true;
  oneway.content = "fire-and-forget-1";
  ASSERT_TRUE(client.Call(oneway));
  // Unroutable oneway calls get no error either (nobody would read it).
  oneway.id = 2;
  oneway.service = "com.example.Nope:1.0";
  ASSERT_TRUE(client.Call(oneway));
  BoltCall call;
  call.id = 3;
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 3u);  // the first frame back answers the two-way call
  EXPECT_TRUE(Eventually(
      [&] { return BackendLog(0).find("oneway fire-and-forget-1") != std::string::npos; },
      seconds(5)))
      << BackendLog(0);
}

TEST_F(SidecarBoltTest, HeartbeatsAreAnsweredBySidecarAndSentOnIdleUpstreams) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  std::string heartbeat;
  sidecar::bolt::EncodeHeartbeat(5, heartbeat);
  ASSERT_TRUE(client.Write(heartbeat));
  auto ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->request_id, 5u);
  EXPECT_EQ(ack->cmdcode, BoltCmdCode::kHeartbeat);
  EXPECT_EQ(ack->type, BoltType::kResponse);
  EXPECT_EQ(ack->status, BoltStatus::kSuccess);
  heartbeat.clear();
  sidecar::bolt::EncodeHeartbeat(6, heartbeat, BoltFraming::V2(/*crc=*/true));
  ASSERT_TRUE(client.Write(heartbeat));
  ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->request_id, 6u);
  EXPECT_EQ(ack->protocol, BoltProtocol::kV2);
  EXPECT_TRUE(ack->has_crc);
  // Answered by the sidecar: no upstream connection exists yet.
  EXPECT_EQ(BackendLog(0).find("heartbeat"), std::string::npos);

  BoltCall call;
  call.id = 7;
  ASSERT_TRUE(CallOnce(client, call).has_value());
  // The upstream connection now idles: the sidecar heartbeats it (1 s here).
  EXPECT_TRUE(
      Eventually([&] { return BackendLog(0).find("heartbeat") != std::string::npos; }, seconds(6)))
      << BackendLog(0);
  // And it still works.
  call.id = 8;
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);
}

TEST_F(SidecarBoltTest, UnroutableServiceGetsAnErrorNamingIt) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  BoltCall call;
  call.id = 9;
  call.service = "com.example.Nope:1.0";
  call.framing = BoltFraming::V2(/*crc=*/true);
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 9u);
  EXPECT_EQ(reply->status, BoltStatus::kNoProcessor);
  // A hessian2 exception, as SOFARPC clients decode it (bolt_error.h).
  EXPECT_EQ(reply->class_name, "com.alipay.remoting.rpc.exception.RpcServerException");
  EXPECT_NE(reply->content.find("com.example.Nope:1.0"), std::string::npos) << reply->content;
  EXPECT_EQ(reply->protocol, BoltProtocol::kV2);
  EXPECT_TRUE(reply->has_crc);
  // Without any routing header.
  call.id = 10;
  call.service = "";
  call.framing = BoltFraming::V1();
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, BoltStatus::kNoProcessor);
  EXPECT_NE(reply->content.find("no route"), std::string::npos) << reply->content;
  // Protobuf frames get the message as plain text.
  call.id = 11;
  call.service = "com.example.Nope:1.0";
  call.framing = BoltFraming::V1(sidecar::bolt::kCodecProtobuf);
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, BoltStatus::kNoProcessor);
  EXPECT_EQ(reply->codec, sidecar::bolt::kCodecProtobuf);
  EXPECT_EQ(reply->content, "cairn sidecar: no route for service 'com.example.Nope:1.0'");
}

TEST_F(SidecarBoltTest, ExpiredCallsGetATimeoutResponseOnTimeAndLateAnswersAreDropped) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  // The frame's own timeout.
  BoltCall call;
  call.id = 1;
  call.timeout_ms = 300;
  call.headers = {{"x-delay-ms", "700"}};
  auto start = Clock::now();
  auto reply = CallOnce(client, call);
  auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 1u);
  EXPECT_EQ(reply->status, BoltStatus::kTimeout);
  EXPECT_GE(elapsed.count(), 290);
  EXPECT_LT(elapsed.count(), 650);
  // The provider answers call 1 at ~700 ms: that late answer must not reach
  // the client, whose next frame answers call 2 (at ~300 + 900 ms).
  call.id = 2;
  call.timeout_ms = 5000;
  call.headers = {{"x-delay-ms", "900"}};
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 2u);
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);

  // A frame without a timeout (0, or Java's -1) gets the route's (500 ms).
  for (int32_t frame_timeout : {0, -1}) {
    call.id = 3;
    call.service = "com.example.short.Svc:1.0";
    call.timeout_ms = frame_timeout;
    call.headers = {{"x-delay-ms", "2000"}};
    start = Clock::now();
    reply = CallOnce(client, call);
    elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, BoltStatus::kTimeout);
    EXPECT_GE(elapsed.count(), 480);
    EXPECT_LT(elapsed.count(), 1200);
  }
}

TEST_F(SidecarBoltTest, MalformedAndTruncatedFramesEndOnlyTheirConnection) {
  StartBackends(1);
  // One worker: every connection below lands on the same event loop.
  StartSidecar(BoltConfig(BackendAddresses(), "", "", /*workers=*/1));
  const std::string address = sidecar_->listener("bolt");
  BoltClient keeper;  // a healthy connection that must survive all of it
  ASSERT_TRUE(keeper.Connect(address));
  uint32_t keeper_id = 0;
  auto keeper_works = [&] {
    BoltCall call;
    call.id = ++keeper_id;
    auto reply = CallOnce(keeper, call);
    return reply.has_value() && reply->status == BoltStatus::kSuccess &&
           reply->request_id == keeper_id;
  };
  ASSERT_TRUE(keeper_works());

  BoltCall call;
  call.id = 41;
  const std::string valid = EncodeCall(call);
  struct Case {
    const char* name;
    std::string bytes;
    bool half_close;
    std::optional<BoltStatus> answer;  // for call 41, before the close
  };
  std::string bad_type = valid;
  bad_type[1] = 9;
  std::string oversized = valid.substr(0, sidecar::bolt::kV1RequestHeaderBytes);
  oversized[18] = 0x06;  // contentLen = 100 MiB, over the 16 MiB frame limit
  oversized[19] = 0x40;
  oversized[20] = 0;
  oversized[21] = 0;
  BoltCall v2 = call;
  v2.framing = BoltFraming::V2(/*crc=*/true);
  std::string bad_crc = EncodeCall(v2);
  bad_crc[bad_crc.size() - 6] ^= 0x20;  // a content byte: the CRC no longer matches
  std::string overrun_map = valid;
  overrun_map[sidecar::bolt::kV1RequestHeaderBytes + 44 + 3] = 100;  // first key length: 100
  const Case cases[] = {
      {"unknown type", bad_type, false, std::nullopt},
      {"frame over the size limit", oversized, false, BoltStatus::kCodecException},
      {"CRC mismatch", bad_crc, false, BoltStatus::kCodecException},
      {"header map overrun", overrun_map, false, BoltStatus::kCodecException},
      {"truncated, then half-closed", valid.substr(0, valid.size() / 2), true, std::nullopt},
      {"HTTP on a Bolt port", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, std::nullopt},
      {"a valid call, then garbage", valid + std::string(30, '\x07'), false, BoltStatus::kSuccess},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    BoltClient client;
    ASSERT_TRUE(client.Connect(address));
    ASSERT_TRUE(client.Write(c.bytes));
    if (c.half_close) client.ShutdownWrite();
    if (c.answer) {
      auto reply = client.Read(seconds(5));
      ASSERT_TRUE(reply.has_value());
      EXPECT_EQ(reply->request_id, 41u);
      EXPECT_EQ(reply->status, *c.answer) << reply->content;
      if (*c.answer == BoltStatus::kCodecException) {
        EXPECT_NE(reply->content.find("bolt:"), std::string::npos) << reply->content;
      }
    }
    EXPECT_TRUE(client.WaitClosed(seconds(5)));
    EXPECT_TRUE(keeper_works());
    BoltClient fresh;
    ASSERT_TRUE(fresh.Connect(address));
    auto reply = CallOnce(fresh, call);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, BoltStatus::kSuccess);
  }
}

// Default policy: a provider's death fails only the calls it held.
TEST_F(SidecarBoltTest, ProviderKilledMidLoadFailsOverWithErrorsBoundedByCallsInFlight) {
  StartBackends(2);
  StartSidecar(BoltConfig(BackendAddresses()));
  LoadResult result;
  constexpr int kThreads = 4;
  auto threads = StartLoad(sidecar_->listener("bolt"), kThreads, 10, milliseconds(4000), result);
  std::this_thread::sleep_for(milliseconds(1200));
  const auto killed_at = Clock::now();
  backends_[0]->Stop(SIGKILL);
  for (auto& t : threads) t.join();
  std::printf("calls: %s\n", result.Summary().c_str());
  // Each client has one call in flight: at most that many fail, and only as
  // ERROR_COMM (the provider closed with it written).
  EXPECT_EQ(result.missing, 0) << sidecar_->Log();
  EXPECT_LE(result.Failed(), kThreads);
  EXPECT_EQ(result.Failed(), result.Count(BoltStatus::kErrorComm));
  EXPECT_GT(result.Count(BoltStatus::kSuccess), 200);
  // Soon after the kill, b answers everything.
  int late = 0;
  for (const auto& [when, backend] : result.backends) {
    if (when > killed_at + milliseconds(500)) {
      EXPECT_EQ(backend, "b");
      ++late;
    }
  }
  EXPECT_GT(late, 100);
}

// With on_reset, the calls a dead provider held are retried elsewhere.
TEST_F(SidecarBoltTest, ProviderKilledMidLoadWithRetryOnResetFailsNoCall) {
  StartBackends(2);
  // The Echo route (the config's first) also retries after a reset.
  std::string config = BoltConfig(BackendAddresses());
  const std::string echo_route = "        cluster: echo\n";
  config.insert(config.find(echo_route) + echo_route.size(),
                "        retry: { attempts: 2, on_reset: true }\n");
  StartSidecar(config);
  LoadResult result;
  auto threads = StartLoad(sidecar_->listener("bolt"), 4, 10, milliseconds(3000), result);
  std::this_thread::sleep_for(milliseconds(1200));
  backends_[0]->Stop(SIGKILL);
  for (auto& t : threads) t.join();
  std::printf("calls: %s\n", result.Summary().c_str());
  EXPECT_EQ(result.Failed(), 0) << sidecar_->Log();
  EXPECT_GT(result.Count(BoltStatus::kSuccess), 150);
}

// SIGTERM: peers stop routing here only once the registry tells them, so
// open connections keep serving until they go quiet, then close.
TEST_F(SidecarBoltTest, DrainServesOpenConnectionsUntilTheyGoQuiet) {
  StartBackends(1);
  StartSidecar(BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  BoltCall call;
  call.id = 1;
  call.headers = {{"x-delay-ms", "400"}};
  ASSERT_TRUE(client.Call(call));  // in flight when the drain starts
  std::this_thread::sleep_for(milliseconds(100));
  sidecar_->process()->Signal(SIGTERM);
  auto reply = client.Read(seconds(5));
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);
  // A call sent during the drain is still served.
  std::this_thread::sleep_for(milliseconds(300));
  call.id = 2;
  call.headers.clear();
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->status, BoltStatus::kSuccess);
  // Then the connection goes quiet and is closed, and the sidecar exits.
  const auto quiet_since = Clock::now();
  EXPECT_TRUE(client.WaitClosed(seconds(5)));
  EXPECT_GE(Clock::now() - quiet_since, milliseconds(900));
  EXPECT_EQ(sidecar_->process()->Wait(seconds(10)), 0) << sidecar_->Log();
}

TEST_F(SidecarBoltTest, BoltAndHttpShareOnePort) {
  StartBackends(1);
  BackendProcess web("web");  // an HTTP backend
  ASSERT_TRUE(web.Start());
  StartSidecar(R"(
workers: 2
admin: 127.0.0.1:0
listeners:
  - name: mixed
    address: 127.0.0.1:0
    protocol: auto
    routes:
      - cluster: web
    bolt_routes:
      - match: { service: "com.example.Echo:1.0" }
        cluster: echo
clusters:
  - name: web
    endpoints: [")" +
               web.address() +
               R"("]
  - name: echo
    protocol: bolt
    endpoints: [")" +
               backends_[0]->address() + R"("]
)");
  const std::string address = sidecar_->listener("mixed");
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(Curl({"http://" + address + "/"}), "web\n");
    EXPECT_EQ(Curl({"--http2-prior-knowledge", "http://" + address + "/"}), "web\n");
    BoltClient client;
    ASSERT_TRUE(client.Connect(address));
    BoltCall call;
    call.id = static_cast<uint32_t>(100 + round);
    call.framing = round == 1 ? BoltFraming::V2(/*crc=*/true) : BoltFraming::V1();
    auto reply = CallOnce(client, call);
    ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
    EXPECT_EQ(reply->status, BoltStatus::kSuccess);
    EXPECT_EQ(reply->request_id, call.id);
    EXPECT_EQ(reply->Header("backend"), "a");
  }
  // A heartbeat as the very first frame is Bolt too.
  BoltClient client;
  ASSERT_TRUE(client.Connect(address));
  std::string heartbeat;
  sidecar::bolt::EncodeHeartbeat(3, heartbeat);
  ASSERT_TRUE(client.Write(heartbeat));
  auto ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->cmdcode, BoltCmdCode::kHeartbeat);
}

TEST_F(SidecarBoltTest, MetricsPerServiceAccessLogAndTheConfigDump) {
  StartBackends(1);
  TempDir dir;
  const std::string access_log = dir.File("access.log");
  StartSidecar("access_log: " + access_log + "\n" + BoltConfig(BackendAddresses()));
  BoltClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("bolt")));
  BoltCall call;
  for (uint32_t i = 1; i <= 3; ++i) {
    call.id = i;
    ASSERT_TRUE(CallOnce(client, call).has_value());
  }
  call.id = 4;
  call.timeout_ms = 100;
  call.headers = {{"x-delay-ms", "400"}};
  ASSERT_EQ(CallOnce(client, call)->status, BoltStatus::kTimeout);
  call.id = 5;
  call.service = "com.example.Nope:1.0";
  ASSERT_EQ(CallOnce(client, call)->status, BoltStatus::kNoProcessor);

  const std::string metrics = Curl({"http://" + sidecar_->admin() + "/metrics"});
  const std::string echo = "service=\"com.example.Echo:1.0\"";
  for (const std::string& line : std::vector<std::string>{
           "cairn_sidecar_bolt_requests_total{" + echo + "} 4",
           "cairn_sidecar_bolt_responses_total{" + echo + ",status=\"SUCCESS\"} 3",
           "cairn_sidecar_bolt_responses_total{" + echo + ",status=\"TIMEOUT\"} 1",
           "cairn_sidecar_bolt_responses_total{service=\"com.example.Nope:1.0\",status=\"NO_"
           "PROCESSOR\"} 1",
           "cairn_sidecar_bolt_request_duration_seconds_count{" + echo + "} 4",
           "cairn_sidecar_upstream_requests_total{cluster=\"echo\"} 4",
       }) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
  // One access log line per call: listener, protocol, service, status, ...
  std::string log;
  EXPECT_TRUE(Eventually(
      [&] {
        std::ifstream in(access_log);
        std::stringstream text;
        text << in.rdbuf();
        log = text.str();
        return log.find("NO_PROCESSOR") != std::string::npos;
      },
      seconds(5)))
      << log;
  EXPECT_NE(log.find("bolt BOLT com.example.Echo:1.0 SUCCESS"), std::string::npos) << log;
  EXPECT_NE(log.find("bolt BOLT com.example.Echo:1.0 TIMEOUT"), std::string::npos) << log;

  const std::string config = Curl({"http://" + sidecar_->admin() + "/config"});
  EXPECT_NE(config.find("bolt_routes"), std::string::npos) << config;
  EXPECT_NE(config.find("service_prefix: com.example.short."), std::string::npos) << config;
  EXPECT_NE(config.find("heartbeat_interval_ms: 1000"), std::string::npos) << config;
}

// Registry-fed Bolt cluster: providers come and go while calls flow.
class SidecarBoltRegistryTest : public SidecarBoltTest {
 protected:
  void SetUp() override { ASSERT_TRUE(registry_.Start()) << registry_.Log(); }
  std::unique_ptr<ChildProcess> Publish(const std::string& address, const std::string& file) {
    return ChildProcess::Start({BinDir() + "/cairnctl", "publish", kEchoService,
                                "bolt://" + address, "--server", registry_.grpc_address()},
                               dir_.File(file));
  }
  RegistryProcess registry_;
  TempDir dir_;
};

TEST_F(SidecarBoltRegistryTest, EndpointsAddedAndRemovedWhileCallsFlowFailNoCall) {
  StartBackends(2);
  auto pub_a = Publish(backends_[0]->address(), "pub-a");
  ASSERT_TRUE(pub_a->WaitForOutput("published", seconds(10)));
  StartSidecar(R"(
workers: 2
admin: 127.0.0.1:0
registry_servers: [")" +
               registry_.grpc_address() + R"("]
listeners:
  - name: bolt
    address: 127.0.0.1:0
    protocol: bolt
    bolt_routes:
      - cluster: echo
clusters:
  - name: echo
    protocol: bolt
    registry: { data_id: "com.example.Echo:1.0" }
)");
  const std::string address = sidecar_->listener("bolt");
  ASSERT_TRUE(Eventually(
      [&] {
        BoltClient probe;
        BoltCall call;
        if (!probe.Connect(address) || !probe.Call(call)) return false;
        auto reply = probe.Read(seconds(5));
        return reply && reply->status == BoltStatus::kSuccess;
      },
      seconds(10)))
      << sidecar_->Log();
  LoadResult result;
  auto threads = StartLoad(address, 4, 10, milliseconds(5000), result);
  std::this_thread::sleep_for(milliseconds(1500));
  auto pub_b = Publish(backends_[1]->address(), "pub-b");
  ASSERT_TRUE(pub_b->WaitForOutput("published", seconds(10)));
  std::this_thread::sleep_for(milliseconds(1500));
  pub_a->Signal(SIGTERM);  // a leaves the registry (the process keeps serving)
  pub_a->Wait(seconds(10));
  for (auto& t : threads) t.join();
  std::printf("calls: %s\n", result.Summary().c_str());
  EXPECT_EQ(result.Failed(), 0) << sidecar_->Log();
  EXPECT_GT(result.Count(BoltStatus::kSuccess), 300);
  int from_b = 0;
  for (const auto& entry : result.backends) from_b += entry.second == "b" ? 1 : 0;
  EXPECT_GT(from_b, 50);
  // After a's withdrawal only b answers.
  BoltClient client;
  ASSERT_TRUE(client.Connect(address));
  for (uint32_t i = 1; i <= 6; ++i) {
    BoltCall call;
    call.id = i;
    auto reply = CallOnce(client, call);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->Header("backend"), "b");
  }
}

// examples/bolt-outbound.yaml, with its fixed addresses replaced.
TEST_F(SidecarBoltRegistryTest, BoltExampleRunsAsDocumented) {
  StartBackends(1);
  auto pub = Publish(backends_[0]->address(), "pub");
  ASSERT_TRUE(pub->WaitForOutput("published", seconds(10)));
  std::ifstream in(std::string(CAIRN_SOURCE_DIR "/examples/bolt-outbound.yaml"));
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  auto replace_all = [&config](const std::string& from, const std::string& to) {
    for (size_t pos = config.find(from); pos != std::string::npos; pos = config.find(from, pos)) {
      config.replace(pos, from.size(), to);
      pos += to.size();
    }
  };
  replace_all("127.0.0.1:9600", registry_.grpc_address());
  replace_all("127.0.0.1:15030", "127.0.0.1:0");
  replace_all("127.0.0.1:15031", "127.0.0.1:0");
  StartSidecar(config);
  const std::string address = sidecar_->listener("outbound");
  EXPECT_TRUE(Eventually(
      [&] {
        BoltClient client;
        BoltCall call;
        if (!client.Connect(address) || !client.Call(call)) return false;
        auto reply = client.Read(seconds(5));
        return reply && reply->status == BoltStatus::kSuccess && reply->content == "hello";
      },
      seconds(10)))
      << sidecar_->Log();
  EXPECT_EQ(Curl({"http://" + address + "/healthz"}), "ok\n");
}

}  // namespace
}  // namespace cairn::testing
