// RPC codecs: what the sidecar's one RPC request path (src/sidecar/rpc/)
// needs from a multiplexed request/response protocol such as SOFARPC Bolt or
// Dubbo 2. A new RPC protocol is an RpcCodec and a line in the protocol list
// (codec/rpc_codecs.cc); the connection manager, the request (route, pick a
// host, retry, time out, log), the pools and the metrics are shared.
//
// The path never decodes a body it does not need: a codec finds frame
// boundaries, the request id, the message kind, the routing service and the
// caller's deadline; frames are forwarded as they came with only the request
// id swapped (many downstream connections share one upstream connection,
// and every client counts its ids from 1). The sidecar's own answers (no
// route, timeout, upstream failure, overflow, malformed frame) are encoded by
// the codec in the protocol's terms, framed like the request they answer.
//
// Thread-safety: an RpcCodec is immutable and shared by every worker; an
// RpcDecoder belongs to one connection on one worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::sidecar {

enum class RpcKind : uint8_t {
  kRequest,       // two-way: a response is owed
  kOneway,        // no response
  kResponse,      // answers a request with the same id
  kHeartbeat,     // a liveness probe (answered by whoever receives it, if two-way)
  kHeartbeatAck,  // the answer to a heartbeat
  // The peer takes no new calls on this connection but answers those in
  // flight (Dubbo's READONLY event, which a provider sends to its clients as
  // it begins to shut down). Never answered.
  kGoingAway,
};

// The sidecar's own failures, which each codec maps to its protocol's status.
enum class RpcError : uint8_t {
  kNoRoute,          // no route or no cluster for the service
  kOverflow,         // a circuit breaker: too many requests in flight or waiting
  kTimeout,          // no response within the deadline
  kUpstreamFailure,  // no provider, connect failure, or the connection closed mid-call
  kCodecError,       // the frame is malformed or cannot be forwarded
};

// One decoded frame. Views point into `raw` (or, for service/method, into
// the frame's bytes): valid until the decoder's next Next() call and, when
// the frame lay whole in the caller's input, while that input is alive.
struct RpcMessage {
  RpcKind kind = RpcKind::kRequest;
  uint64_t request_id = 0;
  // Requests: the routing key ("" when the frame names none) and the method
  // (for logs; "" when unknown).
  std::string_view service;
  std::string_view method;
  // Requests: the caller's deadline in ms; 0 or less: none said.
  int64_t timeout_ms = 0;
  // Responses: the protocol's status code.
  uint32_t status = 0;
  // How to answer in kind (protocol version, serialization...): opaque to
  // the path, handed back to EncodeError / EncodeHeartbeatAck.
  uint64_t framing = 0;
  std::string_view raw;  // the whole frame

  bool two_way() const { return kind == RpcKind::kRequest; }
};

struct RpcLimits {
  // A whole frame, header included. Checked as soon as a fixed header says
  // how long its frame is, before the rest is buffered.
  size_t max_frame_bytes = 16 * 1024 * 1024;
};

// Incremental decoder for one connection (pull model):
//
//   std::string_view input = bytes_read;
//   for (;;) {
//     auto next = decoder.Next(input);
//     if (!next.ok()) { the connection is broken; break; }
//     if (*next == nullptr) break;  // all input consumed, need more
//     handle(**next);
//   }
//
// Errors: INVALID_ARGUMENT for a malformed frame, RESOURCE_EXHAUSTED for a
// limit, with a message naming the field. After an error the decoder is
// poisoned: every later call returns the same status.
class RpcDecoder {
 public:
  virtual ~RpcDecoder() = default;
  virtual absl::StatusOr<const RpcMessage*> Next(std::string_view& input) = 0;
  // Bytes of an incomplete frame held by the decoder (non-zero: a frame is
  // arriving; the frame timeout runs).
  virtual size_t buffered_bytes() const = 0;
};

// Status slots of the per-service response counter: codecs map their status
// codes onto [0, kRpcStatusSlots), the last slot meaning "any other".
inline constexpr size_t kRpcStatusSlots = 16;

class RpcCodec {
 public:
  virtual ~RpcCodec() = default;

  // "bolt", "dubbo": the listener / cluster `protocol`, the `<name>_routes`
  // key, the metric prefix (cairn_sidecar_<name>_...).
  virtual std::string_view name() const = 0;
  // Upper-case tag of access log lines ("BOLT").
  virtual std::string_view log_tag() const = 0;

  // Protocol detection on `auto` listeners: whether a connection whose first
  // byte is `first_byte` speaks this protocol. Detectors of different codecs
  // must not overlap, nor claim an HTTP/1 method's or HTTP/2 preface's first
  // byte (ASCII letters).
  virtual bool MatchesFirstByte(uint8_t first_byte) const = 0;

  virtual std::unique_ptr<RpcDecoder> NewDecoder(const RpcLimits& limits) const = 0;

  // Replaces the request id of one complete frame, as a decoder returned it,
  // in place (updating a checksum if the protocol has one). INVALID_ARGUMENT
  // (frame unchanged) when it cannot. The ids the sidecar gives upstream are
  // below 2^32 (RpcPendingMap), which every protocol's id field holds;
  // downstream ids are restored as the client sent them.
  virtual absl::Status RewriteRequestId(std::span<char> frame, uint64_t request_id) const = 0;

  // Appends a two-way heartbeat with `request_id` (the upstream side probes
  // idle connections).
  virtual void EncodeHeartbeat(uint64_t request_id, std::string& out) const = 0;
  // Appends the answer to `heartbeat` (kind kHeartbeat).
  virtual void EncodeHeartbeatAck(const RpcMessage& heartbeat, std::string& out) const = 0;
  // Appends the sidecar's own error response to a request framed as
  // `framing` says (RpcMessage::framing) with `request_id`. `message` is
  // for people (it may quote client input: codecs keep it printable and
  // bounded).
  virtual void EncodeError(uint64_t framing, uint64_t request_id, RpcError error,
                           std::string_view message, std::string& out) const = 0;
  // A frame the decoder refused: when `bytes` (the start of that frame)
  // holds enough of a fixed header to name a two-way request, its framing
  // and id, so that the sender can be told why before the connection closes.
  virtual bool PeekTwoWayRequest(std::string_view bytes, uint64_t& framing,
                                 uint64_t& request_id) const = 0;

  // Responses: the status a sidecar error carries, whether a status means
  // success (passive health counts failures only for transport errors, not
  // for statuses; this is for metrics and logs), its slot and its name.
  virtual uint32_t ErrorStatus(RpcError error) const = 0;
  virtual size_t StatusSlot(uint32_t status) const = 0;  // < kRpcStatusSlots
  virtual std::string_view StatusName(uint32_t status) const = 0;
};

}  // namespace cairn::sidecar
