#include "sidecar/network/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace cairn::sidecar {

Connection::Connection(Worker& worker, int fd, Handler* handler)
    : worker_(worker), fd_(fd), handler_(handler) {
  int flags = fcntl(fd_, F_GETFL, 0);
  fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!worker_.Watch(fd_, this, &watch_token_).ok()) {
    state_->open = false;
    ::close(fd_);
  }
}

Connection::~Connection() {
  if (in_dirty_list_) worker_.RemoveDirty(this);
  Close();
}

std::string Connection::PeerAddress() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

void Connection::OnFdEvents(uint32_t events) {
  std::shared_ptr<State> state = state_;
  if (events & EPOLLOUT) {
    writable_ = true;
    if (!pending_.empty()) FlushPending();
    if (!state->open) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    readable_ = true;
    // A FIN riding on the last data arrives in the same edge: a short read
    // then does not mean "drained", the EOF is still to be read.
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peer_closed_ = true;
    if (reading_) ReadReady();
  }
}

void Connection::StartReading() {
  reading_ = true;
  // Edge-triggered: data that arrived while paused raises no new event.
  if (readable_ && !read_scheduled_) {
    read_scheduled_ = true;
    worker_.Post([this, state = state_] {
      if (!state->open) return;
      read_scheduled_ = false;
      if (reading_ && readable_) ReadReady();
    });
  }
}

void Connection::PauseReading() { reading_ = false; }

void Connection::ReadReady() {
  std::shared_ptr<State> state = state_;
  // Bounded so one busy connection cannot starve the worker's others.
  for (int rounds = 0; rounds < 4; ++rounds) {
    if (!reading_) return;  // paused: readable_ stays true for StartReading
    ssize_t n = ::recv(fd_, worker_.read_buffer(), Worker::kReadBufferSize, 0);
    if (n > 0) {
      if (handler_ != nullptr) {
        handler_->OnRead(std::string_view(worker_.read_buffer(), static_cast<size_t>(n)));
      }
      if (!state->open) return;  // closed or destroyed inside the callback
      if (static_cast<size_t>(n) < Worker::kReadBufferSize && !peer_closed_) {
        readable_ = false;  // a short read drained the socket
        return;
      }
      continue;
    }
    if (n == 0) {
      readable_ = false;
      if (handler_ != nullptr && handler_->OnPeerHalfClosed()) {
        if (state->open) reading_ = false;
        return;
      }
      if (!state->open) return;
      Fail(std::make_error_code(std::errc::connection_reset));
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return;
    }
    if (errno == EINTR) continue;
    Fail(std::error_code(errno, std::system_category()));
    return;
  }
  // Still readable: continue on a later turn, unless a handler paused
  // reading meanwhile (backpressure must survive the round limit).
  if (reading_) StartReading();
}

void Connection::Write(std::string& data) {
  if (!state_->open || data.empty()) {
    data.clear();
    return;
  }
  if (pending_.empty()) {
    pending_.swap(data);
  } else {
    pending_.append(data);
    data.clear();
  }
  ScheduleFlush();
}

void Connection::Write(std::string_view data) {
  std::string copy(data);
  Write(copy);
}

void Connection::ScheduleFlush() {
  if (!writable_ || in_dirty_list_ || flush_posted_) return;
  if (worker_.in_io_scope()) {
    in_dirty_list_ = true;
    worker_.AddDirty(this);
    return;
  }
  flush_posted_ = true;
  worker_.Post([this, state = state_] {
    if (!state->open) return;
    flush_posted_ = false;
    FlushPending();
  });
}

void Connection::FlushFromWorker() {
  in_dirty_list_ = false;
  if (state_->open) FlushPending();
}

void Connection::FlushPending() {
  size_t sent = 0;
  while (sent < pending_.size() && writable_) {
    ssize_t n = ::send(fd_, pending_.data() + sent, pending_.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;  // the next EPOLLOUT edge resumes
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      Fail(std::error_code(errno, std::system_category()));
      return;
    }
  }
  pending_.erase(0, sent);
  if (!pending_.empty()) return;
  if (close_after_flush_) {
    Close();
    if (handler_ != nullptr) handler_->OnClose({});
    return;
  }
  if (sent > 0 && handler_ != nullptr) handler_->OnWriteDrained();
}

void Connection::CountAsDownstream() {
  if (counted_downstream_ || !state_->open) return;
  counted_downstream_ = true;
  worker_.AddDownstream(1);
}

void Connection::Close() {
  if (counted_downstream_) {
    counted_downstream_ = false;
    worker_.AddDownstream(-1);
  }
  if (!state_->open) return;
  state_->open = false;
  worker_.Unwatch(fd_, watch_token_);
  ::close(fd_);
  pending_.clear();
}

void Connection::CloseAfterFlush() {
  reading_ = false;
  if (!state_->open) return;
  close_after_flush_ = true;
  if (pending_.empty()) {
    Close();
    if (handler_ != nullptr) handler_->OnClose({});
  } else {
    ScheduleFlush();
  }
}

void Connection::Fail(const std::error_code& ec) {
  if (!state_->open) return;
  Close();
  if (handler_ != nullptr) handler_->OnClose(ec);
}

}  // namespace cairn::sidecar
