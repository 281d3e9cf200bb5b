// cairn_test_bolt_backend: a small Bolt (SOFARPC) provider for the sidecar's
// integration tests. One thread, asio; it frames with the project's codec
// but shares nothing else with the sidecar.
//
//   cairn_test_bolt_backend --name NAME [--port P] [--ready-file F]
//
// Every request (v1 or v2, any codec) is answered in kind: status SUCCESS,
// the request's class name and content echoed, and two response headers:
// `backend` (NAME) and `upstream-id` (the requestId it arrived with).
// Request headers steer it:
//   x-delay-ms: N   answer after N ms (bounded to 60 s; responses then leave
//                   in any order)
//   x-close: 1      close the connection instead of answering
//   x-status: N     answer with this status (content still echoed)
// Heartbeats are acknowledged. Stdout gets one line per heartbeat
// ("heartbeat") and per oneway request ("oneway CONTENT").
// Writes "port=P" to the ready file once listening; stops on SIGTERM/SIGINT.
#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backend_main.h"
#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace {

using namespace cairn::sidecar::bolt;

std::string Header(const BoltFrameView& frame, std::string_view key) {
  const std::string_view* value = frame.FindHeader(key);
  return value != nullptr ? std::string(*value) : std::string();
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, std::string name)
      : socket_(std::move(socket)), name_(std::move(name)) {}

  void Start() { Read(); }

 private:
  void Read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buffer_), [this, self](std::error_code ec, size_t n) {
      if (ec) return Close();
      std::string_view input(buffer_.data(), n);
      for (;;) {
        absl::StatusOr<const BoltFrameView*> next = decoder_.Next(input);
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
  bool Handle(const BoltFrameView& frame) {
    if (frame.is_response()) return true;
    if (frame.is_heartbeat()) {
      std::printf("heartbeat\n");
      std::string ack;
      EncodeHeartbeatAck(frame.request_id, ack, FramingOf(frame));
      Send(std::move(ack));
      return true;
    }
    if (frame.is_oneway()) {
      std::printf("oneway %s\n", std::string(frame.content()).c_str());
      return true;
    }
    if (Header(frame, "x-close") == "1") return false;
    const std::string id = std::to_string(frame.request_id);
    const std::vector<BoltHeader> headers = {{"backend", name_}, {"upstream-id", id}};
    BoltResponseParams params;
    params.framing = FramingOf(frame);
    params.request_id = frame.request_id;
    const std::string status = Header(frame, "x-status");
    if (!status.empty()) params.status = static_cast<BoltStatus>(std::atoi(status.c_str()));
    params.class_name = frame.class_name;
    params.headers = headers;
    params.content = frame.content();
    std::string response;
    if (!EncodeResponse(params, response).ok()) return false;
    const int delay = std::min(std::atoi(Header(frame, "x-delay-ms").c_str()), 60000);
    if (delay <= 0) {
      Send(std::move(response));
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
  std::array<char, 64 * 1024> buffer_{};
  BoltDecoder decoder_;
  std::deque<std::string> queue_;
};

}  // namespace

int main(int argc, char** argv) {
  return cairn::testing::RunBackend<Session>(argc, argv, "bolt-backend");
}
