#include "sidecar/network/connector.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cairn::sidecar {

Connector::Connector(Worker& worker, const asio::ip::tcp::endpoint& endpoint,
                     std::chrono::milliseconds timeout, Callback callback)
    : worker_(worker), callback_(std::move(callback)) {
  fd_ = socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    std::string error = std::strerror(errno);
    // Report on a later turn: the caller is still constructing us.
    timer_ =
        worker_.RunAfter(std::chrono::milliseconds(0), [this, error] { Finish(false, error); });
    return;
  }
  int rc = connect(fd_, endpoint.data(), static_cast<socklen_t>(endpoint.size()));
  if (rc != 0 && errno != EINPROGRESS) {
    std::string error = std::strerror(errno);
    timer_ =
        worker_.RunAfter(std::chrono::milliseconds(0), [this, error] { Finish(false, error); });
    return;
  }
  // Writable means connected (or failed: SO_ERROR tells).
  if (worker_.Watch(fd_, this, &watch_token_).ok()) watching_ = true;
  timer_ = worker_.RunAfter(timeout, [this] {
    timer_ = 0;
    Finish(false, "connect timeout");
  });
}

Connector::~Connector() {
  if (timer_ != 0) worker_.CancelTimer(timer_);
  if (watching_) worker_.Unwatch(fd_, watch_token_);
  if (fd_ >= 0) close(fd_);
}

void Connector::OnFdEvents(uint32_t) {
  int error = 0;
  socklen_t len = sizeof(error);
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error == EINPROGRESS) return;  // not decided yet
  Finish(error == 0, error == 0 ? "" : std::strerror(error));
}

void Connector::Finish(bool connected, const std::string& error) {
  if (!callback_) return;
  if (timer_ != 0) {
    worker_.CancelTimer(timer_);
    timer_ = 0;
  }
  if (watching_) {
    worker_.Unwatch(fd_, watch_token_);
    watching_ = false;
  }
  int fd = -1;
  if (connected) {
    fd = fd_;
    fd_ = -1;  // handed over
  } else if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  auto callback = std::move(callback_);
  callback_ = nullptr;
  callback(fd, error);  // may destroy this
}

}  // namespace cairn::sidecar
