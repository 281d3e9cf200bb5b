// Internal to the HTTP/2 codec: the nghttp2 session plus per-stream state,
// shared by the server and client roles (http2_codec.cc wraps it in the
// ServerCodec / ClientCodec interfaces).
//
// Thread-safety and ownership: one connection, one thread, not thread-safe.
// Http2Connection owns the nghttp2 session and every Http2Stream (an
// intrusive list, so that the destructor and connection errors can reach
// streams nghttp2 would forget silently). nghttp2's stream_user_data and the
// data providers point at Http2Stream objects; a stream is deleted only in
// nghttp2's on_stream_close (or when the connection is torn down, after which
// the session is never driven again).
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "sidecar/codec/codec.h"
#include "sidecar/codec/http2/http2_codec.h"

namespace cairn::sidecar::http2_internal {

// A header block being decoded. Allocated only between HEADERS and
// END_HEADERS, so idle streams do not carry a RequestHead around.
struct InboundBlock {
  RequestHead head;  // server: request; client: only `headers` is used
  int status = 0;    // client: :status
  size_t bytes = 0;  // names + values, against CodecLimits::max_header_bytes
  size_t count = 0;  // regular fields, against CodecLimits::max_headers
};

struct Http2Stream {
  StreamId id = 0;
  Http2Stream* prev = nullptr;
  Http2Stream* next = nullptr;

  // Outbound body not yet framed: bytes [pending_off, size) are unsent.
  // Advancing an offset instead of erasing keeps framing O(bytes).
  std::string pending;
  size_t pending_off = 0;
  // Outbound trailers, sent by the data provider once `pending` drains.
  std::unique_ptr<HeaderList> trailers;

  std::unique_ptr<InboundBlock> inbound;
  uint64_t body_received = 0;
  // Manual flow control: delivered but not yet consumed by the application;
  // returned to the connection window if the stream dies first.
  uint32_t unconsumed = 0;

  bool surfaced = false;        // the application knows this stream
  bool head_delivered = false;  // request/final response head delivered
  bool provider = false;        // a data provider is attached (body may follow)
  bool local_end = false;       // the application ended its side
  bool deferred = false;        // our data provider returned DEFERRED
  bool peer_reset = false;      // RST_STREAM received
  bool local_reset = false;     // the application asked for the reset
  bool dropping = false;        // we reset it; ignore further input
  ResetReason drop_reason = ResetReason::kLocal;
  uint32_t peer_code = 0;
};

// Where the peer's frames end in its byte stream (after the client
// preface, on the server), so that Ingress hands nghttp2 one frame at a time
// and flushes what that frame made us queue before the next is parsed. An
// RST_STREAM we owe then goes out before later frames of that stream are
// read, whichever way TCP cut the bytes: nghttp2 ignores frames on a stream
// it has reset (RFC 9113 5.1), but one whose reset is still queued is
// half-closed, and a DATA frame on it there was a connection error only
// when both frames came in one read (the HTTP/2 fuzz target found it).
// Validation stays nghttp2's: this only counts lengths.
class FrameBoundaries {
 public:
  explicit FrameBoundaries(size_t preface_bytes) : preface_left_(preface_bytes) {}
  // How many leading bytes of `bytes` (non-empty) belong to the preface or
  // frame in progress; `ends` says whether they complete it.
  size_t Next(std::string_view bytes, bool& ends);

 private:
  static constexpr size_t kFrameHeaderBytes = 9;
  size_t preface_left_;
  size_t header_have_ = 0;  // bytes of the current frame header seen
  size_t length_ = 0;       // its 24-bit payload length, as it accumulates
  size_t payload_left_ = 0;
};

class Http2Connection {
 public:
  // Exactly one of the callback pointers is non-null; it selects the role.
  Http2Connection(ServerCodecCallbacks* server, ClientCodecCallbacks* client,
                  const CodecLimits& limits, const Http2Options& options);
  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  absl::Status Ingress(std::string_view bytes, std::string& out);

  // Server: response head. Client: request head; returns the stream id or 0.
  void SubmitResponseHead(StreamId id, const ResponseHead& head, bool end_stream, std::string& out);
  StreamId SubmitRequestHead(const RequestHead& head, bool end_stream, std::string& out);
  void SubmitData(StreamId id, std::string_view data, bool end_stream, std::string& out);
  void SubmitTrailers(StreamId id, const HeaderList& trailers, std::string& out);
  void Reset(StreamId id, std::string& out);
  void Consume(StreamId id, size_t bytes, std::string& out);
  void Shutdown(std::string& out);
  void PeerClosed();  // the transport hit EOF
  void Flush(std::string& out) { Drain(out); }

  bool WantsClose() const;
  bool CanStartStream() const;
  // Server: the client's preface and first SETTINGS are not both in, or a
  // HEADERS block is waiting for its CONTINUATION (ServerCodec's
  // ReadingRequestHead).
  bool ReadingRequestHead() const {
    return !closed_ && (!peer_settings_received_ || header_block_stream_ != 0);
  }

 private:
  bool server() const { return server_cb_ != nullptr; }
  Http2Stream* Find(StreamId id) const;
  void Link(Http2Stream* s);
  void Unlink(Http2Stream* s);
  void AppendPending(Http2Stream* s, std::string_view data);
  void ResumeData(Http2Stream* s);
  void Drain(std::string& out);
  void ReportReset(Http2Stream* s, ResetReason reason);
  // Resets stream `s` on the codec's initiative and tells the application.
  void DropStream(Http2Stream* s, uint32_t h2_code, ResetReason reason);
  // Connection error: remembers `status` (first one wins) for Ingress.
  void SetConnError(absl::Status status);
  // Tears everything down: resets every known stream via callbacks.
  void Teardown(ResetReason reason);

  // nghttp2 callbacks (user_data is the Http2Connection).
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int OnStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnFrameNotSend(nghttp2_session*, const nghttp2_frame*, int, void*);
  static int OnError(nghttp2_session*, int, const char*, size_t, void*);
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);
  static int SendBody(nghttp2_session*, nghttp2_frame*, const uint8_t*, size_t,
                      nghttp2_data_source*, void*);

  int HandleHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value);
  void HandleHeadersDone(Http2Stream* s, const nghttp2_frame* frame);
  void HandleData(Http2Stream* s, int32_t id, std::string_view data);
  void HandleStreamClose(int32_t id, uint32_t code);

  ServerCodecCallbacks* server_cb_;
  ClientCodecCallbacks* client_cb_;
  CodecLimits limits_;
  Http2Options options_;
  nghttp2_session* session_ = nullptr;

  Http2Stream* head_ = nullptr;  // intrusive list of live streams
  size_t active_ = 0;

  // Body bytes of the Encode*Data call in progress that nghttp2 may frame
  // straight into `out` (copied to the stream's pending buffer only if the
  // window closes first): the common case then costs a single copy.
  Http2Stream* transient_stream_ = nullptr;
  std::string_view transient_;

  std::string* drain_out_ = nullptr;  // where SendBody appends
  int nghttp2_depth_ = 0;             // >0 while inside mem_recv / mem_send
  Http2Stream* opening_ = nullptr;    // client stream being started
  bool opening_failed_ = false;

  // Server: the peer's RST_STREAM budget (CodecLimits::http2_max_reset_burst
  // tokens, refilled at http2_resets_per_s). False: over it (rapid reset).
  bool TakeResetToken();
  double reset_tokens_ = 0;
  std::chrono::steady_clock::time_point reset_tokens_refilled_{};  // epoch: never used
  bool peer_settings_received_ = false;  // the peer's first (non-ACK) SETTINGS arrived
  int32_t header_block_stream_ = 0;      // a HEADERS block is being received for it
  bool goaway_sent_ = false;
  bool goaway_received_ = false;
  bool closed_ = false;  // torn down: error, EOF, or nghttp2 failure
  bool destroying_ = false;
  FrameBoundaries boundaries_;
  absl::Status conn_error_;  // first connection error, returned by Ingress
  std::string last_error_;   // nghttp2's latest diagnostic, for messages
};

}  // namespace cairn::sidecar::http2_internal
