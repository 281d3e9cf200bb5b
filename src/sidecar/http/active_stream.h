// ActiveStream: one request on a downstream connection, from its head to the
// end of its response, including the upstream attempts (with retries) and
// the route timeout.
//
// Ownership: owned by its HttpConnectionManager, which it reaches through
// HttpStreamOwner only. Thread-safety: worker only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/identity.h"
#include "sidecar/cluster/cluster.h"
#include "sidecar/cluster/upstream_attempts.h"
#include "sidecar/codec/codec.h"
#include "sidecar/http/route_table.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/pool/connection_pool.h"
#include "sidecar/stats/access_log.h"

namespace cairn::sidecar {

// What a stream needs from the connection it came on (the connection
// manager implements it): where it runs, how it answers, backpressure.
class HttpStreamOwner {
 public:
  virtual ~HttpStreamOwner() = default;
  virtual Worker& worker() = 0;
  virtual WorkerClusters& clusters() = 0;
  virtual const RouteTable& routes() const = 0;
  virtual const std::string& listener_name() const = 0;
  virtual AccessLog* access_log() const = 0;  // null: off
  // The client's verified certificate identity (TLS), else null.
  virtual const Identity* peer_identity() const = 0;
  // Counts a request on the listener (downstream requests metric).
  virtual void CountRequest() = 0;

  // The response, through the connection's codec.
  virtual void EncodeHead(StreamId id, const ResponseHead& head, bool end_stream) = 0;
  virtual void EncodeData(StreamId id, std::string_view data, bool end_stream) = 0;
  virtual void EncodeTrailers(StreamId id, const HeaderList& trailers) = 0;
  virtual void ResetDownstream(StreamId id) = 0;
  // The stream is done: the owner destroys it on a later loop turn.
  virtual void StreamFinished(StreamId id) = 0;

  // Backpressure. Bytes waiting for the client.
  virtual size_t queued_bytes() const = 0;
  // `id` hears OnDownstreamDrained once the queue empties (once per call).
  virtual void NotifyWhenDrained(StreamId id) = 0;
  // Stop / resume reading requests: only without multiplexing (HTTP/1),
  // where the connection carries one request body at a time.
  virtual bool multiplexed() const = 0;
  virtual void PauseReading() = 0;
  virtual void ResumeReading() = 0;
};

class ActiveStream : private PoolClient, private UpstreamStreamCallbacks, private TimeoutNode {
 public:
  ActiveStream(HttpStreamOwner& owner, StreamId id, RequestHead&& head, bool end_stream);
  ~ActiveStream() override;

  // Routes and starts the first attempt (or answers directly).
  void Start();
  void OnRequestData(std::string_view data, bool end_stream);
  void OnRequestTrailers(HeaderList&& trailers);
  // The downstream reset or closed: drop everything quietly.
  void OnDownstreamReset();
  bool started() const { return started_; }
  // The client took every queued byte: resume a paused upstream.
  void OnDownstreamDrained();

  // Backpressure threshold: a stream stops reading the side that produces
  // (client request body, or upstream response body) while more than this
  // waits to be written to the other side, and resumes once it is written.
  // Per stream; so a slow reader costs about this much memory, not a body.
  static constexpr size_t kHighWatermark = 1 << 20;

 private:
  // PoolClient
  void OnPoolReady(UpstreamConnection& conn) override;
  void OnPoolFailure(PoolFailure failure, const std::string& reason) override;
  // UpstreamStreamCallbacks
  void OnUpstreamHead(ResponseHead&& head, bool end_stream) override;
  void OnUpstreamData(std::string_view data, bool end_stream) override;
  void OnUpstreamTrailers(HeaderList&& trailers) override;
  void OnUpstreamReset(ResetReason reason) override;
  void OnUpstreamDrained() override;
  void ApplyRequestBackpressure();

  void TryUpstream();
  bool MaybeRetry(const char* why);
  void DetachUpstream();
  void OnTimeout() override;  // TimeoutNode
  void SendLocalReply(int status, std::string_view body);
  void Complete();
  std::string PeerForLog() const;
  void LogAccess();

  HttpStreamOwner& manager_;
  const StreamId id_;
  RequestHead head_;
  bool request_complete_;
  std::string body_;           // kept for retries (and while waiting for a connection)
  bool body_retained_ = true;  // false once body_ outgrew the retry limit
  std::optional<HeaderList> request_trailers_;
  const Route* route_ = nullptr;
  ClusterWorker* cluster_ = nullptr;  // the route's (found; counted once attempts_ began)
  UpstreamAttempts attempts_;

  ConnectionPool* waiting_pool_ = nullptr;  // attached, not yet ready
  UpstreamConnection* upstream_ = nullptr;
  StreamId upstream_stream_ = 0;

  bool paused_client_ = false;    // reading the client paused for this body
  bool paused_upstream_ = false;  // reading upstream_ paused for this response
  bool started_ = false;
  bool response_started_ = false;
  bool done_ = false;
  int status_ = 0;
  size_t response_bytes_ = 0;
  std::chrono::steady_clock::time_point start_time_;
};

}  // namespace cairn::sidecar
