#include "core/http/admin_http_server.h"

#include "core/http/status_text.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <exception>
#include <iterator>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace cairn::http {
namespace {

using asio::ip::tcp;

// After the last response on a closing connection we keep draining input
// this long so that unread request bytes (e.g. the rest of an oversized
// body) do not make the kernel answer with RST, which can destroy the
// response before the client reads it.
constexpr std::chrono::milliseconds kMaxLinger{2000};
// Pipelined requests are answered up to this much buffered output, then the
// rest wait until it is written: a burst of tiny requests for a large page
// (e.g. /metrics) must not turn into unbounded memory.
constexpr size_t kMaxPendingOutput = 256 * 1024;
// Back-off after a failed accept (typically EMFILE) so the loop does not spin.
constexpr std::chrono::milliseconds kAcceptRetry{100};

// Byte-wise JSON string escaping. Bytes >= 0x7f are escaped too: a decoded
// path may be invalid UTF-8 and the body must stay valid JSON regardless.
std::string JsonEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

Response JsonError(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = fmt::format(R"({{"error":"{}"}})", JsonEscape(message));
  return r;
}

bool IsSafeHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == ':') return false;
  }
  for (unsigned char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  // Framing is the server's job; a handler overriding it would desync the
  // connection.
  return !EqualsIgnoreCase(name, "Content-Length") && !EqualsIgnoreCase(name, "Connection") &&
         !EqualsIgnoreCase(name, "Transfer-Encoding");
}

}  // namespace

std::string SerializeResponse(const Response& response, bool close, bool head_only) {
  int status = response.status;
  // 1xx would make the client wait for another response that never comes.
  if (status < 200 || status > 599) {
    spdlog::warn("admin http: handler returned invalid status {}, sending 500", status);
    status = 500;
  }
  // 204/304 never carry a body or Content-Length (RFC 9110 8.6).
  bool bodyless = status == 204 || status == 304;
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, ReasonPhrase(status));
  if (!bodyless) {
    if (!response.content_type.empty() && IsSafeHeader("Content-Type", response.content_type)) {
      fmt::format_to(std::back_inserter(out), "Content-Type: {}\r\n", response.content_type);
    }
    fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n", response.body.size());
  }
  for (const auto& [name, value] : response.headers) {
    if (!IsSafeHeader(name, value)) {
      spdlog::warn("admin http: dropping unsafe response header \"{}\"", JsonEscape(name));
      continue;
    }
    fmt::format_to(std::back_inserter(out), "{}: {}\r\n", name, value);
  }
  if (close) out.append("Connection: close\r\n");
  out.append("\r\n");
  if (!head_only && !bodyless) out.append(response.body);
  return out;
}

// One accepted socket. Lives in the server's connection set; every async
// operation holds a shared_ptr, so the object outlives its completions.
// Runs only on the server thread.
//
// Reads and writes alternate: nothing is read while responses are being
// written. With kMaxPendingOutput that bounds memory for clients that
// pipeline without reading, and it keeps responses in request order for free.
class AdminHttpServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(AdminHttpServer* server, tcp::socket socket, uint64_t id)
      : server_(server),
        socket_(std::move(socket)),
        timer_(server->io_),
        id_(id),
        parser_(ParserLimits{server->options_.max_header_bytes, server->options_.max_body_bytes}) {}

  void Start() {
    ArmTimer(server_->options_.idle_timeout);
    Read();
  }

  // Closes the socket at once and leaves the server's set. Idempotent.
  void Close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    timer_.cancel();
    socket_.close(ec);
    server_->Remove(shared_from_this());
  }

 private:
  // Re-arming invalidates the previous wait; the generation check covers a
  // completion that was already queued when the timer was reset.
  void ArmTimer(std::chrono::milliseconds after) {
    uint64_t gen = ++timer_gen_;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), gen](const asio::error_code& ec) {
      if (ec || gen != self->timer_gen_ || self->closed_) return;
      spdlog::debug("admin http: conn {} timed out", self->id_);
      self->Close();
    });
  }

  void Read() {
    socket_.async_read_some(
        asio::buffer(read_buf_),
        [self = shared_from_this()](const asio::error_code& ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const asio::error_code& ec, size_t n) {
    if (closed_) return;
    if (ec) {
      // EOF mid-request or between requests: nothing left to answer, since
      // every complete request was answered before this read started.
      if (ec != asio::error::eof) spdlog::debug("admin http: conn {} read: {}", id_, ec.message());
      Close();
      return;
    }
    parser_.Feed(std::string_view(read_buf_.data(), n));
    ProcessAndContinue();
  }

  // Answers what is buffered, then writes the answers or reads for more.
  void ProcessAndContinue() {
    Process();
    ArmTimer(server_->options_.idle_timeout);
    if (out_.empty()) {
      Read();
    } else {
      Write();
    }
  }

  // Answers complete buffered requests (pipelining) into out_, stopping at
  // kMaxPendingOutput; the rest stay in the parser for the next round.
  void Process() {
    while (out_.size() < kMaxPendingOutput) {
      ParseResult r = parser_.Next();
      switch (r.kind) {
        case ParseResult::Kind::kNeedMore:
          if (r.send_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
          return;
        case ParseResult::Kind::kError:
          spdlog::debug("admin http: conn {} bad request: {} {}", id_, r.error_status, r.error);
          out_.append(SerializeResponse(JsonError(r.error_status, r.error), /*close=*/true, false));
          closing_ = true;
          return;
        case ParseResult::Kind::kRequest: {
          bool head_only = false;
          Response resp = server_->Dispatch(r.request, &head_only);
          out_.append(SerializeResponse(resp, !r.keep_alive, head_only));
          if (!r.keep_alive) {
            closing_ = true;
            return;
          }
          break;
        }
      }
    }
  }

  void Write() {
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const asio::error_code& ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(const asio::error_code& ec) {
    if (closed_) return;
    if (ec) {
      spdlog::debug("admin http: conn {} write: {}", id_, ec.message());
      Close();
      return;
    }
    out_.clear();
    if (closing_) {
      StartLinger();
      return;
    }
    ProcessAndContinue();
  }

  // Half-close, then discard input until the peer closes or time runs out.
  void StartLinger() {
    asio::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close();
      return;
    }
    ArmTimer(std::min(kMaxLinger, server_->options_.idle_timeout));
    Drain();
  }

  void Drain() {
    socket_.async_read_some(asio::buffer(read_buf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t) {
                              if (self->closed_) return;
                              if (ec) {
                                self->Close();
                              } else {
                                self->Drain();
                              }
                            });
  }

  AdminHttpServer* const server_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  const uint64_t id_;
  RequestParser parser_;
  std::array<char, 8192> read_buf_;
  std::string out_;       // Responses not yet written.
  bool closing_ = false;  // Close after out_ is written.
  bool closed_ = false;
  uint64_t timer_gen_ = 0;
};

AdminHttpServer::AdminHttpServer(Options options)
    : options_(std::move(options)), acceptor_(io_), accept_retry_(io_) {}

AdminHttpServer::~AdminHttpServer() { Stop(); }

void AdminHttpServer::Handle(std::string method, std::string path, Handler handler) {
  if (started_.load()) {
    spdlog::error("admin http: route {} {} registered after Start(); ignored", method, path);
    return;
  }
  routes_[std::move(path)].insert_or_assign(std::move(method), std::move(handler));
}

absl::Status AdminHttpServer::Start() {
  if (started_.load()) return absl::FailedPreconditionError("admin http server already started");
  if (options_.idle_timeout.count() <= 0) {
    return absl::InvalidArgumentError("idle_timeout must be positive");
  }
  asio::error_code ec;
  asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("admin http host '{}' is not an IP address", options_.host));
  }
  tcp::endpoint endpoint(address, options_.port);
  std::string where = fmt::format("{}:{}", options_.host, options_.port);
  auto fail = [&](std::string_view step) {
    asio::error_code ignored;
    acceptor_.close(ignored);
    return absl::UnavailableError(fmt::format("admin http {} {}: {}", step, where, ec.message()));
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  // Lets a restarted process rebind while old connections sit in TIME_WAIT;
  // on Linux it does not allow two live listeners on one port.
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("setsockopt");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  tcp::endpoint local = acceptor_.local_endpoint(ec);
  if (ec) return fail("getsockname");

  port_.store(local.port(), std::memory_order_release);
  started_.store(true);
  Accept();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cairn-adminhttp");
    io_.run();
  });
  spdlog::info("admin http: listening on {}:{}", options_.host, local.port());
  return absl::OkStatus();
}

void AdminHttpServer::Stop() {
  if (!thread_.joinable()) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Joining ourselves would throw; the contract forbids it, fail loudly.
    spdlog::error("admin http: Stop() called from a handler; ignored");
    return;
  }
  // Everything asio-side is closed on the server thread; once no operation
  // is outstanding, run() returns by itself and the join completes.
  asio::post(io_, [this] {
    stopping_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
    // Close() erases from connections_, so iterate over a copy.
    std::vector<std::shared_ptr<Connection>> conns(connections_.begin(), connections_.end());
    for (auto& conn : conns) conn->Close();
  });
  thread_.join();
}

void AdminHttpServer::Accept() {
  acceptor_.async_accept([this](const asio::error_code& ec, tcp::socket socket) {
    // An accept may have completed just before Stop closed the acceptor.
    if (stopping_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      spdlog::warn("admin http: accept: {}", ec.message());
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this](const asio::error_code& wait_ec) {
        if (!wait_ec && !stopping_) Accept();
      });
      return;
    }
    if (connections_.size() >= options_.max_connections) {
      spdlog::debug("admin http: connection limit {} reached; closing new connection",
                    options_.max_connections);
      asio::error_code ignored;
      socket.close(ignored);
    } else {
      asio::error_code ignored;
      // Small responses on keep-alive connections must not wait for Nagle.
      socket.set_option(tcp::no_delay(true), ignored);
      auto conn = std::make_shared<Connection>(this, std::move(socket), ++next_connection_id_);
      connections_.insert(conn);
      conn->Start();
    }
    Accept();
  });
}

void AdminHttpServer::Remove(const std::shared_ptr<Connection>& conn) { connections_.erase(conn); }

Response AdminHttpServer::Dispatch(const Request& request, bool* head_only) {
  *head_only = request.method == "HEAD";
  auto path_it = routes_.find(request.path);
  if (path_it == routes_.end()) {
    Response r;
    r.status = 404;
    r.content_type = "application/json";
    r.body = fmt::format(R"({{"error":"not found","path":"{}"}})", JsonEscape(request.path));
    return r;
  }
  const auto& methods = path_it->second;
  auto method_it = methods.find(request.method);
  if (method_it == methods.end() && *head_only) method_it = methods.find("GET");
  if (method_it == methods.end()) {
    std::vector<std::string_view> allow;
    for (const auto& [method, handler] : methods) allow.push_back(method);
    if (methods.count("GET") && !methods.count("HEAD")) allow.push_back("HEAD");
    std::sort(allow.begin(), allow.end());
    Response r = JsonError(405, "method not allowed");
    r.headers.emplace_back("Allow", fmt::format("{}", fmt::join(allow, ", ")));
    return r;
  }
  // Handlers are user code; one that throws must not take the admin port
  // down with it (the exception would escape io_context::run()).
  try {
    return method_it->second(request);
  } catch (const std::exception& e) {
    spdlog::error("admin http: handler {} {} threw: {}", request.method, request.path, e.what());
  } catch (...) {
    spdlog::error("admin http: handler {} {} threw", request.method, request.path);
  }
  return JsonError(500, "internal error");
}

}  // namespace cairn::http
