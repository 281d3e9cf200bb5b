// HTTP/1.1 (and 1.0) implementations of ServerCodec and ClientCodec.
//
// Thread-safety and ownership: as for every codec (see codec.h), one codec
// per connection, used on one worker thread, not thread-safe. The codec keeps
// a reference to its callbacks, which must outlive it. Views passed to
// OnRequestData / OnResponseData point into the buffer given to OnIngress and
// are valid only during the callback. The codecs do no I/O.
//
// Stream ids: 1, 2, 3, ... per connection, in the order requests are sent
// (client) or parsed (server). HTTP/1 has no stream reset: ResetStream of a
// pending stream returns false and makes WantsClose() true (a no-op `true`
// for a stream that is already finished or unknown).
//
// Parsing (both directions): CRLF line endings only (a bare LF is 400 - a
// proxy that is more lenient than the next hop invites request smuggling);
// header names lower-cased, values OWS-trimmed, as received otherwise; no
// obs-fold, no whitespace before ':', no control characters.
// Hop-by-hop fields are removed from RequestHead/ResponseHead.headers and
// from trailers: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
// Upgrade, TE (except that "te: trailers" is kept when TE lists trailers),
// and any field named by a Connection option (except content-length).
// Content-Length IS kept (once, normalized to digits). Requests: Host moves
// to RequestHead.authority; "Expect: 100-continue" is answered by the codec
// and removed. Limits: see http1_parser.h.
//
// Server codec:
//  - Origin-form targets; absolute-form ("http://a.b:80/p?q", http/https)
//    is split into authority (overriding Host) and path, scheme set from it.
//    CONNECT and OPTIONS * get 501 (UNIMPLEMENTED); other target forms 400.
//    HTTP/1.1 without Host is 400 (unless absolute-form).
//  - Upgrade requests (websocket, h2c) are served as plain HTTP/1.1: the
//    Upgrade and Connection fields are stripped like any hop-by-hop field and
//    no 101 is ever sent - the clean refusal RFC 9110 7.8 allows.
//  - Pipelining: requests are surfaced as soon as parsed, in order. The
//    caller MUST encode responses in stream order: Encode* calls for a stream
//    other than the oldest one with a pending response are ignored (no
//    bytes). After a request whose semantics close the connection (1.1 with
//    "Connection: close", 1.0 without keep-alive) further input is discarded.
//  - Errors: 400/413/414/431/501/505 with content-length: 0 and connection: close
//    is appended to `out`, OnIngress returns INVALID_ARGUMENT (400/505),
//    RESOURCE_EXHAUSTED (413/414/431) or UNIMPLEMENTED (501), every pending
//    stream gets OnStreamReset (kTooLarge for 413/414/431, else kProtocolError),
//    and later calls return the same status. The error response is written
//    only when it cannot be mistaken for the answer to an earlier request
//    (no earlier response pending, the failing request's response not begun);
//    otherwise nothing is written and the connection just closes.
//  - Responses: "HTTP/1.1" status line with reason phrase. Caller's
//    hop-by-hop fields are dropped ("connection: close" is honoured).
//    Framing: the caller's content-length if valid; else content-length: 0
//    when end_stream is on the head; else chunked (1.1 clients) or
//    close-delimited (1.0 clients). HEAD, 1xx, 204, 304: no body (data is
//    discarded; a HEAD/304 content-length is passed through). 1xx heads are
//    interim (the final head may follow); 101 is ignored. Trailers are written
//    only for chunked responses. Data beyond a content-length is discarded and
//    a shortfall closes the connection. A response completed before its
//    request was fully read closes the connection (the rest of the request
//    is discarded).
//  - WantsClose(): after an error or reset, or once the last response
//    allowed on this connection has been fully encoded.
//
// Client codec:
//  - One request at a time: CanStartStream() is false from EncodeRequestHead
//    until the request is fully encoded AND its response complete.
//    EncodeRequestHead returns 0 (writing nothing) when misused (stream in
//    flight, invalid method/path/authority).
//  - Request framing: the caller's content-length, else none when end_stream
//    is on the head, else chunked. Host comes from RequestHead.authority.
//  - Responses: 1xx are skipped (101 is a protocol error: we never ask to
//    upgrade); HEAD, 204, 304 have no body; otherwise chunked, content-length
//    or close-delimited (ended by OnUpstreamClosed). Transfer-Encoding other
//    than a single final "chunked", together with Content-Length, or in an
//    HTTP/1.0 response is a protocol error, as is a CRLF before the status
//    line. A response without keep-alive makes WantsClose() true.
//  - Errors: the in-flight stream gets OnStreamReset (kProtocolError, or
//    kTooLarge for limits), OnIngress returns INVALID_ARGUMENT or
//    RESOURCE_EXHAUSTED, and keeps returning it. Bytes arriving with no
//    request in flight are a protocol error (unless the connection is already
//    closing, then they are discarded). EOF before a response completes
//    resets the stream with kCancelled.
#pragma once

#include <memory>

#include "sidecar/codec/codec.h"

namespace cairn::sidecar {

std::unique_ptr<ServerCodec> NewHttp1ServerCodec(ServerCodecCallbacks& callbacks,
                                                 const CodecLimits& limits);
std::unique_ptr<ClientCodec> NewHttp1ClientCodec(ClientCodecCallbacks& callbacks,
                                                 const CodecLimits& limits);

}  // namespace cairn::sidecar
