#include "sidecar/codec/rpc_codecs.h"

#include <array>

#include "sidecar/codec/bolt/bolt_codec.h"
#include "sidecar/codec/dubbo/dubbo_codec.h"

namespace cairn::sidecar {

std::span<const RpcCodec* const> RpcCodecs() {
  static const std::array<const RpcCodec*, 2> codecs = {&bolt::BoltCodec(), &dubbo::DubboCodec()};
  return codecs;
}

const RpcCodec* FindRpcCodec(std::string_view name) {
  for (const RpcCodec* codec : RpcCodecs()) {
    if (codec->name() == name) return codec;
  }
  return nullptr;
}

const RpcCodec* DetectRpcCodec(uint8_t first_byte) {
  for (const RpcCodec* codec : RpcCodecs()) {
    if (codec->MatchesFirstByte(first_byte)) return codec;
  }
  return nullptr;
}

}  // namespace cairn::sidecar
