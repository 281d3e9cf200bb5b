// BoltRequest: one Bolt request (two-way or oneway) of a downstream
// connection, from its frame to its response: route by service, the
// deadline, upstream attempts with retries, metrics and the access log.
//
// Deadline: the frame's own timeout, or the route's timeout_ms when the
// frame says 0 or less; retries included. When it passes the client gets a
// TIMEOUT response and a late upstream response is dropped. Oneway requests
// have no deadline and no response: they end once written upstream.
//
// Retries (BoltRetryPolicy), each on another host when there is one: after a
// failed connect (the frame never left), and, with on_reset, after the
// upstream connection closed with the request written. Without a retry the
// client gets ERROR_COMM naming the host and the reason. Connect failures
// and resets count towards the host's outlier ejection; a response counts
// as a success.
//
// Ownership: owned by its BoltConnectionManager (in its request list).
// Thread-safety: worker only.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "sidecar/bolt/bolt_stats.h"
#include "sidecar/bolt/bolt_upstream.h"
#include "sidecar/cluster/cluster.h"
#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/network/timeout_list.h"

namespace cairn::sidecar::bolt {

class BoltConnectionManager;

// The duration of the TimeoutList a deadline of `ms` joins. The worker keeps
// one list per distinct duration, and timeouts come from the network, so they
// are rounded up to 7 significant bits (exact up to 128 ms, under 1.6% late
// above): at most ~1,700 lists per worker whatever clients send.
std::chrono::milliseconds QuantizeTimeout(uint32_t ms);

class BoltRequest : private BoltPoolCallbacks, private BoltUpstreamCallbacks, private TimeoutNode {
 public:
  explicit BoltRequest(BoltConnectionManager& manager);
  ~BoltRequest() override;
  BoltRequest(const BoltRequest&) = delete;
  BoltRequest& operator=(const BoltRequest&) = delete;

  // Routes and forwards `frame` (a request or oneway, not a heartbeat),
  // valid only during the call. May finish, and destroy this, before it
  // returns: the caller must not touch the request afterwards.
  void Start(const BoltFrameView& frame);

  // The manager's handle, for RequestDone.
  std::list<BoltRequest>::iterator self;

 private:
  // BoltPoolCallbacks
  void OnPoolReady(BoltUpstreamConnection& conn) override;
  void OnPoolFailure(std::string_view reason) override;
  // BoltUpstreamCallbacks
  void OnUpstreamResponse(const BoltFrameView& frame) override;
  void OnUpstreamFailure(std::string_view reason) override;
  // TimeoutNode
  void OnTimeout() override;

  void TryUpstream();
  void Forward(BoltUpstreamConnection& conn);
  bool MaybeRetry();
  void Detach();
  void Report(bool success);
  // The sidecar's own answer (none for oneway), then Finish.
  void Fail(BoltStatus status, std::string_view message);
  // Counts and logs the outcome and hands this to the manager (destroyed).
  void Finish(BoltStatus status, bool answered);
  void LogAccess(BoltStatus status, bool answered);
  std::string_view FrameBytes() const { return frame_.empty() ? start_frame_ : frame_; }
  std::string HostName() const;

  BoltConnectionManager& manager_;
  BoltFraming framing_;
  uint32_t downstream_id_ = 0;
  bool oneway_ = false;
  uint32_t timeout_ms_ = 0;
  BoltServiceStats* stats_ = nullptr;
  const BoltRoute* route_ = nullptr;
  ClusterWorker* cluster_ = nullptr;
  bool counted_request_ = false;
  bool counted_retry_ = false;

  // The frame: a view during Start; a copy once it must outlive the read
  // (waiting for a connect, or kept for retries after a reset).
  std::string_view start_frame_;
  std::string frame_;

  upstream::HostPtr host_;
  upstream::ActiveRequestHandle host_request_;
  BoltHostPool* waiting_pool_ = nullptr;  // waiting for a connect
  BoltUpstreamConnection* upstream_ = nullptr;
  uint32_t upstream_id_ = 0;
  uint32_t attempts_ = 0;
  bool attempt_reported_ = false;
  std::chrono::steady_clock::time_point start_time_;
};

}  // namespace cairn::sidecar::bolt
