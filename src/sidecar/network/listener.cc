#include "sidecar/network/listener.h"

#include <spdlog/spdlog.h>
#include <asio/socket_base.hpp>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(Worker& worker, const std::string& host,
                                                         uint16_t port, AcceptCallback on_accept) {
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IP address"));
  asio::ip::tcp::endpoint endpoint(address, port);
  asio::ip::tcp::acceptor acceptor(worker.io());
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.set_option(ReusePort(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) acceptor.non_blocking(true, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", ec.message()));
  }
  return std::unique_ptr<Listener>(new Listener(worker, std::move(acceptor), std::move(on_accept)));
}

Listener::Listener(Worker& worker, asio::ip::tcp::acceptor acceptor, AcceptCallback on_accept)
    : worker_(worker),
      acceptor_(std::move(acceptor)),
      on_accept_(std::move(on_accept)),
      retry_timer_(worker.io()) {}

Listener::~Listener() {
  *alive_ = false;
  std::error_code ec;
  acceptor_.close(ec);
}

uint16_t Listener::port() const {
  std::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void Listener::StartAccepting() { AcceptNext(); }

void Listener::Close() {
  *alive_ = false;
  std::error_code ec;
  acceptor_.close(ec);
}

void Listener::AcceptNext() {
  acceptor_.async_accept(worker_.io(), [this, alive = alive_](const std::error_code& ec,
                                                              asio::ip::tcp::socket socket) {
    if (!*alive) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: log, and retry a little later (once connections
      // close) rather than dying or spinning.
      spdlog::warn("accept failed: {}; retrying in 100 ms", ec.message());
      retry_timer_.expires_after(std::chrono::milliseconds(100));
      retry_timer_.async_wait([this, alive](const std::error_code& timer_ec) {
        if (*alive && !timer_ec) AcceptNext();
      });
      return;
    } else {
      on_accept_(std::move(socket));
      if (!*alive) return;
    }
    AcceptNext();
  });
}

}  // namespace cairn::sidecar
