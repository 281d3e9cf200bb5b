// BoltConnectionManager: one downstream connection speaking SOFARPC Bolt
// (v1 or v2; a listener with protocol bolt, or auto when the first byte is
// 0x01 or 0x02).
//
//   bytes ─► BoltDecoder ─► heartbeat: answered here
//                        └► request ─► BoltRequest ─► BoltRouteTable (service)
//                                            │  ClusterWorker: LB picks a host
//                                            ▼
//                     BoltHostPool ─► BoltUpstreamConnection (multiplexed, id rewritten)
//   bytes ◄─ response frame with the client's requestId ◄──┘ (any order)
//
// Requests of one connection run concurrently and their responses leave in
// the order they arrive. Bodies are never decoded: a response is forwarded
// as the provider wrote it, with only the requestId restored; the sidecar's
// own answers (no route, timeout, upstream failure, overflow) are Bolt
// error responses framed like the request (FramingOf; see bolt_error.h).
//
// A malformed frame ends the connection: if its fixed header names a
// two-way request, that request gets a CODEC_EXCEPTION response; the
// connection stops reading, finishes the requests in flight, then closes.
// A client that half-closes still gets its responses.
//
// Ownership: created by the listener glue, which owns it and destroys it
// after `on_finished` (posted, never inside its own callbacks). It owns its
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

#include "sidecar/bolt/bolt_route_table.h"
#include "sidecar/bolt/bolt_stats.h"
#include "sidecar/bolt/bolt_upstream.h"
#include "sidecar/cluster/cluster.h"
#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/stats/local_metrics.h"

namespace cairn::sidecar {
class AccessLog;
}

namespace cairn::sidecar::bolt {

// Everything a listener's Bolt connections share (read-only after start).
struct BoltListenerContext {
  std::string name;
  BoltRouteTable routes;
  BoltLimits limits;
  AccessLog* access_log = nullptr;  // null: off
  // By worker index (each worker updates only its own cells); empty: off.
  std::vector<LocalCounter*> downstream_requests;
  std::vector<LocalGauge*> downstream_connections;
  // The listener's request_header_timeout_ms and idle_timeout_ms (0: off).
  // A frame must be whole within frame_timeout of its first byte (a client
  // that stops mid-frame, slowloris-style, is closed); a connection with no
  // call in flight that receives nothing, not even a heartbeat, for
  // idle_timeout is closed (from accept, so this also bounds a TLS handshake
  // that never ends). Bolt has no GOAWAY: clients reconnect on their next
  // call, as they do after any close.
  std::chrono::milliseconds frame_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  // By worker index, like the counters above; empty: not counted.
  std::vector<LocalCounter*> frame_timeouts;
  std::vector<LocalCounter*> idle_timeouts;
};

// One worker's Bolt state, shared by its connections. Destroy it after every
// connection manager of the worker and before the worker's clusters.
struct BoltWorkerContext {
  BoltWorkerContext(Worker& worker, WorkerClusters& clusters, BoltStats& stats)
      : worker(worker), clusters(clusters), upstreams(worker), stats(stats) {}
  Worker& worker;
  WorkerClusters& clusters;
  BoltUpstreams upstreams;
  BoltStatsCache stats;
};

class BoltRequest;

class BoltConnectionManager : private Connection::Handler {
 public:
  // Reads pause while more than this many response bytes wait for a slow
  // client, so it cannot make the sidecar buffer without bound.
  static constexpr size_t kHighWatermark = 1 << 20;

  BoltConnectionManager(std::unique_ptr<Connection> connection, const BoltListenerContext& context,
                        BoltWorkerContext& worker,
                        std::function<void(BoltConnectionManager*)> on_finished);
  ~BoltConnectionManager() override;
  BoltConnectionManager(const BoltConnectionManager&) = delete;
  BoltConnectionManager& operator=(const BoltConnectionManager&) = delete;

  void Start();
  // Graceful close. Bolt has no GOAWAY, and peers routing here stop sending
  // only once the registry told them this sidecar left, a moment after the
  // drain began; so the connection keeps serving and closes once it has
  // been quiet (no call in flight, none started) for kDrainQuietPeriod.
  void Drain();
  static constexpr std::chrono::milliseconds kDrainQuietPeriod{1000};
  size_t active_requests() const { return requests_.size(); }

 private:
  friend class BoltRequest;

  // Connection::Handler
  void OnRead(std::string_view data) override;
  void OnClose(const std::error_code& ec) override;
  void OnWriteDrained() override;
  bool OnPeerHalfClosed() override;

  void HandleFrame(const BoltFrameView& frame);
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

  // Called by BoltRequest.
  // Writes a response frame, its requestId set to `request_id`.
  void WriteResponse(std::string_view frame, uint32_t request_id);
  void WriteError(const BoltFraming& framing, uint32_t request_id, BoltStatus status,
                  std::string_view message);
  // Destroys `request` (it is calling: it returns at once).
  void RequestDone(BoltRequest* request);

  std::unique_ptr<Connection> connection_;
  const BoltListenerContext& context_;
  BoltWorkerContext& worker_;
  std::function<void(BoltConnectionManager*)> on_finished_;
  BoltDecoder decoder_;
  std::string out_;
  std::list<BoltRequest> requests_;
  bool stopped_reading_ = false;  // closing, half-closed or broken: no new requests
  uint64_t calls_started_ = 0;    // drain: was the connection quiet?
  Worker::TimerId drain_timer_ = 0;
  bool paused_ = false;  // backpressure (kHighWatermark)
  bool finished_ = false;

  class BoltTimeout final : public TimeoutNode {
   public:
    BoltTimeout(BoltConnectionManager& owner, void (BoltConnectionManager::*fire)())
        : owner_(owner), fire_(fire) {}

   private:
    void OnTimeout() override { (owner_.*fire_)(); }
    BoltConnectionManager& owner_;
    void (BoltConnectionManager::*fire_)();
  };
  // Last members: destroyed (and so unlinked) first.
  BoltTimeout frame_timeout_{*this, &BoltConnectionManager::OnFrameTimeout};
  BoltTimeout idle_timeout_{*this, &BoltConnectionManager::OnIdleTimeout};
};

}  // namespace cairn::sidecar::bolt
