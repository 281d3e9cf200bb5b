// ConnectionHandler: one worker's downstream connections, from accept to
// their end, whatever their protocol.
//
//   listener ─► Accept(fd) ─► [sniff: ProtocolSniffer peeks the first byte]
//                                  │
//                                  ▼
//                  the listener's SessionFactory(connection, first byte)
//                      → HttpConnectionManager / RpcConnectionManager / TcpProxy
//
// A session (DownstreamSession) tells the handler it is finished through the
// callback it was made with; the handler destroys it on a later loop turn
// (sessions finish inside their own callbacks), together with the listener's
// connection slot it held. This is the one place downstream connections are
// owned and deleted; the protocol is picked once, by the factory, from the
// first byte when the listener sniffs (the detectors are the RPC codecs'
// MatchesFirstByte, codec/rpc_codecs.h).
//
// Thread-safety: its worker's thread only (construct anywhere).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "sidecar/network/connection.h"
#include "sidecar/network/connection_limit.h"
#include "sidecar/network/protocol_sniffer.h"
#include "sidecar/network/worker.h"

namespace cairn::sidecar {

// A downstream connection's protocol handler, as the connection handler
// owns it.
class DownstreamSession {
 public:
  virtual ~DownstreamSession() = default;
  // Begins reading. Called once, right after the factory made the session.
  virtual void Start() = 0;
  // Graceful close: finish what is in flight, take nothing new, then end.
  virtual void Drain() = 0;
};

class ConnectionHandler {
 public:
  using FinishCallback = std::function<void(DownstreamSession*)>;
  // Makes the session of an accepted connection (`first_byte`: its first
  // byte when the listener sniffs, else -1), which must call `on_finished`
  // once when it is done. Null: the connection is refused (it closes).
  using SessionFactory = std::function<std::unique_ptr<DownstreamSession>(
      std::unique_ptr<Connection> connection, int first_byte, FinishCallback on_finished)>;

  struct ListenerSetup {
    SessionFactory make_session;
    // Wait for the first byte before making the session (auto listeners
    // that serve an RPC protocol besides HTTP).
    bool sniff = false;
    // A sniffed connection that sends nothing for this long is closed
    // (0: never), as an HTTP client would be by its header timeout.
    std::chrono::milliseconds first_byte_timeout{0};
  };

  explicit ConnectionHandler(Worker& worker) : worker_(worker) {}
  ~ConnectionHandler();
  ConnectionHandler(const ConnectionHandler&) = delete;
  ConnectionHandler& operator=(const ConnectionHandler&) = delete;

  // Listeners are numbered in the order they are added. Before any Accept.
  size_t AddListener(ListenerSetup setup);

  // Takes an accepted, non-blocking socket of `listener`; `slot` (the
  // listener's max_connections) is held until the session is destroyed.
  void Accept(size_t listener, int fd, ConnectionLimit::Slot slot);

  // Closes sockets still being sniffed (nothing in flight on them) and
  // drains every session.
  void Drain();
  // Destroys every session and sniffer now (shutdown).
  void Clear();
  // Sessions and sniffed sockets open.
  size_t open() const { return sessions_.size() + sniffers_.size(); }

 private:
  struct Owned {
    std::unique_ptr<DownstreamSession> session;
    ConnectionLimit::Slot slot;
  };
  struct Sniffing {
    std::unique_ptr<ProtocolSniffer> sniffer;
    Worker::TimerId deadline = 0;
  };

  void StartSession(size_t listener, std::unique_ptr<Connection> connection, int first_byte,
                    ConnectionLimit::Slot slot);
  void Sniff(size_t listener, int fd, ConnectionLimit::Slot slot);
  // Destroys `session` on a later loop turn (it may be calling).
  void Bury(DownstreamSession* session);

  Worker& worker_;
  std::vector<ListenerSetup> listeners_;
  std::unordered_map<DownstreamSession*, Owned> sessions_;
  std::unordered_map<ProtocolSniffer*, Sniffing> sniffers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::sidecar
