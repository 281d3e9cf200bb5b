#include "sidecar/bolt/bolt_connection_manager.h"

#include <spdlog/spdlog.h>

#include <span>

#include "sidecar/bolt/bolt_error.h"
#include "sidecar/bolt/bolt_request.h"
#include "sidecar/codec/bolt/bolt_wire.h"

namespace cairn::sidecar::bolt {
namespace {

// Reads the framing and requestId of a frame whose fixed header is in
// `bytes` (the frame the decoder refused), so that its sender can be told
// why. False when the header is too short or names no two-way request.
bool PeekTwoWayRequest(std::string_view bytes, BoltFraming& framing, uint32_t& request_id) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.empty() || (p[0] != 1 && p[0] != 2)) return false;
  const bool v2 = p[0] == 2;
  const size_t b = v2 ? 1 : 0;
  if (bytes.size() < 11 + b) return false;  // up to the codec (and v2's switch) byte
  if (v2 && p[1] != 1 && p[1] != 2) return false;
  if (p[1 + b] != static_cast<uint8_t>(BoltType::kRequest)) return false;
  if (wire::Get16(p + 2 + b) != static_cast<uint16_t>(BoltCmdCode::kRequest)) return false;
  framing.protocol = v2 ? BoltProtocol::kV2 : BoltProtocol::kV1;
  framing.ver1 = v2 ? p[1] : 1;
  framing.codec = p[9 + b];
  framing.switches = v2 ? p[10 + b] : 0;
  request_id = wire::Get32(p + 5 + b);
  return true;
}

}  // namespace

BoltConnectionManager::BoltConnectionManager(
    std::unique_ptr<Connection> connection, const BoltListenerContext& context,
    BoltWorkerContext& worker, std::function<void(BoltConnectionManager*)> on_finished)
    : connection_(std::move(connection)),
      context_(context),
      worker_(worker),
      on_finished_(std::move(on_finished)),
      decoder_(context.limits) {
  connection_->SetHandler(this);
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.worker.index()]->Increment();
  }
}

BoltConnectionManager::~BoltConnectionManager() {
  if (drain_timer_ != 0) worker_.worker.CancelTimer(drain_timer_);
  requests_.clear();  // each cancels its upstream wait
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.worker.index()]->Decrement();
  }
}

void BoltConnectionManager::Start() {
  connection_->StartReading();
  UpdateTimeouts(false);
}

void BoltConnectionManager::OnRead(std::string_view data) {
  std::string_view input = data;
  while (!finished_ && !stopped_reading_) {
    // A frame the decoder refuses began here if nothing was buffered before.
    const std::string_view frame_start =
        decoder_.buffered_bytes() == 0 ? input : std::string_view();
    absl::StatusOr<const BoltFrameView*> next = decoder_.Next(input);
    if (!next.ok()) {
      OnProtocolError(next.status(), frame_start);
      return;
    }
    if (*next == nullptr) break;
    HandleFrame(**next);
  }
  UpdateTimeouts(true);
}

void BoltConnectionManager::HandleFrame(const BoltFrameView& frame) {
  if (frame.is_response()) {
    // The sidecar sends clients nothing that they would answer.
    spdlog::debug("listener {}: dropping a response frame from a client", context_.name);
    return;
  }
  if (frame.is_heartbeat()) {
    // Answered here: the client's liveness check is about the sidecar.
    if (!frame.is_oneway()) {
      EncodeHeartbeatAck(frame.request_id, out_, FramingOf(frame));
      connection_->Write(out_);
    }
    return;
  }
  ++calls_started_;
  BoltRequest& request = requests_.emplace_back(*this);
  request.self = std::prev(requests_.end());
  request.Start(frame);  // may finish (and destroy) it at once
}

void BoltConnectionManager::OnProtocolError(const absl::Status& status,
                                            std::string_view frame_start) {
  spdlog::debug("listener {}: closing {} after a protocol error: {}", context_.name,
                connection_->PeerAddress(), status.ToString());
  BoltFraming framing;
  uint32_t request_id = 0;
  if (PeekTwoWayRequest(frame_start, framing, request_id)) {
    EncodeSidecarError(framing, request_id, BoltStatus::kCodecException,
                       "cairn sidecar: " + std::string(status.message()), out_);
    connection_->Write(out_);
  }
  // The stream cannot be resynchronised: answer what is in flight, then close.
  stopped_reading_ = true;
  connection_->PauseReading();
  CloseWhenIdle();
}

void BoltConnectionManager::WriteResponse(std::string_view frame, uint32_t request_id) {
  if (finished_) return;
  const size_t at = out_.size();
  out_.append(frame);
  // The frame came out of the decoder whole, so the rewrite cannot fail;
  // if it did, the client would get an answer it cannot match: drop it.
  if (!RewriteRequestId(std::span<char>(out_.data() + at, frame.size()), request_id).ok()) {
    out_.resize(at);
    return;
  }
  connection_->Write(out_);
  if (connection_->queued_bytes() > kHighWatermark && !paused_) {
    paused_ = true;
    connection_->PauseReading();
  }
}

void BoltConnectionManager::WriteError(const BoltFraming& framing, uint32_t request_id,
                                       BoltStatus status, std::string_view message) {
  if (finished_) return;
  EncodeSidecarError(framing, request_id, status, message, out_);
  connection_->Write(out_);
}

void BoltConnectionManager::OnWriteDrained() {
  if (!paused_) return;
  paused_ = false;
  if (!stopped_reading_ && !finished_) connection_->StartReading();
}

void BoltConnectionManager::RequestDone(BoltRequest* request) {
  requests_.erase(request->self);
  if (stopped_reading_) {
    CloseWhenIdle();
  } else {
    UpdateTimeouts(false);
  }
}

void BoltConnectionManager::UpdateTimeouts(bool bytes_arrived) {
  if (finished_ || stopped_reading_) {
    frame_timeout_.Cancel();
    idle_timeout_.Cancel();
    return;
  }
  const bool in_frame = decoder_.buffered_bytes() > 0;
  if (in_frame && context_.frame_timeout.count() > 0) {
    // Never re-armed while it runs: trickling bytes must not extend it.
    if (!frame_timeout_.armed()) {
      worker_.worker.Timeouts(context_.frame_timeout).Add(&frame_timeout_);
    }
  } else {
    frame_timeout_.Cancel();
  }
  if (!in_frame && requests_.empty() && context_.idle_timeout.count() > 0) {
    if (bytes_arrived || !idle_timeout_.armed()) {
      worker_.worker.Timeouts(context_.idle_timeout).Add(&idle_timeout_);
    }
  } else {
    idle_timeout_.Cancel();
  }
}

void BoltConnectionManager::OnFrameTimeout() {
  if (finished_) return;
  if (!context_.frame_timeouts.empty()) {
    context_.frame_timeouts[worker_.worker.index()]->Increment();
  }
  spdlog::debug("listener {}: {} did not complete a Bolt frame within {} ms ({} bytes)",
                context_.name, connection_->PeerAddress(), context_.frame_timeout.count(),
                decoder_.buffered_bytes());
  // The calls already read are answered; the partial frame never will be.
  stopped_reading_ = true;
  connection_->PauseReading();
  UpdateTimeouts(false);
  CloseWhenIdle();
}

void BoltConnectionManager::OnIdleTimeout() {
  if (finished_) return;
  if (!context_.idle_timeouts.empty()) {
    context_.idle_timeouts[worker_.worker.index()]->Increment();
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
bool BoltConnectionManager::OnPeerHalfClosed() {
  if (requests_.empty() || finished_) return false;
  if (decoder_.buffered_bytes() > 0) {
    spdlog::debug("listener {}: {} half-closed inside a frame ({} bytes)", context_.name,
                  connection_->PeerAddress(), decoder_.buffered_bytes());
  }
  stopped_reading_ = true;
  return true;
}

void BoltConnectionManager::Drain() {
  if (finished_) return;
  ArmDrainTimer();
}

void BoltConnectionManager::ArmDrainTimer() {
  if (drain_timer_ != 0) return;
  drain_timer_ = worker_.worker.RunAfter(kDrainQuietPeriod, [this, seen = calls_started_] {
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

void BoltConnectionManager::CloseWhenIdle() {
  if (!requests_.empty() || finished_) return;
  finished_ = true;
  connection_->CloseAfterFlush();  // OnClose follows (maybe right now)
}

void BoltConnectionManager::OnClose(const std::error_code&) { Finish(); }

void BoltConnectionManager::Finish() {
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

}  // namespace cairn::sidecar::bolt
