// cairn_test_dubbo_backend: a small Dubbo 2 provider for the sidecar's
// integration tests. One thread, asio; it frames with the project's codec
// (dubbo_frame.h) but shares nothing else with the sidecar.
//
//   cairn_test_dubbo_backend --name NAME [--port P] [--ready-file F]
//
// Every two-way request is answered with status OK (20), the request's
// serialization, and a hessian2 body as a Dubbo provider writes a value:
// the int 1 (RESPONSE_VALUE, 0x91), then the string
//   "NAME:METHOD:BODY_LENGTH:FNV"
// where BODY_LENGTH and FNV (FNV-1a 64 of the body, 16 hex digits) are of
// the request body as it arrived, so a test can tell who answered and that
// the payload came through unchanged. The method name steers it:
//   slow...     answer after 2 s (a timer: other calls go on meanwhile, and
//               responses then leave in any order)
//   sleepN...   answer after N ms (bounded to 60 s), e.g. "sleep10"
//   close...    close the connection instead of answering
//   readonly... answer, then send Dubbo's READONLY event on the connection
//               (a provider going down); a later call on that connection
//               logs "after-readonly"
// Two-way events (heartbeats) are acknowledged (event response, status OK,
// body 'N'). Stdout gets one line per frame:
//   request id=ID service=SERVICE method=METHOD
//   oneway id=ID service=SERVICE method=METHOD
//   heartbeat id=ID
// Writes "port=P" to the ready file once listening; stops on SIGTERM/SIGINT.
#include <asio.hpp>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <string>

#include "backend_main.h"
#include "sidecar/codec/dubbo/dubbo_frame.h"

namespace {

using namespace cairn::sidecar::dubbo;

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t hash = 14695981039346656037ull;
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

// Milliseconds to wait before answering `method`.
int DelayOf(std::string_view method) {
  if (method.starts_with("slow")) return 2000;
  if (method.starts_with("sleep")) {
    return std::min(std::atoi(std::string(method.substr(5)).c_str()), 60000);
  }
  return 0;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, std::string name)
      : socket_(std::move(socket)), name_(std::move(name)) {
    static int sessions = 0;
    number_ = ++sessions;
  }

  void Start() { Read(); }

 private:
  void Read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buffer_), [this, self](std::error_code ec, size_t n) {
      if (ec) return Close();
      std::string_view input(buffer_.data(), n);
      for (;;) {
        absl::StatusOr<const DubboFrameView*> next = decoder_.Next(input);
        if (!next.ok()) {
          std::printf("malformed: %s\n", std::string(next.status().message()).c_str());
          return Close();
        }
        if (*next == nullptr) break;
        if (!Handle(**next)) return Close();
      }
      Read();
    });
  }

  // False: close the connection.
  bool Handle(const DubboFrameView& frame) {
    if (frame.is_response()) return true;
    if (frame.is_event()) {
      std::printf("heartbeat id=%" PRIu64 "\n", frame.request_id);
      if (!frame.is_two_way()) return true;
      std::string ack;
      EncodeHeartbeatAck(frame.request_id, frame.serialization(), ack);
      Send(std::move(ack));
      return true;
    }
    const std::string service(frame.head.service_path);
    const std::string method(frame.head.method);
    std::printf("%s id=%" PRIu64 " conn=%d service=%s method=%s\n",
                frame.is_two_way() ? "request" : "oneway", frame.request_id, number_,
                service.c_str(), method.c_str());
    if (readonly_sent_) std::printf("after-readonly id=%" PRIu64 "\n", frame.request_id);
    if (!frame.is_two_way()) return true;
    if (method.starts_with("close")) return false;
    char hash[17];
    std::snprintf(hash, sizeof(hash), "%016" PRIx64, Fnv1a(frame.body));
    std::string body(1, '\x91');  // hessian2 int 1: RESPONSE_VALUE
    AppendHessian2AsciiString(
        name_ + ":" + method + ":" + std::to_string(frame.body.size()) + ":" + hash, body);
    std::string response;
    EncodeFrame(frame.serialization(), static_cast<uint8_t>(DubboStatus::kOk), frame.request_id,
                body, response);
    const int delay = DelayOf(method);
    if (delay <= 0) {
      Send(std::move(response));
      if (method.starts_with("readonly") && !readonly_sent_) {
        readonly_sent_ = true;
        std::string notice;  // request | event, oneway, body: the string "R"
        EncodeFrame(static_cast<uint8_t>(kFlagRequest | kFlagEvent | frame.serialization()), 0, 0,
                    std::string_view("\x01R", 2), notice);
        Send(std::move(notice));
        std::printf("readonly-sent conn=%d\n", number_);
      }
      return true;
    }
    auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(),
                                                      std::chrono::milliseconds(delay));
    auto self = shared_from_this();
    timer->async_wait([this, self, timer, response = std::move(response)](std::error_code ec) {
      if (!ec) Send(response);
    });
    return true;
  }

  void Send(std::string bytes) {
    if (!socket_.is_open()) return;
    queue_.push_back(std::move(bytes));
    if (queue_.size() == 1) WriteNext();
  }

  void WriteNext() {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      [this, self](std::error_code ec, size_t) {
                        if (ec) return Close();
                        queue_.pop_front();
                        if (!queue_.empty()) WriteNext();
                      });
  }

  void Close() {
    std::error_code ignored;
    socket_.close(ignored);
    queue_.clear();
  }

  asio::ip::tcp::socket socket_;
  std::string name_;
  int number_ = 0;  // the connection's number, in accept order (for the logs)
  bool readonly_sent_ = false;
  std::array<char, 64 * 1024> buffer_{};
  DubboDecoder decoder_;
  std::deque<std::string> queue_;
};

}  // namespace

int main(int argc, char** argv) {
  return cairn::testing::RunBackend<Session>(argc, argv, "dubbo-backend");
}
