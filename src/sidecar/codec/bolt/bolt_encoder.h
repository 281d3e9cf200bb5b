// Bolt frame encoders (v1 and v2). Each appends one complete frame to a
// caller's buffer; on error nothing is appended.
//
// Used by the sidecar to answer on its own (error responses, heartbeat acks),
// by the health checker (heartbeats) and by tests (requests).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace cairn::sidecar::bolt {

// How a frame is put on the wire.
struct BoltFraming {
  BoltProtocol protocol = BoltProtocol::kV1;
  uint8_t ver1 = 1;      // v2 only: 1, or 2 (a CRC is only sent with 2)
  uint8_t switches = 0;  // v2 only: kSwitchCrc (with ver1 = 2) appends a CRC32
  uint8_t codec = kCodecHessian2;

  static BoltFraming V1(uint8_t codec = kCodecHessian2) {
    return BoltFraming{BoltProtocol::kV1, 1, 0, codec};
  }
  static BoltFraming V2(bool crc, uint8_t codec = kCodecHessian2) {
    return BoltFraming{BoltProtocol::kV2, static_cast<uint8_t>(crc ? 2 : 1),
                       static_cast<uint8_t>(crc ? kSwitchCrc : 0), codec};
  }
};

// The framing of `frame`, to answer it in kind (same protocol, ver1, switch
// byte and codec).
BoltFraming FramingOf(const BoltFrameView& frame);

struct BoltRequestParams {
  BoltFraming framing;
  uint32_t request_id = 0;
  bool oneway = false;
  int32_t timeout_ms = -1;  // -1: none (the Java default)
  std::string_view class_name;
  std::span<const BoltHeader> headers;
  std::string_view content;
};

struct BoltResponseParams {
  BoltFraming framing;
  uint32_t request_id = 0;
  BoltStatus status = BoltStatus::kSuccess;
  std::string_view class_name;
  std::span<const BoltHeader> headers;
  std::string_view content;
};

// A request (cmdcode 1, type request or oneway). INVALID_ARGUMENT when a part
// does not fit its length field (class name or header map over 65535 bytes,
// content over 2^31-1).
absl::Status EncodeRequest(const BoltRequestParams& params, std::string& out);

// A response (cmdcode 2, type response); errors as for EncodeRequest.
absl::Status EncodeResponse(const BoltResponseParams& params, std::string& out);

// Class name of the error responses below.
inline constexpr std::string_view kErrorClassName = "java.lang.String";

// An error response: `status` (e.g. kTimeout, kNoProcessor,
// kServerThreadpoolBusy, kErrorComm, kCodecException), class name
// "java.lang.String" and `message` as plain UTF-8 content, no header map.
// Right for protobuf frames only: sofa-bolt-node decodes an error's content
// with the frame's codec, and a hessian2 frame must carry a serialized
// exception (plain text makes it close the connection). The sidecar uses
// EncodeSidecarError (sidecar/bolt/bolt_error.h), which calls this for
// non-hessian2 codecs. The message is cut to 4 KiB.
void EncodeErrorResponse(const BoltFraming& framing, uint32_t request_id, BoltStatus status,
                         std::string_view message, std::string& out);

// A heartbeat: type request, cmdcode 0, timeout -1, no class/header/content.
void EncodeHeartbeat(uint32_t request_id, std::string& out,
                     const BoltFraming& framing = BoltFraming{});

// The answer to a heartbeat: type response, cmdcode 0, status SUCCESS.
void EncodeHeartbeatAck(uint32_t request_id, std::string& out,
                        const BoltFraming& framing = BoltFraming{});

}  // namespace cairn::sidecar::bolt
