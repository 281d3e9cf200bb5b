#include "sidecar/bolt/bolt_request.h"

#include <bit>

#include "absl/strings/str_cat.h"
#include "sidecar/bolt/bolt_connection_manager.h"
#include "sidecar/http/connection_manager.h"  // AccessLog

namespace cairn::sidecar::bolt {
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

BoltRequest::BoltRequest(BoltConnectionManager& manager) : manager_(manager) {}

BoltRequest::~BoltRequest() {
  TimeoutNode::Cancel();
  Detach();
  if (counted_retry_ && cluster_ != nullptr) cluster_->EndRetry();
  if (counted_request_ && cluster_ != nullptr) cluster_->EndRequest();
}

void BoltRequest::Start(const BoltFrameView& frame) {
  start_time_ = std::chrono::steady_clock::now();
  framing_ = FramingOf(frame);
  downstream_id_ = frame.request_id;
  oneway_ = frame.is_oneway();
  const BoltListenerContext& context = manager_.context_;
  const std::string_view service = RoutingService(frame);
  stats_ = &manager_.worker_.stats.For(service);
  stats_->requests->Increment();
  if (!context.downstream_requests.empty()) {
    context.downstream_requests[manager_.worker_.worker.index()]->Increment();
  }

  route_ = context.routes.Match(service);
  if (route_ == nullptr) {
    Fail(BoltStatus::kNoProcessor,
         absl::StrCat(kPrefix, "no route for service '", AV(service), "'"));
    return;
  }
  cluster_ = manager_.worker_.clusters.Find(route_->cluster);
  if (cluster_ == nullptr) {
    Fail(BoltStatus::kNoProcessor, absl::StrCat(kPrefix, "no cluster '", route_->cluster, "'"));
    return;
  }
  if (!cluster_->TryStartRequest()) {
    Fail(BoltStatus::kServerThreadpoolBusy,
         absl::StrCat(kPrefix, "cluster ", route_->cluster, ": too many requests in flight"));
    return;
  }
  counted_request_ = true;
  if (!oneway_) {
    timeout_ms_ =
        frame.timeout_ms > 0 ? static_cast<uint32_t>(frame.timeout_ms) : route_->timeout_ms;
    if (timeout_ms_ > 0) manager_.worker_.worker.Timeouts(QuantizeTimeout(timeout_ms_)).Add(this);
    // A reset may be retried: keep the bytes (the read buffer is reused).
    if (route_->retry.on_reset && route_->retry.attempts > 0) frame_.assign(frame.raw);
  }
  start_frame_ = frame.raw;
  TryUpstream();
  // `this` may be gone: nothing after this line.
}

void BoltRequest::TryUpstream() {
  ++attempts_;
  upstream::LbContext ctx;
  ctx.avoid = host_.get();
  host_ = cluster_->ChooseHost(ctx);
  if (host_ == nullptr) {
    Fail(BoltStatus::kErrorComm,
         absl::StrCat(kPrefix, "cluster ", route_->cluster, " has no provider"));
    return;
  }
  host_request_ = upstream::ActiveRequestHandle(host_);
  attempt_reported_ = false;
  cluster_->stats().requests.Increment();
  BoltHostPool& pool = manager_.worker_.upstreams.PoolFor(*cluster_, host_);
  if (BoltUpstreamConnection* conn = pool.ReadyConnection()) {
    Forward(*conn);
    return;
  }
  // Wait for the connect: the bytes must outlive this read.
  if (frame_.empty()) frame_.assign(start_frame_);
  if (!pool.Wait(this)) {
    cluster_->stats().overflows.Increment();
    Fail(BoltStatus::kServerThreadpoolBusy,
         absl::StrCat(kPrefix, "cluster ", route_->cluster,
                      ": too many requests waiting for a connection"));
    return;
  }
  waiting_pool_ = &pool;
}

void BoltRequest::Forward(BoltUpstreamConnection& conn) {
  const uint32_t id = conn.Send(FrameBytes(), oneway_ ? nullptr : this);
  if (id == 0) {
    Fail(BoltStatus::kCodecException, absl::StrCat(kPrefix, "the frame cannot be forwarded"));
    return;
  }
  if (oneway_) {
    Finish(BoltStatus::kSuccess, /*answered=*/false);
    return;
  }
  upstream_ = &conn;
  upstream_id_ = id;
}

void BoltRequest::OnPoolReady(BoltUpstreamConnection& conn) {
  waiting_pool_ = nullptr;
  Forward(conn);
}

void BoltRequest::OnPoolFailure(std::string_view reason) {
  waiting_pool_ = nullptr;
  cluster_->stats().errors.Increment();
  Report(false);
  if (route_->retry.on_connect_failure && MaybeRetry()) return;
  Fail(BoltStatus::kErrorComm,
       absl::StrCat(kPrefix, "cannot connect to ", HostName(), ": ", AV(reason)));
}

void BoltRequest::OnUpstreamResponse(const BoltFrameView& frame) {
  upstream_ = nullptr;
  Report(true);
  manager_.WriteResponse(frame.raw, downstream_id_);
  Finish(frame.status, /*answered=*/true);
}

void BoltRequest::OnUpstreamFailure(std::string_view reason) {
  upstream_ = nullptr;
  cluster_->stats().errors.Increment();
  Report(false);
  if (route_->retry.on_reset && MaybeRetry()) return;
  Fail(BoltStatus::kErrorComm, absl::StrCat(kPrefix, "provider ", HostName(), ": ", AV(reason)));
}

void BoltRequest::OnTimeout() {
  Detach();
  if (cluster_ != nullptr) {
    cluster_->stats().timeouts.Increment();
    cluster_->stats().errors.Increment();
  }
  Fail(BoltStatus::kTimeout,
       absl::StrCat(kPrefix, "no response from ", HostName(), " within ", timeout_ms_, " ms"));
}

bool BoltRequest::MaybeRetry() {
  // Only with the bytes kept (see Start/TryUpstream) and within the policy.
  if (frame_.empty() || attempts_ > route_->retry.attempts) return false;
  if (!counted_retry_) {
    if (!cluster_->TryStartRetry()) return false;
    counted_retry_ = true;
  }
  cluster_->stats().retries.Increment();
  Detach();
  TryUpstream();
  return true;
}

void BoltRequest::Detach() {
  if (waiting_pool_ != nullptr) {
    waiting_pool_->Cancel(this);
    waiting_pool_ = nullptr;
  }
  if (upstream_ != nullptr) {
    upstream_->Cancel(upstream_id_);
    upstream_ = nullptr;
  }
}

void BoltRequest::Report(bool success) {
  if (attempt_reported_ || host_ == nullptr) return;
  attempt_reported_ = true;
  cluster_->ReportResult(host_, success);
}

std::string BoltRequest::HostName() const {
  return host_ != nullptr ? host_->address_string() : std::string("-");
}

void BoltRequest::Fail(BoltStatus status, std::string_view message) {
  Detach();
  if (!oneway_) manager_.WriteError(framing_, downstream_id_, status, message);
  Finish(status, /*answered=*/!oneway_);
}

void BoltRequest::Finish(BoltStatus status, bool answered) {
  TimeoutNode::Cancel();
  if (answered) {
    manager_.worker_.stats.CountResponse(*stats_, status);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count();
    stats_->duration->Observe(seconds);
    if (counted_request_ && cluster_ != nullptr) cluster_->stats().latency.Observe(seconds);
  }
  LogAccess(status, answered);
  manager_.RequestDone(this);  // destroys this
}

void BoltRequest::LogAccess(BoltStatus status, bool answered) {
  AccessLog* log = manager_.context_.access_log;
  if (log == nullptr) return;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start_time_)
                          .count();
  log->Log(absl::StrCat(manager_.context_.name, " BOLT", oneway_ ? "-ONEWAY " : " ", stats_->label,
                        " ", answered ? AV(BoltStatusName(status)) : "-", " ", micros, "us ",
                        cluster_ != nullptr ? cluster_->config().name : "-", " ", HostName(),
                        " attempts=", attempts_));
}

}  // namespace cairn::sidecar::bolt
