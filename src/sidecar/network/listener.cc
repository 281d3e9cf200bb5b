#include "sidecar/network/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(Worker& worker, const std::string& host,
                                                         uint16_t port, AcceptCallback on_accept) {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    addr_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    addr_len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IP address"));
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 || listen(fd, 4096) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  uint16_t bound_port = bound.ss_family == AF_INET
                            ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                            : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return std::unique_ptr<Listener>(new Listener(worker, fd, bound_port, std::move(on_accept)));
}

Listener::~Listener() { Close(); }

void Listener::StartAccepting() {
  if (fd_ < 0 || watching_) return;
  if (worker_.Watch(fd_, this, &watch_token_).ok()) watching_ = true;
}

void Listener::Close() {
  if (retry_timer_ != 0) worker_.CancelTimer(retry_timer_);
  retry_timer_ = 0;
  if (fd_ < 0) return;
  if (watching_) worker_.Unwatch(fd_, watch_token_);
  watching_ = false;
  close(fd_);
  fd_ = -1;
}

void Listener::OnFdEvents(uint32_t) { AcceptAll(); }

void Listener::AcceptAll() {
  // Edge-triggered: take every pending connection now.
  while (fd_ >= 0) {
    int client = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client >= 0) {
      on_accept_(client);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    // EMFILE and friends: the pending connections raise no new edge, so
    // retry a little later (once connections close) instead of spinning.
    spdlog::warn("accept failed: {}; retrying in 100 ms", std::strerror(errno));
    if (retry_timer_ == 0) {
      retry_timer_ = worker_.RunAfter(std::chrono::milliseconds(100), [this] {
        retry_timer_ = 0;
        AcceptAll();
      });
    }
    return;
  }
}

}  // namespace cairn::sidecar
