#include "sidecar/bolt/bolt_upstream.h"

#include <span>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "sidecar/codec/bolt/bolt_encoder.h"

namespace cairn::sidecar::bolt {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ connection

BoltUpstreamConnection::BoltUpstreamConnection(Worker& worker, Owner& owner,
                                               const BoltLimits& limits)
    : worker_(worker), owner_(owner), decoder_(limits) {}

BoltUpstreamConnection::~BoltUpstreamConnection() {
  closed_ = true;
  if (handshake_timer_ != 0) worker_.CancelTimer(handshake_timer_);
  connector_.reset();
  connection_.reset();
}

void BoltUpstreamConnection::Connect(const asio::ip::tcp::endpoint& endpoint,
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

uint32_t BoltUpstreamConnection::Send(std::string_view frame, BoltUpstreamCallbacks* callbacks) {
  const size_t at = out_.size();
  out_.append(frame);
  const uint32_t id = callbacks != nullptr ? pending_.Insert(callbacks) : pending_.NextId();
  if (!RewriteRequestId(std::span<char>(out_.data() + at, frame.size()), id).ok()) {
    out_.resize(at);
    pending_.Erase(id);
    return 0;
  }
  sent_since_tick_ = true;
  connection_->Write(out_);
  return id;
}

void BoltUpstreamConnection::OnRead(std::string_view data) {
  read_since_tick_ = true;
  std::string_view input = data;
  while (!closed_) {
    absl::StatusOr<const BoltFrameView*> next = decoder_.Next(input);
    if (!next.ok()) {
      CloseWithFailures("the upstream sent a malformed frame: " +
                        std::string(next.status().message()));
      return;
    }
    if (*next == nullptr) return;
    HandleFrame(**next);
  }
}

void BoltUpstreamConnection::HandleFrame(const BoltFrameView& frame) {
  if (frame.is_heartbeat()) {
    if (frame.is_response()) {
      if (frame.request_id == heartbeat_id_) heartbeat_id_ = 0;
    } else if (!frame.is_oneway()) {
      EncodeHeartbeatAck(frame.request_id, out_, FramingOf(frame));
      connection_->Write(out_);
    }
    return;
  }
  // A provider calling back into the client is not supported: dropped.
  if (!frame.is_response()) return;
  BoltUpstreamCallbacks* callbacks = pending_.Take(frame.request_id);
  // Nobody waits (the request timed out or its client left): dropped.
  if (callbacks == nullptr) return;
  callbacks->OnUpstreamResponse(frame);
}

void BoltUpstreamConnection::OnTlsReady() {
  handshaking_ = false;
  if (handshake_timer_ != 0) {
    worker_.CancelTimer(handshake_timer_);
    handshake_timer_ = 0;
  }
  quiet_since_ = busy_since_ = Clock::now();
  owner_.OnConnected(*this);
}

// Before OnConnected: the TLS handshake or the upstream's identity failed.
void BoltUpstreamConnection::FailConnect(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  handshaking_ = false;
  tls_failed_ = true;
  if (connection_ != nullptr) connection_->Close();
  owner_.OnConnectFailed(*this, reason);
}

void BoltUpstreamConnection::OnClose(const std::error_code& ec) {
  if (handshaking_) {
    std::string reason = connection_->tls_error();
    FailConnect(reason.empty() ? "upstream closed in the TLS handshake: " + ec.message() : reason);
    return;
  }
  CloseWithFailures(ec ? "the upstream connection closed: " + ec.message()
                       : std::string("the upstream connection closed"));
}

void BoltUpstreamConnection::CloseWithFailures(std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  if (connection_ != nullptr) connection_->Close();
  const std::string why(reason);  // `reason` may live in something the callbacks end
  owner_.OnClosed(*this);
  // One entry per turn: a callback may cancel other entries.
  while (BoltUpstreamCallbacks* callbacks = pending_.TakeAny()) callbacks->OnUpstreamFailure(why);
}

bool BoltUpstreamConnection::Tick(Clock::time_point now,
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
      EncodeHeartbeat(heartbeat_id_, out_);
      connection_->Write(out_);
    } else if (now - heartbeat_sent_ >= heartbeat_interval) {
      CloseWithFailures("the upstream did not answer a heartbeat");
      return false;
    }
  }
  return now - busy_since_ >= idle_timeout;
}

// ------------------------------------------------------------------ pool

BoltHostPool::BoltHostPool(Worker& worker, ClusterWorker& cluster, asio::ip::tcp::endpoint endpoint,
                           BoltPoolOptions options)
    : worker_(worker), cluster_(cluster), endpoint_(std::move(endpoint)), options_(options) {}

BoltHostPool::~BoltHostPool() {
  if (counted_) cluster_.stats().active_connections.Decrement();
  current_.reset();
}

bool BoltHostPool::Wait(BoltPoolCallbacks* client) {
  if (waiting_.size() >= options_.max_pending) return false;
  waiting_.push_back(client);
  if (current_ == nullptr) {
    BoltUpstreamConnection::Owner& owner = *this;  // a private base: convert here
    current_ = std::make_unique<BoltUpstreamConnection>(worker_, owner, options_.limits);
    if (options_.tls != nullptr) current_->SetTls(options_.tls, options_.tls_policy);
    current_->Connect(endpoint_, options_.connect_timeout);  // reports on a later turn
  }
  return true;
}

void BoltHostPool::Cancel(BoltPoolCallbacks* client) {
  waiting_.remove(client);
  failing_.remove(client);
}

bool BoltHostPool::busy() const {
  return !waiting_.empty() || !failing_.empty() || (current_ != nullptr && current_->pending() > 0);
}

void BoltHostPool::OnConnected(BoltUpstreamConnection& conn) {
  cluster_.stats().active_connections.Increment();
  counted_ = true;
  // Serve in arrival order; a client may end others (they Cancel).
  while (!waiting_.empty() && current_.get() == &conn && conn.connected()) {
    BoltPoolCallbacks* client = waiting_.front();
    waiting_.pop_front();
    client->OnPoolReady(conn);
  }
}

void BoltHostPool::OnConnectFailed(BoltUpstreamConnection& conn, const std::string& reason) {
  if (conn.tls_failed()) cluster_.ReportTlsFailure(reason);
  Retire(conn);
  // Every waiting request waited for this one connect. Retries that pick
  // this host again wait for a new connection (in waiting_).
  failing_.splice(failing_.end(), waiting_);
  const std::string why = reason;
  while (!failing_.empty()) {
    BoltPoolCallbacks* client = failing_.front();
    failing_.pop_front();
    client->OnPoolFailure(why);
  }
}

void BoltHostPool::OnClosed(BoltUpstreamConnection& conn) { Retire(conn); }

void BoltHostPool::Retire(BoltUpstreamConnection& conn) {
  if (current_.get() != &conn) return;
  if (counted_) {
    cluster_.stats().active_connections.Decrement();
    counted_ = false;
  }
  // We are inside conn's callback: destroy it on a later turn.
  worker_.Post([doomed = std::shared_ptr<BoltUpstreamConnection>(std::move(current_))] {});
}

void BoltHostPool::Tick(Clock::time_point now) {
  if (current_ == nullptr || !current_->connected()) return;
  if (current_->Tick(now, options_.heartbeat_interval, options_.idle_timeout) &&
      current_ != nullptr && current_->pending() == 0) {
    current_->CloseWithFailures("idle");
  }
}

// ------------------------------------------------------------- upstreams

BoltUpstreams::BoltUpstreams(Worker& worker) : worker_(worker) {}

BoltUpstreams::~BoltUpstreams() {
  if (timer_ != 0) worker_.CancelTimer(timer_);
}

void BoltUpstreams::Start() {
  timer_ = worker_.RunAfter(std::chrono::seconds(1), [this] { Tick(); });
}

BoltHostPool& BoltUpstreams::PoolFor(ClusterWorker& cluster, const upstream::HostPtr& host) {
  std::unique_ptr<BoltHostPool>& pool = pools_[&cluster][host->address_string()];
  if (pool == nullptr) {
    const ClusterConfig& config = cluster.config();
    BoltPoolOptions options;
    options.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
    options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
    options.heartbeat_interval = std::chrono::milliseconds(config.heartbeat_interval_ms);
    options.max_pending = config.limits.max_pending;
    options.tls = cluster.tls();
    if (options.tls != nullptr) options.tls_policy = cluster.TlsPolicyFor(host);
    // Addresses were validated when the host set was built.
    auto endpoint = ToEndpoint(host->address());
    pool = std::make_unique<BoltHostPool>(
        worker_, cluster, endpoint.ok() ? *endpoint : asio::ip::tcp::endpoint(), options);
  }
  return *pool;
}

void BoltUpstreams::Tick() {
  timer_ = 0;
  const Clock::time_point now = Clock::now();
  // Ticking may fail requests, whose retries may add pools: tick a snapshot.
  std::vector<BoltHostPool*> all;
  for (auto& [cluster, pools] : pools_) {
    for (auto& [address, pool] : pools) all.push_back(pool.get());
  }
  for (BoltHostPool* pool : all) pool->Tick(now);
  // Pools of hosts that left the cluster go once nothing waits on them.
  for (auto& [cluster, pools] : pools_) {
    if (pools.empty()) continue;
    std::shared_ptr<const upstream::HostSet> hosts = cluster->hosts();
    absl::flat_hash_set<std::string> present;
    if (hosts != nullptr) {
      for (const auto& host : hosts->hosts()) present.insert(host->address_string());
    }
    for (auto it = pools.begin(); it != pools.end();) {
      if (!present.contains(it->first) && !it->second->busy()) {
        pools.erase(it++);
      } else {
        ++it;
      }
    }
  }
  timer_ = worker_.RunAfter(std::chrono::seconds(1), [this] { Tick(); });
}

}  // namespace cairn::sidecar::bolt
