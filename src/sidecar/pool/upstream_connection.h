// UpstreamConnection: one connection to one upstream host, with the client
// codec of the cluster's protocol (HTTP/1.1: one stream at a time, reused
// with keep-alive; HTTP/2: many streams multiplexed).
//
// Ownership: owned by its ConnectionPool. Streams are borrowed: a caller that
// starts a stream must either see it end (a final callback: end_stream data,
// trailers, or a reset) or Abandon() it before the callbacks object dies.
// Thread-safety: its worker's thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <asio/ip/tcp.hpp>

#include "sidecar/codec/codec.h"
#include "sidecar/network/connection.h"
#include "sidecar/network/connector.h"

namespace cairn::sidecar {

// What a request hears from its upstream stream.
class UpstreamStreamCallbacks {
 public:
  virtual ~UpstreamStreamCallbacks() = default;
  virtual void OnUpstreamHead(ResponseHead&& head, bool end_stream) = 0;
  virtual void OnUpstreamData(std::string_view data, bool end_stream) = 0;
  virtual void OnUpstreamTrailers(HeaderList&& trailers) = 0;
  virtual void OnUpstreamReset(ResetReason reason) = 0;
  // Everything queued for the upstream was handed to the kernel. Only sent
  // to streams that asked (UpstreamConnection::NotifyWhenDrained).
  virtual void OnUpstreamDrained() {}
};

class UpstreamConnection : private Connection::Handler, private ClientCodecCallbacks {
 public:
  // Called when the connection becomes usable (connected, or a stream ended
  // so HTTP/1 is free again) or when it closed. The pool decides.
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnConnected(UpstreamConnection& conn) = 0;
    virtual void OnConnectFailed(UpstreamConnection& conn, const std::string& reason) = 0;
    virtual void OnStreamCapacity(UpstreamConnection& conn) = 0;
    virtual void OnClosed(UpstreamConnection& conn) = 0;
  };

  enum class Protocol { kHttp1, kHttp2 };

  UpstreamConnection(Worker& worker, Owner& owner, Protocol protocol, const CodecLimits& limits);
  ~UpstreamConnection() override;

  // Originate TLS on the connection (before Connect). The connection counts
  // as connected only once the handshake finished and the upstream's
  // certificate passed `policy`; a failure is an OnConnectFailed (so the
  // request can go elsewhere), with tls_failed() true.
  void SetTls(std::shared_ptr<TlsContextSource> tls, TlsPeerPolicy policy) {
    tls_ = std::move(tls);
    tls_policy_ = std::move(policy);
  }
  bool tls_failed() const { return tls_failed_; }

  // Starts connecting; Owner::OnConnected or OnConnectFailed follows.
  void Connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout);

  bool connected() const { return connected_; }
  bool CanStartStream() const;
  size_t active_streams() const { return streams_.size(); }
  bool WantsClose() const;

  // REQUIRES: CanStartStream(). Returns 0 (and keeps nothing) when the codec
  // cannot encode the request; the caller then fails the request itself.
  StreamId StartStream(const RequestHead& head, bool end_stream, UpstreamStreamCallbacks* cb);
  void SendData(StreamId stream, std::string_view data, bool end_stream);
  void SendTrailers(StreamId stream, const HeaderList& trailers);
  // The caller no longer wants this stream (timeout, downstream gone):
  // HTTP/2 resets it; HTTP/1 must close the connection.
  void Abandon(StreamId stream);

  // Backpressure. Bytes waiting to be written to the upstream (the socket
  // queue; what a codec holds back for flow control is not counted).
  size_t queued_bytes() const;
  // `stream` hears OnUpstreamDrained once the queue empties (once per call).
  void NotifyWhenDrained(StreamId stream);
  // Stop / resume reading responses. Only for a connection that is not
  // multiplexed: pausing would stall every stream on it.
  bool multiplexed() const { return protocol_ == Protocol::kHttp2; }
  void PauseReading();
  void ResumeReading();

  // Closes without callbacks. REQUIRES: no active streams.
  void Close();
  // Bookkeeping of the owning pool: whether this connection is on its idle list.
  bool idle_listed = false;
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }

 private:
  // Connection::Handler
  void OnRead(std::string_view data) override;
  void OnClose(const std::error_code& ec) override;
  void OnWriteDrained() override;
  void OnTlsReady() override;
  // ClientCodecCallbacks
  void OnResponseHead(StreamId stream, ResponseHead&& head, bool end_stream) override;
  void OnResponseData(StreamId stream, std::string_view data, bool end_stream) override;
  void OnResponseTrailers(StreamId stream, HeaderList&& trailers) override;
  void OnStreamReset(StreamId stream, ResetReason reason) override;

  void StreamDone(StreamId stream);
  void BecomeConnected();
  void FailConnect(const std::string& reason);
  void WriteOut();
  void CloseWithResets(ResetReason reason);

  Worker& worker_;
  Owner& owner_;
  Protocol protocol_;
  std::unique_ptr<ClientCodec> codec_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Connector> connector_;
  std::shared_ptr<TlsContextSource> tls_;  // null: plaintext
  TlsPeerPolicy tls_policy_;
  bool tls_failed_ = false;
  Worker::TimerId handshake_timer_ = 0;
  std::chrono::milliseconds connect_timeout_{1000};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<StreamId, UpstreamStreamCallbacks*> streams_;
  std::string out_;
  bool connected_ = false;
  bool closed_ = false;
  bool reported_closed_ = false;  // Owner::OnClosed was called
  bool in_ingress_ = false;
  bool capacity_pending_ = false;
  std::vector<StreamId> drain_waiters_;
  bool reads_paused_ = false;
  std::chrono::steady_clock::time_point idle_since_;
};

}  // namespace cairn::sidecar
