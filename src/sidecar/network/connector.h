// Connector: one non-blocking TCP connect on a worker, with a timeout.
// Calls back exactly once with the connected socket (the callee owns it) or
// an error; destroying the Connector first cancels it silently.
//
// Thread-safety: its worker's thread only.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <asio/ip/tcp.hpp>

#include "sidecar/network/worker.h"

namespace cairn::sidecar {

class Connector : private Worker::FdHandler {
 public:
  // fd >= 0 on success; otherwise error describes the failure.
  using Callback = std::function<void(int fd, const std::string& error)>;

  Connector(Worker& worker, const asio::ip::tcp::endpoint& endpoint,
            std::chrono::milliseconds timeout, Callback callback);
  ~Connector() override;
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

 private:
  void OnFdEvents(uint32_t events) override;
  void Finish(bool connected, const std::string& error);

  Worker& worker_;
  int fd_ = -1;
  uint64_t watch_token_ = 0;
  bool watching_ = false;
  Worker::TimerId timer_ = 0;
  Callback callback_;
};

}  // namespace cairn::sidecar
