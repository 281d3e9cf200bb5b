// HttpConnectionManager: one downstream HTTP connection (HTTP/1.1 or
// HTTP/2, detected from its first bytes when the listener says "auto").
//
//   bytes ─► ServerCodec ─► ActiveStream (one per request) ─► RouteTable
//                                 │ direct response, or
//                                 ▼
//            ClusterWorker: LB picks a host ─► ConnectionPool ─► UpstreamConnection
//                                 │            (ClientCodec of the cluster's protocol)
//   bytes ◄─ ServerCodec ◄────────┘ response head / data / trailers
//
// Requests of one HTTP/1 connection run one at a time, in order (pipelined
// requests wait, so responses leave in request order); HTTP/2 streams run
// concurrently. Each request has the route's timeout and retries (connect
// failure, 5xx, reset) while nothing of the response has been sent.
//
// Limits against slow or idle clients (timeouts of the listener context):
//  - request header timeout: from accept, and from the first byte of each
//    later request (HTTP/1 keep-alive) or HEADERS block (HTTP/2), the head
//    must be complete within request_header_timeout, however slowly its bytes
//    trickle in (slowloris). Then HTTP/1 gets 408 (when a byte of the request
//    came), HTTP/2 a GOAWAY, and the connection closes. An HTTP/2 client's
//    preface and SETTINGS count as the first head.
//  - idle timeout: no request in flight, no head arriving, and no byte for
//    idle_timeout: the connection closes (HTTP/2: after a GOAWAY).
// Both ride the worker's TimeoutList of their duration (O(1) per re-arm).
//
// Ownership: made by the listener's session factory and owned by the
// worker's ConnectionHandler, which destroys it a loop turn after
// `on_finished`.
// Thread-safety: its worker's thread only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "sidecar/cluster/cluster.h"
#include "sidecar/codec/codec.h"
#include "sidecar/http/active_stream.h"
#include "sidecar/http/route_table.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/connection_handler.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/stats/access_log.h"
#include "sidecar/stats/local_metrics.h"

namespace cairn::sidecar {

// Everything a listener's connections share (read-only after start).
struct HttpListenerContext {
  std::string name;
  std::string protocol;  // auto | http1 | http2
  RouteTable routes;
  CodecLimits limits;
  AccessLog* access_log = nullptr;  // null: off
  // By worker index (each worker updates only its own cells); empty: off.
  std::vector<LocalCounter*> downstream_requests;
  std::vector<LocalGauge*> downstream_connections;
  // HTTP/2 write batching (ListenerConfig::http2_flush_delay_us): while other
  // streams of the connection are in flight, a ready response waits up to
  // this long, or until http2_flush_batch responses are ready (0: no count
  // limit), so that one send() carries several. A zero delay: every response
  // leaves at the end of the loop turn that produced it.
  std::chrono::microseconds http2_flush_delay{0};
  uint32_t http2_flush_batch = 0;
  // ListenerConfig::request_header_timeout_ms / idle_timeout_ms (0: off).
  std::chrono::milliseconds request_header_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  // Connections closed by those timeouts, by worker index; empty: off.
  std::vector<LocalCounter*> header_timeouts = {};
  std::vector<LocalCounter*> idle_timeouts = {};
};

class HttpConnectionManager : public DownstreamSession,
                              private Connection::Handler,
                              private ServerCodecCallbacks,
                              private HttpStreamOwner {
 public:
  HttpConnectionManager(Worker& worker, std::unique_ptr<Connection> connection,
                        const HttpListenerContext& context, WorkerClusters& clusters,
                        std::function<void(HttpConnectionManager*)> on_finished);
  ~HttpConnectionManager() override;

  void Start() override;
  // Graceful drain: HTTP/1 closes after the current response; HTTP/2 sends
  // GOAWAY via the codec's close handling.
  void Drain() override;

 private:
  // Connection::Handler
  void OnRead(std::string_view data) override;
  void OnClose(const std::error_code& ec) override;
  bool OnPeerHalfClosed() override;
  void OnWriteDrained() override;
  // ServerCodecCallbacks
  void OnRequestHead(StreamId stream, RequestHead&& head, bool end_stream) override;
  void OnRequestData(StreamId stream, std::string_view data, bool end_stream) override;
  void OnRequestTrailers(StreamId stream, HeaderList&& trailers) override;
  void OnStreamReset(StreamId stream, ResetReason reason) override;

  bool DetectProtocol(std::string_view data);
  void Feed(std::string_view data);
  // HttpStreamOwner (what its streams call)
  Worker& worker() override { return worker_; }
  WorkerClusters& clusters() override { return clusters_; }
  const RouteTable& routes() const override { return context_.routes; }
  const std::string& listener_name() const override { return context_.name; }
  AccessLog* access_log() const override { return context_.access_log; }
  const Identity* peer_identity() const override { return connection_->peer_identity(); }
  void CountRequest() override;
  void EncodeHead(StreamId id, const ResponseHead& head, bool end_stream) override;
  void EncodeData(StreamId id, std::string_view data, bool end_stream) override;
  void EncodeTrailers(StreamId id, const HeaderList& trailers) override;
  void ResetDownstream(StreamId id) override;
  void StreamFinished(StreamId id) override;
  // Hands out_ to the connection, unless the batching hold applies.
  void Flush();
  // Hands out_ to the connection now and ends a hold.
  void WriteOut();
  bool ShouldHold() const;
  bool BatchFull() const;
  void Finish();
  void StartNextQueued();
  size_t queued_bytes() const override { return out_.size() + connection_->queued_bytes(); }
  void NotifyWhenDrained(StreamId id) override { drain_waiters_.push_back(id); }
  bool multiplexed() const override { return codec_ != nullptr && codec_->SupportsMultiplexing(); }
  void PauseReading() override;
  void ResumeReading() override;

  Worker& worker_;
  std::unique_ptr<Connection> connection_;
  const HttpListenerContext& context_;
  WorkerClusters& clusters_;
  std::function<void(HttpConnectionManager*)> on_finished_;
  std::unique_ptr<ServerCodec> codec_;
  std::string detect_buffer_;
  std::string out_;
  std::map<StreamId, std::unique_ptr<ActiveStream>> streams_;
  std::deque<StreamId> http1_queue_;  // HTTP/1: requests waiting for their turn
  // Finished streams, destroyed together on the next loop turn (they may be
  // on the call stack when they finish).
  std::vector<std::unique_ptr<ActiveStream>> finished_streams_;
  bool cleanup_posted_ = false;
  std::vector<StreamId> drain_waiters_;
  bool reads_paused_ = false;
  void Bury(std::unique_ptr<ActiveStream> stream);
  bool in_ingress_ = false;
  // Batching hold: the timer that ends it (0: not holding), and the
  // responses completed since it began.
  Worker::TimerId hold_timer_ = 0;
  uint32_t held_responses_ = 0;
  bool finished_ = false;
  bool draining_ = false;
  bool awaiting_first_bytes_ = true;  // nothing read yet on this connection
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  // Arms or cancels the two timeouts after anything that changes whether a
  // head is arriving or a request is in flight; `bytes_arrived` re-arms the
  // idle timeout.
  void UpdateTimeouts(bool bytes_arrived);
  void OnHeaderTimeout();
  void OnIdleTimeout();
  // Sends what the peer is owed (`response`, and for HTTP/2 a GOAWAY),
  // abandons every stream and closes once written.
  void CloseForTimeout(std::string_view response);
  class ConnectionTimeout final : public TimeoutNode {
   public:
    ConnectionTimeout(HttpConnectionManager& owner, void (HttpConnectionManager::*fire)())
        : owner_(owner), fire_(fire) {}

   private:
    void OnTimeout() override { (owner_.*fire_)(); }
    HttpConnectionManager& owner_;
    void (HttpConnectionManager::*fire_)();
  };
  // Last members: destroyed (and so unlinked) first.
  ConnectionTimeout header_timeout_{*this, &HttpConnectionManager::OnHeaderTimeout};
  ConnectionTimeout idle_timeout_{*this, &HttpConnectionManager::OnIdleTimeout};
};

}  // namespace cairn::sidecar
