// RpcRequest: one RPC request (two-way or oneway, any RpcCodec) of a
// downstream connection, from its frame to its response: route by service,
// the deadline, upstream attempts with retries, metrics and the access log.
//
// Deadline: the frame's own timeout, or the route's timeout_ms when the
// frame says none (0 or less); retries included. When it passes the client
// gets the codec's timeout error and a late upstream response is dropped.
// Oneway requests have no deadline and no response: they end once written
// upstream.
//
// Retries (RpcRetryPolicy), each on another host when there is one: after a
// failed connect (the frame never left), and, with on_reset, after the
// upstream connection closed with the request written. Without a retry the
// client gets the codec's upstream-failure error naming the host and the
// reason. Connect failures and resets count towards the host's outlier
// ejection; a response counts as a success.
//
// Ownership: owned by its RpcConnectionManager (in its request list), which
// it reaches through RpcRequestOwner only. Thread-safety: worker only.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "sidecar/cluster/cluster.h"
#include "sidecar/cluster/upstream_attempts.h"
#include "sidecar/codec/rpc_codec.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/pool/rpc_pool.h"
#include "sidecar/rpc/rpc_route_table.h"
#include "sidecar/rpc/rpc_stats.h"
#include "sidecar/stats/access_log.h"

namespace cairn::sidecar {

class RpcRequest;

// What a request needs from the connection it came on (the connection
// manager implements it).
class RpcRequestOwner {
 public:
  virtual ~RpcRequestOwner() = default;
  virtual Worker& worker() = 0;
  virtual WorkerClusters& clusters() = 0;
  virtual const RpcCodec& codec() const = 0;
  virtual const RpcRouteTable& routes() const = 0;
  virtual RpcStatsCache& stats() = 0;
  virtual const std::string& listener_name() const = 0;
  virtual AccessLog* access_log() const = 0;  // null: off
  // Counts a request on the listener (downstream requests metric).
  virtual void CountRequest() = 0;
  // Writes an upstream response frame with its request id set to `request_id`.
  virtual void WriteResponse(std::string_view frame, uint64_t request_id) = 0;
  // Writes the sidecar's own error response.
  virtual void WriteError(uint64_t framing, uint64_t request_id, RpcError error,
                          std::string_view message) = 0;
  // `request` is finished: the owner destroys it (it is calling: it returns at once).
  virtual void RequestDone(RpcRequest* request) = 0;
};

// The duration of the TimeoutList a deadline of `ms` joins. The worker keeps
// one list per distinct duration, and timeouts come from the network, so they
// are rounded up to 7 significant bits (exact up to 128 ms, under 1.6% late
// above): at most ~1,700 lists per worker whatever clients send.
std::chrono::milliseconds QuantizeTimeout(uint32_t ms);

class RpcRequest : private RpcPoolCallbacks, private RpcUpstreamCallbacks, private TimeoutNode {
 public:
  explicit RpcRequest(RpcRequestOwner& owner);
  ~RpcRequest() override;
  RpcRequest(const RpcRequest&) = delete;
  RpcRequest& operator=(const RpcRequest&) = delete;

  // Routes and forwards `frame` (a request or oneway, not a heartbeat),
  // valid only during the call. May finish, and destroy this, before it
  // returns: the caller must not touch the request afterwards.
  void Start(const RpcMessage& frame);

  // The manager's handle, for RequestDone.
  std::list<RpcRequest>::iterator self;

 private:
  // RpcPoolCallbacks
  void OnPoolReady(RpcUpstreamConnection& conn) override;
  void OnPoolFailure(std::string_view reason) override;
  // RpcUpstreamCallbacks
  void OnUpstreamResponse(const RpcMessage& response) override;
  void OnUpstreamFailure(std::string_view reason) override;
  // TimeoutNode
  void OnTimeout() override;

  void TryUpstream();
  void Forward(RpcUpstreamConnection& conn);
  bool MaybeRetry();
  void Detach();
  // The sidecar's own answer (none for oneway), then Finish.
  void Fail(RpcError error, std::string_view message);
  // Counts and logs the outcome and hands this to the owner (destroyed).
  void Finish(uint32_t status, bool answered);
  void LogAccess(uint32_t status, bool answered);
  std::string_view FrameBytes() const { return frame_.empty() ? start_frame_ : frame_; }

  RpcRequestOwner& owner_;
  uint64_t framing_ = 0;
  uint64_t downstream_id_ = 0;
  bool oneway_ = false;
  uint32_t timeout_ms_ = 0;
  RpcServiceStats* stats_ = nullptr;
  const RpcRoute* route_ = nullptr;
  ClusterWorker* cluster_ = nullptr;  // the route's (found; counted once attempts_ began)
  UpstreamAttempts attempts_;

  // The frame: a view during Start; a copy once it must outlive the read
  // (waiting for a connect, or kept for retries after a reset).
  std::string_view start_frame_;
  std::string frame_;

  RpcHostPool* waiting_pool_ = nullptr;  // waiting for a connect
  RpcUpstreamConnection* upstream_ = nullptr;
  uint64_t upstream_id_ = 0;
  std::chrono::steady_clock::time_point start_time_;
};

}  // namespace cairn::sidecar
