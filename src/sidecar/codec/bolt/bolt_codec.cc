#include "sidecar/codec/bolt/bolt_codec.h"

#include <limits>
#include <memory>

#include "sidecar/codec/bolt/bolt_error.h"
#include "sidecar/codec/bolt/bolt_frame.h"
#include "sidecar/codec/bolt/bolt_wire.h"

namespace cairn::sidecar::bolt {
namespace {

// Bit 32 of the packed framing: the frame was oneway (heartbeats: no answer).
constexpr uint64_t kOnewayBit = uint64_t{1} << 32;

RpcKind KindOf(const BoltFrameView& frame) {
  if (frame.is_heartbeat())
    return frame.is_response() ? RpcKind::kHeartbeatAck : RpcKind::kHeartbeat;
  if (frame.is_response()) return RpcKind::kResponse;
  return frame.is_oneway() ? RpcKind::kOneway : RpcKind::kRequest;
}

class BoltRpcDecoder final : public RpcDecoder {
 public:
  explicit BoltRpcDecoder(const RpcLimits& limits) : decoder_(ToBoltLimits(limits)) {}

  absl::StatusOr<const RpcMessage*> Next(std::string_view& input) override {
    absl::StatusOr<const BoltFrameView*> next = decoder_.Next(input);
    if (!next.ok()) return next.status();
    if (*next == nullptr) return nullptr;
    const BoltFrameView& frame = **next;
    message_.kind = KindOf(frame);
    message_.request_id = frame.request_id;
    message_.service = frame.is_request() ? RoutingService(frame) : std::string_view();
    const std::string_view* method =
        frame.is_request() ? frame.FindHeader("sofa_head_method_name") : nullptr;
    message_.method = method != nullptr ? *method : std::string_view();
    message_.timeout_ms = frame.is_request() ? frame.timeout_ms : 0;
    message_.status = static_cast<uint32_t>(frame.status);
    message_.framing = PackFraming(FramingOf(frame), frame.is_oneway());
    message_.raw = frame.raw;
    return &message_;
  }

  size_t buffered_bytes() const override { return decoder_.buffered_bytes(); }

 private:
  static BoltLimits ToBoltLimits(const RpcLimits& limits) {
    BoltLimits bolt;
    bolt.max_frame_bytes = limits.max_frame_bytes;
    return bolt;
  }

  BoltDecoder decoder_;
  RpcMessage message_;
};

class BoltRpcCodec final : public RpcCodec {
 public:
  std::string_view name() const override { return "bolt"; }
  std::string_view log_tag() const override { return "BOLT"; }
  bool MatchesFirstByte(uint8_t first_byte) const override {
    return first_byte == 1 || first_byte == 2;
  }

  std::unique_ptr<RpcDecoder> NewDecoder(const RpcLimits& limits) const override {
    return std::make_unique<BoltRpcDecoder>(limits);
  }

  absl::Status RewriteRequestId(std::span<char> frame, uint64_t request_id) const override {
    if (request_id > std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError("a Bolt requestId has 32 bits");
    }
    return bolt::RewriteRequestId(frame, static_cast<uint32_t>(request_id));
  }

  void EncodeHeartbeat(uint64_t request_id, std::string& out) const override {
    bolt::EncodeHeartbeat(static_cast<uint32_t>(request_id), out);
  }

  void EncodeHeartbeatAck(const RpcMessage& heartbeat, std::string& out) const override {
    if ((heartbeat.framing & kOnewayBit) != 0) return;  // nobody waits for it
    bolt::EncodeHeartbeatAck(static_cast<uint32_t>(heartbeat.request_id), out,
                             UnpackFraming(heartbeat.framing));
  }

  void EncodeError(uint64_t framing, uint64_t request_id, RpcError error, std::string_view message,
                   std::string& out) const override {
    EncodeSidecarError(UnpackFraming(framing), static_cast<uint32_t>(request_id),
                       static_cast<BoltStatus>(ErrorStatus(error)), message, out);
  }

  bool PeekTwoWayRequest(std::string_view bytes, uint64_t& framing,
                         uint64_t& request_id) const override {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    if (bytes.empty() || (p[0] != 1 && p[0] != 2)) return false;
    const bool v2 = p[0] == 2;
    const size_t b = v2 ? 1 : 0;
    if (bytes.size() < 11 + b) return false;  // up to the codec (and v2's switch) byte
    if (v2 && p[1] != 1 && p[1] != 2) return false;
    if (p[1 + b] != static_cast<uint8_t>(BoltType::kRequest)) return false;
    if (wire::Get16(p + 2 + b) != static_cast<uint16_t>(BoltCmdCode::kRequest)) return false;
    BoltFraming f;
    f.protocol = v2 ? BoltProtocol::kV2 : BoltProtocol::kV1;
    f.ver1 = v2 ? p[1] : 1;
    f.codec = p[9 + b];
    f.switches = v2 ? p[10 + b] : 0;
    framing = PackFraming(f);
    request_id = wire::Get32(p + 5 + b);
    return true;
  }

  uint32_t ErrorStatus(RpcError error) const override {
    switch (error) {
      case RpcError::kNoRoute:
        return static_cast<uint32_t>(BoltStatus::kNoProcessor);
      case RpcError::kOverflow:
        return static_cast<uint32_t>(BoltStatus::kServerThreadpoolBusy);
      case RpcError::kTimeout:
        return static_cast<uint32_t>(BoltStatus::kTimeout);
      case RpcError::kUpstreamFailure:
        return static_cast<uint32_t>(BoltStatus::kErrorComm);
      case RpcError::kCodecError:
        break;
    }
    return static_cast<uint32_t>(BoltStatus::kCodecException);
  }

  size_t StatusSlot(uint32_t status) const override {
    if (status <= 0x09) return status;                        // SUCCESS .. CODEC_EXCEPTION
    if (status >= 0x10 && status <= 0x12) return status - 6;  // CONNECTION_CLOSED .. (10..12)
    return kRpcStatusSlots - 1;                               // UNRECOGNIZED
  }

  std::string_view StatusName(uint32_t status) const override {
    if (status > 0xffff) return "UNRECOGNIZED";
    return BoltStatusName(static_cast<BoltStatus>(status));
  }
};

}  // namespace

const RpcCodec& BoltCodec() {
  static const BoltRpcCodec codec;
  return codec;
}

uint64_t PackFraming(const BoltFraming& framing, bool oneway) {
  return uint64_t{static_cast<uint8_t>(framing.protocol)} | uint64_t{framing.ver1} << 8 |
         uint64_t{framing.switches} << 16 | uint64_t{framing.codec} << 24 |
         (oneway ? kOnewayBit : 0);
}

BoltFraming UnpackFraming(uint64_t framing) {
  BoltFraming f;
  f.protocol = (framing & 0xff) == 2 ? BoltProtocol::kV2 : BoltProtocol::kV1;
  f.ver1 = static_cast<uint8_t>(framing >> 8);
  f.switches = static_cast<uint8_t>(framing >> 16);
  f.codec = static_cast<uint8_t>(framing >> 24);
  return f;
}

}  // namespace cairn::sidecar::bolt
