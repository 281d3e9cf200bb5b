// RpcConnectionManager: one downstream connection speaking a multiplexed
// RPC protocol (an RpcCodec: Bolt, Dubbo; a listener with that protocol, or
// auto when the first byte picked it).
//
//   bytes ─► RpcDecoder ─► heartbeat: answered here
//                       └► request ─► RpcRequest ─► RpcRouteTable (service)
//                                          │  ClusterWorker: LB picks a host
//                                          ▼
//                   RpcHostPool ─► RpcUpstreamConnection (multiplexed, id rewritten)
//   bytes ◄─ response frame with the client's request id ◄──┘ (any order)
//
// Requests of one connection run concurrently and their responses leave in
// the order they arrive. Bodies are never decoded beyond what routing needs:
// a response is forwarded as the provider wrote it, with only the request id
// restored; the sidecar's own answers (no route, timeout, upstream failure,
// overflow) are the codec's error responses, framed like the request.
//
// A malformed frame ends the connection: if its fixed header names a
// two-way request, that request gets the codec's error response; the
// connection stops reading, finishes the requests in flight, then closes.
// A client that half-closes still gets its responses.
//
// Ownership: made by the listener's session factory and owned by the
// worker's ConnectionHandler, which destroys it a loop turn after
// `on_finished`. It owns its
// requests. Thread-safety: its worker's thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "sidecar/cluster/cluster.h"
#include "sidecar/codec/rpc_codec.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/connection_handler.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/rpc/rpc_request.h"
#include "sidecar/rpc/rpc_route_table.h"
#include "sidecar/rpc/rpc_stats.h"
#include "sidecar/stats/local_metrics.h"

namespace cairn::sidecar {

// Everything a listener's connections of one RPC protocol share (read-only
// after start).
struct RpcListenerContext {
  std::string name;
  const RpcCodec* codec = nullptr;  // required
  RpcRouteTable routes;
  RpcLimits limits;
  RpcStats* stats = nullptr;        // required: the protocol's per-service metrics
  AccessLog* access_log = nullptr;  // null: off
  // By worker index (each worker updates only its own cells); empty: off.
  std::vector<LocalCounter*> downstream_requests;
  std::vector<LocalGauge*> downstream_connections;
  // The listener's request_header_timeout_ms and idle_timeout_ms (0: off).
  // A frame must be whole within frame_timeout of its first byte (a client
  // that stops mid-frame, slowloris-style, is closed); a connection with no
  // call in flight that receives nothing, not even a heartbeat, for
  // idle_timeout is closed (from accept, so this also bounds a TLS handshake
  // that never ends). These protocols have no GOAWAY: clients reconnect on
  // their next call, as they do after any close.
  std::chrono::milliseconds frame_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  // By worker index, like the counters above; empty: not counted.
  std::vector<LocalCounter*> frame_timeouts;
  std::vector<LocalCounter*> idle_timeouts;
};

// One worker's RPC state, shared by its connections: its clusters (which own
// the upstream pools) and its cells of every protocol's metrics. Destroy it
// after every connection manager of the worker.
class RpcWorkerContext {
 public:
  RpcWorkerContext(Worker& worker, WorkerClusters& clusters)
      : worker_(worker), clusters_(clusters) {}
  Worker& worker() { return worker_; }
  WorkerClusters& clusters() { return clusters_; }
  // This worker's cache of `stats` (made on first use).
  RpcStatsCache& StatsFor(RpcStats& stats);

 private:
  Worker& worker_;
  WorkerClusters& clusters_;
  absl::flat_hash_map<RpcStats*, std::unique_ptr<RpcStatsCache>> stats_;
};

class RpcConnectionManager : public DownstreamSession,
                             private Connection::Handler,
                             private RpcRequestOwner {
 public:
  // Reads pause while more than this many response bytes wait for a slow
  // client, so it cannot make the sidecar buffer without bound.
  static constexpr size_t kHighWatermark = 1 << 20;

  RpcConnectionManager(std::unique_ptr<Connection> connection, const RpcListenerContext& context,
                       RpcWorkerContext& worker,
                       std::function<void(RpcConnectionManager*)> on_finished);
  ~RpcConnectionManager() override;
  RpcConnectionManager(const RpcConnectionManager&) = delete;
  RpcConnectionManager& operator=(const RpcConnectionManager&) = delete;

  void Start() override;
  // Graceful close. There is no GOAWAY, and peers routing here stop sending
  // only once the registry told them this sidecar left, a moment after the
  // drain began; so the connection keeps serving and closes once it has
  // been quiet (no call in flight, none started) for kDrainQuietPeriod.
  void Drain() override;
  static constexpr std::chrono::milliseconds kDrainQuietPeriod{1000};
  size_t active_requests() const { return requests_.size(); }

 private:
  // Connection::Handler
  void OnRead(std::string_view data) override;
  void OnClose(const std::error_code& ec) override;
  void OnWriteDrained() override;
  bool OnPeerHalfClosed() override;

  void HandleFrame(const RpcMessage& frame);
  // `frame_start` is where the frame that failed began, when it began in
  // this read (empty otherwise).
  void OnProtocolError(const absl::Status& status, std::string_view frame_start);
  void CloseWhenIdle();
  void ArmDrainTimer();
  void Finish();
  // Arms, re-arms or cancels the frame and idle timeouts for the state now;
  // `bytes_arrived` restarts the idle clock.
  void UpdateTimeouts(bool bytes_arrived);
  void OnFrameTimeout();
  void OnIdleTimeout();

  // RpcRequestOwner
  Worker& worker() override { return worker_.worker(); }
  WorkerClusters& clusters() override { return worker_.clusters(); }
  const RpcCodec& codec() const override { return *context_.codec; }
  const RpcRouteTable& routes() const override { return context_.routes; }
  RpcStatsCache& stats() override { return stats_; }
  const std::string& listener_name() const override { return context_.name; }
  AccessLog* access_log() const override { return context_.access_log; }
  void CountRequest() override;
  void WriteResponse(std::string_view frame, uint64_t request_id) override;
  void WriteError(uint64_t framing, uint64_t request_id, RpcError error,
                  std::string_view message) override;
  void RequestDone(RpcRequest* request) override;

  std::unique_ptr<Connection> connection_;
  const RpcListenerContext& context_;
  RpcWorkerContext& worker_;
  RpcStatsCache& stats_;
  std::function<void(RpcConnectionManager*)> on_finished_;
  std::unique_ptr<RpcDecoder> decoder_;
  std::string out_;
  std::list<RpcRequest> requests_;
  bool stopped_reading_ = false;  // closing, half-closed or broken: no new requests
  uint64_t calls_started_ = 0;    // drain: was the connection quiet?
  Worker::TimerId drain_timer_ = 0;
  bool paused_ = false;  // backpressure (kHighWatermark)
  bool finished_ = false;

  class RpcTimeout final : public TimeoutNode {
   public:
    RpcTimeout(RpcConnectionManager& owner, void (RpcConnectionManager::*fire)())
        : owner_(owner), fire_(fire) {}

   private:
    void OnTimeout() override { (owner_.*fire_)(); }
    RpcConnectionManager& owner_;
    void (RpcConnectionManager::*fire_)();
  };
  // Last members: destroyed (and so unlinked) first.
  RpcTimeout frame_timeout_{*this, &RpcConnectionManager::OnFrameTimeout};
  RpcTimeout idle_timeout_{*this, &RpcConnectionManager::OnIdleTimeout};
};

}  // namespace cairn::sidecar
