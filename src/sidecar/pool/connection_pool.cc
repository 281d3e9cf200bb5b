#include "sidecar/pool/connection_pool.h"

#include <algorithm>

namespace cairn::sidecar {

ConnectionPool::ConnectionPool(Worker& worker, asio::ip::tcp::endpoint endpoint,
                               PoolOptions options, Observer* observer)
    : worker_(worker), endpoint_(std::move(endpoint)), options_(options), observer_(observer) {}

ConnectionPool::~ConnectionPool() {
  *alive_ = false;
  if (observer_ != nullptr) {
    for (auto& conn : connections_) {
      if (conn->connected()) observer_->OnConnectionCountChanged(-1);
    }
  }
  // Pending clients are owned by requests that die with the worker too.
  pending_.clear();
  connections_.clear();
}

UpstreamConnection* ConnectionPool::FindReady() {
  if (options_.protocol == UpstreamConnection::Protocol::kHttp1) {
    while (!idle_.empty()) {
      UpstreamConnection* conn = idle_.back();
      idle_.pop_back();
      conn->idle_listed = false;
      if (conn->CanStartStream()) return conn;
    }
    return nullptr;
  }
  for (auto& conn : connections_) {
    if (conn->CanStartStream()) return conn.get();
  }
  return nullptr;
}

void ConnectionPool::Attach(PoolClient* client) {
  if (UpstreamConnection* conn = FindReady()) {
    client->OnPoolReady(*conn);
    return;
  }
  if (pending_.size() >= options_.max_pending) {
    client->OnPoolFailure(PoolFailure::kOverflow, "too many requests waiting for a connection");
    return;
  }
  pending_.push_back(client);
  MaybeConnect();
}

void ConnectionPool::Cancel(PoolClient* client) { pending_.remove(client); }

void ConnectionPool::MaybeConnect() {
  // HTTP/2: one connection carries every stream; connect only if none is up
  // or coming. HTTP/1: one connection per waiting request, up to the limit.
  size_t wanted;
  if (options_.protocol == UpstreamConnection::Protocol::kHttp2) {
    wanted = (connecting_ == 0 && FindReady() == nullptr) ? 1 : 0;
  } else {
    wanted = pending_.size() > connecting_ ? pending_.size() - connecting_ : 0;
  }
  while (wanted-- > 0) {
    // At the limit, waiting requests get the next connection that frees up.
    if (connections_.size() >= options_.max_connections) return;
    UpstreamConnection::Owner& owner = *this;
    auto conn =
        std::make_unique<UpstreamConnection>(worker_, owner, options_.protocol, options_.limits);
    if (options_.tls != nullptr) conn->SetTls(options_.tls, options_.tls_policy);
    UpstreamConnection* raw = conn.get();
    connections_.push_back(std::move(conn));
    ++connecting_;
    raw->Connect(endpoint_, options_.connect_timeout);
  }
}

void ConnectionPool::OnConnected(UpstreamConnection& conn) {
  --connecting_;
  if (observer_ != nullptr) observer_->OnConnectionCountChanged(1);
  ServePending(conn);
}

void ConnectionPool::OnConnectFailed(UpstreamConnection& conn, const std::string& reason) {
  --connecting_;
  if (conn.tls_failed() && observer_ != nullptr) observer_->OnTlsFailure(reason);
  Destroy(conn);
  // One failed connect fails one waiting request: the others keep their own
  // connection attempts (HTTP/1) or get a new one.
  if (!pending_.empty()) {
    PoolClient* client = pending_.front();
    pending_.pop_front();
    client->OnPoolFailure(PoolFailure::kConnectFailed, reason);
  }
  if (!*alive_) return;
  if (!pending_.empty()) MaybeConnect();
}

void ConnectionPool::OnStreamCapacity(UpstreamConnection& conn) { ServePending(conn); }

void ConnectionPool::ServePending(UpstreamConnection& conn) {
  std::shared_ptr<bool> alive = alive_;
  while (!pending_.empty() && conn.CanStartStream()) {
    PoolClient* client = pending_.front();
    pending_.pop_front();
    client->OnPoolReady(conn);
    if (!*alive) return;
  }
  // Nobody waiting: remember it as idle (HTTP/2 connections are found by
  // scanning: there is one per host).
  if (options_.protocol == UpstreamConnection::Protocol::kHttp1 && conn.CanStartStream() &&
      !conn.idle_listed) {
    conn.idle_listed = true;
    idle_.push_back(&conn);
  }
}

void ConnectionPool::OnClosed(UpstreamConnection& conn) {
  if (observer_ != nullptr && conn.connected()) observer_->OnConnectionCountChanged(-1);
  Destroy(conn);
  if (!pending_.empty()) MaybeConnect();
}

void ConnectionPool::Destroy(UpstreamConnection& conn) {
  if (conn.idle_listed) idle_.erase(std::remove(idle_.begin(), idle_.end(), &conn), idle_.end());
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&conn](const auto& c) { return c.get() == &conn; });
  if (it == connections_.end()) return;
  // Destroy on a later turn: we may be inside conn's own callback.
  std::shared_ptr<UpstreamConnection> doomed(std::move(*it));
  connections_.erase(it);
  worker_.Post([doomed] {});
}

void ConnectionPool::CloseIdle() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    UpstreamConnection& conn = **it;
    if (conn.connected() && conn.active_streams() == 0 &&
        now - conn.idle_since() > options_.idle_timeout) {
      if (conn.idle_listed) {
        idle_.erase(std::remove(idle_.begin(), idle_.end(), &conn), idle_.end());
      }
      conn.Close();
      if (observer_ != nullptr) observer_->OnConnectionCountChanged(-1);
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace cairn::sidecar
