// The RPC protocols the sidecar speaks, by name and by first byte. Adding a
// protocol means its codec folder (src/sidecar/codec/<name>/), a line in
// rpc_codecs.cc and its name in the config's kRpcProtocols; the request
// path, pools, metrics and config schema (`<name>_routes`) are shared.
//
// Thread-safety: the codecs are immutable; call from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "sidecar/codec/rpc_codec.h"

namespace cairn::sidecar {

// Every RPC codec, in detection order.
std::span<const RpcCodec* const> RpcCodecs();
// The codec called `name` ("bolt", "dubbo"), or nullptr (HTTP, TCP...).
const RpcCodec* FindRpcCodec(std::string_view name);
// The codec whose connections start with `first_byte`, or nullptr (HTTP).
const RpcCodec* DetectRpcCodec(uint8_t first_byte);

}  // namespace cairn::sidecar
