// HTTP/2 codecs (RFC 9113) on top of nghttp2, for both sides of the proxy.
//
// Like every codec (see codec.h) they do no I/O: OnIngress feeds bytes to
// nghttp2_session_mem_recv, and every method taking `out` appends the frames
// nghttp2 wants to send (nghttp2_session_mem_send) to it.
//
// Thread-safety and ownership: a codec belongs to one connection on one
// worker thread and is not thread-safe. It owns its nghttp2 session and the
// per-stream state; the callbacks object is borrowed and must outlive it.
// Callbacks run synchronously; they may call Encode* / ResetStream / Consume*
// on the codec. Frames queued from inside a callback are appended to the
// `out` of the outer call (OnIngress, or the Encode* whose output triggered
// the callback), not to the `out` given to the nested call: the caller should
// write every `out` buffer in call-completion order (one buffer per
// connection is simplest).
//
// Streams: Encode*/ResetStream/Consume* on a stream the codec no longer knows
// (already reset by the peer, or finished) are ignored; that race is normal
// in a proxy. OnStreamReset is reported only for streams the application has
// seen (server: after OnRequestHead; client: every stream it started) and
// never for resets the application asked for itself.
//
// Flow control: outbound body bytes that do not fit the peer's windows stay
// in a per-stream buffer and are framed as WINDOW_UPDATEs arrive (in later
// OnIngress / Flush calls). Inbound, by default the codec returns window as
// soon as a DATA chunk has been handed to the callback ("automatic"). With
// Http2Options::manual_flow_control the window is only returned when the
// application calls Consume{Request,Response}Data, which gives the proxy
// backpressure: a slow upstream stops the downstream sender.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sidecar/codec/codec.h"

namespace cairn::sidecar {

// The 24 bytes every HTTP/2 client sends first ("prior knowledge" h2c).
inline constexpr std::string_view kHttp2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Protocol detection: true when `first_bytes` is a prefix of the client
// preface (more bytes are needed to be sure; an empty input is such a
// prefix) or starts with it. False means "not HTTP/2 prior knowledge".
bool LooksLikeHttp2Preface(std::string_view first_bytes);

struct Http2Options {
  // See "Flow control" above. Off by default because an application that
  // never calls Consume* would stall every stream after one window.
  bool manual_flow_control = false;
  // Advertised in SETTINGS_INITIAL_WINDOW_SIZE (RFC default 65535).
  uint32_t initial_stream_window = 65535;
  // Receive window of the whole connection (RFC default 65535); raised with
  // a WINDOW_UPDATE on stream 0 when larger.
  uint32_t connection_window = 65535;
};

// The HTTP/2-specific surface, for callers that want more than ServerCodec.
class Http2ServerCodec : public ServerCodec {
 public:
  // Manual flow control: the application is done with `bytes` of the request
  // body of `stream`, which may now be refilled by the peer. Counted bytes
  // beyond what was delivered are ignored. WINDOW_UPDATEs go to `out`.
  virtual void ConsumeRequestData(StreamId stream, size_t bytes, std::string& out) = 0;
  // Graceful drain: sends GOAWAY(NO_ERROR) naming the last stream accepted.
  // Streams already open finish; WantsClose() turns true once they have.
  virtual void Shutdown(std::string& out) = 0;
};

class Http2ClientCodec : public ClientCodec {
 public:
  // Manual flow control, as ConsumeRequestData for the response body.
  virtual void ConsumeResponseData(StreamId stream, size_t bytes, std::string& out) = 0;
};

// The server codec queues its SETTINGS (max_concurrent_streams, max header
// list size = limits.max_header_bytes) at creation; Flush or the first
// OnIngress emits them. It expects the client preface first.
std::unique_ptr<ServerCodec> NewHttp2ServerCodec(ServerCodecCallbacks& callbacks,
                                                 const CodecLimits& limits);
std::unique_ptr<Http2ServerCodec> NewHttp2ServerCodec(ServerCodecCallbacks& callbacks,
                                                      const CodecLimits& limits,
                                                      const Http2Options& options);

// The client codec queues the preface and its SETTINGS at creation; call
// Flush (or any encoder) to emit them. EncodeRequestHead returns 0 when the
// stream could not be started (then no callback mentions it).
std::unique_ptr<ClientCodec> NewHttp2ClientCodec(ClientCodecCallbacks& callbacks,
                                                 const CodecLimits& limits);
std::unique_ptr<Http2ClientCodec> NewHttp2ClientCodec(ClientCodecCallbacks& callbacks,
                                                      const CodecLimits& limits,
                                                      const Http2Options& options);

}  // namespace cairn::sidecar
