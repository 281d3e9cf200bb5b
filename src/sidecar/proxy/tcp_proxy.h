// TcpProxy: one downstream TCP connection piped to one upstream host of a
// cluster (chosen by the cluster's load balancer), bytes copied both ways.
// Reads on one side pause while the other side's write queue is over
// kHighWatermark, so a slow peer cannot make the proxy buffer without bound.
//
// Ownership: owned by the worker's ConnectionHandler; destroyed a loop
// turn after on_finished. Thread-safety: its worker only.
#pragma once

#include <functional>
#include <memory>

#include "sidecar/cluster/cluster.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/connection_handler.h"
#include "sidecar/network/connector.h"

namespace cairn::sidecar {

class TcpProxy : public DownstreamSession {
 public:
  static constexpr size_t kHighWatermark = 1 << 20;

  TcpProxy(Worker& worker, std::unique_ptr<Connection> downstream, ClusterWorker& cluster,
           std::function<void(TcpProxy*)> on_finished);
  ~TcpProxy() override;
  void Start() override;
  // TCP has no way to ask a client to leave: the connection runs until
  // either side closes or the server's drain timeout ends it.
  void Drain() override {}

 private:
  class Side : public Connection::Handler {
   public:
    Side(TcpProxy& proxy, bool downstream) : proxy_(proxy), downstream_(downstream) {}
    void OnRead(std::string_view data) override { proxy_.Forward(downstream_, data); }
    void OnClose(const std::error_code&) override { proxy_.Closed(downstream_); }
    void OnWriteDrained() override { proxy_.Drained(downstream_); }

   private:
    TcpProxy& proxy_;
    bool downstream_;
  };

  void Connect(int attempt);
  void Forward(bool from_downstream, std::string_view data);
  void Closed(bool downstream);
  void Drained(bool downstream);
  void Finish();

  Worker& worker_;
  std::unique_ptr<Connection> downstream_;
  std::unique_ptr<Connection> upstream_;
  ClusterWorker& cluster_;
  std::function<void(TcpProxy*)> on_finished_;
  Side downstream_side_{*this, true};
  Side upstream_side_{*this, false};
  upstream::HostPtr host_;
  std::unique_ptr<Connector> connector_;
  std::string early_data_;  // from downstream before the upstream connected
  bool finished_ = false;
};

}  // namespace cairn::sidecar
