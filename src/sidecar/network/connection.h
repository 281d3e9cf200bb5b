// Connection: one TCP socket on one worker, with a write queue and
// readiness-based reads.
//
// Reads: the connection waits for the socket to become readable, then reads
// into the worker's shared scratch buffer and hands the bytes to its Handler.
// An idle connection therefore owns no read buffer.
// Writes: Write() queues the bytes and, once per loop turn, one send() takes
// everything queued (a response head and body, pipelined responses: one
// syscall). What the kernel does not take is written when the socket is
// writable again.
//
// Ownership: the owner (a proxy session) holds the Connection by unique_ptr
// and may destroy it at any time on the worker thread, even inside a Handler
// callback: pending operations are cancelled and their completions ignored.
// Thread-safety: worker thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <asio/ip/tcp.hpp>

#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class Connection {
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
  };

  // REQUIRES: socket is open. handler may be null until SetHandler().
  Connection(Worker& worker, asio::ip::tcp::socket socket, Handler* handler);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void SetHandler(Handler* handler) { handler_ = handler; }
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
  size_t queued_bytes() const { return pending_.size() + inflight_.size(); }
  Worker& worker() { return worker_; }
  const asio::ip::tcp::socket& socket() const { return socket_; }
  std::string PeerAddress() const;

  // Called by the worker at the end of an I/O scope (see Worker::IoScope).
  void FlushFromWorker();

 private:
  struct State {
    bool open = true;
  };
  void ArmRead();
  void OnReadable(const std::error_code& ec);
  void FlushPending();
  void ArmWrite();
  void Fail(const std::error_code& ec);

  Worker& worker_;
  asio::ip::tcp::socket socket_;
  Handler* handler_;
  // Completions hold a copy: a destroyed connection sets open=false first.
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::string pending_;   // queued, not yet given to the kernel
  std::string inflight_;  // being written by an async write
  bool reading_ = false;
  bool read_armed_ = false;
  bool write_armed_ = false;
  bool close_after_flush_ = false;
  bool flush_posted_ = false;
  bool in_dirty_list_ = false;
};

}  // namespace cairn::sidecar
