// The Bolt protocol (SOFARPC, v1 and v2) as an RpcCodec: what the sidecar's
// RPC request path (src/sidecar/rpc/) needs to proxy it. Frames, encoders
// and the id rewrite are bolt_frame.h / bolt_encoder.h; the sidecar's own
// error responses bolt_error.h.
//
//   routing service  sofa_head_target_service, else service (header map)
//   deadline         the frame's timeout (v1/v2 requests)
//   framing          protocol, ver1, switch byte and serialization codec of
//                    the request, so that an answer is framed like it
//   heartbeats       cmdcode 0; a oneway heartbeat gets no answer
//
// Thread-safety: immutable; one instance shared by every worker.
#pragma once

#include "sidecar/codec/bolt/bolt_encoder.h"
#include "sidecar/codec/rpc_codec.h"

namespace cairn::sidecar::bolt {

// The codec (a process-wide instance).
const RpcCodec& BoltCodec();

// RpcMessage::framing of a Bolt frame, and back.
uint64_t PackFraming(const BoltFraming& framing, bool oneway = false);
BoltFraming UnpackFraming(uint64_t framing);

}  // namespace cairn::sidecar::bolt
