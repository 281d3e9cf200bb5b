#include "sidecar/rpc/rpc_request.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

// Debian's abseil has its own string_view type (not std::string_view).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kPrefix[] = "cairn sidecar: ";

}  // namespace

std::chrono::milliseconds QuantizeTimeout(uint32_t ms) {
  constexpr int kBits = 7;
  const int width = std::bit_width(ms);
  if (width <= kBits) return std::chrono::milliseconds(ms);
  const int shift = width - kBits;
  const uint64_t step = uint64_t{1} << shift;
  const uint64_t rounded = ((uint64_t{ms} + step - 1) >> shift) << shift;
  return std::chrono::milliseconds(static_cast<int64_t>(rounded));
}

RpcRequest::RpcRequest(RpcRequestOwner& owner) : owner_(owner) {}

RpcRequest::~RpcRequest() {
  TimeoutNode::Cancel();
  Detach();
}

void RpcRequest::Start(const RpcMessage& frame) {
  start_time_ = std::chrono::steady_clock::now();
  framing_ = frame.framing;
  downstream_id_ = frame.request_id;
  oneway_ = frame.kind == RpcKind::kOneway;
  const std::string_view service = frame.service;
  stats_ = &owner_.stats().For(service);
  stats_->requests->Increment();
  owner_.CountRequest();

  route_ = owner_.routes().Match(service);
  if (route_ == nullptr) {
    Fail(RpcError::kNoRoute, absl::StrCat(kPrefix, "no route for service '", AV(service), "'"));
    return;
  }
  cluster_ = owner_.clusters().Find(route_->cluster);
  // The config allows only clusters of the listener's protocol; checked
  // again here because a frame must never reach a peer of another protocol.
  if (cluster_ == nullptr || cluster_->rpc_codec() != &owner_.codec()) {
    cluster_ = nullptr;
    Fail(RpcError::kNoRoute, absl::StrCat(kPrefix, "no cluster '", route_->cluster, "'"));
    return;
  }
  if (!attempts_.Begin(*cluster_)) {
    Fail(RpcError::kOverflow,
         absl::StrCat(kPrefix, "cluster ", route_->cluster, ": too many requests in flight"));
    return;
  }
  if (!oneway_) {
    timeout_ms_ = frame.timeout_ms > 0
                      ? static_cast<uint32_t>(std::min<int64_t>(frame.timeout_ms, UINT32_MAX))
                      : route_->timeout_ms;
    if (timeout_ms_ > 0) owner_.worker().Timeouts(QuantizeTimeout(timeout_ms_)).Add(this);
    // A reset may be retried: keep the bytes (the read buffer is reused).
    if (route_->retry.on_reset && route_->retry.attempts > 0) frame_.assign(frame.raw);
  }
  start_frame_ = frame.raw;
  TryUpstream();
  // `this` may be gone: nothing after this line.
}

void RpcRequest::TryUpstream() {
  upstream::HostPtr host = attempts_.NextHost();
  if (host == nullptr) {
    Fail(RpcError::kUpstreamFailure,
         absl::StrCat(kPrefix, "cluster ", route_->cluster, " has no provider"));
    return;
  }
  RpcHostPool& pool = cluster_->RpcPoolFor(host);
  if (RpcUpstreamConnection* conn = pool.ReadyConnection()) {
    Forward(*conn);
    return;
  }
  // Wait for the connect: the bytes must outlive this read.
  if (frame_.empty()) frame_.assign(start_frame_);
  if (!pool.Wait(this)) {
    cluster_->stats().overflows.Increment();
    Fail(RpcError::kOverflow, absl::StrCat(kPrefix, "cluster ", route_->cluster,
                                           ": too many requests waiting for a connection"));
    return;
  }
  waiting_pool_ = &pool;
}

void RpcRequest::Forward(RpcUpstreamConnection& conn) {
  const uint64_t id = conn.Send(FrameBytes(), oneway_ ? nullptr : this);
  if (id == 0) {
    Fail(RpcError::kCodecError, absl::StrCat(kPrefix, "the frame cannot be forwarded"));
    return;
  }
  if (oneway_) {
    Finish(/*status=*/0, /*answered=*/false);
    return;
  }
  upstream_ = &conn;
  upstream_id_ = id;
}

void RpcRequest::OnPoolReady(RpcUpstreamConnection& conn) {
  waiting_pool_ = nullptr;
  Forward(conn);
}

void RpcRequest::OnPoolFailure(std::string_view reason) {
  waiting_pool_ = nullptr;
  cluster_->stats().errors.Increment();
  attempts_.Report(false);
  if (route_->retry.on_connect_failure && MaybeRetry()) return;
  Fail(RpcError::kUpstreamFailure,
       absl::StrCat(kPrefix, "cannot connect to ", attempts_.HostName(), ": ", AV(reason)));
}

void RpcRequest::OnUpstreamResponse(const RpcMessage& response) {
  upstream_ = nullptr;
  attempts_.Report(true);
  owner_.WriteResponse(response.raw, downstream_id_);
  Finish(response.status, /*answered=*/true);
}

void RpcRequest::OnUpstreamFailure(std::string_view reason) {
  upstream_ = nullptr;
  cluster_->stats().errors.Increment();
  attempts_.Report(false);
  if (route_->retry.on_reset && MaybeRetry()) return;
  Fail(RpcError::kUpstreamFailure,
       absl::StrCat(kPrefix, "provider ", attempts_.HostName(), ": ", AV(reason)));
}

void RpcRequest::OnTimeout() {
  Detach();
  if (attempts_.cluster() != nullptr) {
    cluster_->stats().timeouts.Increment();
    cluster_->stats().errors.Increment();
  }
  Fail(RpcError::kTimeout, absl::StrCat(kPrefix, "no response from ", attempts_.HostName(),
                                        " within ", timeout_ms_, " ms"));
}

bool RpcRequest::MaybeRetry() {
  // Only with the bytes kept (see Start/TryUpstream) and within the policy.
  if (frame_.empty() || !attempts_.TakeRetry(route_->retry.attempts)) return false;
  Detach();
  TryUpstream();
  return true;
}

void RpcRequest::Detach() {
  if (waiting_pool_ != nullptr) {
    waiting_pool_->Cancel(this);
    waiting_pool_ = nullptr;
  }
  if (upstream_ != nullptr) {
    upstream_->Cancel(upstream_id_);
    upstream_ = nullptr;
  }
}

void RpcRequest::Fail(RpcError error, std::string_view message) {
  Detach();
  if (!oneway_) owner_.WriteError(framing_, downstream_id_, error, message);
  Finish(owner_.codec().ErrorStatus(error), /*answered=*/!oneway_);
}

void RpcRequest::Finish(uint32_t status, bool answered) {
  TimeoutNode::Cancel();
  if (answered) {
    owner_.stats().CountResponse(*stats_, status);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count();
    stats_->duration->Observe(seconds);
    if (attempts_.cluster() != nullptr) cluster_->stats().latency.Observe(seconds);
  }
  LogAccess(status, answered);
  owner_.RequestDone(this);  // destroys this
}

void RpcRequest::LogAccess(uint32_t status, bool answered) {
  AccessLog* log = owner_.access_log();
  if (log == nullptr) return;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start_time_)
                          .count();
  log->Log(absl::StrCat(owner_.listener_name(), " ", AV(owner_.codec().log_tag()),
                        oneway_ ? "-ONEWAY " : " ", stats_->label, " ",
                        answered ? AV(owner_.codec().StatusName(status)) : "-", " ", micros, "us ",
                        cluster_ != nullptr ? cluster_->config().name : "-", " ",
                        attempts_.HostName(), " attempts=", attempts_.attempts()));
}

}  // namespace cairn::sidecar
