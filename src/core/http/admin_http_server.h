// AdminHttpServer: a small HTTP/1.1 server for operator endpoints (/health,
// /metrics, JSON queries) of the registry and, later, the sidecar admin port.
//
// It runs its own thread with its own asio::io_context so that a busy or
// stuck data path never hides the admin port, and vice versa. Requests are
// framed by RequestParser (http_request_parser.h); routes are exact
// (method, path) matches.
//
// Thread-safety: Handle() must be called before Start(), from one thread.
// Start(), Stop() and the destructor must be called from the owning thread,
// never from inside a handler (Stop joins the server thread). port() may be
// called from any thread.
//
// Handlers run on the server thread, one at a time, so they need no locking
// among themselves. They may block briefly (e.g. post to another EventLoop
// and wait for the answer); while one runs, every other connection waits, so
// anything slow belongs elsewhere. A handler that throws gets a 500.
//
// Ownership: the server owns its routes, io_context, thread and connections.
// Stop() closes every connection; pending responses are dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "absl/status/status.h"
#include "core/http/http_request_parser.h"

namespace cairn::http {

// Serializes a response head and body. `close` adds "Connection: close";
// `head_only` keeps Content-Length but drops the body (HEAD requests).
// Exposed for tests.
std::string SerializeResponse(const Response& response, bool close, bool head_only);

class AdminHttpServer {
 public:
  using Handler = std::function<Response(const Request&)>;

  struct Options {
    // An IP literal; only this address is bound. Loopback by default
    // because admin endpoints are not authenticated.
    std::string host = "127.0.0.1";
    uint16_t port = 0;  // 0 picks a free port; see port().
    size_t max_header_bytes = 16 * 1024;
    size_t max_body_bytes = 1 << 20;
    // A connection is closed when waiting for request bytes, or writing a
    // batch of responses, takes longer than this (also bounds the wait for
    // the next keep-alive request). Must be positive.
    std::chrono::milliseconds idle_timeout{30000};
    // Connections beyond this are accepted and closed at once, so the
    // backlog never fills with peers that will not be served.
    size_t max_connections = 256;
  };

  explicit AdminHttpServer(Options options);
  ~AdminHttpServer();  // Stop()s.
  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  // Routes `method` `path` (both exact, case-sensitive) to handler; a later
  // registration for the same pair replaces the earlier one. A GET route
  // also answers HEAD unless HEAD is registered. Ignored (and logged) after
  // Start(), because the route table is read lock-free by the server thread.
  void Handle(std::string method, std::string path, Handler handler);

  // Binds and listens on host:port and starts the server thread.
  // InvalidArgument for a bad host or options, Unavailable if the address
  // cannot be bound, FailedPrecondition if already started (servers are not
  // restartable).
  absl::Status Start();

  // The bound port after a successful Start() (useful with port 0), else 0.
  uint16_t port() const { return port_.load(std::memory_order_acquire); }

  // Closes the listener and all connections and joins the thread.
  // Idempotent; returns once no handler is running.
  void Stop();

 private:
  class Connection;
  friend class Connection;

  void Accept();
  Response Dispatch(const Request& request, bool* head_only);
  void Remove(const std::shared_ptr<Connection>& conn);

  const Options options_;
  // Immutable once started.
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler

  // Declared before everything that holds asio objects, so it is destroyed
  // last and their destructors still find its services.
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  // Touched only on the server thread (and by Stop after the join).
  std::unordered_set<std::shared_ptr<Connection>> connections_;
  uint64_t next_connection_id_ = 0;
  bool stopping_ = false;  // Server thread only.

  std::thread thread_;
  std::atomic<bool> started_{false};
  std::atomic<uint16_t> port_{0};
};

}  // namespace cairn::http
