#include "sidecar/network/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

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
  if (tls_ != nullptr && tls_->handshaking) {
    if (events & EPOLLOUT) writable_ = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
    TlsHandshake();
    return;
  }
  if (tls_ != nullptr && (events & EPOLLOUT) && tls_->read_wants_write) {
    // SSL_read needed to write first: this EPOLLOUT is the read's cue, and
    // no EPOLLIN edge may follow for bytes already in the socket or in
    // OpenSSL's buffer.
    tls_->read_wants_write = false;
    readable_ = true;
    events |= EPOLLIN;
  }
  if (tls_ != nullptr && (events & EPOLLIN) && tls_->write_wants_read) {
    tls_->write_wants_read = false;
    writable_ = true;
    events |= EPOLLOUT;
  }
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
  if (tls_ != nullptr) {
    if (tls_->handshaking) {
      TlsHandshake();
    } else {
      TlsReadReady();
    }
    return;
  }
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
  if (tls_ != nullptr) {
    if (tls_->handshaking) return;  // the handshake flushes when it finishes
    std::shared_ptr<State> state = state_;
    TlsFlushPending(&sent);
    if (!state->open) return;
  }
  while (tls_ == nullptr && sent < pending_.size() && writable_) {
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
  ShutdownTls();
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

// ---- TLS --------------------------------------------------------------------
// OpenSSL reads and writes the (non-blocking) socket itself; its WANT_READ /
// WANT_WRITE answers map onto the same edge-triggered flags as recv/send:
// WANT_READ means the socket was drained (wait for the next EPOLLIN edge),
// WANT_WRITE that the kernel buffer is full (wait for EPOLLOUT).

absl::Status Connection::StartTls(std::shared_ptr<ssl_ctx_st> ctx, TlsPeerPolicy policy) {
  if (!state_->open) return absl::FailedPreconditionError("connection closed");
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx.get());  // takes its own reference to ctx
  if (ssl == nullptr || SSL_set_fd(ssl, fd_) != 1) {
    std::string error = TakeOpenSslError();
    if (ssl != nullptr) SSL_free(ssl);
    Close();
    return absl::ResourceExhaustedError("TLS setup: " + error);
  }
  tls_ = std::make_unique<TlsState>();
  tls_->ssl = ssl;
  tls_->policy = std::move(policy);
  if (SSL_is_server(ssl)) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    // A client speaks first: send the ClientHello now.
    worker_.Post([this, state = state_] {
      if (state->open && tls_ != nullptr && tls_->handshaking) TlsHandshake();
    });
  }
  return absl::OkStatus();
}

const std::string& Connection::tls_error() const {
  static const std::string kNone;
  return tls_ != nullptr ? tls_->error : kNone;
}

void Connection::TlsHandshake() {
  std::shared_ptr<State> state = state_;
  ERR_clear_error();
  int r = SSL_do_handshake(tls_->ssl);
  if (r != 1) {
    int err = SSL_get_error(tls_->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
      readable_ = false;
      return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      writable_ = false;
      return;
    }
    std::string reason = err == SSL_ERROR_SSL ? TakeOpenSslError()
                         : errno != 0         ? std::string(std::strerror(errno))
                                              : std::string("connection closed in the handshake");
    long verify = SSL_get_verify_result(tls_->ssl);
    if (verify != X509_V_OK) {
      reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    FailTls("TLS handshake failed: " + reason);
    return;
  }
  tls_->handshaking = false;
  tls_->peer = PeerIdentityOf(tls_->ssl);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(tls_->ssl, &alpn, &alpn_len);
  if (alpn != nullptr) tls_->alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (std::string why = CheckPeerPolicy(tls_->peer, tls_->policy); !why.empty()) {
    FailTls(std::move(why));
    return;
  }
  if (handler_ != nullptr) handler_->OnTlsReady();
  if (!state->open) return;
  if (!pending_.empty()) {
    writable_ = true;  // a WANT_WRITE edge was consumed by the handshake
    FlushPending();
    if (!state->open) return;
  }
  // The handshake's last read may have pulled application data into
  // OpenSSL's buffer: no new edge will announce it.
  readable_ = true;
  if (reading_) ReadReady();
}

void Connection::TlsReadReady() {
  std::shared_ptr<State> state = state_;
  char* buffer = worker_.read_buffer();
  for (int rounds = 0; rounds < 4; ++rounds) {
    if (!reading_) return;
    size_t filled = 0;
    int err = SSL_ERROR_NONE;
    // Fill the scratch buffer from as many records as there are, so the
    // handler sees one chunk, as it would from one recv().
    while (filled < Worker::kReadBufferSize) {
      ERR_clear_error();
      int n = SSL_read(tls_->ssl, buffer + filled,
                       static_cast<int>(std::min<size_t>(Worker::kReadBufferSize - filled,
                                                         static_cast<size_t>(INT_MAX))));
      if (n > 0) {
        filled += static_cast<size_t>(n);
        continue;
      }
      err = SSL_get_error(tls_->ssl, n);
      break;
    }
    if (filled > 0 && handler_ != nullptr) {
      handler_->OnRead(std::string_view(buffer, filled));
      if (!state->open) return;
    }
    if (err == SSL_ERROR_NONE) continue;  // the buffer filled up: read on
    if (!reading_) {
      readable_ = true;  // paused: SSL_read answers the same again on resume
      return;
    }
    switch (err) {
      case SSL_ERROR_WANT_READ:
        readable_ = false;
        return;
      case SSL_ERROR_WANT_WRITE:
        readable_ = false;
        writable_ = false;
        tls_->read_wants_write = true;
        return;
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or EOF (IGNORE_UNEXPECTED_EOF)
        readable_ = false;
        if (handler_ != nullptr && handler_->OnPeerHalfClosed()) {
          if (state->open) reading_ = false;
          return;
        }
        if (!state->open) return;
        Fail(std::make_error_code(std::errc::connection_reset));
        return;
      default: {
        std::string reason =
            err == SSL_ERROR_SSL ? TakeOpenSslError() : std::string(std::strerror(errno));
        FailTls("TLS read failed: " + reason);
        return;
      }
    }
  }
  if (reading_) StartReading();
}

void Connection::TlsFlushPending(size_t* sent) {
  while (*sent < pending_.size() && writable_) {
    ERR_clear_error();
    int n = SSL_write(tls_->ssl, pending_.data() + *sent,
                      static_cast<int>(std::min<size_t>(pending_.size() - *sent, 1u << 30)));
    if (n > 0) {
      *sent += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(tls_->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE) {
      writable_ = false;
    } else if (err == SSL_ERROR_WANT_READ) {
      writable_ = false;
      tls_->write_wants_read = true;
    } else {
      std::string reason =
          err == SSL_ERROR_SSL ? TakeOpenSslError() : std::string(std::strerror(errno));
      FailTls("TLS write failed: " + reason);
      return;
    }
  }
}

void Connection::FailTls(std::string reason) {
  if (tls_ != nullptr) tls_->error = std::move(reason);
  Fail(std::make_error_code(std::errc::permission_denied));
}

void Connection::ShutdownTls() {
  if (tls_ == nullptr || tls_->ssl == nullptr) return;
  // Best effort close_notify (one non-blocking write; never waits for the
  // peer's). Not after a fatal error: OpenSSL refuses, and says so.
  if (!tls_->handshaking && tls_->error.empty()) {
    ERR_clear_error();
    SSL_shutdown(tls_->ssl);
  }
  ERR_clear_error();
  SSL_free(tls_->ssl);
  tls_->ssl = nullptr;
}

}  // namespace cairn::sidecar
