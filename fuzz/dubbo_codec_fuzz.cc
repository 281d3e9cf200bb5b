// libFuzzer target for the Dubbo 2 codec (sidecar/codec/dubbo).
//
// Input layout: byte 0 selects the fragment size (bits 0-5, plus one) and
// small or default limits (bit 6). The rest is the byte stream a peer sends.
//
// Beyond crashes and sanitizer reports it traps when:
//  - decoding in one piece and in fragments gives different messages or a
//    different error (framing must not depend on TCP segmentation);
//  - a message does not match its frame (kind from the flag bits, id, status,
//    framing), its service / method are not inside the body, or frames are
//    not back to back in the input;
//  - errors are not INVALID_ARGUMENT / RESOURCE_EXHAUSTED or not sticky;
//  - re-encoding a frame (EncodeFrame) does not give its bytes, and the
//    sidecar's own frames (heartbeat, ack, error response) for a decoded
//    message do not decode to what they should; a canonical heartbeat, ack or
//    error response re-encodes to its exact bytes;
//  - RewriteRequestId gives a frame that decodes to the same message with the
//    new id, and rewriting back restores the exact bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/dubbo/dubbo_codec.h"
#include "sidecar/codec/dubbo/dubbo_frame.h"

namespace {

using namespace cairn::sidecar;
using namespace cairn::sidecar::dubbo;

// Traps on a broken invariant, naming its line (the driver then dumps the input).
void Check(bool ok, int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "dubbo_codec_fuzz: check failed at line %d\n", line);
  __builtin_trap();
}

// Everything the path sees of a message, owned.
struct Msg {
  RpcKind kind;
  uint64_t request_id;
  std::string service, method;
  int64_t timeout_ms;
  uint32_t status;
  uint64_t framing;
  std::string raw;
  bool operator==(const Msg&) const = default;
};

Msg Own(const RpcMessage& m) {
  return Msg{m.kind,   m.request_id, std::string(m.service), std::string(m.method), m.timeout_ms,
             m.status, m.framing,    std::string(m.raw)};
}

const RpcCodec& Codec() { return DubboCodec(); }

std::vector<Msg> DecodeAllOrTrap(std::string_view bytes) {
  std::unique_ptr<RpcDecoder> decoder = Codec().NewDecoder(RpcLimits{});
  std::vector<Msg> messages;
  while (!bytes.empty()) {
    absl::StatusOr<const RpcMessage*> next = decoder->Next(bytes);
    Check(next.ok() && *next != nullptr);
    messages.push_back(Own(**next));
  }
  return messages;
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// The message against its own bytes.
void CheckShape(const RpcMessage& m) {
  Check(m.raw.size() >= kHeaderBytes);
  const auto* p = reinterpret_cast<const uint8_t*>(m.raw.data());
  Check(p[0] == kMagic0 && p[1] == kMagic1);
  const uint32_t length =
      (uint32_t{p[12]} << 24) | (uint32_t{p[13]} << 16) | (uint32_t{p[14]} << 8) | p[15];
  Check(m.raw.size() == kHeaderBytes + length);
  uint64_t id = 0;
  for (int i = 4; i < 12; ++i) id = (id << 8) | p[i];
  Check(m.request_id == id);
  const uint8_t flag = p[2];
  Check(m.framing == (flag & kSerializationMask));
  const bool request = (flag & kFlagRequest) != 0;
  const bool two_way = (flag & kFlagTwoWay) != 0;
  const bool event = (flag & kFlagEvent) != 0;
  RpcKind kind = RpcKind::kResponse;
  if (!request) {
    kind = event ? RpcKind::kHeartbeatAck : RpcKind::kResponse;
  } else if (!two_way) {
    kind = event ? RpcKind::kGoingAway : RpcKind::kOneway;  // a oneway event: READONLY
  } else {
    kind = event ? RpcKind::kHeartbeat : RpcKind::kRequest;
  }
  Check(m.kind == kind);
  Check(m.status == (request ? 0u : p[3]));
  Check(m.timeout_ms == 0);
  const std::string_view body = m.raw.substr(kHeaderBytes);
  Check(Inside(m.service, body) && Inside(m.method, body));
  // Only non-event hessian2 requests name a service.
  if (!request || event || m.framing != kSerializationHessian2) {
    Check(m.service.empty() && m.method.empty());
  }
}

// Re-encodes and answers `m` with the public encoders.
void CheckEncoders(const RpcMessage& m) {
  const auto* p = reinterpret_cast<const uint8_t*>(m.raw.data());
  const uint8_t flag = p[2];
  const std::string_view body = m.raw.substr(kHeaderBytes);
  std::string out;
  EncodeFrame(flag, p[3], m.request_id, body, out);
  Check(out == m.raw);

  // The sidecar's answers decode to what they say.
  out.clear();
  Codec().EncodeError(m.framing, m.request_id, RpcError::kNoRoute, body, out);
  std::vector<Msg> error = DecodeAllOrTrap(out);
  Check(error.size() == 1 && error[0].kind == RpcKind::kResponse &&
        error[0].request_id == m.request_id && error[0].status == 60 &&
        error[0].framing == (m.framing == 0 ? kSerializationHessian2 : m.framing));
  size_t pos = 0;
  std::string_view text;
  const std::string_view error_body = std::string_view(error[0].raw).substr(kHeaderBytes);
  Check(ReadHessian2String(error_body, pos, text) && pos == error_body.size());
  Check(text.size() == std::min(body.size(), kMaxErrorMessageBytes));
  for (char c : text) Check(c >= 0x20 && c <= 0x7e);

  if (m.kind == RpcKind::kHeartbeat) {
    out.clear();
    Codec().EncodeHeartbeatAck(m, out);
    std::vector<Msg> ack = DecodeAllOrTrap(out);
    Check(ack.size() == 1 && ack[0].kind == RpcKind::kHeartbeatAck &&
          ack[0].request_id == m.request_id && ack[0].status == 20 && ack[0].framing == m.framing);
  }

  // Canonical frames of the kinds the sidecar writes: the same bytes.
  const bool null_body = body == "N";
  if (flag == (kFlagRequest | kFlagTwoWay | kFlagEvent | kSerializationHessian2) && null_body &&
      p[3] == 0) {
    out.clear();
    Codec().EncodeHeartbeat(m.request_id, out);
    Check(out == m.raw);
  }
  if ((flag & ~kSerializationMask) == kFlagEvent && m.status == 20 && null_body) {
    out.clear();
    EncodeHeartbeatAck(m.request_id, static_cast<uint8_t>(m.framing), out);
    Check(out == m.raw);
  }
  if (m.kind == RpcKind::kResponse && (flag & kFlagTwoWay) == 0) {
    pos = 0;
    if (ReadHessian2String(body, pos, text) && pos == body.size() &&
        text.size() <= kMaxErrorMessageBytes) {
      bool printable = true;
      for (char c : text) printable = printable && c >= 0x20 && c <= 0x7e;
      std::string again;
      AppendHessian2AsciiString(printable ? text : std::string_view(), again);
      if (printable && again == body) {  // shortest form, not null
        out.clear();
        EncodeErrorResponse(static_cast<uint8_t>(m.framing), m.request_id,
                            static_cast<uint8_t>(m.status), text, out);
        Check(out == m.raw);
      }
    }
  }
}

void CheckRewrite(const RpcMessage& m) {
  std::string copy(m.raw);
  const uint64_t new_id = m.request_id ^ 0x5A5AA5A5C3C33C3Cull;
  Check(Codec().RewriteRequestId(std::span<char>(copy), new_id).ok());
  std::vector<Msg> rewritten = DecodeAllOrTrap(copy);
  Check(rewritten.size() == 1);
  Msg expected = Own(m);
  expected.request_id = new_id;
  expected.raw = copy;
  Check(rewritten[0] == expected);
  Check(Codec().RewriteRequestId(std::span<char>(copy), m.request_id).ok());
  Check(copy == m.raw);
  // A frame cut short is refused and left alone.
  std::string cut(m.raw.substr(0, m.raw.size() - 1));
  const std::string before = cut;
  Check(!Codec().RewriteRequestId(std::span<char>(cut), new_id).ok());
  Check(cut == before);
}

struct Run {
  std::vector<Msg> messages;
  absl::Status status;
  size_t buffered = 0;
};

Run Decode(std::string_view input, size_t chunk, const RpcLimits& limits, bool deep) {
  std::unique_ptr<RpcDecoder> decoder = Codec().NewDecoder(limits);
  Run run;
  size_t consumed = 0;  // bytes in emitted frames
  const std::string_view all = input;
  while (!input.empty() && run.status.ok()) {
    std::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    // Each Next() returns a frame (16 bytes at least) or consumes the whole
    // piece; bound the loop anyway.
    const size_t piece_size = piece.size();
    for (size_t turns = 0; run.status.ok(); ++turns) {
      Check(turns <= piece_size + 1);
      absl::StatusOr<const RpcMessage*> next = decoder->Next(piece);
      if (!next.ok()) {
        run.status = next.status();
        break;
      }
      if (*next == nullptr) break;
      const RpcMessage& m = **next;
      CheckShape(m);
      Check(m.raw.size() <= limits.max_frame_bytes);
      Check(all.substr(consumed, m.raw.size()) == m.raw);  // back to back
      consumed += m.raw.size();
      if (deep) {
        CheckEncoders(m);
        CheckRewrite(m);
      }
      run.messages.push_back(Own(m));
    }
  }
  if (!run.status.ok()) {
    Check(run.status.code() == absl::StatusCode::kInvalidArgument ||
          run.status.code() == absl::StatusCode::kResourceExhausted);
    std::string_view more("\xda\xbb\xe2\x00", 4);
    Check(decoder->Next(more).status() == run.status);
    Check(more.size() == 4);
  } else {
    Check(consumed + decoder->buffered_bytes() == all.size());
  }
  run.buffered = decoder->buffered_bytes();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const size_t chunk = static_cast<size_t>(control & 63) + 1;
  RpcLimits limits;
  if ((control & 64) != 0) limits.max_frame_bytes = 256;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Run whole = Decode(input, input.size() + 1, limits, /*deep=*/true);
  const Run pieces = Decode(input, chunk, limits, /*deep=*/false);
  Check(whole.messages == pieces.messages);
  Check(whole.status == pieces.status);
  Check(whole.buffered == pieces.buffered);
  return 0;
}
