// The sidecar's own Bolt error responses (no route, timeout, upstream
// failure, overflow, a malformed frame), in a form SOFARPC clients decode.
//
// A client does read the content of an error response: sofa-bolt-node
// decodes it with the frame's codec as the exception the server threw, and
// on a hessian2 frame whose content is not a hessian2 object it throws and
// closes the connection, failing every other call in flight on it. So:
//   - hessian2 frames (codec 1) carry a hessian2-serialized
//     com.alipay.remoting.rpc.exception.RpcServerException (detailMessage =
//     the message, cause null, an empty stack trace), as a SOFA Bolt server
//     sends; a client shows the message.
//   - other codecs (protobuf: sofa-bolt-node reads the content as the error
//     text) carry the message as plain UTF-8 (EncodeErrorResponse).
// The hessian2 encoding is the draft 2.0 grammar of Hessian 3.x that SOFARPC
// uses ('O' class definition, 'o' instance; see HessianRpcServerException).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/codec/bolt/bolt_encoder.h"

namespace cairn::sidecar::bolt {

inline constexpr std::string_view kRpcServerExceptionClass =
    "com.alipay.remoting.rpc.exception.RpcServerException";

// Appends one error response to `out`, framed as `framing` says (answer a
// request in kind: FramingOf). `message` is cut to 4 KiB; in hessian2 its
// bytes outside printable ASCII become '?' (it may quote client input).
void EncodeSidecarError(const BoltFraming& framing, uint32_t request_id, BoltStatus status,
                        std::string_view message, std::string& out);

// The hessian2 content alone (tests; what EncodeSidecarError puts in a
// hessian2 frame).
std::string HessianRpcServerException(std::string_view message);

}  // namespace cairn::sidecar::bolt
