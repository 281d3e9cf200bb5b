// Dubbo 2 as an RpcCodec (sidecar/codec/rpc_codec.h): what the sidecar's RPC
// path sees of a Dubbo frame (framing itself is in dubbo_frame.h).
//
// RpcMessage for Dubbo:
//  - kind: request + two-way = kRequest, or kHeartbeat with the event bit
//    (whatever the event's body: it is answered with a null);
//    request without two-way = kOneway; response + event = kHeartbeatAck;
//    other responses = kResponse. A oneway event is Dubbo's READONLY notice
//    (a provider shutting down: no new calls on this connection) and is
//    kGoingAway: the upstream pool stops giving the connection new calls;
//    from a client it is dropped.
//  - request_id: bytes 4-11 (the bits of a Java long).
//  - service: the service path (the interface name) of a hessian2 request
//    whose first body strings are single chunks; "" otherwise (another
//    serialization, chunked strings, a body that is not strings), and such
//    a frame only matches a match-all route. The service version is not part
//    of the key (RpcMessage has no field for it and "path:version" is not
//    contiguous in the frame): version-specific routing is left to route
//    rules on the path.
//  - method: the method name, same conditions.
//  - timeout_ms: 0. Dubbo sends the caller's timeout in the attachments,
//    after the arguments, which we do not decode.
//  - status: byte 3 of responses (0 for requests).
//  - framing: the serialization id (flag bits 0-4), so the sidecar's own
//    answers are flagged like the request.
//  - raw: header and body.
//
// Thread-safety: DubboRpcCodec is immutable; its decoders belong to one
// connection each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "sidecar/codec/rpc_codec.h"

namespace cairn::sidecar::dubbo {

class DubboRpcCodec final : public cairn::sidecar::RpcCodec {
 public:
  // RpcCodec
  std::string_view name() const override { return "dubbo"; }
  std::string_view log_tag() const override { return "DUBBO"; }
  // The first magic byte (0xda): no ASCII letter, no Bolt proto byte.
  bool MatchesFirstByte(uint8_t first_byte) const override;
  std::unique_ptr<RpcDecoder> NewDecoder(const RpcLimits& limits) const override;
  absl::Status RewriteRequestId(std::span<char> frame, uint64_t request_id) const override;
  // Request, two-way, event, hessian2, body 'N'.
  void EncodeHeartbeat(uint64_t request_id, std::string& out) const override;
  // Response, event, the heartbeat's serialization, status OK, same id. The
  // body is the serialized null: 'N' for hessian2; for another
  // serialization, the heartbeat's own body (its sender's null) when it is
  // at most 16 bytes, else 'N'.
  void EncodeHeartbeatAck(const RpcMessage& heartbeat, std::string& out) const override;
  // A response with ErrorStatus(error), the serialization of `framing` (2,
  // hessian2, when `framing` is 0) and `message` as a hessian2 string: see
  // EncodeErrorResponse in dubbo_frame.h (printable ASCII, at most 4 KiB).
  // Under another serialization the peer fails to read the message, but it
  // still sees the status.
  void EncodeError(uint64_t framing, uint64_t request_id, RpcError error, std::string_view message,
                   std::string& out) const override;
  // True for 12 bytes or more with the magic and request + two-way, not
  // event.
  bool PeekTwoWayRequest(std::string_view bytes, uint64_t& framing,
                         uint64_t& request_id) const override;
  // kNoRoute: SERVICE_NOT_FOUND (60), kOverflow:
  // SERVER_THREADPOOL_EXHAUSTED_ERROR (100), kTimeout: SERVER_TIMEOUT (31),
  // kUpstreamFailure: SERVER_ERROR (80), kCodecError: BAD_REQUEST (40).
  uint32_t ErrorStatus(RpcError error) const override;
  // One slot per named status (OK first, in the order of DubboStatus), the
  // last slot for the rest.
  size_t StatusSlot(uint32_t status) const override;
  std::string_view StatusName(uint32_t status) const override;
};

// The shared instance.
const RpcCodec& DubboCodec();

}  // namespace cairn::sidecar::dubbo
