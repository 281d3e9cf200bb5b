// ProtocolSniffer: waits for the first byte of a connection on an `auto`
// listener that serves an RPC protocol besides HTTP, so that the server can
// pick the protocol once (DetectRpcCodec: Bolt starts with 0x01 or 0x02,
// Dubbo with 0xda; an HTTP/1 method or the HTTP/2 preface with a letter).
//
// It peeks (MSG_PEEK), so the byte stays in the socket for the connection
// manager that takes over: neither manager needs to be told about bytes
// read before it existed. The cost is one epoll registration and one recv
// per connection, which is why the server sniffs only on listeners that
// have RPC routes.
//
// Ownership: owned by the ConnectionHandler until the callback, which receives
// the socket (or -1 when the peer closed first; the sniffer closed it).
// Destroying the sniffer before that closes the socket.
// Thread-safety: its worker's thread only.
#pragma once

#include <cstdint>
#include <functional>

#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class ProtocolSniffer : private Worker::FdHandler {
 public:
  // Called once, on the worker, with the socket and its first byte (fd -1
  // when the peer closed before sending one); may destroy the sniffer.
  using Callback = std::function<void(ProtocolSniffer* self, int fd, uint8_t first_byte)>;

  // Takes ownership of fd (an accepted, non-blocking socket).
  ProtocolSniffer(Worker& worker, int fd, Callback callback);
  ~ProtocolSniffer() override;
  ProtocolSniffer(const ProtocolSniffer&) = delete;
  ProtocolSniffer& operator=(const ProtocolSniffer&) = delete;

  void Start();

 private:
  void OnFdEvents(uint32_t events) override;
  void Done(bool closed, uint8_t first_byte);

  Worker& worker_;
  int fd_;
  uint64_t watch_token_ = 0;
  bool watching_ = false;
  Callback callback_;
};

}  // namespace cairn::sidecar
