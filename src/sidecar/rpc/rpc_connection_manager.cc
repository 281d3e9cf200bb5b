#include "sidecar/rpc/rpc_connection_manager.h"

#include <spdlog/spdlog.h>

#include <span>

namespace cairn::sidecar {

RpcStatsCache& RpcWorkerContext::StatsFor(RpcStats& stats) {
  std::unique_ptr<RpcStatsCache>& cache = stats_[&stats];
  if (cache == nullptr) cache = std::make_unique<RpcStatsCache>(stats);
  return *cache;
}

RpcConnectionManager::RpcConnectionManager(std::unique_ptr<Connection> connection,
                                           const RpcListenerContext& context,
                                           RpcWorkerContext& worker,
                                           std::function<void(RpcConnectionManager*)> on_finished)
    : connection_(std::move(connection)),
      context_(context),
      worker_(worker),
      stats_(worker.StatsFor(*context.stats)),
      on_finished_(std::move(on_finished)),
      decoder_(context.codec->NewDecoder(context.limits)) {
  Connection::Handler* handler = this;  // a private base: convert here
  connection_->SetHandler(handler);
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.worker().index()]->Increment();
  }
}

RpcConnectionManager::~RpcConnectionManager() {
  if (drain_timer_ != 0) worker_.worker().CancelTimer(drain_timer_);
  requests_.clear();  // each cancels its upstream wait
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.worker().index()]->Decrement();
  }
}

void RpcConnectionManager::Start() {
  connection_->StartReading();
  UpdateTimeouts(false);
}

void RpcConnectionManager::OnRead(std::string_view data) {
  std::string_view input = data;
  while (!finished_ && !stopped_reading_) {
    // A frame the decoder refuses began here if nothing was buffered before.
    const std::string_view frame_start =
        decoder_->buffered_bytes() == 0 ? input : std::string_view();
    absl::StatusOr<const RpcMessage*> next = decoder_->Next(input);
    if (!next.ok()) {
      OnProtocolError(next.status(), frame_start);
      return;
    }
    if (*next == nullptr) break;
    HandleFrame(**next);
  }
  UpdateTimeouts(true);
}

void RpcConnectionManager::HandleFrame(const RpcMessage& frame) {
  switch (frame.kind) {
    case RpcKind::kResponse:
    case RpcKind::kHeartbeatAck:
    case RpcKind::kGoingAway:
      // The sidecar sends clients nothing that they would answer, nor calls
      // that a client's read-only notice could stop.
      spdlog::debug("listener {}: dropping a response or notice frame from a client",
                    context_.name);
      return;
    case RpcKind::kHeartbeat:
      // Answered here: the client's liveness check is about the sidecar.
      codec().EncodeHeartbeatAck(frame, out_);
      if (!out_.empty()) connection_->Write(out_);
      return;
    case RpcKind::kRequest:
    case RpcKind::kOneway:
      break;
  }
  ++calls_started_;
  RpcRequestOwner& owner = *this;  // a private base: convert here
  RpcRequest& request = requests_.emplace_back(owner);
  request.self = std::prev(requests_.end());
  request.Start(frame);  // may finish (and destroy) it at once
}

void RpcConnectionManager::OnProtocolError(const absl::Status& status,
                                           std::string_view frame_start) {
  spdlog::debug("listener {}: closing {} after a protocol error: {}", context_.name,
                connection_->PeerAddress(), status.ToString());
  uint64_t framing = 0;
  uint64_t request_id = 0;
  if (codec().PeekTwoWayRequest(frame_start, framing, request_id)) {
    codec().EncodeError(framing, request_id, RpcError::kCodecError,
                        "cairn sidecar: " + std::string(status.message()), out_);
    connection_->Write(out_);
  }
  // The stream cannot be resynchronised: answer what is in flight, then close.
  stopped_reading_ = true;
  connection_->PauseReading();
  CloseWhenIdle();
}

void RpcConnectionManager::CountRequest() {
  if (!context_.downstream_requests.empty()) {
    context_.downstream_requests[worker_.worker().index()]->Increment();
  }
}

void RpcConnectionManager::WriteResponse(std::string_view frame, uint64_t request_id) {
  if (finished_) return;
  const size_t at = out_.size();
  out_.append(frame);
  // The frame came out of the decoder whole, so the rewrite cannot fail;
  // if it did, the client would get an answer it cannot match: drop it.
  if (!codec().RewriteRequestId(std::span<char>(out_.data() + at, frame.size()), request_id).ok()) {
    out_.resize(at);
    return;
  }
  connection_->Write(out_);
  if (connection_->queued_bytes() > kHighWatermark && !paused_) {
    paused_ = true;
    connection_->PauseReading();
  }
}

void RpcConnectionManager::WriteError(uint64_t framing, uint64_t request_id, RpcError error,
                                      std::string_view message) {
  if (finished_) return;
  codec().EncodeError(framing, request_id, error, message, out_);
  connection_->Write(out_);
}

void RpcConnectionManager::OnWriteDrained() {
  if (!paused_) return;
  paused_ = false;
  if (!stopped_reading_ && !finished_) connection_->StartReading();
}

void RpcConnectionManager::RequestDone(RpcRequest* request) {
  requests_.erase(request->self);
  if (stopped_reading_) {
    CloseWhenIdle();
  } else {
    UpdateTimeouts(false);
  }
}

void RpcConnectionManager::UpdateTimeouts(bool bytes_arrived) {
  if (finished_ || stopped_reading_) {
    frame_timeout_.Cancel();
    idle_timeout_.Cancel();
    return;
  }
  const bool in_frame = decoder_->buffered_bytes() > 0;
  if (in_frame && context_.frame_timeout.count() > 0) {
    // Never re-armed while it runs: trickling bytes must not extend it.
    if (!frame_timeout_.armed()) {
      worker_.worker().Timeouts(context_.frame_timeout).Add(&frame_timeout_);
    }
  } else {
    frame_timeout_.Cancel();
  }
  if (!in_frame && requests_.empty() && context_.idle_timeout.count() > 0) {
    if (bytes_arrived || !idle_timeout_.armed()) {
      worker_.worker().Timeouts(context_.idle_timeout).Add(&idle_timeout_);
    }
  } else {
    idle_timeout_.Cancel();
  }
}

void RpcConnectionManager::OnFrameTimeout() {
  if (finished_) return;
  if (!context_.frame_timeouts.empty()) {
    context_.frame_timeouts[worker_.worker().index()]->Increment();
  }
  spdlog::debug("listener {}: {} did not complete a {} frame within {} ms ({} bytes)",
                context_.name, connection_->PeerAddress(), codec().log_tag(),
                context_.frame_timeout.count(), decoder_->buffered_bytes());
  // The calls already read are answered; the partial frame never will be.
  stopped_reading_ = true;
  connection_->PauseReading();
  UpdateTimeouts(false);
  CloseWhenIdle();
}

void RpcConnectionManager::OnIdleTimeout() {
  if (finished_) return;
  if (!context_.idle_timeouts.empty()) {
    context_.idle_timeouts[worker_.worker().index()]->Increment();
  }
  spdlog::debug("listener {}: closing {} after {} ms idle", context_.name,
                connection_->PeerAddress(), context_.idle_timeout.count());
  stopped_reading_ = true;
  connection_->PauseReading();
  UpdateTimeouts(false);
  CloseWhenIdle();
}

// A client that shuts down its sending side after its requests (a habit of
// some test tools) still gets the answers; the connection closes after them.
bool RpcConnectionManager::OnPeerHalfClosed() {
  if (requests_.empty() || finished_) return false;
  if (decoder_->buffered_bytes() > 0) {
    spdlog::debug("listener {}: {} half-closed inside a frame ({} bytes)", context_.name,
                  connection_->PeerAddress(), decoder_->buffered_bytes());
  }
  stopped_reading_ = true;
  return true;
}

void RpcConnectionManager::Drain() {
  if (finished_) return;
  ArmDrainTimer();
}

void RpcConnectionManager::ArmDrainTimer() {
  if (drain_timer_ != 0) return;
  drain_timer_ = worker_.worker().RunAfter(kDrainQuietPeriod, [this, seen = calls_started_] {
    drain_timer_ = 0;
    if (finished_) return;
    if (!requests_.empty() || calls_started_ != seen) {
      ArmDrainTimer();  // still in use: look again later
      return;
    }
    stopped_reading_ = true;
    connection_->PauseReading();
    CloseWhenIdle();
  });
}

void RpcConnectionManager::CloseWhenIdle() {
  if (!requests_.empty() || finished_) return;
  finished_ = true;
  connection_->CloseAfterFlush();  // OnClose follows (maybe right now)
}

void RpcConnectionManager::OnClose(const std::error_code&) { Finish(); }

void RpcConnectionManager::Finish() {
  finished_ = true;
  frame_timeout_.Cancel();
  idle_timeout_.Cancel();
  // From the connection's callbacks, or from RequestDone once the last
  // request is gone: no request is running, so destroying them is safe.
  requests_.clear();
  if (on_finished_) {
    auto callback = std::move(on_finished_);
    on_finished_ = nullptr;
    callback(this);
  }
}

}  // namespace cairn::sidecar
