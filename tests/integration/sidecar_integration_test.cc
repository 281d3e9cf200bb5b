// The sidecar as users run it: the real `cairn sidecar` process between real
// clients (curl, nghttp, h2load, gRPC) and real backends
// (cairn_test_backend, the cairn registry's gRPC server).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "loopback_listener.h"
#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Curl(std::vector<std::string> args, int* code = nullptr) {
  args.insert(args.begin(), {"/usr/bin/curl", "-sS", "--max-time", "20"});
  auto [rc, out] = RunCommand(args, seconds(30));
  if (code != nullptr) *code = rc;
  return out;
}

std::string StaticConfig(const std::vector<std::string>& endpoints,
                         const std::string& extra_route = "",
                         const std::string& cluster_extra = "") {
  std::string eps;
  for (const auto& e : endpoints) eps += "\"" + e + "\",";
  eps.pop_back();
  return R"(
workers: 2
admin: 127.0.0.1:0
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - match: { path: /ping }
        direct_response: { status: 200, body: "pong\n" }
      - match: { prefix: /, host: only.example }
        direct_response: { status: 418, body: "host route\n" }
)" + extra_route +
         R"(
      - match: { prefix: / }
        cluster: app
        timeout_ms: 3000
        retry: { attempts: 2, on_5xx: false }
  - name: raw
    address: 127.0.0.1:0
    protocol: tcp
    tcp_cluster: app
clusters:
  - name: app
    endpoints: [)" +
         eps + R"(]
)" + cluster_extra;
}

class SidecarTest : public ::testing::Test {
 protected:
  void StartBackends(int n) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(
          std::make_unique<BackendProcess>(std::string(1, static_cast<char>('a' + i))));
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
  std::string Url(const std::string& path) { return "http://" + sidecar_->listener("http") + path; }

  std::vector<std::unique_ptr<BackendProcess>> backends_;
  std::unique_ptr<SidecarProcess> sidecar_;
};

TEST_F(SidecarTest, CurlHttp1ThroughTheSidecar) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses()));
  EXPECT_EQ(Curl({Url("/")}), "a\n");
  std::string echoed = Curl(
      {"-i", "-X", "POST", "--data-binary", "hello body", "-H", "X-Test-Trace: 42", Url("/echo")});
  EXPECT_NE(echoed.find("HTTP/1.1 200"), std::string::npos) << echoed;
  EXPECT_NE(echoed.find("x-test-trace: 42"), std::string::npos) << echoed;
  EXPECT_NE(echoed.find("hello body"), std::string::npos) << echoed;
  // A 1 MB response and a chunked upload pass through intact.
  std::string big = Curl({"-o", "/dev/null", "-w", "%{size_download}", Url("/big?bytes=1048576")});
  EXPECT_EQ(big, "1048576");
  std::string upload = Curl({"-X", "POST", "--data-binary", std::string(100000, 'z'), "-w",
                             " %{http_code}", Url("/echo")});
  EXPECT_EQ(upload, std::string(100000, 'z') + " 200");
  // A chunked upload stays chunked upstream (this backend refuses chunked
  // bodies with 501: seeing its answer proves the framing went through).
  std::string chunked = Curl({"-X", "POST", "-H", "Transfer-Encoding: chunked", "--data-binary",
                              "abc", "-w", " %{http_code}", Url("/echo")});
  EXPECT_EQ(chunked, "{\"error\":\"transfer-encoding not supported\"} 501");
  EXPECT_EQ(Curl({Url("/ping")}), "pong\n");
  EXPECT_EQ(Curl({"-H", "Host: only.example", Url("/anything")}), "host route\n");
  EXPECT_EQ(Curl({Url("/status?code=503"), "-w", " %{http_code}"}), "a 503\n 503");
}

TEST_F(SidecarTest, Http2ClientsNghttpAndH2load) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses()));
  auto [code, out] = RunCommand({"/usr/bin/nghttp", Url("/")}, seconds(20));
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "a\n");
  auto [h2code, h2out] =
      RunCommand({"/usr/bin/h2load", "-n", "2000", "-c", "4", "-m", "20", Url("/")}, seconds(60));
  EXPECT_EQ(h2code, 0) << h2out;
  EXPECT_NE(h2out.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos) << h2out;
  // HTTP/1 and HTTP/2 share the port (protocol: auto).
  EXPECT_EQ(Curl({"--http2-prior-knowledge", Url("/")}), "a\n");
  EXPECT_EQ(Curl({"--http1.1", Url("/")}), "a\n");
}

TEST_F(SidecarTest, TcpListenerPipesBytes) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses()));
  EXPECT_EQ(Curl({"http://" + sidecar_->listener("raw") + "/"}), "a\n");
}

TEST_F(SidecarTest, RoundRobinSpreadsAcrossBackends) {
  StartBackends(2);
  StartSidecar(StaticConfig(BackendAddresses()));
  std::vector<std::string> args;
  for (int i = 0; i < 20; ++i) args.push_back(Url("/"));
  std::string out = Curl(args);
  EXPECT_EQ(CountOf(out, "a\n") + CountOf(out, "b\n"), 20) << out;
  EXPECT_GE(CountOf(out, "a\n"), 5) << out;
  EXPECT_GE(CountOf(out, "b\n"), 5) << out;
}

TEST_F(SidecarTest, KilledBackendIsRetriedAroundAndEjected) {
  StartBackends(2);
  StartSidecar(
      StaticConfig(BackendAddresses(), "",
                   "    outlier: { consecutive_failures: 2, max_ejection_percent: 50 }\n"));
  ASSERT_EQ(Curl({Url("/")}).size(), 2u);
  backends_[1]->Stop(SIGKILL);
  std::vector<std::string> args = {"-w", "%{http_code}\n"};
  for (int i = 0; i < 30; ++i) args.push_back(Url("/"));
  std::string out = Curl(args);
  EXPECT_EQ(CountOf(out, "a\n200\n"), 30) << out;
  std::string clusters = Curl({"http://" + sidecar_->admin() + "/clusters"});
  EXPECT_NE(clusters.find("\"ejected\":true"), std::string::npos) << clusters;
  std::string metrics = Curl({"http://" + sidecar_->admin() + "/metrics"});
  EXPECT_NE(metrics.find("cairn_sidecar_upstream_ejections_total{cluster=\"app\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(SidecarTest, StalledUpstreamHitsTheRouteTimeout) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses(),
                            "      - match: { prefix: /slow }\n        cluster: app\n"
                            "        timeout_ms: 300\n"));
  auto start = std::chrono::steady_clock::now();
  std::string out = Curl({"-w", " %{http_code}", Url("/slow?ms=3000")});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_NE(out.find("504"), std::string::npos) << out;
  EXPECT_LT(elapsed, seconds(2));
}

// Sends raw bytes and returns what the sidecar answered before closing.
std::string RawExchange(const std::string& address, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST_F(SidecarTest, MalformedRequestsGetClearErrorsAndTheSidecarKeepsServing) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses()));
  std::string listener = sidecar_->listener("http");
  EXPECT_EQ(RawExchange(listener, "GARBAGE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  std::string huge =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 * 1024, 'h') + "\r\n\r\n";
  EXPECT_EQ(RawExchange(listener, huge).rfind("HTTP/1.1 431", 0), 0u);
  std::string smuggle =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\n";
  EXPECT_EQ(RawExchange(listener, smuggle).rfind("HTTP/1.1 400", 0), 0u);
  // An HTTP/2 preface followed by garbage: the connection ends with GOAWAY.
  std::string h2 = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string(64, '\xff');
  std::string answer = RawExchange(listener, h2);
  EXPECT_FALSE(answer.empty());
  // The upgrade request is answered as plain HTTP/1.1.
  EXPECT_EQ(Curl({"-H", "Connection: Upgrade", "-H", "Upgrade: websocket", Url("/")}), "a\n");
  EXPECT_EQ(Curl({Url("/")}), "a\n");
}

// A one-shot "backend" on a raw socket: answers every connection with
// `reply` (after reading the request) and closes.
class RawBackend {
 public:
  explicit RawBackend(std::string reply) : reply_(std::move(reply)) {
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(listener_.fd(), nullptr, nullptr);
        if (c < 0) break;
        char buf[4096];
        (void)!recv(c, buf, sizeof(buf), 0);
        (void)!send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        close(c);  // the FIN follows the reply at once
      }
    });
  }
  ~RawBackend() {
    shutdown(listener_.fd(), SHUT_RDWR);  // wakes accept
    thread_.join();
  }
  std::string address() const { return listener_.address(); }

 private:
  std::string reply_;
  LoopbackListener listener_;
  std::thread thread_;
};

TEST_F(SidecarTest, MalformedUpstreamResponseIs502) {
  RawBackend bad("NOT HTTP AT ALL\r\n\r\n");
  StartSidecar(StaticConfig({bad.address()}));
  std::string out = Curl({"-w", " %{http_code}", Url("/")});
  EXPECT_NE(out.find("502"), std::string::npos) << out;
}

TEST_F(SidecarTest, CloseDelimitedUpstreamBodyEndsAtTheUpstreamsClose) {
  // No Content-Length, no chunking: the body ends when the upstream closes,
  // and that FIN arrives together with the last bytes.
  RawBackend closer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close");
  StartSidecar(StaticConfig({closer.address()}));
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Curl({"-w", " %{http_code}", Url("/")}), "body until close 200");
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2)) << "waited for a timeout";
}

TEST_F(SidecarTest, ClientThatHalfClosesStillGetsItsResponse) {
  StartBackends(1);
  StartSidecar(StaticConfig(BackendAddresses()));
  std::string listener = sidecar_->listener("http");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(listener.substr(listener.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  shutdown(fd, SHUT_WR);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 2), "a\n") << answer;
  EXPECT_EQ(n, 0) << "the sidecar closes after the response";
}

TEST_F(SidecarTest, AdminEndpointsAndAccessLog) {
  StartBackends(1);
  TempDir logs;
  StartSidecar("access_log: " + logs.File("access.log") + "\n" + StaticConfig(BackendAddresses()));
  ASSERT_EQ(Curl({Url("/")}), "a\n");
  std::string admin = "http://" + sidecar_->admin();
  EXPECT_EQ(Curl({admin + "/health"}), "{\"status\":\"LIVE\"}\n");
  std::string config = Curl({admin + "/config"});
  EXPECT_NE(config.find("tcp_cluster: app"), std::string::npos) << config;
  std::string clusters = Curl({admin + "/clusters"});
  EXPECT_NE(clusters.find(backends_[0]->address()), std::string::npos) << clusters;
  std::string metrics = Curl({admin + "/metrics"});
  EXPECT_NE(metrics.find("cairn_sidecar_upstream_requests_total{cluster=\"app\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("cairn_sidecar_upstream_latency_seconds_count{cluster=\"app\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("cairn_sidecar_upstream_connections{cluster=\"app\"} 1"),
            std::string::npos)
      << metrics;
  std::ifstream in(logs.File("access.log"));
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find("http GET "), std::string::npos) << line;
  EXPECT_NE(line.find(" 200 "), std::string::npos) << line;
  EXPECT_NE(line.find(backends_[0]->address()), std::string::npos) << line;
}

}  // namespace
}  // namespace cairn::testing
