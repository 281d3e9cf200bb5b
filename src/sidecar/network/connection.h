// Connection: one non-blocking TCP socket on one worker, with a write queue.
//
// Reads: the worker reports readiness (edge-triggered); the connection reads
// into the worker's shared scratch buffer until the socket is drained and
// hands the bytes to its Handler. An idle connection owns no read buffer.
// Writes: Write() queues; inside an I/O handler the bytes leave in one send()
// when the handler ends (Worker::IoScope), otherwise on the next loop turn.
// What the kernel does not take waits for the socket to become writable.
//
// TLS (optional, StartTls before the first read): the same interface carries
// plaintext; the handshake runs on the same readiness events, queued writes
// wait for it, and the handler hears OnTlsReady once it finished and the
// peer passed its TlsPeerPolicy. A failed handshake or policy is an OnClose
// with tls_error() saying why.
//
// Ownership: the owner (a proxy session) holds the Connection by unique_ptr
// and may destroy it at any time on the worker thread, even inside a Handler
// callback.
// Thread-safety: worker thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "sidecar/network/tls_context.h"
#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class Connection : private Worker::FdHandler {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Bytes from the peer; valid only during the call.
    virtual void OnRead(std::string_view data) = 0;
    // The connection closed: the peer closed (ec is eof), an error, or a
    // CloseAfterFlush() finished (ec is empty). Not called after Close().
    virtual void OnClose(const std::error_code& ec) = 0;
    // Every queued byte has been handed to the kernel.
    virtual void OnWriteDrained() {}
    // The peer finished sending (FIN) but may still read. Return true to
    // keep writing (the connection stops reading; close it when done), false
    // to treat it as a close (OnClose follows).
    virtual bool OnPeerHalfClosed() { return false; }
    // TLS only: the handshake finished and the peer passed the policy;
    // peer_identity() is set.
    virtual void OnTlsReady() {}
  };

  // Takes ownership of fd (a connected TCP socket). handler may be null
  // until SetHandler().
  Connection(Worker& worker, int fd, Handler* handler);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void SetHandler(Handler* handler) { handler_ = handler; }
  // Makes this a TLS connection (server or client side, by the context's
  // method) that requires `policy` of the peer. Call before StartReading and
  // before any Write. An error (out of memory) closes the connection.
  absl::Status StartTls(std::shared_ptr<ssl_ctx_st> ctx, TlsPeerPolicy policy = {});
  bool tls() const { return tls_ != nullptr; }
  // Set once the handshake finished (anonymous before, and without TLS).
  const Identity* peer_identity() const { return tls_ != nullptr ? &tls_->peer : nullptr; }
  // The ALPN protocol agreed ("h2", "http/1.1"), empty without.
  std::string_view alpn() const { return tls_ != nullptr ? tls_->alpn : std::string_view(); }
  // Why the TLS handshake or the peer policy failed (empty if it did not).
  const std::string& tls_error() const;
  // Counts this connection in its worker's downstream_connections() until it
  // closes (a client connection, as opposed to one to an upstream).
  void CountAsDownstream();
  void StartReading();
  // Stops delivering reads (backpressure). StartReading() resumes.
  void PauseReading();

  // Queues `data` for the peer. Takes the bytes out of `data` (it is left
  // empty) so a caller's encode buffer is reused without copying.
  void Write(std::string& data);
  void Write(std::string_view data);

  // Closes at once; queued bytes are dropped; no OnClose.
  void Close();
  // Stops reading, writes what is queued, then closes and calls OnClose({}).
  void CloseAfterFlush();

  bool open() const { return state_->open; }
  size_t queued_bytes() const { return pending_.size(); }
  Worker& worker() { return worker_; }
  int fd() const { return fd_; }
  std::string PeerAddress() const;

  // Called by the worker at the end of an I/O scope (see Worker::IoScope).
  void FlushFromWorker();

 private:
  struct State {
    bool open = true;
  };
  void OnFdEvents(uint32_t events) override;
  void ReadReady();
  void FlushPending();
  void Fail(const std::error_code& ec);
  void ScheduleFlush();
  // TLS halves of the above.
  void TlsHandshake();
  void TlsReadReady();
  void TlsFlushPending(size_t* sent);
  void FailTls(std::string reason);
  void ShutdownTls();

  // Present only on TLS connections: a plaintext one pays one pointer.
  struct TlsState {
    ssl_st* ssl = nullptr;
    bool handshaking = true;
    bool read_wants_write = false;  // SSL_read needs the socket writable
    bool write_wants_read = false;  // SSL_write needs the socket readable
    TlsPeerPolicy policy;
    Identity peer;
    std::string alpn;
    std::string error;
  };

  Worker& worker_;
  int fd_;
  uint64_t watch_token_ = 0;
  Handler* handler_;
  // Posted tasks hold a copy: a destroyed connection sets open=false first.
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::string pending_;  // queued, not yet given to the kernel
  std::unique_ptr<TlsState> tls_;
  bool reading_ = false;
  bool readable_ = false;     // an edge arrived and the socket was not drained since
  bool peer_closed_ = false;  // RDHUP/HUP/ERR seen: read until recv() says 0 or fails
  bool writable_ = true;      // false after EAGAIN until the next EPOLLOUT edge
  bool read_scheduled_ = false;
  bool close_after_flush_ = false;
  bool flush_posted_ = false;
  bool in_dirty_list_ = false;
  bool counted_downstream_ = false;
};

}  // namespace cairn::sidecar
