// Http2Connection: session set-up, stream bookkeeping, I/O and encoding.
// The nghttp2 callbacks are in http2_connection_callbacks.cc.
#include "sidecar/codec/http2/http2_connection.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sidecar/codec/http2/http2_nv_list.h"

namespace cairn::sidecar::http2_internal {
namespace {

constexpr uint32_t kMaxWindow = (1u << 31) - 1;
constexpr uint32_t kDefaultWindow = 65535;

}  // namespace

Http2Connection::Http2Connection(ServerCodecCallbacks* server_callbacks,
                                 ClientCodecCallbacks* client_callbacks, const CodecLimits& limits,
                                 const Http2Options& options)
    : server_cb_(server_callbacks),
      client_cb_(client_callbacks),
      limits_(limits),
      options_(options),
      boundaries_(server_callbacks != nullptr ? kHttp2ClientPreface.size() : 0) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_option* opt = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    conn_error_ = absl::ResourceExhaustedError("HTTP/2: out of memory");
    closed_ = true;
    return;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &OnFrameSend);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &OnFrameNotSend);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &SendBody);
  nghttp2_session_callbacks_set_error_callback2(cbs, &OnError);

  // Window updates are always ours: "automatic" mode consumes right after
  // the callback, manual mode when the application says so. One code path.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // Closed streams are kept only for RFC 7540 priority trees, which a proxy
  // does not honour; dropping them keeps memory proportional to open streams.
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (server()) {
    // Rapid reset (CVE-2023-44487) and CONTINUATION floods (CVE-2024-27316
    // family): nghttp2 answers a peer over these caps with GOAWAY.
    // Ours (TakeResetToken) cuts first; nghttp2's stays as a backstop.
    if (limits_.http2_max_reset_burst != 0) {
      nghttp2_option_set_stream_reset_rate_limit(opt, uint64_t{limits_.http2_max_reset_burst} + 1,
                                                 limits_.http2_resets_per_s);
    }
    nghttp2_option_set_max_continuations(opt, limits_.http2_max_continuations);
  }

  int rv = server() ? nghttp2_session_server_new2(&session_, cbs, this, opt)
                    : nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) {
    session_ = nullptr;
    conn_error_ = absl::ResourceExhaustedError("HTTP/2: cannot create session");
    closed_ = true;
    return;
  }

  std::array<nghttp2_settings_entry, 3> iv;
  size_t n = 0;
  if (server()) {
    iv[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams};
  } else {
    iv[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  }
  iv[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
             static_cast<uint32_t>(
                 std::min<size_t>(limits_.max_header_bytes, std::numeric_limits<uint32_t>::max()))};
  if (options_.initial_stream_window != kDefaultWindow) {
    iv[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
               std::min(options_.initial_stream_window, kMaxWindow)};
  }
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), n);
  if (options_.connection_window > kDefaultWindow) {
    nghttp2_session_set_local_window_size(
        session_, NGHTTP2_FLAG_NONE, 0,
        static_cast<int32_t>(std::min(options_.connection_window, kMaxWindow)));
  }
}

Http2Connection::~Http2Connection() {
  destroying_ = true;
  if (session_ != nullptr) nghttp2_session_del(session_);
  while (head_ != nullptr) {
    Http2Stream* s = head_;
    Unlink(s);
    delete s;
  }
}

// ---------------------------------------------------------------- streams

Http2Stream* Http2Connection::Find(StreamId id) const {
  if (closed_ || id == 0 || id > kMaxWindow) return nullptr;
  auto* s = static_cast<Http2Stream*>(
      nghttp2_session_get_stream_user_data(session_, static_cast<int32_t>(id)));
  if (s != nullptr || server()) return s;
  // A request still queued in nghttp2 (HEADERS not sent yet) has no nghttp2
  // stream; it is rare and bounded by the concurrency limit.
  for (Http2Stream* p = head_; p != nullptr; p = p->next) {
    if (p->id == id) return p;
  }
  return nullptr;
}

void Http2Connection::Link(Http2Stream* s) {
  s->next = head_;
  if (head_ != nullptr) head_->prev = s;
  head_ = s;
  ++active_;
}

void Http2Connection::Unlink(Http2Stream* s) {
  if (s->prev != nullptr) s->prev->next = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  if (head_ == s) head_ = s->next;
  s->prev = s->next = nullptr;
  --active_;
  if (transient_stream_ == s) {
    transient_stream_ = nullptr;
    transient_ = {};
  }
}

void Http2Connection::AppendPending(Http2Stream* s, std::string_view data) {
  if (transient_stream_ == s) {
    // Bytes of an outer Encode call on this stream come first.
    std::string_view earlier = transient_;
    transient_stream_ = nullptr;
    transient_ = {};
    AppendPending(s, earlier);
  }
  if (data.empty()) return;
  if (s->pending_off > 0) {
    s->pending.erase(0, s->pending_off);
    s->pending_off = 0;
  }
  s->pending.append(data);
}

void Http2Connection::ResumeData(Http2Stream* s) {
  if (!s->deferred) return;
  s->deferred = false;
  nghttp2_session_resume_data(session_, static_cast<int32_t>(s->id));
}

void Http2Connection::ReportReset(Http2Stream* s, ResetReason reason) {
  if (destroying_ || !s->surfaced || s->local_reset) return;
  if (s == opening_) {
    // EncodeRequestHead has not returned the id yet: it returns 0 instead.
    opening_failed_ = true;
    return;
  }
  if (server()) {
    server_cb_->OnStreamReset(s->id, reason);
  } else {
    client_cb_->OnStreamReset(s->id, reason);
  }
}

void Http2Connection::DropStream(Http2Stream* s, uint32_t h2_code, ResetReason reason) {
  if (s->dropping || s->local_reset) return;
  s->dropping = true;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, static_cast<int32_t>(s->id), h2_code);
  ReportReset(s, reason);
}

void Http2Connection::SetConnError(absl::Status status) {
  if (conn_error_.ok()) conn_error_ = std::move(status);
}

void Http2Connection::Teardown(ResetReason reason) {
  closed_ = true;  // from here on every entry point is a no-op
  while (head_ != nullptr) {
    Http2Stream* s = head_;
    Unlink(s);
    if (session_ != nullptr) {
      nghttp2_session_set_stream_user_data(session_, static_cast<int32_t>(s->id), nullptr);
    }
    if (!s->dropping) ReportReset(s, reason);
    delete s;
  }
}

// ---------------------------------------------------------------- I/O

void Http2Connection::Drain(std::string& out) {
  // Inside a callback the outer mem_recv/mem_send owns the output; it keeps
  // calling mem_send until nghttp2 has nothing left, so frames queued now
  // are not lost.
  if (closed_ || session_ == nullptr || nghttp2_depth_ > 0) return;
  drain_out_ = &out;
  ++nghttp2_depth_;
  while (!closed_) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      SetConnError(absl::InternalError(
          absl::StrCat("HTTP/2 send failed: ", nghttp2_strerror(static_cast<int>(n)))));
      break;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  --nghttp2_depth_;
  drain_out_ = nullptr;
}

absl::Status Http2Connection::Ingress(std::string_view bytes, std::string& out) {
  if (closed_) {
    return conn_error_.ok() ? absl::FailedPreconditionError("HTTP/2 connection is closed")
                            : conn_error_;
  }
  while (conn_error_.ok() && !closed_ && !bytes.empty()) {
    bool frame_ends = false;
    size_t take = boundaries_.Next(bytes, frame_ends);
    ++nghttp2_depth_;
    ssize_t rv =
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()), take);
    --nghttp2_depth_;
    bytes.remove_prefix(take);
    if (rv >= 0) {
      // See FrameBoundaries: what this frame made us queue goes out first.
      if (frame_ends && !bytes.empty() && nghttp2_session_want_write(session_) != 0) Drain(out);
      continue;
    }
    // Fatal for nghttp2, which queues no GOAWAY of its own in these cases.
    uint32_t code = NGHTTP2_PROTOCOL_ERROR;
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      SetConnError(absl::InvalidArgumentError("HTTP/2: bad client connection preface"));
    } else if (rv == NGHTTP2_ERR_FLOODED) {
      SetConnError(absl::ResourceExhaustedError("HTTP/2: peer flooded control frames"));
    } else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
      SetConnError(absl::ResourceExhaustedError(
          absl::StrCat("HTTP/2 CONTINUATION flood: more than ", limits_.http2_max_continuations,
                       " CONTINUATION frames in one header block")));
    } else {
      SetConnError(absl::InvalidArgumentError(
          absl::StrCat("HTTP/2: ", nghttp2_strerror(static_cast<int>(rv)), " ", last_error_)));
    }
    if (absl::IsResourceExhausted(conn_error_)) code = NGHTTP2_ENHANCE_YOUR_CALM;
    nghttp2_session_terminate_session(session_, code);
  }
  Drain(out);
  if (!conn_error_.ok()) {
    Teardown(ResetReason::kProtocolError);
    return conn_error_;
  }
  return absl::OkStatus();
}

size_t FrameBoundaries::Next(std::string_view bytes, bool& ends) {
  ends = false;
  if (preface_left_ > 0) {
    size_t take = std::min(preface_left_, bytes.size());
    preface_left_ -= take;
    ends = preface_left_ == 0;
    return take;
  }
  size_t used = 0;
  while (header_have_ < kFrameHeaderBytes && used < bytes.size()) {
    if (header_have_ < 3) length_ = (length_ << 8) | static_cast<uint8_t>(bytes[used]);
    ++header_have_;
    ++used;
    if (header_have_ == kFrameHeaderBytes) {
      payload_left_ = length_;
      length_ = 0;
    }
  }
  if (header_have_ < kFrameHeaderBytes) return used;
  size_t take = std::min(payload_left_, bytes.size() - used);
  payload_left_ -= take;
  used += take;
  if (payload_left_ == 0) {
    header_have_ = 0;
    ends = true;
  }
  return used;
}

bool Http2Connection::TakeResetToken() {
  if (limits_.http2_max_reset_burst == 0) return true;  // off
  const auto now = std::chrono::steady_clock::now();
  if (reset_tokens_refilled_ == std::chrono::steady_clock::time_point{}) {
    reset_tokens_ = limits_.http2_max_reset_burst;
  } else {
    const double elapsed = std::chrono::duration<double>(now - reset_tokens_refilled_).count();
    reset_tokens_ = std::min<double>(limits_.http2_max_reset_burst,
                                     reset_tokens_ + elapsed * limits_.http2_resets_per_s);
  }
  reset_tokens_refilled_ = now;
  if (reset_tokens_ < 1) return false;
  reset_tokens_ -= 1;
  return true;
}

// ---------------------------------------------------------------- encoding

void Http2Connection::SubmitResponseHead(StreamId id, const ResponseHead& head, bool end_stream,
                                         std::string& out) {
  Http2Stream* s = Find(id);
  if (s == nullptr || !server() || !s->head_delivered || s->provider || s->local_end ||
      s->dropping || s->local_reset) {
    return;
  }
  int status = head.status >= 100 && head.status <= 999 ? head.status : 500;
  char status_buf[4];
  auto res = std::to_chars(status_buf, status_buf + 3, status);
  NvList nv(head.headers.size());
  nv.AddPseudo(":status", std::string_view(status_buf, res.ptr - status_buf));
  nv.AddFields(head.headers, /*skip_host=*/false);
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = &ReadBody;
  if (nghttp2_submit_response(session_, static_cast<int32_t>(id), nv.data(), nv.size(),
                              end_stream ? nullptr : &prd) != 0) {
    return;
  }
  if (end_stream) {
    s->local_end = true;
  } else {
    s->provider = true;
  }
  Drain(out);
}

StreamId Http2Connection::SubmitRequestHead(const RequestHead& head, bool end_stream,
                                            std::string& out) {
  if (server() || !CanStartStream()) return 0;
  std::string_view authority = head.authority;
  if (authority.empty()) {
    if (const std::string* host = FindHeader(head.headers, "host")) authority = *host;
  }
  // Views, not `cond ? "literal" : std::string` (that would be a temporary).
  std::string_view scheme = head.scheme.empty() ? std::string_view("http") : head.scheme;
  std::string_view path = head.path.empty() ? std::string_view("/") : head.path;
  bool connect = head.method == "CONNECT";
  NvList nv(head.headers.size());
  nv.AddPseudo(":method", head.method);
  if (!connect) nv.AddPseudo(":scheme", scheme);
  if (!authority.empty()) nv.AddPseudo(":authority", authority);
  if (!connect) nv.AddPseudo(":path", path);
  nv.AddFields(head.headers, /*skip_host=*/true);

  auto* s = new Http2Stream;
  s->surfaced = true;  // the caller learns the id from our return value
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = &ReadBody;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                      end_stream ? nullptr : &prd, s);
  if (id < 0) {
    delete s;
    return 0;
  }
  s->id = static_cast<StreamId>(id);
  if (end_stream) {
    s->local_end = true;
  } else {
    s->provider = true;
  }
  Link(s);
  // A callback may start another request while we drain: keep ours apart.
  Http2Stream* saved = opening_;
  bool saved_failed = opening_failed_;
  opening_ = s;
  opening_failed_ = false;
  Drain(out);
  bool failed = opening_failed_;
  opening_ = saved;
  opening_failed_ = saved_failed;
  return failed ? 0 : static_cast<StreamId>(id);
}

void Http2Connection::SubmitData(StreamId id, std::string_view data, bool end_stream,
                                 std::string& out) {
  Http2Stream* s = Find(id);
  if (s == nullptr || !s->provider || s->local_end || s->dropping || s->local_reset) return;
  s->local_end = end_stream;
  if (!data.empty()) {
    if (nghttp2_depth_ == 0 && transient_stream_ == nullptr) {
      transient_stream_ = s;
      transient_ = data;
    } else {
      AppendPending(s, data);
    }
  }
  ResumeData(s);
  Drain(out);
  if (transient_stream_ != nullptr) {
    // The window closed before all of `data` was framed: keep the rest.
    Http2Stream* t = transient_stream_;
    std::string_view rest = transient_;
    transient_stream_ = nullptr;
    transient_ = {};
    AppendPending(t, rest);
  }
}

void Http2Connection::SubmitTrailers(StreamId id, const HeaderList& trailers, std::string& out) {
  if (trailers.empty()) {
    SubmitData(id, {}, true, out);  // HEADERS without fields would be odd; just end
    return;
  }
  Http2Stream* s = Find(id);
  if (s == nullptr || !s->provider || s->local_end || s->dropping || s->local_reset) return;
  s->local_end = true;
  if (s->deferred && s->pending_off == s->pending.size()) {
    // The whole body is out and the data provider sleeps: send the trailers
    // now. Waking the provider would cost an empty DATA frame (EOF without
    // END_STREAM) before them; the idle provider goes away with the stream.
    NvList nv(trailers.size());
    nv.AddFields(trailers, /*skip_host=*/false);
    if (nghttp2_submit_trailer(session_, static_cast<int32_t>(id), nv.data(), nv.size()) == 0) {
      Drain(out);
      return;
    }
  }
  // Trailers must follow every DATA frame, so the data provider submits them
  // once the pending body has drained (see ReadBody).
  s->trailers = std::make_unique<HeaderList>(trailers);
  ResumeData(s);
  Drain(out);
}

void Http2Connection::Reset(StreamId id, std::string& out) {
  Http2Stream* s = Find(id);
  if (s == nullptr || s->local_reset) return;
  s->local_reset = true;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, static_cast<int32_t>(id), NGHTTP2_CANCEL);
  Drain(out);
}

void Http2Connection::Consume(StreamId id, size_t bytes, std::string& out) {
  if (!options_.manual_flow_control) return;
  Http2Stream* s = Find(id);
  if (s == nullptr) return;  // its window was returned when it closed
  size_t n = std::min<size_t>(bytes, s->unconsumed);
  if (n == 0) return;
  s->unconsumed -= static_cast<uint32_t>(n);
  nghttp2_session_consume(session_, static_cast<int32_t>(id), n);
  Drain(out);
}

void Http2Connection::Shutdown(std::string& out) {
  if (closed_ || goaway_sent_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  Drain(out);
}

void Http2Connection::PeerClosed() {
  if (!closed_) Teardown(ResetReason::kCancelled);
}

bool Http2Connection::WantsClose() const {
  if (closed_ || !conn_error_.ok()) return true;
  if ((goaway_sent_ || goaway_received_) && active_ == 0) return true;
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

bool Http2Connection::CanStartStream() const {
  if (server() || closed_ || !conn_error_.ok() || goaway_sent_ || goaway_received_) return false;
  if (nghttp2_session_get_next_stream_id(session_) > kMaxWindow) return false;
  return active_ <
         nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace cairn::sidecar::http2_internal
