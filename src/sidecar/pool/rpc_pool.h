// The upstream side of the RPC path (Bolt, Dubbo: any RpcCodec), per worker
// and host, owned by the cluster (ClusterWorker::RpcPoolFor):
//
//   ClusterWorker ── per host address ── RpcHostPool
//                                          └ RpcUpstreamConnection (one, multiplexed)
//
// Every request a worker forwards to a host shares one connection: the frame
// is written as it came, with only its request id replaced by one from the
// connection's RpcPendingMap, and the response is matched back by that id.
// A connection that has read nothing for the cluster's heartbeat interval
// sends a heartbeat; if the next interval passes in silence too, it is
// closed as dead. Idle connections (no request for idle_timeout_ms) close,
// and the pools of hosts that left the cluster go once they are idle.
//
// Failure: when a connection closes (peer gone, reset, a malformed
// response, heartbeat timeout) every request waiting on it hears
// OnUpstreamFailure; requests waiting for a connect that fails hear
// OnPoolFailure. The request decides about retries.
//
// Ownership: the cluster owns the pools, a pool owns its connection.
// Closed connections are destroyed on a later loop turn, never inside their
// own callbacks. Callbacks objects are borrowed: a request that goes away
// first calls Cancel. REQUIRES: the pools outlive every request that uses
// them (the server destroys connection managers first).
// Thread-safety: one worker's thread only.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include <asio/ip/tcp.hpp>

#include "absl/container/flat_hash_map.h"
#include "sidecar/codec/rpc_codec.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/connector.h"
#include "sidecar/pool/connection_pool.h"
#include "sidecar/pool/rpc_pending.h"

namespace cairn::sidecar {

// What a forwarded (two-way) request hears from its upstream connection.
// Exactly one of these, once; the connection forgets the request first.
class RpcUpstreamCallbacks {
 public:
  virtual ~RpcUpstreamCallbacks() = default;
  // The response; `response` (its request_id is the upstream one) is valid
  // only during the call.
  virtual void OnUpstreamResponse(const RpcMessage& response) = 0;
  // The connection closed before the response; `reason` for messages.
  virtual void OnUpstreamFailure(std::string_view reason) = 0;
};

class RpcUpstreamConnection;

// What a request waiting for a connection hears from the pool (never
// synchronously from Wait()).
class RpcPoolCallbacks {
 public:
  virtual ~RpcPoolCallbacks() = default;
  // REQUIRES of the callee: send now (conn.Send) or not at all.
  virtual void OnPoolReady(RpcUpstreamConnection& conn) = 0;
  // The connect failed: the frame was never written.
  virtual void OnPoolFailure(std::string_view reason) = 0;
};

class RpcUpstreamConnection : private Connection::Handler {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnConnected(RpcUpstreamConnection& conn) = 0;
    virtual void OnConnectFailed(RpcUpstreamConnection& conn, const std::string& reason) = 0;
    // Called once, before the waiting requests hear OnUpstreamFailure.
    virtual void OnClosed(RpcUpstreamConnection& conn) = 0;
    // The peer takes no new calls here (RpcKind::kGoingAway); once.
    virtual void OnGoingAway(RpcUpstreamConnection& conn) { (void)conn; }
  };

  RpcUpstreamConnection(Worker& worker, Owner& owner, const RpcCodec& codec,
                        const RpcLimits& limits);
  ~RpcUpstreamConnection() override;  // closes without callbacks
  RpcUpstreamConnection(const RpcUpstreamConnection&) = delete;
  RpcUpstreamConnection& operator=(const RpcUpstreamConnection&) = delete;

  // Originate TLS (before Connect): connected only once the handshake
  // finished and the upstream passed `policy`; a failure is an
  // OnConnectFailed with tls_failed() true.
  void SetTls(std::shared_ptr<TlsContextSource> tls, TlsPeerPolicy policy) {
    tls_ = std::move(tls);
    tls_policy_ = std::move(policy);
  }
  bool tls_failed() const { return tls_failed_; }
  void Connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout);
  bool connected() const { return connection_ != nullptr && !closed_ && !handshaking_; }
  // The peer said it takes no new calls on this connection.
  bool going_away() const { return going_away_; }

  // Writes `frame` (one whole request frame, as the decoder returned it)
  // under a fresh requestId. With callbacks (a two-way request) the response
  // goes there and the id is returned for Cancel(); oneway: nullptr. Returns
  // 0 when the frame cannot be rewritten (nothing was sent).
  // REQUIRES: connected().
  uint64_t Send(std::string_view frame, RpcUpstreamCallbacks* callbacks);
  // The request of `id` gave up: a late response is dropped.
  void Cancel(uint64_t id) { pending_.Erase(id); }
  size_t pending() const { return pending_.size(); }

  // Once a second (the cluster's tick): heartbeats. Returns true when the
  // connection has carried no request for `idle_timeout`.
  bool Tick(std::chrono::steady_clock::time_point now, std::chrono::milliseconds heartbeat_interval,
            std::chrono::milliseconds idle_timeout);
  // Closes and fails the waiting requests with `reason`.
  void CloseWithFailures(std::string_view reason);

 private:
  // Connection::Handler
  void OnRead(std::string_view data) override;
  void OnClose(const std::error_code& ec) override;
  void OnTlsReady() override;
  void FailConnect(const std::string& reason);

  void HandleFrame(const RpcMessage& frame);

  Worker& worker_;
  Owner& owner_;
  const RpcCodec& codec_;
  std::unique_ptr<RpcDecoder> decoder_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<Connection> connection_;
  std::shared_ptr<TlsContextSource> tls_;  // null: plaintext
  TlsPeerPolicy tls_policy_;
  bool handshaking_ = false;
  bool tls_failed_ = false;
  Worker::TimerId handshake_timer_ = 0;
  RpcPendingMap<RpcUpstreamCallbacks> pending_;
  std::string out_;
  bool closed_ = false;
  bool going_away_ = false;
  // Liveness, sampled by Tick.
  bool read_since_tick_ = false;
  bool sent_since_tick_ = false;
  std::chrono::steady_clock::time_point quiet_since_;  // last tick that saw a read
  std::chrono::steady_clock::time_point busy_since_;   // last tick that saw a request
  uint64_t heartbeat_id_ = 0;                          // outstanding heartbeat, 0: none
  std::chrono::steady_clock::time_point heartbeat_sent_;
};

struct RpcPoolOptions {
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds heartbeat_interval{15000};  // 0: off
  uint32_t max_pending = 1024;                          // requests waiting for the connect
  RpcLimits limits;
  std::shared_ptr<TlsContextSource> tls;  // null: plaintext
  TlsPeerPolicy tls_policy;
};

// The connection of one worker to one host.
class RpcHostPool : private RpcUpstreamConnection::Owner {
 public:
  RpcHostPool(Worker& worker, const RpcCodec& codec, asio::ip::tcp::endpoint endpoint,
              RpcPoolOptions options, ConnectionPool::Observer* observer);
  ~RpcHostPool() override;

  // The connected connection, or nullptr (then Wait).
  RpcUpstreamConnection* ReadyConnection() {
    return current_ != nullptr && current_->connected() ? current_.get() : nullptr;
  }
  // Queues `client` for the connection (connecting if needed); it hears
  // OnPoolReady or OnPoolFailure later, never inside this call. False (and
  // nothing queued) when max_pending clients wait already.
  // REQUIRES: ReadyConnection() is null; client stays valid until its
  // callback or Cancel(client).
  bool Wait(RpcPoolCallbacks* client);
  void Cancel(RpcPoolCallbacks* client);

  // Requests waiting on this pool (for a connect or for responses, on the
  // current connection or on one going away).
  bool busy() const;
  // Once a second: heartbeats and idle closing.
  void Tick(std::chrono::steady_clock::time_point now);

 private:
  // RpcUpstreamConnection::Owner
  void OnConnected(RpcUpstreamConnection& conn) override;
  void OnConnectFailed(RpcUpstreamConnection& conn, const std::string& reason) override;
  void OnClosed(RpcUpstreamConnection& conn) override;
  void OnGoingAway(RpcUpstreamConnection& conn) override;

  void Retire(RpcUpstreamConnection& conn);

  Worker& worker_;
  const RpcCodec& codec_;
  ConnectionPool::Observer* observer_;
  asio::ip::tcp::endpoint endpoint_;
  RpcPoolOptions options_;
  std::unique_ptr<RpcUpstreamConnection> current_;
  bool counted_ = false;  // current_ is counted by the observer (the connection gauge)
  // Connections whose peer is going away (each counted): they finish the
  // calls in flight and close once none is left (Tick) or when the peer
  // closes them; new calls open a new current_.
  std::list<std::unique_ptr<RpcUpstreamConnection>> going_away_;
  std::list<RpcPoolCallbacks*> waiting_;
  // Clients being told about a failed connect: Cancel() must find them
  // here too (a callback may end other requests of this pool).
  std::list<RpcPoolCallbacks*> failing_;
};

}  // namespace cairn::sidecar
