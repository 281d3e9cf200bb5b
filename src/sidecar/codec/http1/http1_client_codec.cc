// HTTP/1 client codec (upstream): encodes requests, parses responses.
// Behaviour is documented in http1_codec.h.
#include <algorithm>
#include <string>
#include <utility>

#include "sidecar/codec/http1/http1_codec.h"
#include "sidecar/codec/http1/http1_common.h"
#include "sidecar/codec/http1/http1_parser.h"

namespace cairn::sidecar {
namespace {

using http1::FieldKind;
using http1::Framing;
using http1::Http1Parser;
using http1::ParseEvent;

enum class BodyMode : uint8_t { kNone, kLength, kChunked };

class Http1ClientCodec final : public ClientCodec {
 public:
  Http1ClientCodec(ClientCodecCallbacks& callbacks, const CodecLimits& limits)
      : callbacks_(callbacks), parser_(Http1Parser::Kind::kResponse, limits) {}

  StreamId EncodeRequestHead(const RequestHead& head, bool end_stream, std::string& out) override;
  void EncodeRequestData(StreamId stream, std::string_view data, bool end_stream,
                         std::string& out) override;
  void EncodeRequestTrailers(StreamId stream, const HeaderList& trailers,
                             std::string& out) override;
  bool ResetStream(StreamId stream, std::string& out) override;
  absl::Status OnIngress(std::string_view bytes, std::string& out) override;
  void OnUpstreamClosed() override;
  void Flush(std::string&) override {}
  bool CanStartStream() const override { return !active_ && !closing_; }
  bool WantsClose() const override { return closing_; }
  bool SupportsMultiplexing() const override { return false; }

 private:
  // The request may still be encoded (not request_done) for this stream.
  bool Encodable(StreamId stream) const {
    return active_ && stream_.id == stream && !stream_.request_done;
  }
  void RequestDone();
  void ResponseDone();
  absl::Status OnHead();
  absl::Status Fail(int http_status, const char* detail);

  // The exchange in flight (valid while active_).
  struct Exchange {
    StreamId id = 0;
    bool head_request = false;
    bool request_done = false;
    BodyMode mode = BodyMode::kNone;
    uint64_t remaining = 0;  // of a content-length request body
  };

  ClientCodecCallbacks& callbacks_;
  Http1Parser parser_;
  Exchange stream_;
  bool active_ = false;
  bool closing_ = false;  // the connection cannot be reused
  StreamId next_id_ = 1;
  absl::Status status_;
};

StreamId Http1ClientCodec::EncodeRequestHead(const RequestHead& head, bool end_stream,
                                             std::string& out) {
  if (!CanStartStream() || !http1::IsToken(head.method) ||
      !http1::IsValidAuthority(head.authority)) {
    return 0;
  }
  const std::string_view path = head.path.empty() ? std::string_view("/") : head.path;
  for (char c : path) {
    if (!http1::HasClass(c, http1::kTargetChar)) return 0;
  }

  size_t estimate = head.method.size() + path.size() + head.authority.size() + 64;
  for (const auto& [name, value] : head.headers) estimate += name.size() + value.size() + 4;
  out.reserve(out.size() + estimate);

  out.append(head.method);
  out.push_back(' ');
  out.append(path);
  out.append(" HTTP/1.1\r\nhost: ");
  out.append(head.authority);
  out.append("\r\n");
  bool has_length = false;
  bool te_written = false;
  uint64_t length = 0;
  for (const auto& [name, value] : head.headers) {
    switch (http1::ClassifyField(name)) {
      case FieldKind::kOrdinary:
      case FieldKind::kExpect:
        http1::AppendField(name, value, out);
        break;
      case FieldKind::kContentLength:
        if (!has_length && http1::ParseContentLength(value, &length)) {
          has_length = true;
          out.append("content-length: ");
          http1::AppendDecimal(length, out);
          out.append("\r\n");
        }
        break;
      case FieldKind::kTe:
        if (!te_written && http1::TeAllowsTrailers(value)) {
          te_written = true;
          out.append("te: trailers\r\n");
        }
        break;
      default:
        break;  // host comes from authority; framing and hop-by-hop are ours
    }
  }
  BodyMode mode = BodyMode::kNone;
  if (has_length) {
    mode = length > 0 ? BodyMode::kLength : BodyMode::kNone;
  } else if (!end_stream) {
    out.append("transfer-encoding: chunked\r\n");
    mode = BodyMode::kChunked;
  }
  out.append("\r\n");

  stream_ = Exchange{};
  stream_.id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  stream_.head_request = head.method == "HEAD";
  stream_.mode = mode;
  stream_.remaining = length;
  active_ = true;
  if (end_stream) RequestDone();
  return stream_.id;
}

void Http1ClientCodec::EncodeRequestData(StreamId stream, std::string_view data, bool end_stream,
                                         std::string& out) {
  if (!Encodable(stream)) return;
  switch (stream_.mode) {
    case BodyMode::kNone:
      break;
    case BodyMode::kLength: {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(stream_.remaining, data.size()));
      out.append(data.substr(0, n));
      stream_.remaining -= n;
      break;
    }
    case BodyMode::kChunked:
      http1::AppendChunk(data, out);
      if (end_stream) http1::AppendLastChunk(nullptr, out);
      break;
  }
  if (end_stream) RequestDone();
}

void Http1ClientCodec::EncodeRequestTrailers(StreamId stream, const HeaderList& trailers,
                                             std::string& out) {
  if (!Encodable(stream)) return;
  if (stream_.mode == BodyMode::kChunked) http1::AppendLastChunk(&trailers, out);
  RequestDone();
}

void Http1ClientCodec::RequestDone() {
  stream_.request_done = true;
  // The upstream still waits for the missing bytes: its next response
  // boundary is unknowable, so the connection cannot be reused.
  if (stream_.mode == BodyMode::kLength && stream_.remaining > 0) closing_ = true;
}

void Http1ClientCodec::ResponseDone() {
  // An early response (request still being sent) ends the exchange; the rest
  // of the request is dropped and the connection is not reused.
  if (!stream_.request_done) closing_ = true;
  active_ = false;
}

bool Http1ClientCodec::ResetStream(StreamId stream, std::string&) {
  if (!active_ || stream_.id != stream) return true;
  active_ = false;
  closing_ = true;
  return false;
}

absl::Status Http1ClientCodec::OnIngress(std::string_view bytes, std::string&) {
  if (!status_.ok()) return status_;
  for (;;) {
    if (!active_) {
      // Nothing was asked: bytes now would be a response to nothing, which
      // means the upstream and we disagree on framing.
      if (bytes.empty() || closing_) return absl::OkStatus();
      return Fail(400, "response bytes without a request");
    }
    switch (parser_.Next(bytes)) {
      case ParseEvent::kNeedMore:
        return absl::OkStatus();
      case ParseEvent::kError:
        return Fail(parser_.error().http_status, parser_.error().detail);
      case ParseEvent::kHead: {
        absl::Status status = OnHead();
        if (!status.ok()) return status;
        break;
      }
      case ParseEvent::kData: {
        const StreamId id = stream_.id;
        const bool end = parser_.data_end();
        // Marked before the callback, which may start the next request.
        if (end) ResponseDone();
        callbacks_.OnResponseData(id, parser_.data(), end);
        break;
      }
      case ParseEvent::kTrailers: {
        const StreamId id = stream_.id;
        ResponseDone();
        callbacks_.OnResponseTrailers(id, std::move(parser_.trailers()));
        break;
      }
    }
  }
}

absl::Status Http1ClientCodec::OnHead() {
  http1::ParsedHead& parsed = parser_.head();
  if (parsed.status < 200) {
    // We never ask to upgrade, so a 101 means the upstream is confused.
    if (parsed.status == 101) return Fail(400, "unexpected 101 response");
    parser_.StartBody(Framing::kNone, 0);  // interim response: skipped
    return absl::OkStatus();
  }
  Framing framing = parsed.framing;
  if (stream_.head_request || parsed.status == 204 || parsed.status == 304) {
    framing = Framing::kNone;  // RFC 9112 6.3 rules 1-2
  }
  if (!parser_.StartBody(framing, parsed.content_length)) {
    return Fail(parser_.error().http_status, parser_.error().detail);
  }
  const bool keep_alive =
      framing != Framing::kUntilClose &&
      (parsed.version_minor >= 1 ? !parsed.connection_close
                                 : parsed.connection_keep_alive && !parsed.connection_close);
  if (!keep_alive) closing_ = true;
  const bool end =
      framing == Framing::kNone || (framing == Framing::kLength && parsed.content_length == 0);
  const StreamId id = stream_.id;
  if (end) ResponseDone();
  ResponseHead head;
  head.status = parsed.status;
  head.headers = std::move(parsed.headers);
  callbacks_.OnResponseHead(id, std::move(head), end);
  return absl::OkStatus();
}

void Http1ClientCodec::OnUpstreamClosed() {
  closing_ = true;
  if (!status_.ok() || !active_) return;
  const StreamId id = stream_.id;
  active_ = false;
  if (parser_.InBodyUntilClose()) {
    parser_.EndBodyAtEof();
    callbacks_.OnResponseData(id, {}, true);
    return;
  }
  callbacks_.OnStreamReset(id, ResetReason::kCancelled);
}

absl::Status Http1ClientCodec::Fail(int http_status, const char* detail) {
  std::string message = std::string("http1 upstream: ") + detail;
  const bool too_large = http_status == 413 || http_status == 431;
  status_ = too_large ? absl::ResourceExhaustedError(message) : absl::InvalidArgumentError(message);
  closing_ = true;
  if (active_) {
    active_ = false;
    callbacks_.OnStreamReset(stream_.id,
                             too_large ? ResetReason::kTooLarge : ResetReason::kProtocolError);
  }
  return status_;
}

}  // namespace

std::unique_ptr<ClientCodec> NewHttp1ClientCodec(ClientCodecCallbacks& callbacks,
                                                 const CodecLimits& limits) {
  return std::make_unique<Http1ClientCodec>(callbacks, limits);
}

}  // namespace cairn::sidecar
