#include "sidecar/http/connection_manager.h"

#include <spdlog/spdlog.h>

#include "sidecar/codec/http1/http1_codec.h"
#include "sidecar/codec/http2/http2_codec.h"
#include "sidecar/http/active_stream.h"
#include "sidecar/network/timeout_list.h"

namespace cairn::sidecar {

HttpConnectionManager::HttpConnectionManager(
    Worker& worker, std::unique_ptr<Connection> connection, const HttpListenerContext& context,
    WorkerClusters& clusters, std::function<void(HttpConnectionManager*)> on_finished)
    : worker_(worker),
      connection_(std::move(connection)),
      context_(context),
      clusters_(clusters),
      on_finished_(std::move(on_finished)) {
  connection_->SetHandler(this);
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.index()]->Increment();
  }
}

HttpConnectionManager::~HttpConnectionManager() {
  *alive_ = false;
  if (hold_timer_ != 0) worker_.CancelTimer(hold_timer_);
  finished_streams_.clear();
  for (auto& [id, stream] : streams_) stream->OnDownstreamReset();
  streams_.clear();
  if (!context_.downstream_connections.empty()) {
    context_.downstream_connections[worker_.index()]->Decrement();
  }
}

void HttpConnectionManager::Start() {
  if (context_.protocol == "http1") {
    codec_ = NewHttp1ServerCodec(*this, context_.limits);
  } else if (context_.protocol == "http2") {
    codec_ = NewHttp2ServerCodec(*this, context_.limits);
  }
  if (codec_) {
    codec_->Flush(out_);
    Flush();
  }
  UpdateTimeouts(false);
  connection_->StartReading();
}

// "auto": an HTTP/2 client with prior knowledge opens with the 24-byte
// preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; anything else is HTTP/1.
bool HttpConnectionManager::DetectProtocol(std::string_view data) {
  detect_buffer_.append(data);
  static constexpr size_t kPrefaceSize = 24;
  if (LooksLikeHttp2Preface(detect_buffer_) && detect_buffer_.size() < kPrefaceSize) {
    return false;  // could still be HTTP/2: wait for more
  }
  if (LooksLikeHttp2Preface(detect_buffer_)) {
    codec_ = NewHttp2ServerCodec(*this, context_.limits);
  } else {
    codec_ = NewHttp1ServerCodec(*this, context_.limits);
  }
  codec_->Flush(out_);
  return true;
}

void HttpConnectionManager::OnRead(std::string_view data) {
  if (finished_) return;
  std::shared_ptr<bool> alive = alive_;
  if (!data.empty()) awaiting_first_bytes_ = false;
  if (codec_ == nullptr) {
    if (DetectProtocol(data)) {
      std::string buffered = std::move(detect_buffer_);
      detect_buffer_.clear();
      Feed(buffered);
    }
  } else {
    Feed(data);
  }
  if (*alive) UpdateTimeouts(true);
}

void HttpConnectionManager::Feed(std::string_view data) {
  std::shared_ptr<bool> alive = alive_;
  in_ingress_ = true;
  absl::Status status = codec_->OnIngress(data, out_);
  if (!*alive) return;
  in_ingress_ = false;
  if (!status.ok()) {
    spdlog::debug("listener {}: closing {} after a protocol error: {}", context_.name,
                  connection_->PeerAddress(), status.ToString());
    for (auto& [id, stream] : streams_) stream->OnDownstreamReset();
    streams_.clear();
    http1_queue_.clear();
    Flush();
    finished_ = true;
    connection_->CloseAfterFlush();
    return;
  }
  Flush();
  StartNextQueued();
}

void HttpConnectionManager::OnClose(const std::error_code&) { Finish(); }

// A client that sends its request and then shuts down its sending side (an
// HTTP/1.0 habit) still gets its responses; the connection closes after them.
bool HttpConnectionManager::OnPeerHalfClosed() {
  if (streams_.empty() || finished_) return false;
  draining_ = true;
  return true;
}

void HttpConnectionManager::OnRequestHead(StreamId id, RequestHead&& head, bool end_stream) {
  HttpStreamOwner& owner = *this;  // a private base: convert here
  auto stream = std::make_unique<ActiveStream>(owner, id, std::move(head), end_stream);
  ActiveStream* raw = stream.get();
  streams_[id] = std::move(stream);
  if (!codec_->SupportsMultiplexing() && streams_.size() > 1) {
    http1_queue_.push_back(id);  // its turn comes when the earlier ones finish
    return;
  }
  raw->Start();
}

void HttpConnectionManager::OnRequestData(StreamId id, std::string_view data, bool end_stream) {
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second->OnRequestData(data, end_stream);
}

void HttpConnectionManager::OnRequestTrailers(StreamId id, HeaderList&& trailers) {
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second->OnRequestTrailers(std::move(trailers));
}

void HttpConnectionManager::OnStreamReset(StreamId id, ResetReason) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second->OnDownstreamReset();
  Bury(std::move(it->second));
  streams_.erase(it);
  if (!in_ingress_) UpdateTimeouts(false);
}

void HttpConnectionManager::StartNextQueued() {
  while (!http1_queue_.empty() && !finished_) {
    StreamId next = http1_queue_.front();
    auto it = streams_.find(next);
    if (it == streams_.end()) {
      http1_queue_.pop_front();
      continue;
    }
    if (streams_.begin()->first != next) return;  // an earlier one is still running
    http1_queue_.pop_front();
    if (!it->second->started()) it->second->Start();
    return;
  }
}

void HttpConnectionManager::CountRequest() {
  if (!context_.downstream_requests.empty()) {
    context_.downstream_requests[worker_.index()]->Increment();
  }
}

void HttpConnectionManager::EncodeHead(StreamId id, const ResponseHead& head, bool end_stream) {
  codec_->EncodeResponseHead(id, head, end_stream, out_);
  Flush();
}

void HttpConnectionManager::EncodeData(StreamId id, std::string_view data, bool end_stream) {
  codec_->EncodeResponseData(id, data, end_stream, out_);
  Flush();
}

void HttpConnectionManager::EncodeTrailers(StreamId id, const HeaderList& trailers) {
  codec_->EncodeResponseTrailers(id, trailers, out_);
  Flush();
}

void HttpConnectionManager::ResetDownstream(StreamId id) {
  if (!codec_->ResetStream(id, out_)) {
    // HTTP/1: a half-sent response can only be cut by closing.
    Flush();
    finished_ = true;
    connection_->CloseAfterFlush();
    return;
  }
  Flush();
}

void HttpConnectionManager::StreamFinished(StreamId id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // Destroy on a later turn: the stream is calling us.
  Bury(std::move(it->second));
  streams_.erase(it);
  if (hold_timer_ != 0) {
    // A held response is complete: send the batch once nothing else is in
    // flight (waiting longer would only add latency) or the batch is full.
    ++held_responses_;
    if (streams_.empty() || BatchFull()) WriteOut();
  }
  if (finished_) return;
  if ((codec_->WantsClose() || draining_) && streams_.empty()) {
    finished_ = true;
    WriteOut();
    connection_->CloseAfterFlush();
    return;
  }
  ResumeReading();  // a request body paused and then answered early
  if (!in_ingress_) {
    StartNextQueued();
    UpdateTimeouts(false);
  }
}

void HttpConnectionManager::Bury(std::unique_ptr<ActiveStream> stream) {
  finished_streams_.push_back(std::move(stream));
  if (cleanup_posted_) return;
  cleanup_posted_ = true;
  worker_.Post([this, alive = alive_] {
    if (!*alive) return;
    cleanup_posted_ = false;
    finished_streams_.clear();
  });
}

void HttpConnectionManager::Flush() {
  if (out_.empty() || !connection_->open()) return;
  if (!ShouldHold()) {
    WriteOut();
    return;
  }
  if (hold_timer_ != 0) return;  // the running hold covers these bytes too
  held_responses_ = 0;
  auto deadline = Worker::Clock::now() + context_.http2_flush_delay;
  hold_timer_ = worker_.RunAt(deadline, [this, alive = alive_] {
    if (!*alive) return;
    hold_timer_ = 0;
    WriteOut();
  });
}

// The hold is this connection's alone: a timer on the worker's loop, which
// goes on serving every other connection meanwhile (holding the whole worker
// delayed them by the hold; issue 17).
// Hold only a multiplexed connection with another stream in flight besides
// the one writing: a lone stream gains nothing from waiting. The hold ends
// at its deadline, when the batch is full, or when the last stream finishes
// (StreamFinished); a backlog of more than kHoldBytes goes out at once.
bool HttpConnectionManager::ShouldHold() const {
  static constexpr size_t kHoldBytes = 64 * 1024;
  return context_.http2_flush_delay.count() > 0 && multiplexed() && !finished_ && !draining_ &&
         streams_.size() >= 2 && out_.size() < kHoldBytes && (hold_timer_ == 0 || !BatchFull());
}

bool HttpConnectionManager::BatchFull() const {
  return context_.http2_flush_batch != 0 && held_responses_ >= context_.http2_flush_batch;
}

void HttpConnectionManager::WriteOut() {
  if (hold_timer_ != 0) {
    worker_.CancelTimer(hold_timer_);
    hold_timer_ = 0;
  }
  if (!out_.empty() && connection_->open()) connection_->Write(out_);
}

void HttpConnectionManager::Drain() {
  draining_ = true;
  if (streams_.empty()) {
    finished_ = true;
    connection_->CloseAfterFlush();
  }
}

void HttpConnectionManager::Finish() {
  for (auto& [id, stream] : streams_) stream->OnDownstreamReset();
  std::vector<std::shared_ptr<ActiveStream>> doomed;
  for (auto& [id, stream] : streams_) doomed.emplace_back(std::move(stream));
  streams_.clear();
  http1_queue_.clear();
  finished_ = true;
  if (!doomed.empty()) worker_.Post([doomed] {});
  if (on_finished_) {
    auto callback = std::move(on_finished_);
    on_finished_ = nullptr;
    callback(this);
  }
}

void HttpConnectionManager::PauseReading() {
  if (multiplexed() || finished_) return;
  reads_paused_ = true;
  connection_->PauseReading();
}

void HttpConnectionManager::ResumeReading() {
  if (!reads_paused_) return;
  reads_paused_ = false;
  if (!finished_ && connection_->open()) connection_->StartReading();
}

void HttpConnectionManager::OnWriteDrained() {
  if (drain_waiters_.empty()) return;
  std::vector<StreamId> waiters;
  waiters.swap(drain_waiters_);
  std::shared_ptr<bool> alive = alive_;
  for (StreamId id : waiters) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second->OnDownstreamDrained();
    if (!*alive) return;
  }
}

void HttpConnectionManager::UpdateTimeouts(bool bytes_arrived) {
  if (finished_) {
    header_timeout_.Cancel();
    idle_timeout_.Cancel();
    return;
  }
  const bool reading_head =
      awaiting_first_bytes_ || codec_ == nullptr || codec_->ReadingRequestHead();
  const bool in_flight = !streams_.empty();
  // HTTP/1 answers one request at a time: the next head's clock starts when
  // the connection is free to read it (its response is what the client
  // waits for meanwhile, bounded by the route timeout).
  const bool head_clock = reading_head && (multiplexed() || !in_flight);
  if (head_clock && context_.request_header_timeout.count() > 0) {
    // Never re-armed while it runs: trickling bytes must not extend it.
    if (!header_timeout_.armed()) {
      worker_.Timeouts(context_.request_header_timeout).Add(&header_timeout_);
    }
  } else {
    header_timeout_.Cancel();
  }
  if (!in_flight && !reading_head && context_.idle_timeout.count() > 0) {
    if (bytes_arrived || !idle_timeout_.armed()) {
      worker_.Timeouts(context_.idle_timeout).Add(&idle_timeout_);
    }
  } else {
    idle_timeout_.Cancel();
  }
}

void HttpConnectionManager::OnHeaderTimeout() {
  if (finished_) return;
  if (!context_.header_timeouts.empty()) context_.header_timeouts[worker_.index()]->Increment();
  spdlog::debug("listener {}: {} did not complete a request head within {} ms", context_.name,
                connection_->PeerAddress(), context_.request_header_timeout.count());
  // HTTP/1: 408 only when a byte of the request came and no earlier response
  // is owed (it would answer the wrong request); a silent connection just
  // closes, as nginx and HAProxy do.
  const bool answer_408 =
      codec_ != nullptr && !multiplexed() && !awaiting_first_bytes_ && streams_.empty();
  CloseForTimeout(
      answer_408 ? "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                 : "");
}

void HttpConnectionManager::OnIdleTimeout() {
  if (finished_) return;
  if (!context_.idle_timeouts.empty()) context_.idle_timeouts[worker_.index()]->Increment();
  spdlog::debug("listener {}: closing {} after {} ms idle", context_.name,
                connection_->PeerAddress(), context_.idle_timeout.count());
  CloseForTimeout("");
}

void HttpConnectionManager::CloseForTimeout(std::string_view response) {
  header_timeout_.Cancel();
  idle_timeout_.Cancel();
  if (auto* h2 = dynamic_cast<Http2ServerCodec*>(codec_.get()); h2 != nullptr) {
    h2->Shutdown(out_);  // GOAWAY: the client knows which streams were not processed
  }
  out_.append(response);
  for (auto& [id, stream] : streams_) stream->OnDownstreamReset();
  for (auto& [id, stream] : streams_) Bury(std::move(stream));
  streams_.clear();
  http1_queue_.clear();
  finished_ = true;
  WriteOut();
  connection_->CloseAfterFlush();
}

}  // namespace cairn::sidecar
