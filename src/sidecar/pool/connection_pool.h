// ConnectionPool: the upstream connections of one worker to one host.
//
// A request asks the pool for a connection with Attach(); the pool calls
// back OnPoolReady(conn) — at once if a connection can take a stream, else
// when one can (after connecting, or when an HTTP/1 connection finishes its
// response) — or OnPoolFailure. HTTP/1 connections are reused with
// keep-alive; HTTP/2 multiplexes streams over one connection.
//
// Limits (per worker): max_connections, max_pending (waiting requests);
// beyond them Attach fails at once with kOverflow (the circuit breaker).
//
// Ownership: owned by the worker's cluster state; owns its connections, which
// it destroys on a later loop turn (never inside their own callbacks).
// Thread-safety: its worker's thread only.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <vector>

#include "sidecar/pool/upstream_connection.h"

namespace cairn::sidecar {

enum class PoolFailure { kConnectFailed, kOverflow };

class PoolClient {
 public:
  virtual ~PoolClient() = default;
  // conn.CanStartStream() is true: start the stream synchronously.
  virtual void OnPoolReady(UpstreamConnection& conn) = 0;
  virtual void OnPoolFailure(PoolFailure failure, const std::string& reason) = 0;
};

struct PoolOptions {
  UpstreamConnection::Protocol protocol = UpstreamConnection::Protocol::kHttp1;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds idle_timeout{60000};
  uint32_t max_connections = 1024;
  uint32_t max_pending = 1024;
  CodecLimits limits;
  // Originate TLS (null: plaintext), requiring `tls_policy` of the upstream.
  std::shared_ptr<TlsContextSource> tls;
  TlsPeerPolicy tls_policy;
};

class ConnectionPool : private UpstreamConnection::Owner {
 public:
  // Told how many upstream connections are open (the cluster gauge).
  class Observer {
   public:
    virtual ~Observer() = default;
    // An upstream connection opened or closed.
    virtual void OnConnectionCountChanged(int delta) = 0;
    // A TLS handshake or the upstream's identity check failed (the request
    // saw a connect failure).
    virtual void OnTlsFailure(const std::string& reason) { (void)reason; }
  };

  ConnectionPool(Worker& worker, asio::ip::tcp::endpoint endpoint, PoolOptions options,
                 Observer* observer);
  ~ConnectionPool() override;

  // REQUIRES: client stays valid until a callback or Cancel(client).
  void Attach(PoolClient* client);
  void Cancel(PoolClient* client);

  size_t connection_count() const { return connections_.size(); }
  size_t pending_count() const { return pending_.size(); }
  // Closes connections idle for longer than the idle timeout.
  void CloseIdle();

 private:
  // UpstreamConnection::Owner
  void OnConnected(UpstreamConnection& conn) override;
  void OnConnectFailed(UpstreamConnection& conn, const std::string& reason) override;
  void OnStreamCapacity(UpstreamConnection& conn) override;
  void OnClosed(UpstreamConnection& conn) override;

  UpstreamConnection* FindReady();
  void ServePending(UpstreamConnection& conn);
  void MaybeConnect();
  void Destroy(UpstreamConnection& conn);

  Worker& worker_;
  asio::ip::tcp::endpoint endpoint_;
  PoolOptions options_;
  Observer* observer_;
  std::list<std::unique_ptr<UpstreamConnection>> connections_;
  // HTTP/1 connections that finished their last response and wait for the
  // next request: Attach pops one in O(1) instead of scanning every
  // connection (a worker can hold hundreds to a busy host).
  std::vector<UpstreamConnection*> idle_;
  std::list<PoolClient*> pending_;
  size_t connecting_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::sidecar
