#include "sidecar/codec/dubbo/dubbo_codec.h"

#include <array>
#include <limits>

#include "sidecar/codec/dubbo/dubbo_frame.h"

namespace cairn::sidecar::dubbo {
namespace {

// Heartbeat bodies longer than this are not echoed as "the serialized null"
// (a null is a few bytes in every Dubbo serialization).
constexpr size_t kMaxEchoedNullBytes = 16;

// The statuses with a slot of their own, in slot order.
constexpr std::array<DubboStatus, 11> kSlotted = {
    DubboStatus::kOk,
    DubboStatus::kClientTimeout,
    DubboStatus::kServerTimeout,
    DubboStatus::kChannelInactive,
    DubboStatus::kBadRequest,
    DubboStatus::kBadResponse,
    DubboStatus::kServiceNotFound,
    DubboStatus::kServiceError,
    DubboStatus::kServerError,
    DubboStatus::kClientError,
    DubboStatus::kServerThreadpoolExhausted,
};
static_assert(kSlotted.size() < kRpcStatusSlots, "the last slot is for other statuses");

RpcKind KindOf(const DubboFrameView& frame) {
  if (frame.is_response()) {
    return frame.is_event() ? RpcKind::kHeartbeatAck : RpcKind::kResponse;
  }
  // A oneway event is the READONLY notice of a provider going down (no
  // other oneway event exists in Dubbo 2).
  if (!frame.is_two_way()) return frame.is_event() ? RpcKind::kGoingAway : RpcKind::kOneway;
  return frame.is_event() ? RpcKind::kHeartbeat : RpcKind::kRequest;
}

class DubboRpcDecoder final : public RpcDecoder {
 public:
  explicit DubboRpcDecoder(const RpcLimits& limits)
      : decoder_(DubboLimits{.max_frame_bytes = limits.max_frame_bytes}) {}

  // RpcDecoder
  absl::StatusOr<const RpcMessage*> Next(std::string_view& input) override {
    absl::StatusOr<const DubboFrameView*> next = decoder_.Next(input);
    if (!next.ok()) return next.status();
    if (*next == nullptr) return nullptr;
    const DubboFrameView& frame = **next;
    message_ = RpcMessage{};
    message_.kind = KindOf(frame);
    message_.request_id = frame.request_id;
    if (frame.has_head) {
      message_.service = frame.head.service_path;
      message_.method = frame.head.method;
    }
    message_.status = frame.is_response() ? frame.status : 0;
    message_.framing = frame.serialization();
    message_.raw = frame.raw;
    return &message_;
  }
  size_t buffered_bytes() const override { return decoder_.buffered_bytes(); }

 private:
  DubboDecoder decoder_;
  RpcMessage message_;
};

}  // namespace

bool DubboRpcCodec::MatchesFirstByte(uint8_t first_byte) const { return first_byte == kMagic0; }

std::unique_ptr<RpcDecoder> DubboRpcCodec::NewDecoder(const RpcLimits& limits) const {
  return std::make_unique<DubboRpcDecoder>(limits);
}

absl::Status DubboRpcCodec::RewriteRequestId(std::span<char> frame, uint64_t request_id) const {
  return dubbo::RewriteRequestId(frame, request_id);
}

void DubboRpcCodec::EncodeHeartbeat(uint64_t request_id, std::string& out) const {
  dubbo::EncodeHeartbeat(request_id, out, kSerializationHessian2);
}

void DubboRpcCodec::EncodeHeartbeatAck(const RpcMessage& heartbeat, std::string& out) const {
  const auto serialization = static_cast<uint8_t>(heartbeat.framing & kSerializationMask);
  std::string_view null_body(&kHessian2Null, 1);
  if (serialization != kSerializationHessian2 && heartbeat.raw.size() > kHeaderBytes &&
      heartbeat.raw.size() - kHeaderBytes <= kMaxEchoedNullBytes) {
    null_body = heartbeat.raw.substr(kHeaderBytes);
  }
  dubbo::EncodeHeartbeatAck(heartbeat.request_id, serialization, out, null_body);
}

void DubboRpcCodec::EncodeError(uint64_t framing, uint64_t request_id, RpcError error,
                                std::string_view message, std::string& out) const {
  auto serialization = static_cast<uint8_t>(framing & kSerializationMask);
  if (serialization == 0) serialization = kSerializationHessian2;
  EncodeErrorResponse(serialization, request_id, static_cast<uint8_t>(ErrorStatus(error)), message,
                      out);
}

bool DubboRpcCodec::PeekTwoWayRequest(std::string_view bytes, uint64_t& framing,
                                      uint64_t& request_id) const {
  if (bytes.size() < 12) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (p[0] != kMagic0 || p[1] != kMagic1) return false;
  const uint8_t flag = p[2];
  if ((flag & kFlagRequest) == 0 || (flag & kFlagTwoWay) == 0 || (flag & kFlagEvent) != 0) {
    return false;
  }
  uint64_t id = 0;
  for (size_t i = 4; i < 12; ++i) id = (id << 8) | p[i];
  framing = flag & kSerializationMask;
  request_id = id;
  return true;
}

uint32_t DubboRpcCodec::ErrorStatus(RpcError error) const {
  DubboStatus status = DubboStatus::kServerError;
  switch (error) {
    case RpcError::kNoRoute:
      status = DubboStatus::kServiceNotFound;
      break;
    case RpcError::kOverflow:
      status = DubboStatus::kServerThreadpoolExhausted;
      break;
    case RpcError::kTimeout:
      status = DubboStatus::kServerTimeout;
      break;
    case RpcError::kUpstreamFailure:
      status = DubboStatus::kServerError;
      break;
    case RpcError::kCodecError:
      status = DubboStatus::kBadRequest;
      break;
  }
  return static_cast<uint32_t>(status);
}

size_t DubboRpcCodec::StatusSlot(uint32_t status) const {
  for (size_t slot = 0; slot < kSlotted.size(); ++slot) {
    if (static_cast<uint32_t>(kSlotted[slot]) == status) return slot;
  }
  return kRpcStatusSlots - 1;
}

std::string_view DubboRpcCodec::StatusName(uint32_t status) const {
  if (status > std::numeric_limits<uint8_t>::max()) return "UNRECOGNIZED";
  return DubboStatusName(static_cast<uint8_t>(status));
}

const RpcCodec& DubboCodec() {
  static const DubboRpcCodec codec;
  return codec;
}

}  // namespace cairn::sidecar::dubbo
