// What one gRPC connection may hold on a real `cairn registry` (issue 16):
// a connection that never finishes its handshake, one that opens no call,
// and the concurrent calls one connection may run. Raw sockets stand for the
// hostile clients; a real RegistryClient shows that well-behaved ones are
// served meanwhile and are not cut by the idle limit.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "registry_test_util.h"

namespace cairn::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
const std::string kEmptySettings("\0\0\0\x04\0\0\0\0\0", 9);

int Connect(const std::string& host_port) {
  size_t colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads `fd` until the peer closes it or `timeout` passes; returns the bytes
// and whether it was closed.
std::pair<std::string, bool> ReadUntilClosed(int fd, milliseconds timeout) {
  std::string got;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return {got, true};
    got.append(buffer, static_cast<size_t>(n));
  }
  return {got, false};
}

// How many of `fds` are closed by the peer within `timeout`.
int CountClosed(const std::vector<int>& fds, milliseconds timeout) {
  std::vector<bool> closed(fds.size(), false);
  int count = 0;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline && count < static_cast<int>(fds.size())) {
    for (size_t i = 0; i < fds.size(); ++i) {
      if (closed[i]) continue;
      pollfd p{fds[i], POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) continue;
      char buffer[4096];
      if (recv(fds[i], buffer, sizeof(buffer), MSG_DONTWAIT) <= 0) {
        closed[i] = true;
        ++count;
      }
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return count;
}

struct Frame {
  uint8_t type = 0;
  std::string payload;
};

std::vector<Frame> ParseFrames(std::string_view bytes) {
  std::vector<Frame> frames;
  while (bytes.size() >= 9) {
    auto u = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
    size_t len = (size_t{u(0)} << 16) | (size_t{u(1)} << 8) | u(2);
    if (bytes.size() < 9 + len) break;
    frames.push_back({u(3), std::string(bytes.substr(9, len))});
    bytes.remove_prefix(9 + len);
  }
  return frames;
}

// SETTINGS_MAX_CONCURRENT_STREAMS from the server's first SETTINGS frame
// after an HTTP/2 preface; nullopt if the server did not set it.
std::optional<uint32_t> AdvertisedStreamLimit(const std::string& address) {
  int fd = Connect(address);
  EXPECT_GE(fd, 0);
  if (fd < 0) return std::nullopt;
  EXPECT_TRUE(SendAll(fd, std::string(kPreface) + kEmptySettings));
  std::string got;
  auto deadline = Clock::now() + seconds(5);
  std::optional<uint32_t> limit;
  bool seen_settings = false;
  while (!seen_settings && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buffer[4096];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
    for (const Frame& f : ParseFrames(got)) {
      if (f.type != 4 || f.payload.empty()) continue;  // SETTINGS, not an ACK
      seen_settings = true;
      for (size_t i = 0; i + 6 <= f.payload.size(); i += 6) {
        auto u = [&](size_t k) { return static_cast<uint8_t>(f.payload[i + k]); };
        uint16_t id = static_cast<uint16_t>((u(0) << 8) | u(1));
        uint32_t value =
            (uint32_t{u(2)} << 24) | (uint32_t{u(3)} << 16) | (uint32_t{u(4)} << 8) | u(5);
        if (id == 3) limit = value;
      }
      break;
    }
  }
  close(fd);
  EXPECT_TRUE(seen_settings) << "no SETTINGS from " << address;
  return limit;
}

class RegistryLimitsTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags) {
    server_ = std::make_unique<RegistryProcess>(std::move(flags));
    ASSERT_TRUE(server_->Start()) << server_->Log();
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    if (server_ && server_->process() && server_->process()->Running()) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
    }
  }
  // A publisher and a subscriber on two clients; the subscriber sees the
  // publisher's address.
  void PublishAndSee(const std::string& data_id) {
    publisher_ = MakeClient({server_->grpc_address()}, "pub-" + data_id);
    subscriber_ = MakeClient({server_->grpc_address()}, "sub-" + data_id);
    ASSERT_TRUE(publisher_ && subscriber_);
    auto handle = publisher_->Publish({Key(data_id), {"10.0.0.1:80"}, "", "", {}});
    ASSERT_TRUE(handle.ok()) << handle.status();
    publication_ = *handle;
    auto sub = subscriber_->Subscribe({Key(data_id)}, pushes_.Callback());
    ASSERT_TRUE(sub.ok()) << sub.status();
    subscription_ = *sub;
    ASSERT_TRUE(pushes_.WaitForData({"10.0.0.1:80"}, seconds(10)).has_value());
  }

  std::unique_ptr<RegistryProcess> server_;
  std::vector<int> fds_;
  PushCollector pushes_;
  std::unique_ptr<RegistryClient> publisher_, subscriber_;
  // Held: dropping a handle unregisters it.
  std::shared_ptr<Publisher> publication_;
  std::shared_ptr<Subscription> subscription_;
};

TEST_F(RegistryLimitsTest, SilentConnectionsAreClosedByTheHandshakeTimeout) {
  Start({"--handshake-timeout-ms", "1000"});
  for (int i = 0; i < 200; ++i) {
    int fd = Connect(server_->grpc_address());
    ASSERT_GE(fd, 0);
    fds_.push_back(fd);
  }
  // Not before the timeout...
  EXPECT_EQ(CountClosed(fds_, milliseconds(300)), 0);
  // ...and a client that does speak is served meanwhile.
  PublishAndSee("svc.handshake");
  // gRPC's own default would hold them for 120 s.
  EXPECT_EQ(CountClosed(fds_, seconds(5)), static_cast<int>(fds_.size()));
}

TEST_F(RegistryLimitsTest, ConnectionWithoutACallIsClosedWhenIdle) {
  Start({"--max-connection-idle-ms", "500"});
  PublishAndSee("svc.idle");
  int fd = Connect(server_->grpc_address());
  ASSERT_GE(fd, 0);
  fds_.push_back(fd);
  ASSERT_TRUE(SendAll(fd, std::string(kPreface) + kEmptySettings));
  auto [bytes, closed] = ReadUntilClosed(fd, seconds(5));
  EXPECT_TRUE(closed) << "a connection without a call was still open after 5 s";
  bool goaway = false;
  for (const Frame& f : ParseFrames(bytes)) goaway |= f.type == 7;
  EXPECT_TRUE(goaway) << "closed without a GOAWAY";
  // The clients hold their Session streams: not idle, not cut (no
  // reconnect), well past the idle limit.
  std::this_thread::sleep_for(milliseconds(1500));  // three idle limits more
  auto second = publisher_->Publish({Key("svc.idle"), {"10.0.0.2:80"}, "", "", {}});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(pushes_.WaitForData({"10.0.0.1:80", "10.0.0.2:80"}, seconds(10)).has_value());
  EXPECT_EQ(publisher_->stats().reconnects, 0u);
  EXPECT_EQ(subscriber_->stats().reconnects, 0u);
}

TEST_F(RegistryLimitsTest, StreamLimitPerConnectionIsAdvertised) {
  Start({"--max-streams-per-connection", "7"});
  EXPECT_EQ(AdvertisedStreamLimit(server_->grpc_address()), std::optional<uint32_t>(7));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->Log();
  Start({});
  EXPECT_EQ(AdvertisedStreamLimit(server_->grpc_address()), std::optional<uint32_t>(100));
}

}  // namespace
}  // namespace cairn::testing
