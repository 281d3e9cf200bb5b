// Helpers shared by the Bolt codec tests: owned copies of decoded frames
// (a BoltFrameView dies with the next Next() call) and a feeding loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace cairn::sidecar::bolt::test {

struct OwnedFrame {
  BoltProtocol protocol;
  uint8_t ver1;
  uint8_t switches;
  BoltType type;
  BoltCmdCode cmdcode;
  uint8_t ver2;
  uint32_t request_id;
  uint8_t codec;
  int32_t timeout_ms;
  BoltStatus status;
  bool has_crc;
  size_t header_bytes;
  std::string class_name;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content;
  std::string raw;

  explicit OwnedFrame(const BoltFrameView& f)
      : protocol(f.protocol),
        ver1(f.ver1),
        switches(f.switches),
        type(f.type),
        cmdcode(f.cmdcode),
        ver2(f.ver2),
        request_id(f.request_id),
        codec(f.codec),
        timeout_ms(f.timeout_ms),
        status(f.status),
        has_crc(f.has_crc),
        header_bytes(f.header_bytes),
        class_name(f.class_name),
        content(f.content()),
        raw(f.raw) {
    for (const BoltHeader& h : f.headers) headers.emplace_back(h.key, h.value);
  }
  bool operator==(const OwnedFrame&) const = default;
};

struct DecodeResult {
  std::vector<OwnedFrame> frames;
  absl::Status status;
  size_t buffered = 0;  // decoder.buffered_bytes() at the end
};

// Feeds `input` in pieces of `chunk` bytes (0: all at once) and collects
// every frame. Bounded: each Next() call consumes input or returns.
inline DecodeResult DecodeAll(std::string_view input, size_t chunk = 0,
                              const BoltLimits& limits = BoltLimits{}) {
  BoltDecoder decoder(limits);
  DecodeResult result;
  if (chunk == 0) chunk = input.size() + 1;
  while (!input.empty() && result.status.ok()) {
    std::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    while (result.status.ok()) {
      absl::StatusOr<const BoltFrameView*> next = decoder.Next(piece);
      if (!next.ok()) {
        result.status = next.status();
      } else if (*next == nullptr) {
        break;
      } else {
        result.frames.emplace_back(**next);
      }
    }
  }
  result.buffered = decoder.buffered_bytes();
  return result;
}

// Big-endian appenders for hand-built frames.
inline void U8(std::string& s, uint8_t v) { s.push_back(static_cast<char>(v)); }
inline void U16(std::string& s, uint16_t v) {
  U8(s, static_cast<uint8_t>(v >> 8));
  U8(s, static_cast<uint8_t>(v));
}
inline void U32(std::string& s, uint32_t v) {
  U16(s, static_cast<uint16_t>(v >> 16));
  U16(s, static_cast<uint16_t>(v));
}
// One header map entry; a negative length writes a Java null.
inline void MapString(std::string& s, std::string_view text, bool null = false) {
  if (null) {
    U32(s, 0xFFFFFFFFu);
    return;
  }
  U32(s, static_cast<uint32_t>(text.size()));
  s.append(text);
}

inline uint32_t Get32ForTest(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

// Bitwise CRC32 (IEEE, reflected, poly 0xEDB88320), independent of zlib.
inline uint32_t ReferenceCrc32(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : bytes) {
    crc ^= static_cast<uint8_t>(c);
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace cairn::sidecar::bolt::test
