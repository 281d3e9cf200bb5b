// HTTP/1 server codec (downstream): parses requests, encodes responses.
// Behaviour is documented in http1_codec.h; the client codec lives in
// http1_client_codec.cc.
#include "sidecar/codec/http1/http1_codec.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "sidecar/codec/http1/http1_common.h"
#include "sidecar/codec/http1/http1_parser.h"

namespace cairn::sidecar {
namespace {

using http1::FieldKind;
using http1::Framing;
using http1::Http1Parser;
using http1::ParseEvent;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

enum class BodyMode : uint8_t { kNone, kLength, kChunked, kUntilClose };

// A request whose response has not been fully encoded yet.
struct PendingStream {
  StreamId id = 0;
  bool head_request = false;  // the response carries no body
  bool http10 = false;        // no chunked, no 1xx; close-delimited instead
  bool keep_alive = true;     // the connection survives this exchange
  bool request_complete = false;
  bool needs_continue = false;  // 100 Continue owed once this stream is first
  bool head_sent = false;
  BodyMode mode = BodyMode::kNone;
  uint64_t remaining = 0;  // of a content-length response body
};

absl::Status ErrorStatus(int http_status, const char* detail) {
  std::string message = std::string("http1: ") + detail;
  switch (http_status) {
    case 413:
    case 414:
    case 431:
      return absl::ResourceExhaustedError(message);
    case 501:
      return absl::UnimplementedError(message);
    default:
      return absl::InvalidArgumentError(message);
  }
}

// Splits "http://host:port/path?query" (RFC 9112 3.2.2). Userinfo and
// non-http(s) schemes are refused.
bool SplitAbsoluteForm(std::string_view target, RequestHead& head) {
  const size_t sep = target.find("://");
  if (sep == std::string_view::npos) return false;
  const std::string_view scheme = target.substr(0, sep);
  if (http1::EqualsIgnoreCase(scheme, "http")) {
    head.scheme = "http";
  } else if (http1::EqualsIgnoreCase(scheme, "https")) {
    head.scheme = "https";
  } else {
    return false;
  }
  const std::string_view rest = target.substr(sep + 3);
  const size_t path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  if (authority.empty() || !http1::IsValidAuthority(authority)) return false;
  head.authority.assign(authority);
  if (path_start == std::string_view::npos) {
    head.path = "/";
  } else {
    const std::string_view path = rest.substr(path_start);
    head.path.clear();
    if (path.front() == '?') head.path.push_back('/');
    head.path.append(path);
  }
  return true;
}

class Http1ServerCodec final : public ServerCodec {
 public:
  Http1ServerCodec(ServerCodecCallbacks& callbacks, const CodecLimits& limits)
      : callbacks_(callbacks), parser_(Http1Parser::Kind::kRequest, limits) {}

  absl::Status OnIngress(std::string_view bytes, std::string& out) override;
  void EncodeResponseHead(StreamId stream, const ResponseHead& head, bool end_stream,
                          std::string& out) override;
  void EncodeResponseData(StreamId stream, std::string_view data, bool end_stream,
                          std::string& out) override;
  void EncodeResponseTrailers(StreamId stream, const HeaderList& trailers,
                              std::string& out) override;
  bool ResetStream(StreamId stream, std::string& out) override;
  void Flush(std::string&) override {}
  bool WantsClose() const override { return closing_; }
  bool SupportsMultiplexing() const override { return false; }
  bool ReadingRequestHead() const override { return !stop_reading_ && parser_.InHead(); }

 private:
  absl::Status OnHead(std::string& out);
  void RequestComplete();
  // The stream whose response may be encoded now, if it is `stream`.
  PendingStream* Current(StreamId stream);
  void EncodeInterimHead(const PendingStream& s, int status, const HeaderList& headers,
                         std::string& out);
  void FinishResponse(std::string& out);
  absl::Status Fail(int http_status, const char* detail, std::string& out);

  ServerCodecCallbacks& callbacks_;
  Http1Parser parser_;
  std::deque<PendingStream> pending_;  // in request order
  StreamId next_id_ = 1;
  StreamId parsing_id_ = 0;    // the stream whose request is being read
  bool stop_reading_ = false;  // further input is discarded
  bool closing_ = false;       // WantsClose(); all encoding stops
  absl::Status status_;        // sticky error
};

absl::Status Http1ServerCodec::OnIngress(std::string_view bytes, std::string& out) {
  if (!status_.ok()) return status_;
  // Callbacks may encode (and so finish or close streams) re-entrantly:
  // stop_reading_ is re-checked after each event.
  while (!stop_reading_) {
    switch (parser_.Next(bytes)) {
      case ParseEvent::kNeedMore:
        return absl::OkStatus();
      case ParseEvent::kError:
        return Fail(parser_.error().http_status, parser_.error().detail, out);
      case ParseEvent::kHead: {
        absl::Status status = OnHead(out);
        if (!status.ok()) return status;
        break;
      }
      case ParseEvent::kData: {
        const StreamId id = parsing_id_;
        const bool end = parser_.data_end();
        // Marked before the callback, which may complete the response.
        if (end) RequestComplete();
        callbacks_.OnRequestData(id, parser_.data(), end);
        break;
      }
      case ParseEvent::kTrailers: {
        const StreamId id = parsing_id_;
        RequestComplete();
        callbacks_.OnRequestTrailers(id, std::move(parser_.trailers()));
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Http1ServerCodec::OnHead(std::string& out) {
  http1::ParsedHead& parsed = parser_.head();
  if (parsed.method == "CONNECT") return Fail(501, "CONNECT is not supported", out);

  RequestHead head;
  head.scheme = "http";
  const std::string_view target = parsed.target;
  if (target.front() == '/') {
    head.path = std::move(parsed.target);
    // RFC 9112 3.2: a 1.1 request must carry Host; 1.0 may omit it.
    if (!parsed.has_host && parsed.version_minor >= 1) return Fail(400, "missing Host", out);
    head.authority = std::move(parsed.host);
  } else if (target == "*") {
    // Valid only for OPTIONS, and meaningless to route: refused as
    // unimplemented rather than malformed.
    return Fail(parsed.method == "OPTIONS" ? 501 : 400, "asterisk-form target", out);
  } else if (!SplitAbsoluteForm(target, head)) {
    return Fail(400, "unsupported request target", out);
  }

  const bool has_body = parsed.framing == Framing::kChunked ||
                        (parsed.framing == Framing::kLength && parsed.content_length > 0);
  if (!parser_.StartBody(parsed.framing, parsed.content_length)) {
    return Fail(parser_.error().http_status, parser_.error().detail, out);
  }

  PendingStream stream;
  stream.id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;  // 0 is never a valid id
  stream.head_request = parsed.method == "HEAD";
  stream.http10 = parsed.version_minor == 0;
  stream.keep_alive = stream.http10 ? parsed.connection_keep_alive && !parsed.connection_close
                                    : !parsed.connection_close;
  stream.request_complete = !has_body;
  if (parsed.expect_continue && has_body && !stream.http10) {
    // Sent now only if nothing else is owed to the client first; otherwise
    // when this stream's turn comes (FinishResponse).
    if (pending_.empty()) {
      out.append(kContinue);
    } else {
      stream.needs_continue = true;
    }
  }
  if (!has_body && !stream.keep_alive) stop_reading_ = true;
  pending_.push_back(stream);
  parsing_id_ = stream.id;

  head.method = std::move(parsed.method);
  head.headers = std::move(parsed.headers);
  callbacks_.OnRequestHead(stream.id, std::move(head), !has_body);
  return absl::OkStatus();
}

void Http1ServerCodec::RequestComplete() {
  // The stream is the newest pending one, unless its response already
  // finished (then the connection is closing anyway).
  if (pending_.empty() || pending_.back().id != parsing_id_) return;
  PendingStream& stream = pending_.back();
  stream.request_complete = true;
  if (!stream.keep_alive) stop_reading_ = true;
}

PendingStream* Http1ServerCodec::Current(StreamId stream) {
  if (closing_ || pending_.empty() || pending_.front().id != stream) return nullptr;
  return &pending_.front();
}

void Http1ServerCodec::EncodeInterimHead(const PendingStream& s, int status,
                                         const HeaderList& headers, std::string& out) {
  // 1.0 clients do not understand 1xx (RFC 9110 15.2); 101 would switch
  // protocols, which this proxy never does.
  if (s.http10 || status == 101) return;
  http1::AppendStatusLine(status, out);
  for (const auto& [name, value] : headers) {
    if (http1::ClassifyField(name) == FieldKind::kOrdinary) http1::AppendField(name, value, out);
  }
  out.append("\r\n");
}

void Http1ServerCodec::EncodeResponseHead(StreamId stream, const ResponseHead& head,
                                          bool end_stream, std::string& out) {
  PendingStream* s = Current(stream);
  if (s == nullptr || s->head_sent) return;
  const int status = head.status >= 100 && head.status <= 599 ? head.status : 500;
  if (status < 200) {
    EncodeInterimHead(*s, status, head.headers, out);
    if (status == 100) s->needs_continue = false;
    return;
  }

  size_t estimate = 64;
  for (const auto& [name, value] : head.headers) estimate += name.size() + value.size() + 4;
  out.reserve(out.size() + estimate);

  http1::AppendStatusLine(status, out);
  const bool no_body = s->head_request || status == 204 || status == 304;
  bool close = !s->keep_alive;
  bool has_length = false;
  uint64_t length = 0;
  for (const auto& [name, value] : head.headers) {
    switch (http1::ClassifyField(name)) {
      case FieldKind::kOrdinary:
      case FieldKind::kHost:
      case FieldKind::kExpect:
        http1::AppendField(name, value, out);
        break;
      case FieldKind::kContentLength:
        // 204 must not carry one (RFC 9110 8.6); a HEAD/304 one describes
        // the representation and is passed through.
        if (!has_length && status != 204 && http1::ParseContentLength(value, &length)) {
          has_length = true;
          out.append("content-length: ");
          http1::AppendDecimal(length, out);
          out.append("\r\n");
        }
        break;
      case FieldKind::kConnection:
        http1::ForEachListElement(value, [&](std::string_view option) {
          if (http1::EqualsIgnoreCase(option, "close")) close = true;
        });
        break;
      default:
        break;  // framing and hop-by-hop fields are the codec's to write
    }
  }

  BodyMode mode = BodyMode::kNone;
  if (no_body) {
    mode = BodyMode::kNone;
  } else if (has_length) {
    mode = BodyMode::kLength;
  } else if (end_stream) {
    out.append("content-length: 0\r\n");
  } else if (!s->http10) {
    out.append("transfer-encoding: chunked\r\n");
    mode = BodyMode::kChunked;
  } else {
    mode = BodyMode::kUntilClose;
    close = true;
  }
  if (close) {
    out.append("connection: close\r\n");
  } else if (s->http10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");

  // A closing response still lets the request body finish arriving
  // (RequestComplete then stops reading).
  s->keep_alive = !close;
  s->head_sent = true;
  s->mode = mode;
  s->remaining = length;
  if (end_stream) FinishResponse(out);
}

void Http1ServerCodec::EncodeResponseData(StreamId stream, std::string_view data, bool end_stream,
                                          std::string& out) {
  PendingStream* s = Current(stream);
  if (s == nullptr || !s->head_sent) return;
  switch (s->mode) {
    case BodyMode::kNone:
      break;  // HEAD / 204 / 304: the body is not sent
    case BodyMode::kLength: {
      // Bytes beyond the declared length would be read as the start of the
      // next response: drop them.
      const size_t n = static_cast<size_t>(std::min<uint64_t>(s->remaining, data.size()));
      out.append(data.substr(0, n));
      s->remaining -= n;
      break;
    }
    case BodyMode::kChunked:
      http1::AppendChunk(data, out);
      if (end_stream) http1::AppendLastChunk(nullptr, out);
      break;
    case BodyMode::kUntilClose:
      out.append(data);
      break;
  }
  if (end_stream) FinishResponse(out);
}

void Http1ServerCodec::EncodeResponseTrailers(StreamId stream, const HeaderList& trailers,
                                              std::string& out) {
  PendingStream* s = Current(stream);
  if (s == nullptr || !s->head_sent) return;
  if (s->mode == BodyMode::kChunked) http1::AppendLastChunk(&trailers, out);
  FinishResponse(out);
}

void Http1ServerCodec::FinishResponse(std::string& out) {
  const PendingStream& s = pending_.front();
  // Closing when the request is still arriving avoids reading (and
  // misparsing) the rest of its body; a short content-length body leaves the
  // client waiting for bytes that will never come.
  const bool close =
      !s.keep_alive || !s.request_complete || (s.mode == BodyMode::kLength && s.remaining > 0);
  pending_.pop_front();
  if (close) {
    closing_ = true;
    stop_reading_ = true;
    return;
  }
  if (!pending_.empty() && pending_.front().needs_continue) {
    pending_.front().needs_continue = false;
    out.append(kContinue);
  }
}

bool Http1ServerCodec::ResetStream(StreamId stream, std::string&) {
  for (const PendingStream& s : pending_) {
    if (s.id == stream) {
      closing_ = true;
      stop_reading_ = true;
      return false;
    }
  }
  return true;
}

absl::Status Http1ServerCodec::Fail(int http_status, const char* detail, std::string& out) {
  status_ = ErrorStatus(http_status, detail);
  // An error response is only unambiguous if it is the next thing the client
  // reads and answers the request that failed.
  const bool may_answer =
      pending_.empty() || (pending_.size() == 1 && pending_.front().id == parsing_id_ &&
                           !pending_.front().request_complete && !pending_.front().head_sent);
  if (may_answer) {
    http1::AppendStatusLine(http_status, out);
    out.append("content-length: 0\r\nconnection: close\r\n\r\n");
  }
  closing_ = true;
  stop_reading_ = true;
  const ResetReason reason = http_status == 413 || http_status == 414 || http_status == 431
                                 ? ResetReason::kTooLarge
                                 : ResetReason::kProtocolError;
  std::deque<PendingStream> dead;
  dead.swap(pending_);
  for (const PendingStream& s : dead) callbacks_.OnStreamReset(s.id, reason);
  return status_;
}

}  // namespace

std::unique_ptr<ServerCodec> NewHttp1ServerCodec(ServerCodecCallbacks& callbacks,
                                                 const CodecLimits& limits) {
  return std::make_unique<Http1ServerCodec>(callbacks, limits);
}

}  // namespace cairn::sidecar
