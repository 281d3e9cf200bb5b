// The Bolt proxy's pieces that stand alone: the pending map (id allocation),
// routing by service, timeout rounding, metrics with a label cap, protocol
// sniffing, and one upstream connection against a hand-driven provider.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <future>
#include <limits>
#include <mutex>
#include <set>

#include "loopback_listener.h"
#include "sidecar/codec/bolt/bolt_codec.h"
#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/bolt/bolt_error.h"
#include "sidecar/codec/rpc_codecs.h"
#include "sidecar/config/sidecar_config.h"
#include "sidecar/network/protocol_sniffer.h"
#include "sidecar/pool/rpc_pending.h"
#include "sidecar/pool/rpc_pool.h"
#include "sidecar/rpc/rpc_request.h"
#include "sidecar/rpc/rpc_route_table.h"
#include "sidecar/rpc/rpc_stats.h"

namespace cairn::sidecar::bolt {
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------- pending

TEST(RpcPendingMapTest, IdsAreFreshAndResponsesFindTheirRequest) {
  RpcPendingMap<int> map;
  int a = 1, b = 2, c = 3;
  const uint32_t ia = map.Insert(&a);
  const uint32_t ib = map.Insert(&b);
  const uint32_t ic = map.Insert(&c);
  EXPECT_EQ(std::set<uint32_t>({ia, ib, ic}).size(), 3u);
  EXPECT_NE(ia, 0u);
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.Take(ib), &b);       // out of order
  EXPECT_EQ(map.Take(ib), nullptr);  // a second response for the id finds nothing
  EXPECT_TRUE(map.Erase(ia));        // a request that gave up
  EXPECT_EQ(map.Take(ia), nullptr);  // its late response is dropped
  EXPECT_EQ(map.Take(12345), nullptr);
  EXPECT_EQ(map.Take(ic), &c);
  EXPECT_TRUE(map.empty());
}

TEST(RpcPendingMapTest, WrapsAroundSkippingZeroAndIdsStillWaiting) {
  RpcPendingMap<int> map;
  int v[4] = {};
  map.set_next_id_for_test(1);
  const uint32_t first = map.Insert(&v[0]);  // 1, still waiting after the wrap
  EXPECT_EQ(first, 1u);
  map.set_next_id_for_test(std::numeric_limits<uint32_t>::max() - 1);
  EXPECT_EQ(map.Insert(&v[1]), std::numeric_limits<uint32_t>::max() - 1);
  EXPECT_EQ(map.Insert(&v[2]), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(map.Insert(&v[3]), 2u);  // not 0 (never used), not 1 (in use)
  EXPECT_EQ(map.NextId(), 3u);
}

TEST(RpcPendingMapTest, TakeAnyDrainsWhileEntriesAreErasedMeanwhile) {
  RpcPendingMap<int> map;
  int v[10] = {};
  std::vector<uint32_t> ids;
  for (int& x : v) ids.push_back(map.Insert(&x));
  int taken = 0;
  while (int* value = map.TakeAny()) {
    ++taken;
    // A callee that ends another request erases its entry.
    if (value == &v[0] || value == &v[1]) map.Erase(ids[9]);
  }
  EXPECT_GE(taken, 9);
  EXPECT_LE(taken, 10);
  EXPECT_TRUE(map.empty());
}

// ---------------------------------------------------------------- routes

RpcRoute MakeRoute(std::string service, std::string prefix, std::string cluster) {
  RpcRoute route;
  route.service = std::move(service);
  route.service_prefix = std::move(prefix);
  route.cluster = std::move(cluster);
  return route;
}

TEST(RpcRouteTableTest, ExactWinsThenPrefixesInOrderThenMatchAll) {
  RpcRouteTable table({
      MakeRoute("", "com.foo.", "foo-prefix"),
      MakeRoute("com.foo.Bar:1.0", "", "bar-exact"),
      MakeRoute("com.foo.Bar:1.0", "", "duplicate"),
      MakeRoute("", "com.foo.Baz", "too-late"),
      MakeRoute("", "", "all"),
  });
  EXPECT_EQ(table.Match("com.foo.Bar:1.0")->cluster, "bar-exact");
  EXPECT_EQ(table.Match("com.foo.Bar:2.0")->cluster, "foo-prefix");
  EXPECT_EQ(table.Match("com.foo.Baz:1.0")->cluster, "foo-prefix");  // first prefix wins
  EXPECT_EQ(table.Match("org.other.Svc:1.0")->cluster, "all");
  EXPECT_EQ(table.Match("")->cluster, "all");

  RpcRouteTable strict({MakeRoute("com.foo.Bar:1.0", "", "bar"), MakeRoute("", "com.", "com")});
  EXPECT_EQ(strict.Match("com.foo.Bar:1.0")->cluster, "bar");
  EXPECT_EQ(strict.Match("com.x:1")->cluster, "com");
  EXPECT_EQ(strict.Match("net.x:1"), nullptr);
  EXPECT_EQ(strict.Match(""), nullptr);  // no service: only a match-all route takes it
}

// --------------------------------------------------------------- timeouts

TEST(QuantizeTimeoutTest, ExactWhenSmallNeverEarlyAndFewDistinctValues) {
  for (uint32_t ms : {0u, 1u, 100u, 127u}) EXPECT_EQ(QuantizeTimeout(ms).count(), ms);
  std::set<int64_t> distinct;
  for (uint32_t ms = 1; ms <= 1'000'000; ++ms) {
    const int64_t q = QuantizeTimeout(ms).count();
    ASSERT_GE(q, ms);
    ASSERT_LE(static_cast<double>(q), ms * (1.0 + 1.0 / 64));
    distinct.insert(q);
  }
  EXPECT_LT(distinct.size(), 1200u);
  const auto max = std::numeric_limits<uint32_t>::max();
  EXPECT_GE(QuantizeTimeout(max).count(), static_cast<int64_t>(max));
}

// ---------------------------------------------------------------- metrics

// Every series of a family as "label=value,label=value -> value".
std::map<std::string, double> Series(const LocalMetrics& metrics, const std::string& family) {
  std::map<std::string, double> out;
  for (const auto& f : metrics.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      std::string key;
      for (const auto& label : m.label) key += label.name + "=" + label.value + ",";
      out[key] = f.type == prometheus::MetricType::Histogram
                     ? static_cast<double>(m.histogram.sample_count)
                     : m.counter.value;
    }
  }
  return out;
}

TEST(BoltStatsTest, ServicesPastTheCapShareOneLabelAndWorkersAreSummed) {
  LocalMetrics metrics;
  RpcStats stats(metrics, BoltCodec(), /*max_services=*/3);
  RpcStatsCache worker0(stats), worker1(stats);
  for (const char* service : {"a", "b", "c", "d", "e", ""}) {
    worker0.For(service).requests->Increment();
  }
  worker1.For("a").requests->Increment();
  worker1.For("z").requests->Increment();           // past the cap on any worker
  EXPECT_EQ(&worker0.For("d"), &worker0.For("e"));  // one "other" cell per worker
  EXPECT_EQ(worker0.For("e").label, "other");
  worker0.CountResponse(worker0.For("a"), static_cast<uint32_t>(BoltStatus::kSuccess));
  worker1.CountResponse(worker1.For("a"), static_cast<uint32_t>(BoltStatus::kSuccess));
  worker1.CountResponse(worker1.For("a"), static_cast<uint32_t>(BoltStatus::kTimeout));
  worker1.CountResponse(worker1.For("a"), 0x77);
  worker0.For("b").duration->Observe(0.01);

  EXPECT_EQ(Series(metrics, "cairn_sidecar_bolt_requests_total"),
            (std::map<std::string, double>{{"service=-,", 1},
                                           {"service=a,", 2},
                                           {"service=b,", 1},
                                           {"service=c,", 1},
                                           {"service=other,", 3}}));
  EXPECT_EQ(Series(metrics, "cairn_sidecar_bolt_responses_total"),
            (std::map<std::string, double>{{"service=a,status=SUCCESS,", 2},
                                           {"service=a,status=TIMEOUT,", 1},
                                           {"service=a,status=UNRECOGNIZED,", 1}}));
  EXPECT_EQ(Series(metrics, "cairn_sidecar_bolt_request_duration_seconds")["service=b,"], 1);
}

TEST(BoltStatsTest, EveryNamedStatusHasItsOwnSlot) {
  const RpcCodec& codec = BoltCodec();
  std::set<size_t> slots;
  for (uint16_t s : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10, 0x11, 0x12}) {
    const size_t slot = codec.StatusSlot(s);
    EXPECT_LT(slot, kRpcStatusSlots - 1);
    EXPECT_NE(codec.StatusName(s), "UNRECOGNIZED") << s;
    slots.insert(slot);
  }
  EXPECT_EQ(slots.size(), 13u);
  EXPECT_EQ(codec.StatusSlot(0x0a), kRpcStatusSlots - 1);
  EXPECT_EQ(codec.StatusSlot(0xffff), kRpcStatusSlots - 1);
  EXPECT_EQ(codec.StatusSlot(0x10000), kRpcStatusSlots - 1);
  EXPECT_EQ(codec.StatusName(0x10000), "UNRECOGNIZED");
}

TEST(RpcStatsTest, MetricNamesAndStatusNamesComeFromTheCodec) {
  const RpcCodec* dubbo = FindRpcCodec("dubbo");
  ASSERT_NE(dubbo, nullptr);
  LocalMetrics metrics;
  RpcStats stats(metrics, *dubbo);
  RpcStatsCache worker(stats);
  worker.For("com.example.Echo").requests->Increment();
  worker.CountResponse(worker.For("com.example.Echo"), 20);
  worker.CountResponse(worker.For("com.example.Echo"), dubbo->ErrorStatus(RpcError::kNoRoute));
  EXPECT_EQ(Series(metrics, "cairn_sidecar_dubbo_requests_total"),
            (std::map<std::string, double>{{"service=com.example.Echo,", 1}}));
  EXPECT_EQ(
      Series(metrics, "cairn_sidecar_dubbo_responses_total"),
      (std::map<std::string, double>{{"service=com.example.Echo,status=OK,", 1},
                                     {"service=com.example.Echo,status=SERVICE_NOT_FOUND,", 1}}));
  EXPECT_TRUE(Series(metrics, "cairn_sidecar_bolt_requests_total").empty());
}

// ----------------------------------------------------------------- errors

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

TEST(BoltErrorTest, Hessian2FramesCarryASerializedRpcServerException) {
  // Decoded by sofa-bolt-node 2.0.1 (hessian.js-1's DecoderV2, SOFARPC's
  // Hessian 3 grammar) as an Error "...RpcServerException: boom": class
  // definition 'O', 3 fields, instance 'o' 0, "boom", null cause, an empty
  // StackTraceElement[].
  EXPECT_EQ(Hex(HessianRpcServerException("boom")),
            "4fc834"
            "636f6d2e616c697061792e72656d6f74696e672e7270632e657863657074696f6e2e5270635365727665"
            "72457863657074696f6e"
            "93"
            "0d64657461696c4d657373616765"
            "056361757365"
            "0a737461636b5472616365"
            "6f90"
            "04626f6f6d"
            "4e"
            "5674001c5b6a6176612e6c616e672e537461636b5472616365456c656d656e746e007a");
  // Longer messages use the 'S' form; bytes outside printable ASCII become '?'.
  const std::string long_message = std::string(40, 'x') + "\xe4\n";
  const std::string content = HessianRpcServerException(long_message);
  EXPECT_NE(content.find(std::string("S\x00\x2a", 3) + std::string(40, 'x') + "??"),
            std::string::npos);

  std::string out;
  EncodeSidecarError(BoltFraming::V2(/*crc=*/true), 9, BoltStatus::kTimeout, "late", out);
  BoltDecoder decoder;
  std::string_view input = out;
  auto frame = decoder.Next(input);
  ASSERT_TRUE(frame.ok() && *frame != nullptr);
  EXPECT_EQ((*frame)->status, BoltStatus::kTimeout);
  EXPECT_EQ((*frame)->request_id, 9u);
  EXPECT_TRUE((*frame)->has_crc);
  EXPECT_EQ((*frame)->class_name, kRpcServerExceptionClass);
  EXPECT_EQ((*frame)->content(), HessianRpcServerException("late"));

  // Other codecs: the message as plain text.
  out.clear();
  EncodeSidecarError(BoltFraming::V1(kCodecProtobuf), 10, BoltStatus::kErrorComm, "down", out);
  input = out;
  frame = decoder.Next(input);
  ASSERT_TRUE(frame.ok() && *frame != nullptr);
  EXPECT_EQ((*frame)->codec, kCodecProtobuf);
  EXPECT_EQ((*frame)->content(), "down");
}

// ----------------------------------------------------------- the registry

TEST(RpcCodecsTest, TheConfigAndTheCodecListNameTheSameProtocolsAndDetectorsDoNotOverlap) {
  std::set<std::string> configured(kRpcProtocols.begin(), kRpcProtocols.end());
  std::set<std::string> coded;
  for (const RpcCodec* codec : RpcCodecs()) coded.insert(std::string(codec->name()));
  EXPECT_EQ(configured, coded);
  for (int b = 0; b < 256; ++b) {
    int claims = 0;
    for (const RpcCodec* codec : RpcCodecs()) claims += codec->MatchesFirstByte(b) ? 1 : 0;
    EXPECT_LE(claims, 1) << "byte " << b;
    // HTTP/1 methods and the HTTP/2 preface start with a letter.
    if (std::isalpha(b)) {
      EXPECT_EQ(claims, 0) << "byte " << b;
    }
  }
}

// ---------------------------------------------------------------- sniffer

// The protocol a sniffed first byte picks: an RPC codec's name, or "http".
std::string Detected(uint8_t first_byte) {
  const RpcCodec* codec = DetectRpcCodec(first_byte);
  return codec != nullptr ? std::string(codec->name()) : "http";
}

TEST(ProtocolSnifferTest, TellsRpcFromHttpByTheFirstByteAndLeavesItInTheSocket) {
  Worker worker(0);
  worker.Start();
  struct Case {
    std::string bytes;  // empty: the peer closes without sending
    std::string expected;
  } cases[] = {{"\x01rest", "bolt"},       {"\x02rest", "bolt"},
               {"\xda\xbb\xc2", "dubbo"},  {"GET / HTTP/1.1\r\n", "http"},
               {"PRI * HTTP/2.0", "http"}, {"", "closed"}};
  for (const Case& c : cases) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    std::promise<std::pair<int, std::string>> result;
    std::unique_ptr<ProtocolSniffer> sniffer;
    worker.RunAndWait([&] {
      sniffer = std::make_unique<ProtocolSniffer>(
          worker, fds[0], [&](ProtocolSniffer*, int fd, uint8_t first_byte) {
            result.set_value({fd, fd < 0 ? std::string("closed") : Detected(first_byte)});
          });
      sniffer->Start();
    });
    // The answer waits for the first byte.
    auto future = result.get_future();
    EXPECT_EQ(future.wait_for(milliseconds(50)), std::future_status::timeout);
    if (c.bytes.empty()) {
      close(fds[1]);
    } else {
      ASSERT_EQ(write(fds[1], c.bytes.data(), c.bytes.size()),
                static_cast<ssize_t>(c.bytes.size()));
    }
    ASSERT_EQ(future.wait_for(milliseconds(2000)), std::future_status::ready);
    auto [fd, protocol] = future.get();
    EXPECT_EQ(protocol, c.expected) << c.bytes;
    if (c.bytes.empty()) {
      EXPECT_EQ(fd, -1);
    } else {
      char buffer[64] = {};
      ASSERT_EQ(read(fd, buffer, sizeof(buffer)), static_cast<ssize_t>(c.bytes.size()));
      EXPECT_EQ(std::string(buffer, c.bytes.size()), c.bytes);  // nothing was consumed
      close(fd);
      close(fds[1]);
    }
    worker.RunAndWait([&] { sniffer.reset(); });
  }
  worker.Stop();
}

// ---------------------------------------------------------- upstream conn

// A provider driven by the test thread over a real loopback socket.
class FakeProvider {
 public:
  ~FakeProvider() {
    if (fd_ >= 0) close(fd_);
  }
  asio::ip::tcp::endpoint endpoint() const {
    return {asio::ip::make_address("127.0.0.1"), listener_.port()};
  }
  bool Accept() {
    pollfd p{listener_.fd(), POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) return false;
    fd_ = accept(listener_.fd(), nullptr, nullptr);
    return fd_ >= 0;
  }
  // The next `n` frames (owned copies: id, content).
  std::vector<std::pair<uint32_t, std::string>> ReadFrames(size_t n) {
    std::vector<std::pair<uint32_t, std::string>> out;
    char buffer[4096];
    while (out.size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 2000) != 1) break;
      ssize_t got = read(fd_, buffer, sizeof(buffer));
      if (got <= 0) break;
      std::string_view input(buffer, static_cast<size_t>(got));
      for (;;) {
        auto next = decoder_.Next(input);
        if (!next.ok() || *next == nullptr) break;
        out.emplace_back((*next)->request_id, std::string((*next)->content()));
      }
    }
    return out;
  }
  void Respond(uint32_t id, std::string_view content) {
    BoltResponseParams params;
    params.request_id = id;
    params.content = content;
    std::string out;
    ASSERT_TRUE(EncodeResponse(params, out).ok());
    ASSERT_EQ(write(fd_, out.data(), out.size()), static_cast<ssize_t>(out.size()));
  }
  void CloseConnection() {
    close(fd_);
    fd_ = -1;
  }

 private:
  cairn::testing::LoopbackListener listener_;
  int fd_ = -1;
  BoltDecoder decoder_;
};

// Records what the connection tells its owner and its requests. The
// callbacks run on the worker; the test reads after RunAndWait.
struct Recorder : RpcUpstreamConnection::Owner {
  struct Request : RpcUpstreamCallbacks {
    explicit Request(Recorder& r, std::string name) : recorder(r), name(std::move(name)) {}
    void OnUpstreamResponse(const RpcMessage& response) override {
      // The path sees only the codec's view: decode the raw frame for its content.
      BoltDecoder decoder;
      std::string_view raw = response.raw;
      auto frame = decoder.Next(raw);
      recorder.Add(name + " response " +
                   (frame.ok() && *frame != nullptr ? std::string((*frame)->content()) : "?"));
    }
    void OnUpstreamFailure(std::string_view) override { recorder.Add(name + " failed"); }
    Recorder& recorder;
    std::string name;
  };
  void OnConnected(RpcUpstreamConnection&) override { Add("connected"); }
  void OnConnectFailed(RpcUpstreamConnection&, const std::string&) override {
    Add("connect failed");
  }
  void OnClosed(RpcUpstreamConnection&) override { Add("closed"); }
  void Add(std::string event) {
    std::lock_guard lock(mu);
    events.push_back(std::move(event));
  }
  std::vector<std::string> Events() {
    std::lock_guard lock(mu);
    return events;
  }
  bool WaitFor(const std::string& event) {
    for (int i = 0; i < 200; ++i) {
      for (const auto& e : Events()) {
        if (e == event) return true;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }
  std::mutex mu;
  std::vector<std::string> events;
};

std::string Request(uint32_t client_id, std::string_view content, bool oneway = false) {
  BoltRequestParams params;
  params.request_id = client_id;
  params.oneway = oneway;
  params.content = content;
  std::string out;
  EXPECT_TRUE(EncodeRequest(params, out).ok());
  return out;
}

TEST(RpcUpstreamConnectionTest, MultiplexesWithFreshIdsAndMatchesResponsesBack) {
  Worker worker(0);
  worker.Start();
  FakeProvider provider;
  Recorder recorder;
  Recorder::Request a(recorder, "a"), b(recorder, "b"), c(recorder, "c");
  std::unique_ptr<RpcUpstreamConnection> conn;
  worker.RunAndWait([&] {
    conn = std::make_unique<RpcUpstreamConnection>(worker, recorder, BoltCodec(), RpcLimits{});
    conn->Connect(provider.endpoint(), milliseconds(1000));
  });
  ASSERT_TRUE(provider.Accept());
  ASSERT_TRUE(recorder.WaitFor("connected"));
  uint32_t ia = 0, ib = 0, oneway = 0;
  worker.RunAndWait([&] {
    // Three clients that all picked requestId 500.
    ia = conn->Send(Request(500, "A"), &a);
    ib = conn->Send(Request(500, "B"), &b);
    oneway = conn->Send(Request(500, "O", /*oneway=*/true), nullptr);
    EXPECT_EQ(conn->pending(), 2u);  // the oneway waits for nothing
    conn->Cancel(ib);                // b gives up (timeout)
  });
  auto frames = provider.ReadFrames(3);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], std::make_pair(ia, std::string("A")));
  EXPECT_EQ(frames[1], std::make_pair(ib, std::string("B")));
  EXPECT_EQ(frames[2], std::make_pair(oneway, std::string("O")));
  EXPECT_EQ(std::set<uint32_t>({ia, ib, oneway}).size(), 3u);
  // Answers out of order, plus one nobody asked for.
  provider.Respond(ib, "late B");
  provider.Respond(999999, "stray");
  provider.Respond(ia, "answer A");
  ASSERT_TRUE(recorder.WaitFor("a response answer A"));
  // The provider dies with c waiting.
  uint32_t ic = 0;
  worker.RunAndWait([&] { ic = conn->Send(Request(7, "C"), &c); });
  ASSERT_EQ(provider.ReadFrames(1).size(), 1u);
  provider.CloseConnection();
  ASSERT_TRUE(recorder.WaitFor("c failed"));
  EXPECT_NE(ic, 0u);
  EXPECT_EQ(recorder.Events(),
            (std::vector<std::string>{"connected", "a response answer A", "closed", "c failed"}));
  worker.RunAndWait([&] {
    EXPECT_FALSE(conn->connected());
    conn.reset();
  });
  worker.Stop();
}

TEST(RpcUpstreamConnectionTest, ConnectFailureIsReported) {
  Worker worker(0);
  worker.Start();
  Recorder recorder;
  uint16_t port;
  {
    FakeProvider gone;  // a port that was listening and is no more
    port = gone.endpoint().port();
  }
  std::unique_ptr<RpcUpstreamConnection> conn;
  worker.RunAndWait([&] {
    conn = std::make_unique<RpcUpstreamConnection>(worker, recorder, BoltCodec(), RpcLimits{});
    conn->Connect({asio::ip::make_address("127.0.0.1"), port}, milliseconds(1000));
  });
  EXPECT_TRUE(recorder.WaitFor("connect failed"));
  worker.RunAndWait([&] { conn.reset(); });
  worker.Stop();
}

}  // namespace
}  // namespace cairn::sidecar::bolt
