// The sidecar's Dubbo 2 proxy as users run it: the real `cairn sidecar`
// between a Dubbo consumer on a plain socket (dubbo_test_client.h) and real
// providers (cairn_test_dubbo_backend).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "bolt_test_client.h"
#include "dubbo_test_client.h"
#include "process.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;
using dubbo::DubboStatus;

constexpr uint8_t Status(DubboStatus status) { return static_cast<uint8_t>(status); }

std::string Curl(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/curl", "-sS", "--max-time", "20"});
  return RunCommand(args, seconds(30)).second;
}

// A sidecar config with one Dubbo listener and one Dubbo cluster. `routes`
// is appended to the listener's dubbo_routes.
std::string DubboConfig(const std::vector<std::string>& endpoints, const std::string& routes = "",
                        int workers = 2) {
  std::string eps;
  for (const auto& e : endpoints) eps += "\"" + e + "\",";
  if (!eps.empty()) eps.pop_back();
  return "workers: " + std::to_string(workers) + R"(
admin: 127.0.0.1:0
listeners:
  - name: dubbo
    address: 127.0.0.1:0
    protocol: dubbo
    dubbo_routes:
      - match: { service: "com.example.DemoService" }
        cluster: demo
      - match: { service_prefix: "com.example.short." }
        cluster: demo
        timeout_ms: 500
)" + routes +
         R"(
clusters:
  - name: demo
    protocol: dubbo
    heartbeat_interval_ms: 1000
    endpoints: [)" +
         eps + "]\n";
}

// The request ids the backend logged ("request id=N ...") for `method`.
std::vector<uint64_t> LoggedIds(const std::string& log, const std::string& method) {
  std::vector<uint64_t> out;
  const std::string suffix = " method=" + method + "\n";
  for (size_t pos = log.find("request id="); pos != std::string::npos;
       pos = log.find("request id=", pos + 1)) {
    const size_t end = log.find('\n', pos);
    if (end == std::string::npos) break;
    const std::string line = log.substr(pos, end + 1 - pos);
    if (line.size() < suffix.size() ||
        line.compare(line.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    out.push_back(std::stoull(line.substr(11)));
  }
  return out;
}

// Results of calls made by several client threads, one connection each.
struct LoadResult {
  std::mutex mu;
  std::map<uint8_t, int> statuses;
  int missing = 0;                                                  // no reply at all
  std::vector<std::pair<Clock::time_point, std::string>> backends;  // successes

  void Add(const std::optional<DubboReply>& reply) {
    std::lock_guard lock(mu);
    if (!reply) {
      ++missing;
      return;
    }
    ++statuses[reply->status];
    if (reply->ok()) {
      const std::string text = reply->Text().value_or("");
      backends.emplace_back(Clock::now(), text.substr(0, text.find(':')));
    }
  }
  int Failed() {
    std::lock_guard lock(mu);
    int failed = missing;
    for (const auto& [status, n] : statuses) failed += status == Status(DubboStatus::kOk) ? 0 : n;
    return failed;
  }
  int Count(DubboStatus status) {
    std::lock_guard lock(mu);
    return statuses[Status(status)];
  }
  std::string Summary() {
    std::lock_guard lock(mu);
    std::string out = "missing=" + std::to_string(missing);
    for (const auto& [status, n] : statuses) {
      out += " " + std::string(dubbo::DubboStatusName(status)) + "=" + std::to_string(n);
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
      DubboClient client;
      if (!client.Connect(address)) {
        result.Add(std::nullopt);
        return;
      }
      // Bounded by time and by count.
      for (uint64_t i = 1; i <= 100000 && Clock::now() < deadline; ++i) {
        DubboCall call;
        call.id = (uint64_t{1} << 40) + i;
        call.method = "sleep" + std::to_string(delay_ms);
        call.arg = "load-" + std::to_string(t) + "-" + std::to_string(i);
        std::optional<DubboReply> reply;
        if (client.Call(call)) reply = client.Read(seconds(10));
        if (reply && (reply->request_id != call.id || !reply->is_response() ||
                      (reply->ok() && !reply->Text().has_value()))) {
          reply.reset();  // a mismatched answer counts as none
        }
        if (reply && reply->ok()) {
          const std::string text = *reply->Text();
          // The payload must be the one sent, whichever backend answered.
          if (text != ExpectedAnswer(call, text.substr(0, text.find(':')))) reply.reset();
        }
        result.Add(reply);
        if (!reply) return;  // the connection is unusable
      }
    });
  }
  return out;
}

class SidecarDubboTest : public ::testing::Test {
 protected:
  void StartBackends(int n) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(std::make_unique<BackendProcess>(
          std::string(1, static_cast<char>('a' + i)), "cairn_test_dubbo_backend"));
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
    // BackendProcess kills its process when destroyed; stop them explicitly
    // anyway so that a hung one shows here.
    for (auto& b : backends_) {
      if (b->process() && b->process()->Running()) b->Stop(SIGTERM);
    }
  }
  std::string BackendLog(size_t i) { return backends_[i]->process()->Output(); }
  std::optional<DubboReply> CallOnce(DubboClient& client, const DubboCall& call) {
    if (!client.Call(call)) return std::nullopt;
    return client.Read(seconds(10));
  }

  std::vector<std::unique_ptr<BackendProcess>> backends_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

TEST_F(SidecarDubboTest, RoundTripRewritesTheRequestIdAndKeepsTheBody) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));

  DubboCall call;
  call.id = 0x1122334455667788ull;
  call.method = "sayHello";
  call.arg = std::string(3000, 'x') + "-the-end";  // a medium-sized body, over one TCP write
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 0x1122334455667788ull);
  EXPECT_TRUE(reply->is_response());
  EXPECT_FALSE(reply->is_event());
  EXPECT_EQ(reply->serialization(), dubbo::kSerializationHessian2);
  EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
  EXPECT_EQ(reply->Text(), ExpectedAnswer(call, "a"));

  // The provider saw the sidecar's own (small) id on the shared upstream
  // connection, not the client's.
  ASSERT_TRUE(Eventually([&] { return !LoggedIds(BackendLog(0), "sayHello").empty(); }, seconds(5)))
      << BackendLog(0);
  std::vector<uint64_t> ids = LoggedIds(BackendLog(0), "sayHello");
  ASSERT_EQ(ids.size(), 1u) << BackendLog(0);
  EXPECT_NE(ids[0], call.id);
  EXPECT_LT(ids[0], uint64_t{1} << 32) << BackendLog(0);
  EXPECT_EQ(BackendLog(0).find(std::to_string(call.id)), std::string::npos) << BackendLog(0);

  // An id with the top bit set (a negative Java long) is restored as sent.
  call.id = 0xfedcba9876543210ull;
  call.method = "sayGoodbye";
  call.arg = "bye";
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 0xfedcba9876543210ull);
  EXPECT_EQ(reply->Text(), ExpectedAnswer(call, "a"));
  ASSERT_TRUE(
      Eventually([&] { return !LoggedIds(BackendLog(0), "sayGoodbye").empty(); }, seconds(5)));
  EXPECT_LT(LoggedIds(BackendLog(0), "sayGoodbye")[0], uint64_t{1} << 32) << BackendLog(0);
}

TEST_F(SidecarDubboTest, ManyConcurrentCallsOnOneConnection) {
  StartBackends(2);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  constexpr uint64_t kCalls = 200;
  constexpr uint64_t kBase = 0x7000000000000000ull;
  std::string batch;
  std::map<uint64_t, DubboCall> sent;
  for (uint64_t i = 0; i < kCalls; ++i) {
    DubboCall call;
    call.id = kBase + i * 7919;
    // Every 10th call waits at the provider: answers come back out of order.
    call.method = i % 10 == 0 ? "sleep300" : "sayHello";
    call.arg = "payload-" + std::to_string(i);
    batch += EncodeCall(call);
    sent[call.id] = call;
  }
  ASSERT_TRUE(client.Write(batch));
  std::map<uint64_t, int> answered;
  std::map<std::string, int> by_backend;
  std::vector<uint64_t> order;
  for (uint64_t i = 0; i < kCalls; ++i) {
    auto reply = client.Read(seconds(10));
    ASSERT_TRUE(reply.has_value()) << "after " << i << " replies\n" << sidecar_->Log();
    ASSERT_EQ(reply->status, Status(DubboStatus::kOk)) << reply->Text().value_or("");
    auto it = sent.find(reply->request_id);
    ASSERT_NE(it, sent.end()) << "unknown id " << reply->request_id;
    const std::string text = reply->Text().value_or("");
    const std::string backend = text.substr(0, text.find(':'));
    EXPECT_EQ(text, ExpectedAnswer(it->second, backend));
    ++answered[reply->request_id];
    ++by_backend[backend];
    order.push_back(reply->request_id);
  }
  EXPECT_EQ(answered.size(), kCalls);
  for (const auto& [id, n] : answered) EXPECT_EQ(n, 1) << id;
  EXPECT_NE(order.front(), kBase);  // not in send order (call 0 sleeps)
  EXPECT_GT(by_backend["a"], 0);
  EXPECT_GT(by_backend["b"], 0);
  // Nothing more arrives.
  EXPECT_FALSE(client.Read(milliseconds(300)).has_value());
  EXPECT_FALSE(client.eof());
}

TEST_F(SidecarDubboTest, HeartbeatsAreAnsweredByTheSidecar) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  constexpr uint64_t kHeartbeatId = 0x5151515151515151ull;
  std::string heartbeat;
  dubbo::EncodeHeartbeat(kHeartbeatId, heartbeat);
  ASSERT_TRUE(client.Write(heartbeat));
  auto ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value()) << sidecar_->Log();
  EXPECT_EQ(ack->request_id, kHeartbeatId);
  EXPECT_TRUE(ack->is_response());
  EXPECT_TRUE(ack->is_event());
  EXPECT_EQ(ack->serialization(), dubbo::kSerializationHessian2);
  EXPECT_EQ(ack->status, Status(DubboStatus::kOk));
  EXPECT_EQ(ack->body, "N");
  // Answered by the sidecar: no upstream connection exists yet.
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(BackendLog(0).find("heartbeat"), std::string::npos) << BackendLog(0);

  // A call opens the upstream connection; a heartbeat right after it is
  // still answered by the sidecar, not forwarded. (The sidecar heartbeats an
  // upstream itself only after heartbeat_interval_ms, 1 s here, without a
  // byte from it, so within that second the provider sees no heartbeat.)
  DubboCall call;
  call.id = 7;
  auto reply = CallOnce(client, call);
  const auto answered_at = Clock::now();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 7u);
  EXPECT_TRUE(reply->ok());
  heartbeat.clear();
  dubbo::EncodeHeartbeat(kHeartbeatId + 1, heartbeat);
  ASSERT_TRUE(client.Write(heartbeat));
  ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->request_id, kHeartbeatId + 1);
  EXPECT_TRUE(ack->is_event());
  EXPECT_EQ(ack->status, Status(DubboStatus::kOk));
  std::this_thread::sleep_for(milliseconds(200));
  const std::string early_log = BackendLog(0);
  if (Clock::now() - answered_at < milliseconds(900)) {
    EXPECT_EQ(early_log.find("heartbeat"), std::string::npos) << early_log;
  } else {
    std::printf("machine too slow to check that the second heartbeat was not forwarded\n");
  }

  // The idle upstream connection is heartbeated by the sidecar itself (every
  // 1 s here), with its own ids.
  EXPECT_TRUE(Eventually([&] { return BackendLog(0).find("heartbeat id=") != std::string::npos; },
                         seconds(6)))
      << BackendLog(0);
  const std::string log = BackendLog(0);
  EXPECT_EQ(log.find(std::to_string(kHeartbeatId)), std::string::npos) << log;
  // And the connection still works.
  call.id = 8;
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(reply->ok());
}

TEST_F(SidecarDubboTest, UnroutableServiceGetsServiceNotFoundNamingIt) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  DubboCall call;
  call.id = 0x0102030405060708ull;
  call.service = "com.example.NopeService";
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 0x0102030405060708ull);
  EXPECT_TRUE(reply->is_response());
  EXPECT_FALSE(reply->is_event());
  EXPECT_EQ(reply->serialization(), dubbo::kSerializationHessian2);
  EXPECT_EQ(reply->status, Status(DubboStatus::kServiceNotFound));
  const std::optional<std::string> message = reply->Text();
  ASSERT_TRUE(message.has_value()) << "body is not a hessian2 string";
  EXPECT_NE(message->find("com.example.NopeService"), std::string::npos) << *message;

  // The same connection then serves a routable call.
  call.id = 0x0102030405060709ull;
  call.service = kDemoService;
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 0x0102030405060709ull);
  EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
  EXPECT_EQ(reply->Text(), ExpectedAnswer(call, "a"));
  EXPECT_EQ(BackendLog(0).find("NopeService"), std::string::npos) << BackendLog(0);
}

TEST_F(SidecarDubboTest, SlowProviderGetsServerTimeout) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  // The com.example.short. route has timeout_ms 500; the provider answers
  // "slow..." methods after 2 s.
  DubboCall call;
  call.id = 31;
  call.service = "com.example.short.SlowService";
  call.method = "slowHello";
  const auto start = Clock::now();
  auto reply = CallOnce(client, call);
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->request_id, 31u);
  EXPECT_EQ(reply->status, Status(DubboStatus::kServerTimeout));
  EXPECT_TRUE(reply->Text().has_value());
  EXPECT_GE(elapsed.count(), 480);
  EXPECT_LT(elapsed.count(), 1500);

  // A fast call meanwhile is answered.
  call.id = 32;
  call.method = "sayHello";
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 32u);
  EXPECT_TRUE(reply->ok());
  // The provider's late answer to call 31 (at ~2 s) never reaches the client.
  const auto late = start + milliseconds(2600);
  auto extra = client.Read(std::chrono::duration_cast<milliseconds>(late - Clock::now()));
  EXPECT_FALSE(extra.has_value()) << "late answer for id " << extra->request_id;
  EXPECT_FALSE(client.eof());
  call.id = 33;
  reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->request_id, 33u);
  EXPECT_TRUE(reply->ok());
}

TEST_F(SidecarDubboTest, MalformedFrameEndsOnlyItsConnection) {
  StartBackends(1);
  // One worker: every connection below lands on the same event loop.
  StartSidecar(DubboConfig(BackendAddresses(), "", /*workers=*/1));
  const std::string address = sidecar_->listener("dubbo");
  DubboClient keeper;  // a healthy connection that must survive all of it
  ASSERT_TRUE(keeper.Connect(address));
  uint64_t keeper_id = 0;
  auto keeper_works = [&] {
    DubboCall call;
    call.id = ++keeper_id;
    auto reply = CallOnce(keeper, call);
    return reply.has_value() && reply->ok() && reply->request_id == keeper_id;
  };
  ASSERT_TRUE(keeper_works());

  DubboCall call;
  call.id = 0x4242;
  const std::string valid = EncodeCall(call);
  auto with_length = [&](uint32_t length) {
    std::string bytes = valid.substr(0, dubbo::kHeaderBytes);
    bytes[12] = static_cast<char>(length >> 24);
    bytes[13] = static_cast<char>(length >> 16);
    bytes[14] = static_cast<char>(length >> 8);
    bytes[15] = static_cast<char>(length);
    return bytes;
  };
  std::string bad_magic = valid;
  bad_magic[1] = 0x00;
  struct Case {
    const char* name;
    std::string bytes;
    std::optional<uint8_t> answer;  // for call 0x4242, before the close
  };
  const Case cases[] = {
      // Two-way request bits, body 100 MiB: over the 16 MiB frame limit.
      {"frame over the size limit", with_length(100u << 20), Status(DubboStatus::kBadRequest)},
      {"just over the size limit", with_length((16u << 20) - dubbo::kHeaderBytes + 1),
       Status(DubboStatus::kBadRequest)},
      {"negative body length", with_length(0x80000000u), Status(DubboStatus::kBadRequest)},
      {"bad magic", bad_magic, std::nullopt},
      {"a valid call, then garbage", valid + std::string(30, '\x07'), Status(DubboStatus::kOk)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    DubboClient client;
    ASSERT_TRUE(client.Connect(address));
    ASSERT_TRUE(client.Write(c.bytes));
    if (c.answer) {
      auto reply = client.Read(seconds(5));
      ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
      EXPECT_EQ(reply->request_id, 0x4242u);
      EXPECT_TRUE(reply->is_response());
      EXPECT_EQ(reply->status, *c.answer) << reply->Text().value_or("(no text)");
      EXPECT_TRUE(reply->Text().has_value());
    }
    EXPECT_TRUE(client.WaitClosed(seconds(5)));
    EXPECT_TRUE(keeper_works());
    DubboClient fresh;
    ASSERT_TRUE(fresh.Connect(address));
    auto reply = CallOnce(fresh, call);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
  }
}

// Default policy: a provider's death fails only the calls it held.
TEST_F(SidecarDubboTest, ProviderKilledFailsOverToTheOther) {
  StartBackends(2);
  StartSidecar(DubboConfig(BackendAddresses()));
  LoadResult result;
  constexpr int kThreads = 4;
  auto threads = StartLoad(sidecar_->listener("dubbo"), kThreads, 10, milliseconds(4000), result);
  std::this_thread::sleep_for(milliseconds(1200));
  const auto killed_at = Clock::now();
  backends_[0]->Stop(SIGKILL);
  for (auto& t : threads) t.join();
  std::printf("calls: %s\n", result.Summary().c_str());
  // Each client has one call in flight: at most that many fail, and only as
  // SERVER_ERROR (the provider closed with it written).
  EXPECT_EQ(result.missing, 0) << sidecar_->Log();
  EXPECT_LE(result.Failed(), kThreads);
  EXPECT_EQ(result.Failed(), result.Count(DubboStatus::kServerError));
  EXPECT_GT(result.Count(DubboStatus::kOk), 200);
  // Soon after the kill, b answers everything.
  int early_a = 0, late = 0;
  for (const auto& [when, backend] : result.backends) {
    if (when < killed_at) early_a += backend == "a" ? 1 : 0;
    if (when > killed_at + milliseconds(500)) {
      EXPECT_EQ(backend, "b");
      ++late;
    }
  }
  EXPECT_GT(early_a, 0);  // a did take calls before it died
  EXPECT_GT(late, 100);
}

TEST_F(SidecarDubboTest, DubboBoltAndHttpShareOnePort) {
  StartBackends(1);
  BackendProcess bolt("bolt-a", "cairn_test_bolt_backend");
  ASSERT_TRUE(bolt.Start());
  StartSidecar(R"(
workers: 2
admin: 127.0.0.1:0
listeners:
  - name: mixed
    address: 127.0.0.1:0
    protocol: auto
    routes:
      - direct_response: { status: 200, body: "pong\n" }
    bolt_routes:
      - match: { service: "com.example.Echo:1.0" }
        cluster: echo
    dubbo_routes:
      - match: { service: "com.example.DemoService" }
        cluster: demo
clusters:
  - name: echo
    protocol: bolt
    endpoints: [")" +
               bolt.address() + R"("]
  - name: demo
    protocol: dubbo
    endpoints: [")" +
               backends_[0]->address() + R"("]
)");
  const std::string address = sidecar_->listener("mixed");
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(Curl({"http://" + address + "/"}), "pong\n");

    DubboClient dubbo_client;
    ASSERT_TRUE(dubbo_client.Connect(address));
    DubboCall call;
    call.id = 0x1000000000000000ull + static_cast<uint64_t>(round);
    auto reply = CallOnce(dubbo_client, call);
    ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
    EXPECT_EQ(reply->request_id, call.id);
    EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
    EXPECT_EQ(reply->Text(), ExpectedAnswer(call, "a"));

    BoltClient bolt_client;
    ASSERT_TRUE(bolt_client.Connect(address));
    BoltCall bolt_call;
    bolt_call.id = static_cast<uint32_t>(100 + round);
    ASSERT_TRUE(bolt_client.Call(bolt_call));
    auto bolt_reply = bolt_client.Read(seconds(10));
    ASSERT_TRUE(bolt_reply.has_value()) << sidecar_->Log();
    EXPECT_EQ(bolt_reply->status, BoltStatus::kSuccess);
    EXPECT_EQ(bolt_reply->request_id, bolt_call.id);
    EXPECT_EQ(bolt_reply->Header("backend"), "bolt-a");
    EXPECT_EQ(bolt_reply->content, "hello");
  }
  // A heartbeat as the very first frame is Dubbo too.
  DubboClient client;
  ASSERT_TRUE(client.Connect(address));
  std::string heartbeat;
  dubbo::EncodeHeartbeat(3, heartbeat);
  ASSERT_TRUE(client.Write(heartbeat));
  auto ack = client.Read(seconds(5));
  ASSERT_TRUE(ack.has_value()) << sidecar_->Log();
  EXPECT_TRUE(ack->is_event());
  EXPECT_EQ(ack->request_id, 3u);
  EXPECT_EQ(ack->status, Status(DubboStatus::kOk));
}

// A provider going down sends Dubbo's READONLY event: the sidecar stops
// giving that connection new calls (those in flight still finish) and opens
// a new one, so no call lands on a provider that asked for none.
TEST_F(SidecarDubboTest, ProviderReadOnlyNoticeMovesNewCallsOffItsConnection) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses(), "", /*workers=*/1));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  DubboCall call;
  call.id = 1;
  call.method = "readonly";
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
  EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
  ASSERT_TRUE(Eventually(
      [&] { return BackendLog(0).find("readonly-sent conn=1") != std::string::npos; }, seconds(5)))
      << BackendLog(0);
  // Give the notice time to arrive, then call again on the same client
  // connection (the sidecar's side changes, not the client's).
  std::this_thread::sleep_for(milliseconds(300));
  for (uint64_t id = 2; id <= 6; ++id) {
    call.id = id;
    call.method = "sayHello";
    reply = CallOnce(client, call);
    ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
    EXPECT_EQ(reply->status, Status(DubboStatus::kOk));
    EXPECT_EQ(reply->Text(), ExpectedAnswer(call, "a"));
  }
  const std::string log = BackendLog(0);
  EXPECT_EQ(log.find("after-readonly"), std::string::npos) << log;
  EXPECT_EQ(LoggedIds(log, "sayHello").size(), 5u) << log;
  EXPECT_NE(log.find("conn=2 service=com.example.DemoService method=sayHello"), std::string::npos)
      << log;
}

TEST_F(SidecarDubboTest, MetricsPerService) {
  StartBackends(1);
  StartSidecar(DubboConfig(BackendAddresses()));
  DubboClient client;
  ASSERT_TRUE(client.Connect(sidecar_->listener("dubbo")));
  DubboCall call;
  for (uint64_t i = 1; i <= 3; ++i) {
    call.id = i;
    auto reply = CallOnce(client, call);
    ASSERT_TRUE(reply.has_value());
    ASSERT_TRUE(reply->ok());
  }
  call.id = 4;
  call.service = "com.example.NopeService";
  auto reply = CallOnce(client, call);
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->status, Status(DubboStatus::kServiceNotFound));

  const std::string metrics = Curl({"http://" + sidecar_->admin() + "/metrics"});
  const std::string demo = "service=\"com.example.DemoService\"";
  for (const std::string& line : std::vector<std::string>{
           "cairn_sidecar_dubbo_requests_total{" + demo + "} 3",
           "cairn_sidecar_dubbo_responses_total{" + demo + ",status=\"OK\"} 3",
           "cairn_sidecar_dubbo_responses_total{service=\"com.example.NopeService\",status="
           "\"SERVICE_NOT_FOUND\"} 1",
           "cairn_sidecar_dubbo_request_duration_seconds_count{" + demo + "} 3",
           "cairn_sidecar_upstream_requests_total{cluster=\"demo\"} 3",
       }) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
  // Bolt has its own family; nothing Dubbo is counted there.
  EXPECT_EQ(metrics.find("cairn_sidecar_bolt_requests_total{service=\"com.example.DemoService\""),
            std::string::npos);
}

}  // namespace
}  // namespace cairn::testing
