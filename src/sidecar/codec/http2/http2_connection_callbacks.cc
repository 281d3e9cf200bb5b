// The nghttp2 callbacks of Http2Connection: header and data ingress, stream
// lifecycle, and the data provider that frames bodies straight into `out`.
#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sidecar/codec/http2/http2_connection.h"
#include "sidecar/codec/http2/http2_nv_list.h"

namespace cairn::sidecar::http2_internal {
namespace {

// Pending buffers larger than this are released once drained, so that one
// large upload does not pin memory for the rest of a long-lived stream.
constexpr size_t kKeepPendingCapacity = 64 * 1024;

Http2Connection* Self(void* user_data) { return static_cast<Http2Connection*>(user_data); }

std::string_view View(const uint8_t* data, size_t len) {
  return {reinterpret_cast<const char*>(data), len};
}

ResetReason FromPeerCode(uint32_t code) {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return ResetReason::kRefused;
    case NGHTTP2_PROTOCOL_ERROR:
      return ResetReason::kProtocolError;
    default:
      return ResetReason::kCancelled;
  }
}

}  // namespace

int Http2Connection::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                    void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_ || frame->hd.type != NGHTTP2_HEADERS) return 0;
  int32_t id = frame->hd.stream_id;
  // Until the block's last CONTINUATION (OnFrameRecv), or the stream closes.
  c->header_block_stream_ = id;
  Http2Stream* s = nullptr;
  switch (frame->headers.cat) {
    case NGHTTP2_HCAT_REQUEST:
      if (!c->server()) return 0;
      s = new Http2Stream;
      s->id = static_cast<StreamId>(id);
      c->Link(s);
      nghttp2_session_set_stream_user_data(session, id, s);
      break;
    case NGHTTP2_HCAT_RESPONSE:
    case NGHTTP2_HCAT_HEADERS:
      s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
      if (s == nullptr || s->dropping || s->local_reset) return 0;
      break;
    default:  // PUSH_RESPONSE: push is disabled in our SETTINGS
      return 0;
  }
  s->inbound = std::make_unique<InboundBlock>();
  return 0;
}

int Http2Connection::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                              size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                              void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_) return 0;
  return c->HandleHeader(frame, View(name, namelen), View(value, valuelen));
}

int Http2Connection::HandleHeader(const nghttp2_frame* frame, std::string_view name,
                                  std::string_view value) {
  auto* s = static_cast<Http2Stream*>(
      nghttp2_session_get_stream_user_data(session_, frame->hd.stream_id));
  if (s == nullptr || s->inbound == nullptr || name.empty()) return 0;
  InboundBlock& b = *s->inbound;
  b.bytes += name.size() + value.size();
  if (b.bytes > limits_.max_header_bytes) {
    // nghttp2 does not enforce SETTINGS_MAX_HEADER_LIST_SIZE on input; a
    // peer ignoring it is treated as abusive (connection error).
    SetConnError(absl::ResourceExhaustedError(
        absl::StrCat("HTTP/2 header list exceeds ", limits_.max_header_bytes, " bytes")));
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (name[0] == ':') {  // nghttp2 has validated placement and names
    if (server()) {
      if (name == ":method") {
        b.head.method.assign(value);
      } else if (name == ":path") {
        b.head.path.assign(value);
      } else if (name == ":authority") {
        b.head.authority.assign(value);
      } else if (name == ":scheme") {
        b.head.scheme.assign(value);
      }
    } else if (name == ":status") {
      int status = 0;
      std::from_chars(value.data(), value.data() + value.size(), status);
      b.status = status;
    }
    return 0;
  }
  if (++b.count > limits_.max_headers) {
    SetConnError(absl::ResourceExhaustedError(
        absl::StrCat("HTTP/2 header block has more than ", limits_.max_headers, " fields")));
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  HeaderList& fields = b.head.headers;
  if (server() && name == "host") {
    // RequestHead carries no Host field; :authority wins when both exist.
    if (b.head.authority.empty()) b.head.authority.assign(value);
    return 0;
  }
  if (name == "cookie") {
    // HTTP/2 may split cookies into crumbs (RFC 9113 8.2.3); an HTTP/1 hop
    // needs one field, so rejoin them here.
    for (auto& [n, v] : fields) {
      if (n == "cookie") {
        v.append("; ").append(value);
        return 0;
      }
    }
  }
  fields.emplace_back(std::string(name), std::string(value));
  return 0;
}

int Http2Connection::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                                 void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_) return 0;
  int32_t id = frame->hd.stream_id;
  // Any complete frame ends a header block: CONTINUATION frames must follow
  // their HEADERS with nothing in between (RFC 9113 6.10).
  c->header_block_stream_ = 0;
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    c->peer_settings_received_ = true;
  }
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
      if (s != nullptr) c->HandleHeadersDone(s, frame);
      break;
    }
    case NGHTTP2_DATA: {
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) break;
      auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
      if (s == nullptr || !s->head_delivered || s->dropping || s->local_reset) break;
      // Chunks were delivered as they arrived; the end is its own event
      // because on_data_chunk_recv does not know about END_STREAM.
      if (c->server()) {
        c->server_cb_->OnRequestData(s->id, {}, true);
      } else {
        c->client_cb_->OnResponseData(s->id, {}, true);
      }
      break;
    }
    case NGHTTP2_RST_STREAM: {
      if (c->server() && !c->TakeResetToken()) {
        // Rapid reset: stop reading this input at once (nghttp2's own limit
        // only queues a GOAWAY and goes on surfacing the streams behind it).
        c->SetConnError(absl::ResourceExhaustedError(
            absl::StrCat("HTTP/2 rapid reset: more than ", c->limits_.http2_max_reset_burst,
                         " stream resets (refilled at ", c->limits_.http2_resets_per_s, "/s)")));
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
      if (s != nullptr) {
        s->peer_reset = true;
        s->peer_code = frame->rst_stream.error_code;
      }
      break;
    }
    case NGHTTP2_GOAWAY:
      c->goaway_received_ = true;
      break;
    default:
      break;
  }
  return 0;
}

void Http2Connection::HandleHeadersDone(Http2Stream* s, const nghttp2_frame* frame) {
  if (s->inbound == nullptr) return;
  std::unique_ptr<InboundBlock> b = std::move(s->inbound);
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (server()) {
    if (!s->head_delivered) {
      s->head_delivered = s->surfaced = true;
      server_cb_->OnRequestHead(s->id, std::move(b->head), end_stream);
    } else {
      server_cb_->OnRequestTrailers(s->id, std::move(b->head.headers));
    }
    return;
  }
  if (!s->head_delivered) {
    // Interim (1xx) heads have no place in the codec interface; the final
    // head follows in another HEADERS frame.
    if (b->status >= 100 && b->status < 200) return;
    s->head_delivered = true;
    ResponseHead head;
    head.status = b->status;
    head.headers = std::move(b->head.headers);
    client_cb_->OnResponseHead(s->id, std::move(head), end_stream);
  } else {
    client_cb_->OnResponseTrailers(s->id, std::move(b->head.headers));
  }
}

int Http2Connection::OnDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                                 size_t len, void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_) return 0;
  auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
  c->HandleData(s, id, View(data, len));
  return 0;
}

void Http2Connection::HandleData(Http2Stream* s, int32_t id, std::string_view data) {
  if (s == nullptr || !s->head_delivered || s->dropping || s->local_reset) {
    // Nobody will read it: give the window back now.
    nghttp2_session_consume(session_, id, data.size());
    return;
  }
  s->body_received += data.size();
  if (limits_.max_body_bytes != 0 && s->body_received > limits_.max_body_bytes) {
    nghttp2_session_consume(session_, id, data.size());
    DropStream(s, NGHTTP2_ENHANCE_YOUR_CALM, ResetReason::kTooLarge);
    return;
  }
  bool manual = options_.manual_flow_control;
  // Count before the callback: it may call Consume for these very bytes.
  if (manual) s->unconsumed += static_cast<uint32_t>(data.size());
  if (server()) {
    server_cb_->OnRequestData(s->id, data, false);
  } else {
    client_cb_->OnResponseData(s->id, data, false);
  }
  if (!manual) nghttp2_session_consume(session_, id, data.size());
}

int Http2Connection::OnStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* user_data) {
  Http2Connection* c = Self(user_data);
  if (!c->destroying_) c->HandleStreamClose(id, code);
  return 0;
}

void Http2Connection::HandleStreamClose(int32_t id, uint32_t code) {
  if (id == header_block_stream_) header_block_stream_ = 0;
  auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session_, id));
  if (s == nullptr) return;
  // Detach first: the reset callback may call Encode* with this id.
  nghttp2_session_set_stream_user_data(session_, id, nullptr);
  Unlink(s);
  if (s->unconsumed > 0) nghttp2_session_consume_connection(session_, s->unconsumed);
  if (!s->dropping) {
    if (s->peer_reset) {
      ReportReset(s, FromPeerCode(s->peer_code));
    } else if (code != NGHTTP2_NO_ERROR) {
      // REFUSED_STREAM here means the peer's GOAWAY did not cover it.
      ReportReset(
          s, code == NGHTTP2_REFUSED_STREAM ? ResetReason::kRefused : ResetReason::kProtocolError);
    }
  }
  delete s;
}

int Http2Connection::OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_ || frame->hd.type != NGHTTP2_GOAWAY) return 0;
  c->goaway_sent_ = true;
  uint32_t code = frame->goaway.error_code;
  if (code != NGHTTP2_NO_ERROR) {
    // nghttp2 found a connection error in the input and terminated the
    // session; surface it as the Ingress status.
    std::string detail(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                       frame->goaway.opaque_data_len);
    if (detail.empty()) detail = c->last_error_;
    std::string msg =
        absl::StrCat("HTTP/2 connection error ", nghttp2_http2_strerror(code), ": ", detail);
    c->SetConnError(code == NGHTTP2_ENHANCE_YOUR_CALM ? absl::ResourceExhaustedError(msg)
                                                      : absl::InvalidArgumentError(msg));
  }
  return 0;
}

int Http2Connection::OnFrameNotSend(nghttp2_session* session, const nghttp2_frame* frame, int,
                                    void* user_data) {
  Http2Connection* c = Self(user_data);
  if (c->destroying_ || c->server() || frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  int32_t id = frame->hd.stream_id;
  // An opened stream gets on_stream_close right after; otherwise the request
  // died in the queue (GOAWAY, cancelled) and only we know about it.
  if (nghttp2_session_find_stream(session, id) != nullptr) return 0;
  for (Http2Stream* s = c->head_; s != nullptr; s = s->next) {
    if (s->id != static_cast<StreamId>(id)) continue;
    c->Unlink(s);
    c->ReportReset(s, ResetReason::kRefused);
    delete s;
    break;
  }
  return 0;
}

int Http2Connection::OnError(nghttp2_session*, int, const char* msg, size_t len, void* user_data) {
  Http2Connection* c = Self(user_data);
  c->last_error_.assign(msg, len);
  return 0;
}

ssize_t Http2Connection::ReadBody(nghttp2_session* session, int32_t id, uint8_t*, size_t length,
                                  uint32_t* data_flags, nghttp2_data_source* source,
                                  void* user_data) {
  Http2Connection* c = Self(user_data);
  // Torn down from inside a callback of this very mem_send: the stream
  // objects are gone, so do not touch `source`.
  if (c->closed_) return NGHTTP2_ERR_DEFERRED;
  auto* s = static_cast<Http2Stream*>(source->ptr);
  size_t avail = s->pending.size() - s->pending_off;
  if (c->transient_stream_ == s) avail += c->transient_.size();
  if (avail == 0 && !s->local_end) {
    s->deferred = true;  // SubmitData/SubmitTrailers resume us
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(length, avail);
  if (n == avail && s->local_end) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->trailers != nullptr) {
      NvList nv(s->trailers->size());
      nv.AddFields(*s->trailers, /*skip_host=*/false);
      // Without the trailers the stream must still end, hence the check.
      if (nghttp2_submit_trailer(session, id, nv.data(), nv.size()) == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      s->trailers.reset();
    }
  }
  // Bytes go from our buffers straight to `out` in SendBody.
  if (n > 0) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return static_cast<ssize_t>(n);
}

int Http2Connection::SendBody(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                              size_t length, nghttp2_data_source* source, void* user_data) {
  Http2Connection* c = Self(user_data);
  std::string* out = c->drain_out_;
  if (c->closed_ || out == nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
  auto* s = static_cast<Http2Stream*>(source->ptr);
  size_t padlen = frame->data.padlen;
  out->append(reinterpret_cast<const char*>(framehd), 9);
  if (padlen > 0) out->push_back(static_cast<char>(padlen - 1));
  size_t from_pending = std::min(length, s->pending.size() - s->pending_off);
  out->append(s->pending, s->pending_off, from_pending);
  s->pending_off += from_pending;
  if (s->pending_off == s->pending.size()) {
    s->pending_off = 0;
    s->pending.clear();
    if (s->pending.capacity() > kKeepPendingCapacity) s->pending.shrink_to_fit();
  }
  size_t rest = length - from_pending;
  if (rest > 0) {
    if (c->transient_stream_ != s || c->transient_.size() < rest) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;  // ReadBody promised bytes we lack
    }
    out->append(c->transient_.data(), rest);
    c->transient_.remove_prefix(rest);
  }
  if (padlen > 1) out->append(padlen - 1, '\0');
  return 0;
}

}  // namespace cairn::sidecar::http2_internal
