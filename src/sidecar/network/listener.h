// Listener: accepts TCP connections for one worker.
//
// Each worker opens its own socket on the same address with SO_REUSEPORT, so
// the kernel spreads new connections over the workers and a connection never
// moves between threads. (Port 0: the first worker binds, the others reuse
// the port it got.)
//
// Thread-safety: Open() before the worker handles the listener; the rest on
// the worker's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class Listener : private Worker::FdHandler {
 public:
  // Receives each accepted socket (non-blocking); the callee owns it.
  using AcceptCallback = std::function<void(int fd)>;

  // Binds host:port with SO_REUSEADDR and SO_REUSEPORT and listens.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(Worker& worker, const std::string& host,
                                                        uint16_t port, AcceptCallback on_accept);
  ~Listener() override;

  void StartAccepting();  // worker thread
  void Close();           // worker thread
  uint16_t port() const { return port_; }

 private:
  Listener(Worker& worker, int fd, uint16_t port, AcceptCallback on_accept)
      : worker_(worker), fd_(fd), port_(port), on_accept_(std::move(on_accept)) {}
  void OnFdEvents(uint32_t events) override;
  void AcceptAll();

  Worker& worker_;
  int fd_;
  uint16_t port_;
  AcceptCallback on_accept_;
  uint64_t watch_token_ = 0;
  bool watching_ = false;
  Worker::TimerId retry_timer_ = 0;
};

}  // namespace cairn::sidecar
