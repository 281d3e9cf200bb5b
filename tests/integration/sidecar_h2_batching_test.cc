// HTTP/2 write batching (listener keys http2_flush_delay_us and
// http2_flush_batch): responses of several streams of one client connection
// wait for each other a bounded time, and no other connection of the worker
// waits with them. Real sidecar process, real backends (HTTP and Bolt), and an
// nghttp2 client in the test, so that each stream's completion time is known.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bolt_test_client.h"
#include "loopback_listener.h"
#include "process.h"

namespace cairn::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The longest hold the config allows, so a held response is easy to tell
// from one that was not held, even on a busy machine.
constexpr milliseconds kDelay{10};

// An upstream that accepts connections and never answers: a stream routed
// there stays in flight (until the route timeout).
using SilentBackend = LoopbackListener;

std::string Config(const std::string& app, const std::string& silent,
                   const std::string& bolt_provider) {
  return R"(
workers: 1
admin: 127.0.0.1:0
listeners:
  - name: h2
    address: 127.0.0.1:0
    protocol: http2
    http2_flush_delay_us: )" +
         std::to_string(std::chrono::microseconds(kDelay).count()) + R"(
    http2_flush_batch: 0
    routes:
      - match: { prefix: /silent }
        cluster: silent
        timeout_ms: 5000
      - match: { prefix: / }
        cluster: app
  - name: mixed
    address: 127.0.0.1:0
    protocol: auto
    routes:
      - match: { prefix: / }
        cluster: app
    bolt_routes:
      - match: { service: "com.example.Echo:1.0" }
        cluster: echo
clusters:
  - name: app
    endpoints: [")" +
         app + R"("]
  - name: silent
    endpoints: [")" +
         silent + R"("]
  - name: echo
    protocol: bolt
    endpoints: [")" +
         bolt_provider + R"("]
)";
}

// Connects `fd` to "127.0.0.1:PORT" with TCP_NODELAY: without it, a request
// written in two sends waits for the server's delayed ACK (40 ms), longer
// than any hold.
bool ConnectNoDelay(int fd, const std::string& address) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// A blocking h2c client on nghttp2: each stream's status, x-test-* headers,
// body and the time it ended.
class H2Client {
 public:
  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
    bool closed = false;
    Clock::time_point closed_at;
  };

  explicit H2Client(const std::string& address) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    connected_ = ConnectNoDelay(fd_, address);
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &OnClose);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~H2Client() {
    nghttp2_session_del(session_);
    close(fd_);
  }
  bool connected() const { return connected_; }
  // Whether the server sent anything not yet read (without waiting).
  bool HasUnreadBytes() const {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
  }

  // Queues a GET; Send() or Wait() puts it on the wire.
  int32_t Get(const std::string& path, const std::string& test_header = "") {
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", "GET"}, {":scheme", "http"}, {":authority", "test"}, {":path", path}};
    if (!test_header.empty()) fields.emplace_back("x-test-n", test_header);
    std::vector<nghttp2_nv> nv;
    for (auto& [name, value] : fields) {
      nv.push_back({reinterpret_cast<uint8_t*>(name.data()),
                    reinterpret_cast<uint8_t*>(value.data()), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    responses_[id];
    return id;
  }

  bool Send() {
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
      if (send(fd_, data, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return false;
    }
    return n == 0;
  }

  // Drives the session until every stream in `ids` closed; false on timeout.
  bool Wait(const std::vector<int32_t>& ids, milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    auto done = [&] {
      for (int32_t id : ids) {
        if (!responses_[id].closed) return false;
      }
      return true;
    };
    while (!done()) {
      if (!Send()) return false;
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[16384];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf),
                                   static_cast<size_t>(n)) < 0) {
        return false;
      }
    }
    return true;
  }

  const Response& response(int32_t id) { return responses_[id]; }

 private:
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* self) {
    Response& r = static_cast<H2Client*>(self)->responses_[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") r.status = std::stoi(v);
    r.headers[n] = v;
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* self) {
    static_cast<H2Client*>(self)->responses_[id].body.append(reinterpret_cast<const char*>(data),
                                                             len);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t id, uint32_t, void* self) {
    Response& r = static_cast<H2Client*>(self)->responses_[id];
    r.closed = true;
    r.closed_at = Clock::now();
    return 0;
  }

  int fd_;
  bool connected_ = false;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Response> responses_;
};

class SidecarH2BatchingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<BackendProcess>("a");
    ASSERT_TRUE(backend_->Start());
    bolt_provider_ = std::make_unique<BackendProcess>("p", "cairn_test_bolt_backend");
    ASSERT_TRUE(bolt_provider_->Start());
    sidecar_ = std::make_unique<SidecarProcess>(
        Config(backend_->address(), silent_.address(), bolt_provider_->address()));
    ASSERT_TRUE(sidecar_->Start()) << sidecar_->Log();
  }

  SilentBackend silent_;
  std::unique_ptr<BackendProcess> backend_;
  std::unique_ptr<BackendProcess> bolt_provider_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

// Many streams at once on one connection (their responses are held and sent
// together): each gets its own response, intact.
TEST_F(SidecarH2BatchingTest, EveryStreamOfABatchGetsItsOwnResponse) {
  H2Client client(sidecar_->listener("h2"));
  ASSERT_TRUE(client.connected());
  for (int round = 0; round < 3; ++round) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i)
      ids.push_back(client.Get("/echo", std::to_string(round * 100 + i)));
    ASSERT_TRUE(client.Wait(ids, milliseconds(10000))) << sidecar_->Log();
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto& r = client.response(ids[i]);
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.headers.count("x-test-n") ? r.headers.at("x-test-n") : "",
                std::to_string(round * 100 + static_cast<int>(i)));
      EXPECT_EQ(r.headers.count("x-backend") ? r.headers.at("x-backend") : "", "a");
    }
  }
}

// A response that is ready while another stream waits on a silent upstream
// is held (it takes at least the delay), but only for the delay: it does not
// wait for the other stream.
TEST_F(SidecarH2BatchingTest, AHeldResponseWaitsNoLongerThanTheDelay) {
  H2Client client(sidecar_->listener("h2"));
  ASSERT_TRUE(client.connected());
  // Warm up the upstream connection so that the timed request is quick.
  int32_t warm = client.Get("/");
  ASSERT_TRUE(client.Wait({warm}, milliseconds(10000))) << sidecar_->Log();

  int32_t stalled = client.Get("/silent");
  int32_t quick = client.Get("/");
  auto start = Clock::now();
  ASSERT_TRUE(client.Send());
  ASSERT_TRUE(client.Wait({quick}, milliseconds(3000))) << sidecar_->Log();
  auto took = client.response(quick).closed_at - start;
  EXPECT_EQ(client.response(quick).status, 200);
  EXPECT_EQ(client.response(quick).body, "a\n");
  EXPECT_FALSE(client.response(stalled).closed);
  // Held: the backend answers in well under the delay when not held.
  EXPECT_GE(took, kDelay - milliseconds(1));
  // Bounded: released at the deadline (plus scheduling slack on a busy
  // machine), not when the stalled stream ends (5 s route timeout).
  EXPECT_LT(took, milliseconds(1000));
}

// One stream at a time: nothing to batch with, so nothing is held. The
// fastest of several requests shows it (a held one takes the whole delay).
TEST_F(SidecarH2BatchingTest, ALoneStreamIsNotHeld) {
  H2Client client(sidecar_->listener("h2"));
  ASSERT_TRUE(client.connected());
  auto fastest = Clock::duration::max();
  for (int i = 0; i < 20; ++i) {
    int32_t id = client.Get("/");
    auto start = Clock::now();
    ASSERT_TRUE(client.Wait({id}, milliseconds(10000))) << sidecar_->Log();
    EXPECT_EQ(client.response(id).status, 200);
    fastest = std::min(fastest, client.response(id).closed_at - start);
  }
  EXPECT_LT(fastest, kDelay / 2);
}

// A blocking HTTP/1.1 keep-alive client: sends GET / and reads one response
// (the test backend always sends Content-Length).
class Http1Client {
 public:
  explicit Http1Client(const std::string& address) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    connected_ = ConnectNoDelay(fd_, address);
  }
  ~Http1Client() { close(fd_); }
  bool connected() const { return connected_; }

  bool SendGet() {
    static constexpr char kRequest[] = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    return send(fd_, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) ==
           static_cast<ssize_t>(sizeof(kRequest) - 1);
  }
  // The body of the next response ("" on timeout or error).
  std::string ReadResponse(milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    std::string in;
    for (;;) {
      size_t head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        if (cl == std::string::npos) cl = in.find("content-length: ");
        if (cl == std::string::npos || cl > head_end) return "";
        size_t length = std::stoul(in.substr(cl + 16));
        if (in.size() >= head_end + 4 + length) return in.substr(head_end + 4, length);
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return "";
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return "";
      in.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

// While one connection's responses are held, the worker keeps serving its
// other connections: an HTTP/1 request, a lone HTTP/2 stream and a Bolt call
// on the same (only) worker are answered while the held response is still
// waiting. A hold that paused the whole worker (it used to sleep until the
// hold's deadline) would answer them only after the held batch left.
TEST_F(SidecarH2BatchingTest, AHoldDelaysNoOtherConnectionOfTheWorker) {
  H2Client held(sidecar_->listener("h2"));
  H2Client lone(sidecar_->listener("mixed"));
  Http1Client h1(sidecar_->listener("mixed"));
  BoltClient bolt;
  ASSERT_TRUE(held.connected() && lone.connected() && h1.connected());
  ASSERT_TRUE(bolt.Connect(sidecar_->listener("mixed")));
  // Warm every connection and its upstream connection.
  int32_t warm = held.Get("/");
  ASSERT_TRUE(held.Wait({warm}, milliseconds(10000))) << sidecar_->Log();
  warm = lone.Get("/");
  ASSERT_TRUE(lone.Wait({warm}, milliseconds(10000))) << sidecar_->Log();
  ASSERT_TRUE(h1.SendGet());
  ASSERT_EQ(h1.ReadResponse(milliseconds(10000)), "a\n") << sidecar_->Log();
  BoltCall call;
  call.id = 1;
  ASSERT_TRUE(bolt.Call(call));
  ASSERT_TRUE(bolt.Read(milliseconds(10000)).has_value()) << sidecar_->Log();

  // The test needs the others answered within the hold (10 ms), which a busy
  // machine can miss once; the old whole-worker hold missed every time.
  bool h1_before = false, lone_before = false, bolt_before = false;
  for (int attempt = 0; attempt < 5 && !(h1_before && lone_before && bolt_before); ++attempt) {
    int32_t stalled = held.Get("/silent");
    int32_t quick = held.Get("/");
    auto start = Clock::now();
    ASSERT_TRUE(held.Send());
    // Let the quick response come back from the backend and be held.
    std::this_thread::sleep_for(milliseconds(2));
    int32_t lone_id = lone.Get("/");
    ASSERT_TRUE(lone.Send());
    ASSERT_TRUE(h1.SendGet());
    call.id = static_cast<uint32_t>(attempt + 2);
    ASSERT_TRUE(bolt.Call(call));

    ASSERT_EQ(h1.ReadResponse(milliseconds(10000)), "a\n") << sidecar_->Log();
    bool h1_now = !held.HasUnreadBytes();
    ASSERT_TRUE(lone.Wait({lone_id}, milliseconds(10000))) << sidecar_->Log();
    EXPECT_EQ(lone.response(lone_id).status, 200);
    bool lone_now = !held.HasUnreadBytes();
    auto reply = bolt.Read(milliseconds(10000));
    ASSERT_TRUE(reply.has_value()) << sidecar_->Log();
    EXPECT_EQ(reply->request_id, call.id);
    EXPECT_EQ(reply->status, BoltStatus::kSuccess);
    bool bolt_now = !held.HasUnreadBytes();

    // The quick response was held (else the attempt shows nothing).
    ASSERT_TRUE(held.Wait({quick}, milliseconds(3000))) << sidecar_->Log();
    EXPECT_EQ(held.response(quick).status, 200);
    EXPECT_FALSE(held.response(stalled).closed);
    if (held.response(quick).closed_at - start < kDelay - milliseconds(1)) continue;
    h1_before |= h1_now;
    lone_before |= lone_now;
    bolt_before |= bolt_now;
  }
  EXPECT_TRUE(h1_before) << "an HTTP/1 request waited for another connection's hold";
  EXPECT_TRUE(lone_before) << "a lone HTTP/2 stream waited for another connection's hold";
  EXPECT_TRUE(bolt_before) << "a Bolt call waited for another connection's hold";
}

}  // namespace
}  // namespace cairn::testing
