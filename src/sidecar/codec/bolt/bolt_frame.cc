#include "sidecar/codec/bolt/bolt_frame.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sidecar/codec/bolt/bolt_wire.h"

namespace cairn::sidecar::bolt {
namespace {

// The fixed header, decoded and validated.
struct FixedHeader {
  BoltProtocol protocol = BoltProtocol::kV1;
  uint8_t ver1 = 0;
  uint8_t switches = 0;
  BoltType type = BoltType::kRequest;
  BoltCmdCode cmdcode = BoltCmdCode::kRequest;
  uint8_t ver2 = 0;
  uint32_t request_id = 0;
  uint8_t codec = 0;
  int32_t timeout_ms = 0;
  uint16_t status = 0;
  uint16_t class_len = 0;
  uint16_t header_len = 0;
  uint32_t content_len = 0;
  bool has_crc = false;
};

absl::Status Invalid(std::string message) {
  return absl::InvalidArgumentError(absl::StrCat("bolt: ", message));
}

absl::Status TooLarge(const char* field, uint64_t value, const char* limit_name, size_t limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat("bolt: ", field, " ", value, " exceeds ", limit_name, " ", limit));
}

// Validates as much of `prefix` as there is and fills `size` (and, once the
// fixed header is complete, `header`). See ProbeFrame.
absl::Status Probe(std::string_view prefix, const BoltLimits& limits, BoltFrameSize& size,
                   FixedHeader* header) {
  size = BoltFrameSize{};
  if (prefix.empty()) {
    size.needed_bytes = 1;
    return absl::OkStatus();
  }
  const auto* p = reinterpret_cast<const uint8_t*>(prefix.data());
  const uint8_t proto = p[0];
  if (proto != 1 && proto != 2) {
    return Invalid(absl::StrCat("unknown proto byte ", proto, " (expected 1 or 2)"));
  }
  const bool v2 = proto == 2;
  const size_t b = v2 ? 1 : 0;  // v2 shifts the common fields by its ver1 byte
  if (v2 && prefix.size() > 1 && p[1] != 1 && p[1] != 2) {
    return Invalid(absl::StrCat("unknown ver1 ", p[1], " (expected 1 or 2)"));
  }
  if (prefix.size() <= 1 + b) {
    size.needed_bytes = 2 + b;
    return absl::OkStatus();
  }
  const uint8_t type = p[1 + b];
  if (type > 2) return Invalid(absl::StrCat("unknown type ", type, " (expected 0, 1 or 2)"));
  const bool response = type == 0;
  size.header_bytes = v2 ? (response ? kV2ResponseHeaderBytes : kV2RequestHeaderBytes)
                         : (response ? kV1ResponseHeaderBytes : kV1RequestHeaderBytes);
  if (prefix.size() >= 4 + b) {
    const uint16_t cmdcode = wire::Get16(p + 2 + b);
    if (cmdcode > 2) {
      return Invalid(absl::StrCat("unknown cmdcode ", cmdcode, " (expected 0, 1 or 2)"));
    }
    // Heartbeats travel both ways; otherwise the type and cmdcode must agree
    // (a "response" that is a request would be answered by nobody).
    if ((response && cmdcode == 1) || (!response && cmdcode == 2)) {
      return Invalid(absl::StrCat("cmdcode ", cmdcode, " does not fit type ", type));
    }
  }
  if (prefix.size() < size.header_bytes) {
    size.needed_bytes = size.header_bytes;
    return absl::OkStatus();
  }

  FixedHeader h;
  h.protocol = v2 ? BoltProtocol::kV2 : BoltProtocol::kV1;
  h.ver1 = v2 ? p[1] : 0;
  h.type = static_cast<BoltType>(type);
  h.cmdcode = static_cast<BoltCmdCode>(wire::Get16(p + 2 + b));
  h.ver2 = p[4 + b];
  h.request_id = wire::Get32(p + 5 + b);
  h.codec = p[9 + b];
  size_t at = 10 + b;
  if (v2) h.switches = p[at++];
  if (response) {
    h.status = wire::Get16(p + at);
    at += 2;
  } else {
    h.timeout_ms = static_cast<int32_t>(wire::Get32(p + at));
    at += 4;
  }
  h.class_len = wire::Get16(p + at);
  h.header_len = wire::Get16(p + at + 2);
  h.content_len = wire::Get32(p + at + 4);
  h.has_crc = v2 && h.ver1 == 2 && (h.switches & kSwitchCrc) != 0;

  if (h.class_len > limits.max_class_name_bytes) {
    return TooLarge("classLen", h.class_len, "max_class_name_bytes", limits.max_class_name_bytes);
  }
  if (h.header_len > limits.max_header_map_bytes) {
    return TooLarge("headerLen", h.header_len, "max_header_map_bytes", limits.max_header_map_bytes);
  }
  // Java peers read contentLen as a signed int; a "negative" one is garbage.
  if (h.content_len > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    return Invalid(absl::StrCat("contentLen ", h.content_len, " is negative as a Java int"));
  }
  const uint64_t total = static_cast<uint64_t>(size.header_bytes) + h.class_len + h.header_len +
                         h.content_len + (h.has_crc ? kCrcBytes : 0);
  if (total > limits.max_frame_bytes) {
    return TooLarge("frame size", total, "max_frame_bytes", limits.max_frame_bytes);
  }
  size.total_bytes = static_cast<size_t>(total);
  size.needed_bytes = size.total_bytes;
  if (header != nullptr) *header = h;
  return absl::OkStatus();
}

// Reads one [i32 len][bytes] string of the header map at `pos`. A negative
// length is a Java null (`is_null`). Fails when the bytes overrun the map.
absl::Status ReadMapString(std::string_view map, size_t& pos, size_t entry, const char* what,
                           std::string_view& out, bool& is_null) {
  if (map.size() - pos < 4) {
    return Invalid(absl::StrCat("header map entry ", entry, ": ", what, " length at offset ", pos,
                                " overruns headerLen ", map.size()));
  }
  const auto length = static_cast<int32_t>(wire::Get32(map.data() + pos));
  pos += 4;
  is_null = length < 0;
  if (is_null) {
    out = {};
    return absl::OkStatus();
  }
  if (static_cast<size_t>(length) > map.size() - pos) {
    return Invalid(absl::StrCat("header map entry ", entry, ": ", what, " length ", length,
                                " overruns headerLen ", map.size()));
  }
  out = map.substr(pos, static_cast<size_t>(length));
  pos += static_cast<size_t>(length);
  return absl::OkStatus();
}

absl::Status ParseHeaderMap(std::string_view map, size_t max_entries,
                            std::vector<BoltHeader>& headers) {
  headers.clear();
  size_t pos = 0;
  for (size_t entry = 0; pos < map.size(); ++entry) {
    BoltHeader header;
    bool key_null = false;
    bool value_null = false;
    if (absl::Status s = ReadMapString(map, pos, entry, "key", header.key, key_null); !s.ok()) {
      return s;
    }
    if (absl::Status s = ReadMapString(map, pos, entry, "value", header.value, value_null);
        !s.ok()) {
      return s;
    }
    if (key_null || value_null) continue;
    if (headers.size() == max_entries) {
      return TooLarge("header map entries", max_entries + 1, "max_header_entries", max_entries);
    }
    headers.push_back(header);
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view BoltStatusName(BoltStatus status) {
  switch (status) {
    case BoltStatus::kSuccess:
      return "SUCCESS";
    case BoltStatus::kError:
      return "ERROR";
    case BoltStatus::kServerException:
      return "SERVER_EXCEPTION";
    case BoltStatus::kUnknown:
      return "UNKNOWN";
    case BoltStatus::kServerThreadpoolBusy:
      return "SERVER_THREADPOOL_BUSY";
    case BoltStatus::kErrorComm:
      return "ERROR_COMM";
    case BoltStatus::kNoProcessor:
      return "NO_PROCESSOR";
    case BoltStatus::kTimeout:
      return "TIMEOUT";
    case BoltStatus::kClientSendError:
      return "CLIENT_SEND_ERROR";
    case BoltStatus::kCodecException:
      return "CODEC_EXCEPTION";
    case BoltStatus::kConnectionClosed:
      return "CONNECTION_CLOSED";
    case BoltStatus::kServerSerialException:
      return "SERVER_SERIAL_EXCEPTION";
    case BoltStatus::kServerDeserialException:
      return "SERVER_DESERIAL_EXCEPTION";
  }
  return "UNRECOGNIZED";
}

uint32_t BoltCrc32(std::string_view bytes) {
  return static_cast<uint32_t>(
      crc32_z(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

const std::string_view* BoltFrameView::FindHeader(std::string_view key) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->key == key) return &it->value;
  }
  return nullptr;
}

std::string_view RoutingService(const BoltFrameView& frame) {
  for (std::string_view key : {kHeaderTargetService, kHeaderService}) {
    const std::string_view* value = frame.FindHeader(key);
    if (value != nullptr && !value->empty()) return *value;
  }
  return {};
}

absl::StatusOr<BoltFrameSize> ProbeFrame(std::string_view prefix, const BoltLimits& limits) {
  BoltFrameSize size;
  if (absl::Status s = Probe(prefix, limits, size, nullptr); !s.ok()) return s;
  return size;
}

// ------------------------------------------------------------------ decoder

namespace {

// Fills `frame` from `data`, which holds exactly one frame whose fixed header
// `h` was validated by Probe.
absl::Status BuildFrame(std::string_view data, const FixedHeader& h, size_t header_bytes,
                        const BoltLimits& limits, std::vector<BoltHeader>& headers,
                        BoltFrameView& frame) {
  if (h.has_crc) {
    const size_t covered = data.size() - kCrcBytes;
    const uint32_t expected = wire::Get32(data.data() + covered);
    const uint32_t actual = BoltCrc32(data.substr(0, covered));
    if (expected != actual) {
      return Invalid(absl::StrCat("CRC32 mismatch: frame says ",
                                  absl::Hex(expected, absl::kZeroPad8), ", bytes give ",
                                  absl::Hex(actual, absl::kZeroPad8)));
    }
  }
  const size_t map_at = header_bytes + h.class_len;
  const std::string_view map = data.substr(map_at, h.header_len);
  if (absl::Status s = ParseHeaderMap(map, limits.max_header_entries, headers); !s.ok()) return s;

  frame.protocol = h.protocol;
  frame.ver1 = h.ver1;
  frame.switches = h.switches;
  frame.type = h.type;
  frame.cmdcode = h.cmdcode;
  frame.ver2 = h.ver2;
  frame.request_id = h.request_id;
  frame.codec = h.codec;
  frame.timeout_ms = h.timeout_ms;
  frame.status = static_cast<BoltStatus>(h.status);
  frame.has_crc = h.has_crc;
  frame.header_bytes = header_bytes;
  frame.class_name = data.substr(header_bytes, h.class_len);
  frame.header_map = map;
  frame.headers = std::span<const BoltHeader>(headers.data(), headers.size());
  frame.content_offset = map_at + h.header_len;
  frame.content_length = h.content_len;
  frame.raw = data;
  return absl::OkStatus();
}

}  // namespace

BoltDecoder::BoltDecoder(const BoltLimits& limits) : limits_(limits) {}

absl::Status BoltDecoder::Fail(absl::Status status) {
  status_ = std::move(status);
  assembler_.Clear();
  frame_ = BoltFrameView{};
  return status_;
}

absl::StatusOr<const BoltFrameView*> BoltDecoder::Next(std::string_view& input) {
  if (!status_.ok()) return status_;
  BoltFrameSize size;
  FixedHeader header;
  absl::StatusOr<std::optional<std::string_view>> data =
      assembler_.Next(input, [&](std::string_view prefix, FrameExtent& extent) {
        absl::Status s = Probe(prefix, limits_, size, &header);
        extent = FrameExtent{size.total_bytes, size.needed_bytes};
        return s;
      });
  if (!data.ok()) return Fail(data.status());
  if (!data->has_value()) return nullptr;
  // `header` and `size` are the probe's last look: this frame's fixed header.
  if (absl::Status s = BuildFrame(**data, header, size.header_bytes, limits_, headers_, frame_);
      !s.ok()) {
    return Fail(s);
  }
  return &frame_;
}

// ------------------------------------------------------------------ rewrite

absl::Status RewriteRequestId(std::span<char> frame, uint32_t request_id) {
  const std::string_view bytes(frame.data(), frame.size());
  BoltLimits unlimited;
  unlimited.max_frame_bytes = std::numeric_limits<size_t>::max();
  unlimited.max_class_name_bytes = std::numeric_limits<size_t>::max();
  unlimited.max_header_map_bytes = std::numeric_limits<size_t>::max();
  BoltFrameSize size;
  FixedHeader header;
  if (absl::Status s = Probe(bytes, unlimited, size, &header); !s.ok()) return s;
  if (size.total_bytes == 0 || size.total_bytes != frame.size()) {
    return Invalid(absl::StrCat("RewriteRequestId needs one whole frame; got ", frame.size(),
                                " bytes, the header says ", size.total_bytes));
  }
  const size_t id_at = header.protocol == BoltProtocol::kV2 ? 6 : 5;
  char old_id[4];
  std::copy_n(frame.data() + id_at, 4, old_id);
  wire::Set32(frame.data() + id_at, request_id);
  if (header.has_crc) {
    // CRC32 is affine in the message: for equal lengths, crc(new) ^ crc(old)
    // is the raw CRC of (new ^ old), and the bytes that differ are 4 bytes
    // followed by `tail` bytes, so the difference is the raw CRC of the id
    // change shifted over `tail` zero bytes (crc32_combine with crc2 = 0).
    const size_t crc_at = frame.size() - kCrcBytes;
    const size_t tail = crc_at - (id_at + 4);
    const uint32_t delta = BoltCrc32(std::string_view(frame.data() + id_at, 4)) ^
                           BoltCrc32(std::string_view(old_id, 4));
    const auto shifted = static_cast<uint32_t>(crc32_combine(delta, 0, static_cast<z_off_t>(tail)));
    wire::Set32(frame.data() + crc_at, wire::Get32(frame.data() + crc_at) ^ shifted);
  }
  return absl::OkStatus();
}

absl::Status RewriteRequestId(std::string& frame, uint32_t request_id) {
  return RewriteRequestId(std::span<char>(frame.data(), frame.size()), request_id);
}

}  // namespace cairn::sidecar::bolt
