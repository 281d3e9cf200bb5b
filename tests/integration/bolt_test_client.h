// A blocking Bolt client over a plain loopback socket, for the sidecar's
// integration tests: encodes calls with the project's codec and decodes the
// frames that come back into owned copies.
//
// Thread-safety: none (one per test thread).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace cairn::testing {

using sidecar::bolt::BoltCmdCode;
using sidecar::bolt::BoltFraming;
using sidecar::bolt::BoltProtocol;
using sidecar::bolt::BoltStatus;
using sidecar::bolt::BoltType;

inline constexpr char kEchoService[] = "com.example.Echo:1.0";

// One call, as a SOFARPC consumer would send it (the body is opaque bytes).
struct BoltCall {
  uint32_t id = 1;
  std::string service = kEchoService;  // empty: no service header
  std::string content = "hello";
  std::vector<std::pair<std::string, std::string>> headers;  // after `service`
  int32_t timeout_ms = 3000;
  bool oneway = false;
  BoltFraming framing = BoltFraming::V1();
};

inline std::string EncodeCall(const BoltCall& call) {
  std::vector<sidecar::bolt::BoltHeader> headers;
  if (!call.service.empty()) headers.push_back({sidecar::bolt::kHeaderService, call.service});
  for (const auto& [k, v] : call.headers) headers.push_back({k, v});
  sidecar::bolt::BoltRequestParams params;
  params.framing = call.framing;
  params.request_id = call.id;
  params.oneway = call.oneway;
  params.timeout_ms = call.timeout_ms;
  params.class_name = "com.alipay.sofa.rpc.core.request.SofaRequest";
  params.headers = headers;
  params.content = call.content;
  std::string out;
  (void)sidecar::bolt::EncodeRequest(params, out);
  return out;
}

// A decoded frame, owned.
struct BoltReply {
  BoltProtocol protocol = BoltProtocol::kV1;
  uint8_t ver1 = 0;
  uint8_t switches = 0;
  uint8_t codec = 0;
  BoltType type = BoltType::kResponse;
  BoltCmdCode cmdcode = BoltCmdCode::kResponse;
  uint32_t request_id = 0;
  BoltStatus status = BoltStatus::kSuccess;
  bool has_crc = false;
  std::string class_name;
  std::string content;
  std::map<std::string, std::string> headers;

  std::string Header(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? "" : it->second;
  }
};

class BoltClient {
 public:
  BoltClient() = default;
  ~BoltClient() { Close(); }
  BoltClient(const BoltClient&) = delete;
  BoltClient& operator=(const BoltClient&) = delete;

  // `address`: "127.0.0.1:PORT".
  bool Connect(const std::string& address) {
    Close();
    const size_t colon = address.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) return false;
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Close();
      return false;
    }
    decoder_ = sidecar::bolt::BoltDecoder();
    rest_.clear();
    eof_ = false;
    return true;
  }

  bool Write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool Call(const BoltCall& call) { return Write(EncodeCall(call)); }

  // The next frame; nullopt on timeout, when the peer closed, or on bytes
  // that do not decode (malformed() then says so).
  std::optional<BoltReply> Read(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::string_view input = rest_;
      absl::StatusOr<const sidecar::bolt::BoltFrameView*> next = decoder_.Next(input);
      if (!next.ok()) {
        malformed_ = true;
        return std::nullopt;
      }
      if (*next != nullptr) {
        BoltReply reply = Own(**next);
        rest_ = std::string(input);
        return reply;
      }
      rest_.clear();  // all of it is in the decoder now
      if (eof_ || fd_ < 0) return std::nullopt;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buffer[64 * 1024];
      ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      rest_.append(buffer, static_cast<size_t>(n));
    }
  }

  // Waits for the peer to close; false if a frame or the timeout comes first.
  bool WaitClosed(std::chrono::milliseconds timeout) {
    if (Read(timeout).has_value()) return false;
    return eof_;
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool eof() const { return eof_; }
  bool malformed() const { return malformed_; }

 private:
  static BoltReply Own(const sidecar::bolt::BoltFrameView& f) {
    BoltReply r;
    r.protocol = f.protocol;
    r.ver1 = f.ver1;
    r.switches = f.switches;
    r.codec = f.codec;
    r.type = f.type;
    r.cmdcode = f.cmdcode;
    r.request_id = f.request_id;
    r.status = f.status;
    r.has_crc = f.has_crc;
    r.class_name = std::string(f.class_name);
    r.content = std::string(f.content());
    for (const auto& h : f.headers) r.headers[std::string(h.key)] = std::string(h.value);
    return r;
  }

  int fd_ = -1;
  sidecar::bolt::BoltDecoder decoder_;
  std::string rest_;  // read, not yet given to the decoder
  bool eof_ = false;
  bool malformed_ = false;
};

}  // namespace cairn::testing
