// Stream codecs of the sidecar: HTTP state machines that do no I/O.
//
// A codec turns bytes into events (OnIngress -> callbacks) and events into
// bytes (Encode* append to a buffer the caller owns and writes to the
// socket). The same interfaces serve HTTP/1.1 and HTTP/2, so the connection
// manager and router never switch on the protocol: they ask capabilities
// such as SupportsMultiplexing(). Message-oriented RPC protocols (Bolt,
// Dubbo) implement the leaner RpcCodec instead (rpc_codec.h): they carry
// whole frames with request ids, not streams of heads and bodies.
//
// Two roles per protocol:
//   ServerCodec - downstream side: parses requests, encodes responses;
//   ClientCodec - upstream side: encodes requests, parses responses.
//
// Streams: every request/response exchange has a StreamId. HTTP/1 uses one
// stream at a time per connection (pipelined requests are queued by the
// codec and surfaced one after the other); HTTP/2 maps streams directly.
//
// Header names are lower-case (HTTP/2's rule; HTTP/1 codecs lower-case on
// parse), values are passed as received. Pseudo-headers are not in the
// header list: they are fields of RequestHead / ResponseHead.
//
// Thread-safety: a codec belongs to one connection on one worker thread; not
// thread-safe. Callbacks run synchronously inside OnIngress / Encode*.
// Callbacks must not destroy the codec; they may call Encode* on it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace cairn::sidecar {

using StreamId = uint32_t;
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Returns the first value of a (lower-case) header, or nullptr.
const std::string* FindHeader(const HeaderList& headers, std::string_view name);

struct RequestHead {
  std::string method;     // "GET"
  std::string path;       // origin-form request target, "/a?b=c"
  std::string authority;  // Host header or :authority
  std::string scheme;     // "http" (HTTP/1: always "http" for now)
  HeaderList headers;     // without Host / pseudo-headers
};

struct ResponseHead {
  int status = 200;
  HeaderList headers;
};

// Why a stream or connection ended abnormally.
enum class ResetReason {
  kProtocolError,  // the peer broke the protocol (malformed frame, bad header)
  kTooLarge,       // a documented limit was exceeded
  kRefused,        // the peer refused the stream (HTTP/2 REFUSED_STREAM, GOAWAY)
  kCancelled,      // the peer cancelled (RST_STREAM CANCEL, connection closed)
  kLocal,          // we reset it
};

// Limits every codec enforces; defaults are documented in examples/ and
// docs. Exceeding one gives a clear error (431/413/400 or a stream reset).
struct CodecLimits {
  size_t max_header_bytes = 64 * 1024;  // all header names + values of one message
  size_t max_headers = 100;
  size_t max_body_bytes = 64 * 1024 * 1024;  // per message, 0 = unlimited
  uint32_t max_concurrent_streams = 1024;    // HTTP/2
  // HTTP/2 abuse caps (server side; ListenerConfig documents them). A peer
  // that resets more streams than the token bucket allows (burst, refilled
  // at resets_per_s) or splits one header block into more CONTINUATION
  // frames than allowed gets GOAWAY. The defaults are nghttp2's own.
  uint32_t http2_max_reset_burst = 1000;
  uint32_t http2_resets_per_s = 33;
  uint32_t http2_max_continuations = 8;
};

// ---------------------------------------------------------------- downstream

class ServerCodecCallbacks {
 public:
  virtual ~ServerCodecCallbacks() = default;
  virtual void OnRequestHead(StreamId stream, RequestHead&& head, bool end_stream) = 0;
  virtual void OnRequestData(StreamId stream, std::string_view data, bool end_stream) = 0;
  virtual void OnRequestTrailers(StreamId stream, HeaderList&& trailers) = 0;  // ends the stream
  virtual void OnStreamReset(StreamId stream, ResetReason reason) = 0;
};

class ServerCodec {
 public:
  virtual ~ServerCodec() = default;

  // Feeds bytes read from the socket. On a connection-level protocol error
  // returns a non-OK status (INVALID_ARGUMENT: malformed; RESOURCE_EXHAUSTED:
  // a limit). The codec has by then appended whatever it owes the peer (an
  // HTTP/1 400/413/431 response, an HTTP/2 GOAWAY) to `out`; the caller
  // writes `out` and closes the connection.
  virtual absl::Status OnIngress(std::string_view bytes, std::string& out) = 0;

  // Encoders append bytes to `out`. REQUIRES: the stream exists and its
  // response head was not yet sent (for EncodeHead) / was sent (for the rest).
  virtual void EncodeResponseHead(StreamId stream, const ResponseHead& head, bool end_stream,
                                  std::string& out) = 0;
  virtual void EncodeResponseData(StreamId stream, std::string_view data, bool end_stream,
                                  std::string& out) = 0;
  // Ends the stream. HTTP/1 encodes trailers only for chunked responses (and
  // otherwise ends the body).
  virtual void EncodeResponseTrailers(StreamId stream, const HeaderList& trailers,
                                      std::string& out) = 0;
  // Resets one stream (HTTP/2 RST_STREAM). HTTP/1 cannot reset a stream: the
  // codec reports that the connection must close (returns false).
  virtual bool ResetStream(StreamId stream, std::string& out) = 0;

  // Anything the codec wants to send on its own (HTTP/2 SETTINGS, ping acks,
  // window updates) is appended to `out`.
  virtual void Flush(std::string& out) = 0;

  // True when the connection should close once `out` is written (HTTP/1
  // "Connection: close", HTTP/1.0, after GOAWAY).
  virtual bool WantsClose() const = 0;
  virtual bool SupportsMultiplexing() const = 0;

  // True while a request head has begun to arrive and is not complete (the
  // request header timeout runs): HTTP/1, part of a request line or header
  // section is buffered; HTTP/2, the client preface and SETTINGS are not
  // both in yet, or a HEADERS block awaits its CONTINUATION.
  virtual bool ReadingRequestHead() const { return false; }
};

// ---------------------------------------------------------------- upstream

class ClientCodecCallbacks {
 public:
  virtual ~ClientCodecCallbacks() = default;
  virtual void OnResponseHead(StreamId stream, ResponseHead&& head, bool end_stream) = 0;
  virtual void OnResponseData(StreamId stream, std::string_view data, bool end_stream) = 0;
  virtual void OnResponseTrailers(StreamId stream, HeaderList&& trailers) = 0;
  virtual void OnStreamReset(StreamId stream, ResetReason reason) = 0;
};

class ClientCodec {
 public:
  virtual ~ClientCodec() = default;

  // Starts a request. Returns its stream id. REQUIRES: CanStartStream().
  virtual StreamId EncodeRequestHead(const RequestHead& head, bool end_stream,
                                     std::string& out) = 0;
  virtual void EncodeRequestData(StreamId stream, std::string_view data, bool end_stream,
                                 std::string& out) = 0;
  virtual void EncodeRequestTrailers(StreamId stream, const HeaderList& trailers,
                                     std::string& out) = 0;
  virtual bool ResetStream(StreamId stream, std::string& out) = 0;

  // Feeds bytes read from the upstream. A non-OK status means the upstream
  // broke the protocol: every open stream has been reset via callbacks and
  // the connection must close.
  virtual absl::Status OnIngress(std::string_view bytes, std::string& out) = 0;
  // Tells the codec the upstream closed the connection (EOF). HTTP/1 uses it
  // to end a close-delimited body; streams still open are reset.
  virtual void OnUpstreamClosed() = 0;

  virtual void Flush(std::string& out) = 0;
  // False while an HTTP/1 request is in flight, or HTTP/2 is at its peer's
  // stream limit, or after GOAWAY.
  virtual bool CanStartStream() const = 0;
  virtual bool WantsClose() const = 0;  // the connection cannot be reused
  virtual bool SupportsMultiplexing() const = 0;
};

}  // namespace cairn::sidecar
