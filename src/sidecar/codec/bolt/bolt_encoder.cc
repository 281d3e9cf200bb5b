#include "sidecar/codec/bolt/bolt_encoder.h"

#include <cstddef>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "sidecar/codec/bolt/bolt_wire.h"

namespace cairn::sidecar::bolt {
namespace {

constexpr size_t kMaxU16 = std::numeric_limits<uint16_t>::max();
constexpr size_t kMaxI32 = static_cast<size_t>(std::numeric_limits<int32_t>::max());
constexpr size_t kMaxErrorMessageBytes = 4096;

// Everything of a frame except what differs between requests and responses.
struct Frame {
  const BoltFraming* framing;
  BoltType type;
  BoltCmdCode cmdcode;
  uint32_t request_id;
  bool response;
  uint32_t timeout_or_status;  // i32 timeout (requests) or u16 status (responses)
  std::string_view class_name;
  std::span<const BoltHeader> headers;
  std::string_view content;
};

absl::StatusOr<size_t> HeaderMapBytes(std::span<const BoltHeader> headers) {
  size_t bytes = 0;
  for (const BoltHeader& h : headers) {
    // Each term is bounded before adding, so the sum cannot wrap.
    if (h.key.size() > kMaxU16 || h.value.size() > kMaxU16) {
      return absl::InvalidArgumentError("bolt: header map entry over 65535 bytes");
    }
    bytes += 8 + h.key.size() + h.value.size();
    if (bytes > kMaxU16) {
      return absl::InvalidArgumentError(
          absl::StrCat("bolt: header map of more than ", kMaxU16, " bytes (headerLen is u16)"));
    }
  }
  return bytes;
}

absl::Status Encode(const Frame& f, std::string& out) {
  if (f.class_name.size() > kMaxU16) {
    return absl::InvalidArgumentError(
        absl::StrCat("bolt: class name of ", f.class_name.size(), " bytes (classLen is u16)"));
  }
  if (f.content.size() > kMaxI32) {
    return absl::InvalidArgumentError(
        absl::StrCat("bolt: content of ", f.content.size(), " bytes (contentLen is i32)"));
  }
  absl::StatusOr<size_t> map_bytes = HeaderMapBytes(f.headers);
  if (!map_bytes.ok()) return map_bytes.status();

  const BoltFraming& framing = *f.framing;
  const bool v2 = framing.protocol == BoltProtocol::kV2;
  const bool crc = v2 && framing.ver1 == 2 && (framing.switches & kSwitchCrc) != 0;
  const size_t header_bytes = v2 ? (f.response ? kV2ResponseHeaderBytes : kV2RequestHeaderBytes)
                                 : (f.response ? kV1ResponseHeaderBytes : kV1RequestHeaderBytes);
  const size_t start = out.size();
  out.reserve(start + header_bytes + f.class_name.size() + *map_bytes + f.content.size() +
              (crc ? kCrcBytes : 0));

  wire::Put8(out, static_cast<uint8_t>(framing.protocol));
  if (v2) wire::Put8(out, framing.ver1);
  wire::Put8(out, static_cast<uint8_t>(f.type));
  wire::Put16(out, static_cast<uint16_t>(f.cmdcode));
  wire::Put8(out, 1);  // ver2: the only command version there is
  wire::Put32(out, f.request_id);
  wire::Put8(out, framing.codec);
  if (v2) wire::Put8(out, framing.switches);
  if (f.response) {
    wire::Put16(out, static_cast<uint16_t>(f.timeout_or_status));
  } else {
    wire::Put32(out, f.timeout_or_status);
  }
  wire::Put16(out, static_cast<uint16_t>(f.class_name.size()));
  wire::Put16(out, static_cast<uint16_t>(*map_bytes));
  wire::Put32(out, static_cast<uint32_t>(f.content.size()));
  out.append(f.class_name);
  for (const BoltHeader& h : f.headers) {
    wire::Put32(out, static_cast<uint32_t>(h.key.size()));
    out.append(h.key);
    wire::Put32(out, static_cast<uint32_t>(h.value.size()));
    out.append(h.value);
  }
  out.append(f.content);
  if (crc) wire::Put32(out, BoltCrc32(std::string_view(out).substr(start)));
  return absl::OkStatus();
}

// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view CutUtf8(std::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

BoltFraming FramingOf(const BoltFrameView& frame) {
  if (frame.protocol == BoltProtocol::kV1) return BoltFraming::V1(frame.codec);
  return BoltFraming{BoltProtocol::kV2, frame.ver1, frame.switches, frame.codec};
}

absl::Status EncodeRequest(const BoltRequestParams& p, std::string& out) {
  return Encode(Frame{&p.framing, p.oneway ? BoltType::kOneway : BoltType::kRequest,
                      BoltCmdCode::kRequest, p.request_id, /*response=*/false,
                      static_cast<uint32_t>(p.timeout_ms), p.class_name, p.headers, p.content},
                out);
}

absl::Status EncodeResponse(const BoltResponseParams& p, std::string& out) {
  return Encode(
      Frame{&p.framing, BoltType::kResponse, BoltCmdCode::kResponse, p.request_id,
            /*response=*/true, static_cast<uint16_t>(p.status), p.class_name, p.headers, p.content},
      out);
}

void EncodeErrorResponse(const BoltFraming& framing, uint32_t request_id, BoltStatus status,
                         std::string_view message, std::string& out) {
  // Cannot fail: the class name, an empty map and <= 4 KiB of content fit.
  (void)Encode(Frame{&framing,
                     BoltType::kResponse,
                     BoltCmdCode::kResponse,
                     request_id,
                     /*response=*/true,
                     static_cast<uint16_t>(status),
                     kErrorClassName,
                     {},
                     CutUtf8(message, kMaxErrorMessageBytes)},
               out);
}

void EncodeHeartbeat(uint32_t request_id, std::string& out, const BoltFraming& framing) {
  (void)Encode(Frame{&framing,
                     BoltType::kRequest,
                     BoltCmdCode::kHeartbeat,
                     request_id,
                     /*response=*/false,
                     static_cast<uint32_t>(-1),
                     {},
                     {},
                     {}},
               out);
}

void EncodeHeartbeatAck(uint32_t request_id, std::string& out, const BoltFraming& framing) {
  (void)Encode(Frame{&framing,
                     BoltType::kResponse,
                     BoltCmdCode::kHeartbeat,
                     request_id,
                     /*response=*/true,
                     static_cast<uint16_t>(BoltStatus::kSuccess),
                     {},
                     {},
                     {}},
               out);
}

}  // namespace cairn::sidecar::bolt
