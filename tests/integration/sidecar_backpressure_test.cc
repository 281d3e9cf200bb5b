// Backpressure: a slow reader on one side must not make the sidecar buffer a
// whole body from the other side. Real sidecar process, real sockets.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "loopback_listener.h"
#include "process.h"

namespace cairn::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

int64_t VmRssBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 10, '\n');
  }
  return -1;
}

int ConnectTo(const std::string& address) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Config(const std::string& endpoint) {
  return R"(
workers: 1
admin: 127.0.0.1:0
max_request_body_bytes: 134217728
listeners:
  - name: http
    address: 127.0.0.1:0
    protocol: http1
    routes:
      - match: { prefix: / }
        cluster: app
        timeout_ms: 60000
clusters:
  - name: app
    endpoints: [")" +
         endpoint + R"("]
)";
}

// An upstream that accepts connections and never reads: the request body
// piles up in front of it.
using DeafBackend = LoopbackListener;

// The client reads nothing while a 16 MiB response streams from the backend:
// the sidecar stops reading the upstream instead of holding the body, and
// every byte still arrives once the client reads.
TEST(SidecarBackpressureTest, SlowClientDoesNotMakeTheSidecarHoldTheResponse) {
  BackendProcess backend("big");
  ASSERT_TRUE(backend.Start());
  SidecarProcess sidecar(Config(backend.address()));
  ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
  const pid_t pid = sidecar.process()->pid();
  const int64_t rss_before = VmRssBytes(pid);

  int fd = ConnectTo(sidecar.listener("http"));
  ASSERT_GE(fd, 0);
  // Small receive buffer: the kernel must not absorb the body for us.
  int rcvbuf = 64 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  const size_t kBody = 16u << 20;
  std::string request = "GET /big?bytes=" + std::to_string(kBody) +
                        " HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(milliseconds(1500));  // the backend has sent it all by now
  const int64_t rss_stalled = VmRssBytes(pid);

  size_t received = 0;
  char buf[64 * 1024];
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string head;
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
    if (head.size() < 4096) head.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 4096)));
    received += static_cast<size_t>(n);
  }
  close(fd);
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head.substr(0, 200);
  // Everything arrived: the head plus 16 MiB.
  EXPECT_GT(received, kBody);
  EXPECT_LT(received, kBody + 1024);
  // Without backpressure the sidecar would hold most of the 16 MiB.
  EXPECT_LT(rss_stalled - rss_before, int64_t{6} << 20)
      << "RSS before " << rss_before << ", while the client stalled " << rss_stalled
      << sidecar.Log();
}

// The upstream reads nothing while the client uploads: the sidecar stops
// reading the client after about a megabyte instead of buffering the upload.
TEST(SidecarBackpressureTest, StalledUpstreamStopsTheClientUpload) {
  DeafBackend backend;
  SidecarProcess sidecar(Config(backend.address()));
  ASSERT_TRUE(sidecar.Start()) << sidecar.Log();
  const pid_t pid = sidecar.process()->pid();
  const int64_t rss_before = VmRssBytes(pid);

  int fd = ConnectTo(sidecar.listener("http"));
  ASSERT_GE(fd, 0);
  const size_t kBody = 96u << 20;
  std::string head =
      "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: " + std::to_string(kBody) + "\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string chunk(256 * 1024, 'u');
  size_t sent = 0;
  // Push until the writes stall for a second (or the whole body went).
  auto last_progress = std::chrono::steady_clock::now();
  auto deadline = last_progress + seconds(30);
  while (sent < kBody && std::chrono::steady_clock::now() < deadline &&
         std::chrono::steady_clock::now() - last_progress < seconds(1)) {
    ssize_t n = send(fd, chunk.data(), std::min(chunk.size(), kBody - sent), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      last_progress = std::chrono::steady_clock::now();
    } else {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 100);
    }
  }
  const int64_t rss_stalled = VmRssBytes(pid);
  close(fd);
  // Kernel socket buffers take some (a few MB each way on loopback); the
  // sidecar itself keeps about a megabyte. Without backpressure it would
  // have read all 96 MiB.
  EXPECT_LT(sent, kBody / 2) << "the client was never slowed down";
  EXPECT_LT(rss_stalled - rss_before, int64_t{12} << 20)
      << "RSS before " << rss_before << ", with the upload stalled " << rss_stalled;
  // And it keeps serving.
  EXPECT_TRUE(sidecar.process()->Running());
}

}  // namespace
}  // namespace cairn::testing
