// Listener: accepts TCP connections for one worker.
//
// Each worker opens its own socket on the same address with SO_REUSEPORT, so
// the kernel spreads new connections over the workers and a connection never
// moves between threads. (Port 0: the first worker binds, the others reuse
// the port it got.)
//
// Thread-safety: worker thread only, except Open(), which runs before the
// worker starts.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "absl/status/statusor.h"
#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class Listener {
 public:
  using AcceptCallback = std::function<void(asio::ip::tcp::socket)>;

  // Binds host:port with SO_REUSEADDR and SO_REUSEPORT and listens.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(Worker& worker, const std::string& host,
                                                        uint16_t port, AcceptCallback on_accept);
  ~Listener();

  void StartAccepting();  // worker thread
  void Close();           // worker thread
  uint16_t port() const;

 private:
  Listener(Worker& worker, asio::ip::tcp::acceptor acceptor, AcceptCallback on_accept);
  void AcceptNext();

  Worker& worker_;
  asio::ip::tcp::acceptor acceptor_;
  AcceptCallback on_accept_;
  asio::steady_timer retry_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::sidecar
