// A blocking Dubbo 2 client over a plain loopback socket, for the sidecar's
// integration tests: builds request frames by hand (16-byte header and a
// hessian2 body, as a Dubbo consumer writes them) and decodes the frames
// that come back (DubboDecoder) into owned copies.
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
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "sidecar/codec/dubbo/dubbo_frame.h"

namespace cairn::testing {

namespace dubbo = sidecar::dubbo;

inline constexpr char kDemoService[] = "com.example.DemoService";

// One call, as a Dubbo consumer sends it: DemoService.METHOD(String ARG).
struct DubboCall {
  uint64_t id = 1;
  std::string service = kDemoService;
  std::string version = "1.0.0";
  std::string method = "sayHello";
  std::string arg = "world";
  bool two_way = true;
};

// The hessian2 body of `call`: dubbo version, service path, service
// version, method, parameter types, the argument, the attachments map.
inline std::string EncodeCallBody(const DubboCall& call) {
  std::string body;
  dubbo::AppendHessian2AsciiString("2.0.2", body);
  dubbo::AppendHessian2AsciiString(call.service, body);
  dubbo::AppendHessian2AsciiString(call.version, body);
  dubbo::AppendHessian2AsciiString(call.method, body);
  dubbo::AppendHessian2AsciiString("Ljava/lang/String;", body);
  dubbo::AppendHessian2AsciiString(call.arg, body);
  body.push_back('H');  // untyped map
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"path", call.service},
                                   {"interface", call.service},
                                   {"version", call.version},
                                   {"timeout", "3000"}}) {
    dubbo::AppendHessian2AsciiString(key, body);
    dubbo::AppendHessian2AsciiString(value, body);
  }
  body.push_back('Z');
  return body;
}

inline std::string EncodeCall(const DubboCall& call) {
  const uint8_t flag =
      dubbo::kFlagRequest | (call.two_way ? dubbo::kFlagTwoWay : 0) | dubbo::kSerializationHessian2;
  std::string out;
  dubbo::EncodeFrame(flag, 0, call.id, EncodeCallBody(call), out);
  return out;
}

// What cairn_test_dubbo_backend answers to `call` (see test_dubbo_backend.cc)
// when it arrives unchanged at backend `backend`.
inline std::string ExpectedAnswer(const DubboCall& call, const std::string& backend) {
  const std::string body = EncodeCallBody(call);
  uint64_t hash = 14695981039346656037ull;
  for (char c : body) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016" PRIx64, hash);
  return backend + ":" + call.method + ":" + std::to_string(body.size()) + ":" + hex;
}

// A decoded frame, owned.
struct DubboReply {
  uint8_t flag = 0;
  uint8_t status = 0;
  uint64_t request_id = 0;
  std::string body;

  bool is_response() const { return (flag & dubbo::kFlagRequest) == 0; }
  bool is_event() const { return (flag & dubbo::kFlagEvent) != 0; }
  uint8_t serialization() const { return flag & dubbo::kSerializationMask; }
  bool ok() const { return status == static_cast<uint8_t>(dubbo::DubboStatus::kOk); }
  // The value of an OK response (hessian2 RESPONSE_VALUE 0x91, then a
  // string), or the message of an error response (a hessian2 string);
  // nullopt when the body is neither.
  std::optional<std::string> Text() const {
    size_t pos = 0;
    if (ok()) {
      if (body.empty() || static_cast<uint8_t>(body[0]) != 0x91) return std::nullopt;
      pos = 1;
    }
    std::string_view text;
    if (!dubbo::ReadHessian2String(body, pos, text) || pos != body.size()) return std::nullopt;
    return std::string(text);
  }
};

class DubboClient {
 public:
  DubboClient() = default;
  ~DubboClient() { Close(); }
  DubboClient(const DubboClient&) = delete;
  DubboClient& operator=(const DubboClient&) = delete;

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
    decoder_ = dubbo::DubboDecoder();
    rest_.clear();
    eof_ = false;
    malformed_ = false;
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
  bool Call(const DubboCall& call) { return Write(EncodeCall(call)); }

  // The next frame; nullopt on timeout, when the peer closed, or on bytes
  // that do not decode (malformed() then says so).
  std::optional<DubboReply> Read(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::string_view input = rest_;
      absl::StatusOr<const dubbo::DubboFrameView*> next = decoder_.Next(input);
      if (!next.ok()) {
        malformed_ = true;
        return std::nullopt;
      }
      if (*next != nullptr) {
        DubboReply reply;
        reply.flag = (*next)->flag;
        reply.status = (*next)->status;
        reply.request_id = (*next)->request_id;
        reply.body = std::string((*next)->body);
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

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool eof() const { return eof_; }
  bool malformed() const { return malformed_; }

 private:
  int fd_ = -1;
  dubbo::DubboDecoder decoder_;
  std::string rest_;  // read, not yet given to the decoder
  bool eof_ = false;
  bool malformed_ = false;
};

}  // namespace cairn::testing
