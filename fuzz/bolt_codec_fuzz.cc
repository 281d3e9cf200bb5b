// libFuzzer target for the Bolt codec (sidecar/codec/bolt).
//
// Input layout: byte 0 selects the fragment size (bits 0-5, plus one) and
// small or default limits (bit 6). The rest is the byte stream a peer sends.
//
// Beyond crashes and sanitizer reports it traps when:
//  - decoding in one piece and in fragments gives different frames or a
//    different error (framing must not depend on TCP segmentation);
//  - a frame's parts do not add up to its raw bytes, frames are not back to
//    back in the input, or a header entry points outside the header map;
//  - errors are not INVALID_ARGUMENT / RESOURCE_EXHAUSTED or not sticky;
//  - re-encoding a decoded frame (EncodeRequest / EncodeResponse /
//    EncodeHeartbeat*) decodes to the same fields, and to the same bytes when
//    the frame is in canonical form (the proxy may answer or re-emit frames);
//  - RewriteRequestId gives a frame that decodes (CRC included) to the same
//    frame with the new id, and rewriting back restores the exact bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/bolt/bolt_frame.h"

namespace {

using namespace cairn::sidecar::bolt;

// Traps on a broken invariant, naming its line (the driver then dumps the input).
// (__builtin_LINE as a default argument is the caller's line, in gcc and clang.)
void Check(bool ok, int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "bolt_codec_fuzz: check failed at line %d\n", line);
  __builtin_trap();
}

BoltLimits SmallLimits() {
  BoltLimits limits;
  limits.max_frame_bytes = 512;
  limits.max_class_name_bytes = 16;
  limits.max_header_map_bytes = 64;
  limits.max_header_entries = 4;
  return limits;
}

// Everything observable about a frame, owned.
struct Frame {
  BoltProtocol protocol;
  uint8_t ver1, switches;
  BoltType type;
  BoltCmdCode cmdcode;
  uint8_t ver2;
  uint32_t request_id;
  uint8_t codec;
  int32_t timeout_ms;
  BoltStatus status;
  bool has_crc;
  std::string class_name;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content;
  std::string raw;
  bool operator==(const Frame&) const = default;
};

Frame Own(const BoltFrameView& f) {
  Frame o{f.protocol,
          f.ver1,
          f.switches,
          f.type,
          f.cmdcode,
          f.ver2,
          f.request_id,
          f.codec,
          f.timeout_ms,
          f.status,
          f.has_crc,
          std::string(f.class_name),
          {},
          std::string(f.content()),
          std::string(f.raw)};
  for (const BoltHeader& h : f.headers) o.headers.emplace_back(h.key, h.value);
  return o;
}

// Structural invariants of one decoded frame.
void CheckShape(const BoltFrameView& f) {
  const bool v2 = f.protocol == BoltProtocol::kV2;
  Check(f.header_bytes == (v2 ? 2u : 0u) + (f.is_response() ? 20u : 22u));
  Check(f.raw.size() == f.header_bytes + f.class_name.size() + f.header_map.size() +
                            f.content_length + (f.has_crc ? 4u : 0u));
  Check(f.class_name.data() == f.raw.data() + f.header_bytes);
  Check(f.header_map.data() == f.class_name.data() + f.class_name.size());
  Check(f.content_offset == f.header_bytes + f.class_name.size() + f.header_map.size());
  Check(f.has_crc == (v2 && f.ver1 == 2 && (f.switches & kSwitchCrc) != 0));
  Check(v2 ? (f.ver1 == 1 || f.ver1 == 2) : f.ver1 == 0);
  Check(f.is_heartbeat() || (f.is_response() == (f.cmdcode == BoltCmdCode::kResponse)));
  const char* map_begin = f.header_map.data();
  const char* map_end = map_begin + f.header_map.size();
  for (const BoltHeader& h : f.headers) {
    Check(h.key.empty() || (h.key.data() >= map_begin && h.key.data() + h.key.size() <= map_end));
    Check(h.value.empty() ||
          (h.value.data() >= map_begin && h.value.data() + h.value.size() <= map_end));
  }
}

std::vector<Frame> DecodeAllOrTrap(std::string_view bytes) {
  BoltDecoder decoder;
  std::vector<Frame> frames;
  while (!bytes.empty()) {
    absl::StatusOr<const BoltFrameView*> next = decoder.Next(bytes);
    Check(next.ok() && *next != nullptr);
    frames.push_back(Own(**next));
  }
  return frames;
}

// Re-encodes `f` with the public encoders and checks the result.
void CheckReencode(const BoltFrameView& f) {
  size_t canonical_map = 0;
  for (const BoltHeader& h : f.headers) canonical_map += 8 + h.key.size() + h.value.size();
  const bool canonical = f.ver2 == 1 && canonical_map == f.header_map.size();
  const BoltFraming framing = FramingOf(f);
  std::string out;
  if (f.is_heartbeat()) {
    const bool plain = f.class_name.empty() && f.header_map.empty() && f.content_length == 0 &&
                       f.type != BoltType::kOneway &&
                       (f.is_response() ? f.status == BoltStatus::kSuccess : f.timeout_ms == -1);
    if (!plain || !canonical) return;
    if (f.is_response()) {
      EncodeHeartbeatAck(f.request_id, out, framing);
    } else {
      EncodeHeartbeat(f.request_id, out, framing);
    }
    Check(out == f.raw);
    return;
  }
  std::vector<BoltHeader> headers(f.headers.begin(), f.headers.end());
  absl::Status status;
  if (f.is_request()) {
    BoltRequestParams p{framing,      f.request_id, f.is_oneway(), f.timeout_ms,
                        f.class_name, headers,      f.content()};
    status = EncodeRequest(p, out);
  } else {
    BoltResponseParams p{framing, f.request_id, f.status, f.class_name, headers, f.content()};
    status = EncodeResponse(p, out);
  }
  Check(status.ok());
  std::vector<Frame> again = DecodeAllOrTrap(out);
  Check(again.size() == 1);
  Frame expected = Own(f);
  expected.ver2 = 1;
  expected.raw = out;
  Check(again[0] == expected);
  if (canonical) Check(out == f.raw);
}

void CheckRewrite(const BoltFrameView& f) {
  std::string copy(f.raw);
  const uint32_t new_id = f.request_id ^ 0x5A5AA5A5u;
  Check(RewriteRequestId(copy, new_id).ok());
  std::vector<Frame> rewritten = DecodeAllOrTrap(copy);
  Check(rewritten.size() == 1);
  Frame expected = Own(f);
  expected.request_id = new_id;
  expected.raw = copy;
  Check(rewritten[0] == expected);
  Check(RewriteRequestId(copy, f.request_id).ok());
  Check(copy == f.raw);
}

struct Run {
  std::vector<Frame> frames;
  absl::Status status;
  size_t consumed = 0;  // bytes in emitted frames
  size_t buffered = 0;
};

Run Decode(std::string_view input, size_t chunk, const BoltLimits& limits, bool deep) {
  BoltDecoder decoder(limits);
  Run run;
  const std::string_view all = input;
  while (!input.empty() && run.status.ok()) {
    std::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    // Each Next() returns a frame (20 bytes at least) or consumes the whole
    // piece; bound the loop anyway.
    const size_t piece_size = piece.size();
    for (size_t turns = 0; run.status.ok(); ++turns) {
      Check(turns <= piece_size + 1);
      absl::StatusOr<const BoltFrameView*> next = decoder.Next(piece);
      if (!next.ok()) {
        run.status = next.status();
        break;
      }
      if (*next == nullptr) break;
      const BoltFrameView& f = **next;
      CheckShape(f);
      Check(f.raw.size() <= limits.max_frame_bytes);
      Check(all.substr(run.consumed, f.raw.size()) == f.raw);  // back to back
      run.consumed += f.raw.size();
      if (deep) {
        CheckReencode(f);
        CheckRewrite(f);
      }
      run.frames.push_back(Own(f));
    }
  }
  if (!run.status.ok()) {
    Check(run.status.code() == absl::StatusCode::kInvalidArgument ||
          run.status.code() == absl::StatusCode::kResourceExhausted);
    std::string_view more("\x01\x00\x00\x02", 4);
    Check(decoder.Next(more).status() == run.status);
    Check(more.size() == 4);
  } else {
    Check(run.consumed + decoder.buffered_bytes() == all.size());
  }
  run.buffered = decoder.buffered_bytes();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const size_t chunk = static_cast<size_t>(control & 63) + 1;
  const BoltLimits limits = (control & 64) != 0 ? SmallLimits() : BoltLimits{};
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Run whole = Decode(input, input.size() + 1, limits, /*deep=*/true);
  const Run pieces = Decode(input, chunk, limits, /*deep=*/false);
  Check(whole.frames == pieces.frames);
  Check(whole.status == pieces.status);
  Check(whole.buffered == pieces.buffered);
  return 0;
}
