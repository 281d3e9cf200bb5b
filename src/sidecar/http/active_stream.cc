#include "sidecar/http/active_stream.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

// Request bodies up to this size are kept so that the request can be
// retried; a larger body streams through and disables retries.
constexpr size_t kRetryBodyLimit = 64 * 1024;

uint64_t NextRandom() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

}  // namespace

ActiveStream::ActiveStream(HttpStreamOwner& owner, StreamId id, RequestHead&& head, bool end_stream)
    : manager_(owner),
      id_(id),
      head_(std::move(head)),
      request_complete_(end_stream),
      start_time_(std::chrono::steady_clock::now()) {}

ActiveStream::~ActiveStream() {
  TimeoutNode::Cancel();
  DetachUpstream();
}

void ActiveStream::Start() {
  started_ = true;
  manager_.CountRequest();
  route_ = manager_.routes().Match(head_);
  if (route_ == nullptr) {
    SendLocalReply(404, "no route matches this request\n");
    return;
  }
  if (!route_->allow.empty() && !AllowListAdmits(route_->allow, manager_.peer_identity())) {
    const Identity* peer = manager_.peer_identity();
    SendLocalReply(403, absl::StrCat("caller ", peer != nullptr ? peer->Name() : "anonymous",
                                     " is not allowed on this route\n"));
    return;
  }
  if (route_->direct_response) {
    SendLocalReply(route_->direct_response->status, route_->direct_response->body);
    return;
  }
  const std::string& cluster_name = RouteTable::PickCluster(*route_, NextRandom());
  cluster_ = manager_.clusters().Find(cluster_name);
  if (cluster_ == nullptr) {
    SendLocalReply(503, "cluster not found\n");
    return;
  }
  if (!attempts_.Begin(*cluster_)) {
    SendLocalReply(503, "upstream overflow: too many requests in flight\n");
    return;
  }
  if (route_->timeout_ms > 0) {
    manager_.worker().Timeouts(std::chrono::milliseconds(route_->timeout_ms)).Add(this);
  }
  TryUpstream();
}

void ActiveStream::TryUpstream() {
  upstream::LbContext ctx;
  if (!route_->hash_header.empty()) {
    if (const std::string* v = FindHeader(head_.headers, route_->hash_header)) {
      ctx.hash_key = upstream::HashKey(*v);
    }
  }
  upstream::HostPtr host = attempts_.NextHost(ctx);
  if (host == nullptr) {
    SendLocalReply(503, "no healthy upstream\n");
    return;
  }
  ConnectionPool& pool = cluster_->PoolFor(host);
  waiting_pool_ = &pool;
  pool.Attach(this);  // may call OnPoolReady / OnPoolFailure synchronously
}

void ActiveStream::OnPoolReady(UpstreamConnection& conn) {
  waiting_pool_ = nullptr;
  upstream_ = &conn;
  bool end_with_head = request_complete_ && body_.empty() && !request_trailers_;
  upstream_stream_ = conn.StartStream(head_, end_with_head, this);
  if (upstream_stream_ == 0) {
    upstream_ = nullptr;
    SendLocalReply(502, "the request cannot be sent to this upstream\n");
    return;
  }
  if (end_with_head) return;
  if (!body_.empty() || request_complete_) {
    conn.SendData(upstream_stream_, body_, request_complete_ && !request_trailers_);
    if (!body_retained_) body_.clear();
    if (paused_client_) conn.NotifyWhenDrained(upstream_stream_);  // resume once it is sent
  }
  if (request_trailers_ && upstream_ != nullptr) {
    conn.SendTrailers(upstream_stream_, *request_trailers_);
  }
}

void ActiveStream::OnPoolFailure(PoolFailure failure, const std::string& reason) {
  waiting_pool_ = nullptr;
  if (failure == PoolFailure::kOverflow) {
    cluster_->stats().overflows.Increment();
    SendLocalReply(503, "upstream overflow: too many requests waiting for a connection\n");
    return;
  }
  cluster_->stats().errors.Increment();
  attempts_.Report(false);
  if (route_->retry.on_connect_failure && MaybeRetry("connect failure")) return;
  SendLocalReply(503, absl::StrCat("upstream connect error: ", reason, "\n"));
}

bool ActiveStream::MaybeRetry(const char* /*why*/) {
  if (response_started_ || done_ || !body_retained_) return false;
  if (!attempts_.TakeRetry(route_->retry.attempts)) return false;
  DetachUpstream();
  TryUpstream();
  return true;
}

void ActiveStream::OnRequestData(std::string_view data, bool end_stream) {
  request_complete_ = end_stream;
  // Keep the body while no upstream stream exists yet (it is sent on
  // OnPoolReady) and, up to the retry limit, for retries.
  if (upstream_ == nullptr || body_retained_) body_.append(data);
  if (body_.size() > kRetryBodyLimit) body_retained_ = false;
  if (upstream_ != nullptr) {
    upstream_->SendData(upstream_stream_, data, end_stream);
    if (!body_retained_) body_.clear();
  }
  if (!end_stream) ApplyRequestBackpressure();
}

// The client sends faster than the upstream takes (or than a connection
// comes): stop reading the client (HTTP/1 only; an HTTP/2 client is bounded
// by its stream window) until the upstream queue drains.
void ActiveStream::ApplyRequestBackpressure() {
  if (paused_client_ || manager_.multiplexed()) return;
  size_t waiting = upstream_ != nullptr ? upstream_->queued_bytes() : body_.size();
  if (waiting <= kHighWatermark) return;
  paused_client_ = true;
  manager_.PauseReading();
  if (upstream_ != nullptr) upstream_->NotifyWhenDrained(upstream_stream_);
}

void ActiveStream::OnUpstreamDrained() {
  if (!paused_client_) return;
  paused_client_ = false;
  manager_.ResumeReading();
}

void ActiveStream::OnDownstreamDrained() {
  if (!paused_upstream_) return;
  paused_upstream_ = false;
  if (upstream_ != nullptr) upstream_->ResumeReading();
}

void ActiveStream::OnRequestTrailers(HeaderList&& trailers) {
  request_complete_ = true;
  request_trailers_ = std::move(trailers);
  if (upstream_ != nullptr) upstream_->SendTrailers(upstream_stream_, *request_trailers_);
}

void ActiveStream::OnUpstreamHead(ResponseHead&& head, bool end_stream) {
  if (head.status >= 500) {
    cluster_->stats().responses_5xx.Increment();
    // One outcome per attempt: a 5xx head followed by a reset is one failure.
    attempts_.Report(false);
    if (route_->retry.on_5xx && request_complete_) {
      if (!end_stream) {
        // Drop this response: the stream is abandoned (HTTP/1 closes it).
        UpstreamConnection* conn = upstream_;
        StreamId stream = upstream_stream_;
        upstream_ = nullptr;
        if (MaybeRetry("5xx")) {
          if (conn != nullptr) conn->Abandon(stream);
          return;
        }
        upstream_ = conn;
      } else {
        upstream_ = nullptr;
        if (MaybeRetry("5xx")) return;
      }
    }
  } else {
    attempts_.Report(true);
  }
  response_started_ = true;
  status_ = head.status;
  if (end_stream) upstream_ = nullptr;
  manager_.EncodeHead(id_, head, end_stream);
  if (end_stream) Complete();
}

void ActiveStream::OnUpstreamData(std::string_view data, bool end_stream) {
  if (end_stream) upstream_ = nullptr;
  response_bytes_ += data.size();
  UpstreamConnection* upstream = upstream_;
  manager_.EncodeData(id_, data, end_stream);
  if (end_stream) {
    Complete();
    return;
  }
  // The client reads slower than the upstream sends: stop reading this
  // upstream connection (not when multiplexed: it would stall other
  // streams) until the client's queue drains.
  if (!paused_upstream_ && upstream != nullptr && !upstream->multiplexed() &&
      manager_.queued_bytes() > kHighWatermark) {
    paused_upstream_ = true;
    upstream->PauseReading();
    manager_.NotifyWhenDrained(id_);
  }
}

void ActiveStream::OnUpstreamTrailers(HeaderList&& trailers) {
  upstream_ = nullptr;
  manager_.EncodeTrailers(id_, trailers);
  Complete();
}

void ActiveStream::OnUpstreamReset(ResetReason reason) {
  upstream_ = nullptr;
  cluster_->stats().errors.Increment();
  attempts_.Report(false);
  if (!response_started_) {
    if (route_->retry.on_reset && MaybeRetry("reset")) return;
    SendLocalReply(502, reason == ResetReason::kProtocolError
                            ? "upstream sent a malformed response\n"
                            : "upstream reset the stream before responding\n");
    return;
  }
  // Part of the response is out: all we can do is cut the downstream stream.
  done_ = true;
  manager_.ResetDownstream(id_);
  manager_.StreamFinished(id_);
}

void ActiveStream::OnTimeout() {
  if (done_) return;
  cluster_->stats().timeouts.Increment();
  cluster_->stats().errors.Increment();
  DetachUpstream();
  if (!response_started_) {
    SendLocalReply(504, "upstream request timeout\n");
    return;
  }
  done_ = true;
  manager_.ResetDownstream(id_);
  manager_.StreamFinished(id_);
}

void ActiveStream::DetachUpstream() {
  if (waiting_pool_ != nullptr) {
    waiting_pool_->Cancel(this);
    waiting_pool_ = nullptr;
  }
  if (upstream_ != nullptr) {
    UpstreamConnection* conn = upstream_;
    upstream_ = nullptr;
    conn->Abandon(upstream_stream_);
  }
}

void ActiveStream::OnDownstreamReset() {
  done_ = true;
  DetachUpstream();
}

void ActiveStream::SendLocalReply(int status, std::string_view body) {
  DetachUpstream();
  response_started_ = true;
  status_ = status;
  ResponseHead head;
  head.status = status;
  head.headers.emplace_back("content-type", "text/plain; charset=utf-8");
  head.headers.emplace_back("content-length", std::to_string(body.size()));
  manager_.EncodeHead(id_, head, body.empty());
  if (!body.empty()) manager_.EncodeData(id_, body, true);
  response_bytes_ = body.size();
  Complete();
}

void ActiveStream::Complete() {
  if (done_) return;
  done_ = true;
  TimeoutNode::Cancel();
  if (attempts_.cluster() != nullptr) {
    cluster_->stats().latency.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count());
  }
  LogAccess();
  manager_.StreamFinished(id_);
}

// " peer=<identity>" on TLS connections (who called), else nothing.
std::string ActiveStream::PeerForLog() const {
  const Identity* peer = manager_.peer_identity();
  return peer != nullptr ? absl::StrCat(" peer=", peer->Name()) : std::string();
}

void ActiveStream::LogAccess() {
  AccessLog* log = manager_.access_log();
  if (log == nullptr) return;
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - start_time_)
                    .count();
  log->Log(absl::StrCat(manager_.listener_name(), " ", head_.method, " ", head_.authority,
                        head_.path, " ", status_, " ", response_bytes_, "B ", micros, "us ",
                        cluster_ != nullptr ? cluster_->config().name : "-", " ",
                        attempts_.HostName(), " attempts=", attempts_.attempts(), PeerForLog()));
}

}  // namespace cairn::sidecar
