#include "sidecar/network/protocol_sniffer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace cairn::sidecar {

ProtocolSniffer::ProtocolSniffer(Worker& worker, int fd, Callback callback)
    : worker_(worker), fd_(fd), callback_(std::move(callback)) {}

ProtocolSniffer::~ProtocolSniffer() {
  if (watching_) worker_.Unwatch(fd_, watch_token_);
  if (fd_ >= 0) ::close(fd_);
}

void ProtocolSniffer::Start() {
  if (worker_.Watch(fd_, this, &watch_token_).ok()) {
    watching_ = true;
  } else {
    Done(/*closed=*/true, 0);
  }
}

void ProtocolSniffer::OnFdEvents(uint32_t) {
  // Edge-triggered: peeking leaves the bytes there, and the next epoll
  // registration (the connection's) reports them readable again.
  for (;;) {
    uint8_t first = 0;
    ssize_t n = ::recv(fd_, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1) {
      Done(/*closed=*/false, first);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // not yet
    Done(/*closed=*/true, 0);  // EOF or an error before any byte
    return;
  }
}

void ProtocolSniffer::Done(bool closed, uint8_t first_byte) {
  if (watching_) {
    worker_.Unwatch(fd_, watch_token_);
    watching_ = false;
  }
  int fd = fd_;
  fd_ = -1;
  if (closed) {
    ::close(fd);
    fd = -1;
  }
  auto callback = std::move(callback_);
  callback_ = nullptr;
  if (callback) callback(this, fd, first_byte);  // may destroy this
}

}  // namespace cairn::sidecar
