// ProtocolSniffer: tells a Bolt client from an HTTP one on an `auto`
// listener by the first byte of the connection (Bolt v1 starts with 0x01,
// v2 with 0x02; an HTTP/1 method or the HTTP/2 preface never does).
//
// It peeks (MSG_PEEK), so the byte stays in the socket for the connection
// manager that takes over: neither manager needs to be told about bytes
// read before it existed. The cost is one epoll registration and one recv
// per connection, which is why the server sniffs only on listeners that
// have Bolt routes.
//
// Ownership: owned by the listener glue until the callback, which receives
// the socket (or -1 when the peer closed first; the sniffer closed it).
// Destroying the sniffer before that closes the socket.
// Thread-safety: its worker's thread only.
#pragma once

#include <cstdint>
#include <functional>

#include "sidecar/network/worker.h"

namespace cairn::sidecar::bolt {

enum class SniffedProtocol { kBolt, kOther, kClosed };

// Whether `first_byte` opens a Bolt frame.
inline bool IsBoltFirstByte(uint8_t first_byte) { return first_byte == 1 || first_byte == 2; }

class ProtocolSniffer : private Worker::FdHandler {
 public:
  // Called once, on the worker; may destroy the sniffer.
  using Callback = std::function<void(ProtocolSniffer* self, int fd, SniffedProtocol protocol)>;

  // Takes ownership of fd (an accepted, non-blocking socket).
  ProtocolSniffer(Worker& worker, int fd, Callback callback);
  ~ProtocolSniffer() override;
  ProtocolSniffer(const ProtocolSniffer&) = delete;
  ProtocolSniffer& operator=(const ProtocolSniffer&) = delete;

  void Start();

 private:
  void OnFdEvents(uint32_t events) override;
  void Done(SniffedProtocol protocol);

  Worker& worker_;
  int fd_;
  uint64_t watch_token_ = 0;
  bool watching_ = false;
  Callback callback_;
};

}  // namespace cairn::sidecar::bolt
