#include "sidecar/pool/upstream_connection.h"

#include "sidecar/codec/http1/http1_codec.h"
#include "sidecar/codec/http2/http2_codec.h"

#include <unistd.h>

namespace cairn::sidecar {

UpstreamConnection::UpstreamConnection(Worker& worker, Owner& owner, Protocol protocol,
                                       const CodecLimits& limits)
    : worker_(worker), owner_(owner), protocol_(protocol) {
  codec_ = protocol == Protocol::kHttp2 ? NewHttp2ClientCodec(*this, limits)
                                        : NewHttp1ClientCodec(*this, limits);
}

UpstreamConnection::~UpstreamConnection() {
  *alive_ = false;
  if (handshake_timer_ != 0) worker_.CancelTimer(handshake_timer_);
}

void UpstreamConnection::Connect(const asio::ip::tcp::endpoint& endpoint,
                                 std::chrono::milliseconds timeout) {
  connect_timeout_ = timeout;
  connector_ = std::make_unique<Connector>(
      worker_, endpoint, timeout, [this](int fd, const std::string& error) {
        // The connector is done: free it on a later turn (we are inside it).
        worker_.Post([doomed = std::shared_ptr<Connector>(std::move(connector_))] {});
        if (closed_) {
          if (fd >= 0) ::close(fd);
          return;
        }
        if (fd < 0) {
          closed_ = true;
          owner_.OnConnectFailed(*this, error);
          return;
        }
        Connection::Handler* handler = this;
        connection_ = std::make_unique<Connection>(worker_, fd, handler);
        if (tls_ == nullptr) {
          BecomeConnected();
          return;
        }
        if (auto status = connection_->StartTls(tls_->Current(), tls_policy_); !status.ok()) {
          FailConnect(std::string(status.message()));
          return;
        }
        connection_->StartReading();
        // The handshake gets the connect timeout again (a peer that accepts
        // and never answers must not hold the request).
        handshake_timer_ = worker_.RunAfter(connect_timeout_, [this] {
          handshake_timer_ = 0;
          if (!connected_ && !closed_) FailConnect("TLS handshake timed out");
        });
      });
}

void UpstreamConnection::BecomeConnected() {
  connected_ = true;
  if (handshake_timer_ != 0) {
    worker_.CancelTimer(handshake_timer_);
    handshake_timer_ = 0;
  }
  connection_->StartReading();
  codec_->Flush(out_);  // HTTP/2: preface and SETTINGS
  WriteOut();
  idle_since_ = std::chrono::steady_clock::now();
  owner_.OnConnected(*this);
}

void UpstreamConnection::OnTlsReady() { BecomeConnected(); }

// Before OnConnected: a TLS handshake or the upstream's identity failed.
void UpstreamConnection::FailConnect(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  tls_failed_ = tls_ != nullptr;
  if (connection_ != nullptr) connection_->Close();
  owner_.OnConnectFailed(*this, reason);
}

bool UpstreamConnection::CanStartStream() const {
  return connected_ && !closed_ && codec_->CanStartStream();
}

bool UpstreamConnection::WantsClose() const { return closed_ || codec_->WantsClose(); }

StreamId UpstreamConnection::StartStream(const RequestHead& head, bool end_stream,
                                         UpstreamStreamCallbacks* cb) {
  StreamId id = codec_->EncodeRequestHead(head, end_stream, out_);
  if (id == 0) return 0;  // the codec refused the request: the caller fails it
  streams_[id] = cb;
  WriteOut();
  return id;
}

void UpstreamConnection::SendData(StreamId stream, std::string_view data, bool end_stream) {
  if (closed_ || streams_.count(stream) == 0) return;
  codec_->EncodeRequestData(stream, data, end_stream, out_);
  WriteOut();
}

void UpstreamConnection::SendTrailers(StreamId stream, const HeaderList& trailers) {
  if (closed_ || streams_.count(stream) == 0) return;
  codec_->EncodeRequestTrailers(stream, trailers, out_);
  WriteOut();
}

void UpstreamConnection::Abandon(StreamId stream) {
  if (streams_.erase(stream) == 0 || closed_) return;
  if (!codec_->ResetStream(stream, out_)) {
    // HTTP/1 cannot cancel one request: the connection is unusable now.
    CloseWithResets(ResetReason::kLocal);
    return;
  }
  WriteOut();
  StreamDone(stream);
}

void UpstreamConnection::WriteOut() {
  if (!out_.empty() && connection_ != nullptr) connection_->Write(out_);
}

void UpstreamConnection::OnRead(std::string_view data) {
  in_ingress_ = true;
  std::shared_ptr<bool> alive = alive_;
  absl::Status status = codec_->OnIngress(data, out_);
  if (!*alive) return;
  in_ingress_ = false;
  WriteOut();
  if (!status.ok()) {
    CloseWithResets(ResetReason::kProtocolError);
    return;
  }
  // Done with this connection (HTTP/1 "Connection: close", HTTP/2 GOAWAY)
  // and nothing left on it: close now rather than at the idle timeout.
  if (codec_->WantsClose() && streams_.empty()) {
    capacity_pending_ = false;
    CloseWithResets(ResetReason::kLocal);
    return;
  }
  if (capacity_pending_) {
    capacity_pending_ = false;
    owner_.OnStreamCapacity(*this);
  }
}

void UpstreamConnection::OnClose(const std::error_code& ec) {
  if (!connected_) {  // TLS: the handshake or the peer policy failed
    std::string reason = connection_->tls_error();
    if (reason.empty()) reason = "upstream closed in the TLS handshake: " + ec.message();
    FailConnect(reason);
    return;
  }
  connection_.reset();
  std::shared_ptr<bool> alive = alive_;
  codec_->OnUpstreamClosed();  // ends a close-delimited body, resets the rest
  if (!*alive) return;
  CloseWithResets(ResetReason::kCancelled);
}

void UpstreamConnection::CloseWithResets(ResetReason reason) {
  if (reported_closed_) return;
  reported_closed_ = true;
  closed_ = true;
  if (connection_ != nullptr) connection_->Close();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, cb] : streams) cb->OnUpstreamReset(reason);
  owner_.OnClosed(*this);
}

void UpstreamConnection::Close() {
  closed_ = true;
  if (connection_ != nullptr) connection_->Close();
}

void UpstreamConnection::OnResponseHead(StreamId stream, ResponseHead&& head, bool end_stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  UpstreamStreamCallbacks* cb = it->second;
  if (end_stream) StreamDone(stream);
  cb->OnUpstreamHead(std::move(head), end_stream);
}

void UpstreamConnection::OnResponseData(StreamId stream, std::string_view data, bool end_stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  UpstreamStreamCallbacks* cb = it->second;
  if (end_stream) StreamDone(stream);
  cb->OnUpstreamData(data, end_stream);
}

void UpstreamConnection::OnResponseTrailers(StreamId stream, HeaderList&& trailers) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  UpstreamStreamCallbacks* cb = it->second;
  StreamDone(stream);
  cb->OnUpstreamTrailers(std::move(trailers));
}

void UpstreamConnection::OnStreamReset(StreamId stream, ResetReason reason) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  UpstreamStreamCallbacks* cb = it->second;
  StreamDone(stream);
  cb->OnUpstreamReset(reason);
}

void UpstreamConnection::StreamDone(StreamId stream) {
  streams_.erase(stream);
  if (streams_.empty()) {
    idle_since_ = std::chrono::steady_clock::now();
    ResumeReading();  // a paused stream that ended must not leave a deaf idle connection
  }
  // Tell the pool after the codec finished this input: starting the next
  // request from inside the codec's callback would re-enter it.
  if (in_ingress_) {
    capacity_pending_ = true;
  } else if (!closed_) {
    if (codec_->WantsClose() && streams_.empty()) {
      CloseWithResets(ResetReason::kLocal);
      return;
    }
    owner_.OnStreamCapacity(*this);
  }
}

size_t UpstreamConnection::queued_bytes() const {
  return out_.size() + (connection_ != nullptr ? connection_->queued_bytes() : 0);
}

void UpstreamConnection::NotifyWhenDrained(StreamId stream) { drain_waiters_.push_back(stream); }

void UpstreamConnection::PauseReading() {
  if (connection_ == nullptr || multiplexed()) return;
  reads_paused_ = true;
  connection_->PauseReading();
}

void UpstreamConnection::ResumeReading() {
  if (!reads_paused_) return;
  reads_paused_ = false;
  if (connection_ != nullptr) connection_->StartReading();
}

void UpstreamConnection::OnWriteDrained() {
  if (drain_waiters_.empty()) return;
  std::vector<StreamId> waiters;
  waiters.swap(drain_waiters_);
  std::shared_ptr<bool> alive = alive_;
  for (StreamId stream : waiters) {
    auto it = streams_.find(stream);
    if (it != streams_.end()) it->second->OnUpstreamDrained();
    if (!*alive) return;  // a callback destroyed this connection
  }
}

}  // namespace cairn::sidecar
