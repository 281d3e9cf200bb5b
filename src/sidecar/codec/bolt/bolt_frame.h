// SOFARPC Bolt framing (protocols v1 and v2): a frame decoder for a byte
// stream, header-map lookups and the requestId rewrite a multiplexing proxy
// needs. No I/O and no body decoding (hessian2 / protobuf content is opaque).
//
// Wire format (all integers big-endian; see /work/shared/DESIGN.md section 4):
//
//   v1 request  (22): proto=1 type cmdcode(2) ver2 requestId(4) codec timeout(4)
//                     classLen(2) headerLen(2) contentLen(4)
//   v1 response (20): proto=1 type cmdcode(2) ver2 requestId(4) codec status(2)
//                     classLen(2) headerLen(2) contentLen(4)
//   v2 request  (24): proto=2 ver1 type cmdcode(2) ver2 requestId(4) codec switch
//                     timeout(4) classLen(2) headerLen(2) contentLen(4)
//   v2 response (22): proto=2 ver1 type cmdcode(2) ver2 requestId(4) codec switch
//                     status(2) classLen(2) headerLen(2) contentLen(4)
//
// then the class name, the header map (repeated [i32 len][key][i32 len][value];
// a negative length is a Java null, and an entry with a null key or value is
// skipped, as SOFARPC's own map decoder does) and the content. A v2 frame ends
// with the CRC32 (IEEE, as zlib / java.util.zip) of all preceding frame bytes
// when ver1 is 2 and bit 0 of the switch byte is set; with ver1 = 1 the switch
// byte is present but no CRC is sent (that is how SOFA Bolt's own v2 codec
// behaves, so we match it rather than the bit alone).
//
// Thread-safety: BoltDecoder is not thread-safe (one per connection, on its
// worker thread). The free functions are thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sidecar/codec/frame_assembler.h"

namespace cairn::sidecar::bolt {

enum class BoltProtocol : uint8_t { kV1 = 1, kV2 = 2 };

// The `type` byte.
enum class BoltType : uint8_t { kResponse = 0, kRequest = 1, kOneway = 2 };

// The `cmdcode` field.
enum class BoltCmdCode : uint16_t { kHeartbeat = 0, kRequest = 1, kResponse = 2 };

// Response status (u16). Values outside this list are carried through as is.
enum class BoltStatus : uint16_t {
  kSuccess = 0x00,
  kError = 0x01,
  kServerException = 0x02,
  kUnknown = 0x03,
  kServerThreadpoolBusy = 0x04,
  kErrorComm = 0x05,
  kNoProcessor = 0x06,
  kTimeout = 0x07,
  kClientSendError = 0x08,
  kCodecException = 0x09,
  kConnectionClosed = 0x10,
  kServerSerialException = 0x11,
  kServerDeserialException = 0x12,
};

// "SUCCESS", "TIMEOUT", ... (SOFA Bolt's names); "UNRECOGNIZED" otherwise.
std::string_view BoltStatusName(BoltStatus status);

// Serialization codes of the `codec` byte that SOFARPC uses.
inline constexpr uint8_t kCodecHessian2 = 1;
inline constexpr uint8_t kCodecProtobuf = 11;

// Fixed header sizes.
inline constexpr size_t kV1RequestHeaderBytes = 22;
inline constexpr size_t kV1ResponseHeaderBytes = 20;
inline constexpr size_t kV2RequestHeaderBytes = 24;
inline constexpr size_t kV2ResponseHeaderBytes = 22;
inline constexpr size_t kCrcBytes = 4;
// Bit of the v2 switch byte that asks for a CRC32 trailer.
inline constexpr uint8_t kSwitchCrc = 0x01;

// Routing keys of SOFARPC's header map.
inline constexpr std::string_view kHeaderService = "service";
inline constexpr std::string_view kHeaderTargetService = "sofa_head_target_service";

// Decoder limits. Exceeding one is RESOURCE_EXHAUSTED. The byte limits are
// checked as soon as the fixed header arrives, before the rest of the frame
// is buffered; the entry count when the header map is parsed.
struct BoltLimits {
  // The whole frame: fixed header + class name + header map + content (+ CRC).
  size_t max_frame_bytes = 16 * 1024 * 1024;
  // classLen. SOFARPC class names are ~50 bytes ("com.alipay.sofa.rpc.core.
  // request.SofaRequest"); 1 KiB leaves room for long custom classes.
  size_t max_class_name_bytes = 1024;
  // headerLen (the wire field is u16, so at most 65535 anyway). SOFARPC puts
  // the service, method, app names and tracer context here: a few hundred
  // bytes to a few KiB.
  size_t max_header_map_bytes = 32 * 1024;
  // Entries of the header map (null entries, which are skipped, not counted).
  size_t max_header_entries = 128;
};

// One header map entry; the views point into the frame's bytes.
struct BoltHeader {
  std::string_view key;
  std::string_view value;
};

// A decoded frame. Every view points into `raw` (the caller's input or the
// decoder's buffer): valid until the next BoltDecoder::Next() call and, when
// it points into the caller's input, while that input is alive.
struct BoltFrameView {
  BoltProtocol protocol = BoltProtocol::kV1;
  uint8_t ver1 = 0;      // v2 only (1 or 2); 0 for v1
  uint8_t switches = 0;  // v2 only
  BoltType type = BoltType::kRequest;
  BoltCmdCode cmdcode = BoltCmdCode::kRequest;
  uint8_t ver2 = 0;
  uint32_t request_id = 0;
  uint8_t codec = 0;
  int32_t timeout_ms = 0;                    // requests only (-1: none, the Java default)
  BoltStatus status = BoltStatus::kSuccess;  // responses only
  bool has_crc = false;                      // the frame ends with a (verified) CRC32
  size_t header_bytes = 0;                   // the fixed header: 20, 22 or 24
  std::string_view class_name;
  std::string_view header_map;          // the raw header map bytes (headerLen)
  std::span<const BoltHeader> headers;  // in wire order, null entries skipped
  size_t content_offset = 0;            // into `raw`
  size_t content_length = 0;
  std::string_view raw;  // the whole frame, CRC included

  std::string_view content() const { return raw.substr(content_offset, content_length); }
  bool is_response() const { return type == BoltType::kResponse; }
  bool is_request() const { return !is_response(); }  // request or oneway
  bool is_oneway() const { return type == BoltType::kOneway; }
  bool is_heartbeat() const { return cmdcode == BoltCmdCode::kHeartbeat; }

  // The value of `key`, or nullptr. With duplicate keys the last one wins,
  // as in the Java peers (they decode into a HashMap): a proxy that routed on
  // the first would disagree with the server about the target.
  const std::string_view* FindHeader(std::string_view key) const;
};

// The routing key of a request: a non-empty `sofa_head_target_service`, else
// a non-empty `service`, else empty (the class name is never used: it names
// the request type, e.g. SofaRequest, not the service).
std::string_view RoutingService(const BoltFrameView& frame);

// Incremental frame decoder (pull model).
//
//   std::string_view input = bytes_read;
//   for (;;) {
//     absl::StatusOr<const BoltFrameView*> next = decoder.Next(input);
//     if (!next.ok()) { close the connection; break; }
//     if (*next == nullptr) break;       // all input consumed, need more
//     forward((*next)->raw); ...
//   }
//
// A frame that is complete inside `input` is returned without copying (views
// into `input`); only a frame split across calls is assembled in the
// decoder's buffer, reserved once to the declared size when the fixed header
// is known. The header-entry vector is reused, so a steady stream of frames
// allocates nothing.
//
// Errors: INVALID_ARGUMENT for a malformed frame (unknown proto / ver1 / type
// / cmdcode, type and cmdcode that do not fit together, header map entries
// that overrun headerLen, CRC mismatch), RESOURCE_EXHAUSTED for a limit; the
// message names the field. After an error the decoder is poisoned: every
// later call returns the same status without reading input.
class BoltDecoder {
 public:
  explicit BoltDecoder(const BoltLimits& limits = BoltLimits{});

  // Consumes bytes from the front of `input` until one frame is complete
  // (returns it; the rest of `input` is left for the next call) or `input` is
  // empty (returns nullptr). The returned frame stays valid until the next
  // call (see BoltFrameView).
  absl::StatusOr<const BoltFrameView*> Next(std::string_view& input);

  // Bytes of an incomplete frame held by the decoder (a connection closing
  // with this non-zero cut a frame short).
  size_t buffered_bytes() const { return assembler_.buffered_bytes(); }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status Fail(absl::Status status);

  BoltLimits limits_;
  absl::Status status_;
  FrameAssembler assembler_;  // frame_ may point into its buffer until the next call
  std::vector<BoltHeader> headers_;
  BoltFrameView frame_;
};

// What the fixed header says, once enough bytes are there (see ProbeFrame).
struct BoltFrameSize {
  size_t header_bytes = 0;  // 0 until known
  size_t total_bytes = 0;   // 0 until the fixed header is complete
  size_t needed_bytes = 0;  // bytes of prefix needed to learn more (= total_bytes once known)
};

// Looks at the start of a frame: validates what is there and says how long
// the fixed header and (once it is complete) the frame are. Does not look
// past the fixed header. Used by the decoder; exposed for protocol detection
// and tests.
absl::StatusOr<BoltFrameSize> ProbeFrame(std::string_view prefix, const BoltLimits& limits);

// Rewrites the requestId of one complete frame in place (a proxy forwarding
// on a multiplexed upstream connection swaps ids and nothing else). A v2
// frame with a CRC gets its CRC updated: O(log(frame size)), without reading
// the body, since CRC32 is linear. REQUIRES: `frame` is one complete frame as
// the decoder returned it (then the result is a valid frame); a buffer too
// short for its fixed header or with an unknown proto byte gives
// INVALID_ARGUMENT and is left unchanged.
absl::Status RewriteRequestId(std::span<char> frame, uint32_t request_id);
absl::Status RewriteRequestId(std::string& frame, uint32_t request_id);

// CRC32 (IEEE) of `bytes`, as Bolt v2 uses it.
uint32_t BoltCrc32(std::string_view bytes);

}  // namespace cairn::sidecar::bolt
