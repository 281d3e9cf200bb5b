#include "sidecar/pool/rpc_pool.h"

#include <span>
#include <vector>

namespace cairn::sidecar {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ connection

RpcUpstreamConnection::RpcUpstreamConnection(Worker& worker, Owner& owner, const RpcCodec& codec,
                                             const RpcLimits& limits)
    : worker_(worker), owner_(owner), codec_(codec), decoder_(codec.NewDecoder(limits)) {}

RpcUpstreamConnection::~RpcUpstreamConnection() {
  closed_ = true;
  if (handshake_timer_ != 0) worker_.CancelTimer(handshake_timer_);
  connector_.reset();
  connection_.reset();
}

void RpcUpstreamConnection::Connect(const asio::ip::tcp::endpoint& endpoint,
                                    std::chrono::milliseconds timeout) {
  connector_ = std::make_unique<Connector>(
      worker_, endpoint, timeout, [this, timeout](int fd, const std::string& error) {
        // The connector is inside its own callback: destroy it later.
        worker_.Post([doomed = std::shared_ptr<Connector>(std::move(connector_))] {});
        if (fd >= 0) {
          Connection::Handler* handler = this;  // a private base: convert here
          connection_ = std::make_unique<Connection>(worker_, fd, handler);
          if (connection_->open() && tls_ != nullptr) {
            if (auto s = connection_->StartTls(tls_->Current(), tls_policy_); !s.ok()) {
              FailConnect(std::string(s.message()));
              return;
            }
            handshaking_ = true;
            connection_->StartReading();
            // The handshake gets the connect timeout again.
            handshake_timer_ = worker_.RunAfter(timeout, [this] {
              handshake_timer_ = 0;
              if (handshaking_) FailConnect("TLS handshake timed out");
            });
            return;
          }
          if (connection_->open()) {
            quiet_since_ = busy_since_ = Clock::now();
            connection_->StartReading();
            owner_.OnConnected(*this);
            return;
          }
        }
        closed_ = true;
        owner_.OnConnectFailed(*this, fd >= 0 ? "cannot watch the socket" : error);
      });
}

uint64_t RpcUpstreamConnection::Send(std::string_view frame, RpcUpstreamCallbacks* callbacks) {
  const size_t at = out_.size();
  out_.append(frame);
  const uint64_t id = callbacks != nullptr ? pending_.Insert(callbacks) : pending_.NextId();
  if (!codec_.RewriteRequestId(std::span<char>(out_.data() + at, frame.size()), id).ok()) {
    out_.resize(at);
    pending_.Erase(id);
    return 0;
  }
  sent_since_tick_ = true;
  connection_->Write(out_);
  return id;
}

void RpcUpstreamConnection::OnRead(std::string_view data) {
  read_since_tick_ = true;
  std::string_view input = data;
  while (!closed_) {
    absl::StatusOr<const RpcMessage*> next = decoder_->Next(input);
    if (!next.ok()) {
      CloseWithFailures("the upstream sent a malformed frame: " +
                        std::string(next.status().message()));
      return;
    }
    if (*next == nullptr) return;
    HandleFrame(**next);
  }
}

void RpcUpstreamConnection::HandleFrame(const RpcMessage& frame) {
  switch (frame.kind) {
    case RpcKind::kHeartbeatAck:
      if (frame.request_id == heartbeat_id_) heartbeat_id_ = 0;
      return;
    case RpcKind::kGoingAway:
      // Calls in flight still get their answers; new ones go elsewhere.
      if (!going_away_) {
        going_away_ = true;
        owner_.OnGoingAway(*this);
      }
      return;
    case RpcKind::kHeartbeat:
      codec_.EncodeHeartbeatAck(frame, out_);
      if (!out_.empty()) connection_->Write(out_);
      return;
    case RpcKind::kRequest:
    case RpcKind::kOneway:
      return;  // a provider calling back into the client is not supported: dropped
    case RpcKind::kResponse:
      break;
  }
  RpcUpstreamCallbacks* callbacks = pending_.Take(frame.request_id);
  // Nobody waits (the request timed out or its client left): dropped.
  if (callbacks == nullptr) return;
  callbacks->OnUpstreamResponse(frame);
}

void RpcUpstreamConnection::OnTlsReady() {
  handshaking_ = false;
  if (handshake_timer_ != 0) {
    worker_.CancelTimer(handshake_timer_);
    handshake_timer_ = 0;
  }
  quiet_since_ = busy_since_ = Clock::now();
  owner_.OnConnected(*this);
}

// Before OnConnected: the TLS handshake or the upstream's identity failed.
void RpcUpstreamConnection::FailConnect(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  handshaking_ = false;
  tls_failed_ = true;
  if (connection_ != nullptr) connection_->Close();
  owner_.OnConnectFailed(*this, reason);
}

void RpcUpstreamConnection::OnClose(const std::error_code& ec) {
  if (handshaking_) {
    std::string reason = connection_->tls_error();
    FailConnect(reason.empty() ? "upstream closed in the TLS handshake: " + ec.message() : reason);
    return;
  }
  CloseWithFailures(ec ? "the upstream connection closed: " + ec.message()
                       : std::string("the upstream connection closed"));
}

void RpcUpstreamConnection::CloseWithFailures(std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  if (connection_ != nullptr) connection_->Close();
  const std::string why(reason);  // `reason` may live in something the callbacks end
  owner_.OnClosed(*this);
  // One entry per turn: a callback may cancel other entries.
  while (RpcUpstreamCallbacks* callbacks = pending_.TakeAny()) callbacks->OnUpstreamFailure(why);
}

bool RpcUpstreamConnection::Tick(Clock::time_point now,
                                 std::chrono::milliseconds heartbeat_interval,
                                 std::chrono::milliseconds idle_timeout) {
  if (!connected()) return false;
  if (read_since_tick_) {
    read_since_tick_ = false;
    quiet_since_ = now;
    heartbeat_id_ = 0;  // anything read proves the peer alive
  }
  if (sent_since_tick_ || !pending_.empty()) {
    sent_since_tick_ = false;
    busy_since_ = now;
  }
  if (heartbeat_interval.count() > 0 && now - quiet_since_ >= heartbeat_interval) {
    if (heartbeat_id_ == 0) {
      heartbeat_id_ = pending_.NextId();
      heartbeat_sent_ = now;
      codec_.EncodeHeartbeat(heartbeat_id_, out_);
      connection_->Write(out_);
    } else if (now - heartbeat_sent_ >= heartbeat_interval) {
      CloseWithFailures("the upstream did not answer a heartbeat");
      return false;
    }
  }
  return now - busy_since_ >= idle_timeout;
}

// ------------------------------------------------------------------ pool

RpcHostPool::RpcHostPool(Worker& worker, const RpcCodec& codec, asio::ip::tcp::endpoint endpoint,
                         RpcPoolOptions options, ConnectionPool::Observer* observer)
    : worker_(worker),
      codec_(codec),
      observer_(observer),
      endpoint_(std::move(endpoint)),
      options_(std::move(options)) {}

RpcHostPool::~RpcHostPool() {
  if (observer_ != nullptr) {
    const int open = (counted_ ? 1 : 0) + static_cast<int>(going_away_.size());
    if (open > 0) observer_->OnConnectionCountChanged(-open);
  }
  current_.reset();
  going_away_.clear();
}

bool RpcHostPool::Wait(RpcPoolCallbacks* client) {
  if (waiting_.size() >= options_.max_pending) return false;
  waiting_.push_back(client);
  if (current_ == nullptr) {
    RpcUpstreamConnection::Owner& owner = *this;  // a private base: convert here
    current_ = std::make_unique<RpcUpstreamConnection>(worker_, owner, codec_, options_.limits);
    if (options_.tls != nullptr) current_->SetTls(options_.tls, options_.tls_policy);
    current_->Connect(endpoint_, options_.connect_timeout);  // reports on a later turn
  }
  return true;
}

void RpcHostPool::Cancel(RpcPoolCallbacks* client) {
  waiting_.remove(client);
  failing_.remove(client);
}

bool RpcHostPool::busy() const {
  return !waiting_.empty() || !failing_.empty() ||
         (current_ != nullptr && current_->pending() > 0) || !going_away_.empty();
}

void RpcHostPool::OnConnected(RpcUpstreamConnection& conn) {
  if (observer_ != nullptr) observer_->OnConnectionCountChanged(1);
  counted_ = true;
  // Serve in arrival order; a client may end others (they Cancel).
  while (!waiting_.empty() && current_.get() == &conn && conn.connected()) {
    RpcPoolCallbacks* client = waiting_.front();
    waiting_.pop_front();
    client->OnPoolReady(conn);
  }
}

void RpcHostPool::OnConnectFailed(RpcUpstreamConnection& conn, const std::string& reason) {
  if (conn.tls_failed() && observer_ != nullptr) observer_->OnTlsFailure(reason);
  Retire(conn);
  // Every waiting request waited for this one connect. Retries that pick
  // this host again wait for a new connection (in waiting_).
  failing_.splice(failing_.end(), waiting_);
  const std::string why = reason;
  while (!failing_.empty()) {
    RpcPoolCallbacks* client = failing_.front();
    failing_.pop_front();
    client->OnPoolFailure(why);
  }
}

void RpcHostPool::OnClosed(RpcUpstreamConnection& conn) {
  if (current_.get() == &conn) {
    Retire(conn);
    return;
  }
  for (auto it = going_away_.begin(); it != going_away_.end(); ++it) {
    if (it->get() != &conn) continue;
    if (observer_ != nullptr) observer_->OnConnectionCountChanged(-1);
    // We are inside conn's callback: destroy it on a later turn.
    worker_.Post([doomed = std::shared_ptr<RpcUpstreamConnection>(std::move(*it))] {});
    going_away_.erase(it);
    return;
  }
}

void RpcHostPool::OnGoingAway(RpcUpstreamConnection& conn) {
  // Only a connected (and so counted) connection reads frames.
  if (current_.get() != &conn || !counted_) return;
  going_away_.push_back(std::move(current_));  // keeps its count
  counted_ = false;
  // The next call opens a new connection (to a provider that may refuse
  // it: then the call is retried elsewhere, as after any connect failure).
}

void RpcHostPool::Retire(RpcUpstreamConnection& conn) {
  if (current_.get() != &conn) return;
  if (counted_) {
    if (observer_ != nullptr) observer_->OnConnectionCountChanged(-1);
    counted_ = false;
  }
  // We are inside conn's callback: destroy it on a later turn.
  worker_.Post([doomed = std::shared_ptr<RpcUpstreamConnection>(std::move(current_))] {});
}

void RpcHostPool::Tick(Clock::time_point now) {
  // Connections going away close once their last call is answered (or gave
  // up). Closing one removes it from the list: close a snapshot.
  std::vector<RpcUpstreamConnection*> drained;
  for (const auto& conn : going_away_) {
    if (conn->pending() == 0) drained.push_back(conn.get());
  }
  for (RpcUpstreamConnection* conn : drained) conn->CloseWithFailures("the peer went away");
  if (current_ == nullptr || !current_->connected()) return;
  if (current_->Tick(now, options_.heartbeat_interval, options_.idle_timeout) &&
      current_ != nullptr && current_->pending() == 0) {
    current_->CloseWithFailures("idle");
  }
}

}  // namespace cairn::sidecar
