#include "sidecar/codec/http1/http1_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace cairn::sidecar::http1 {
namespace {

// Room for the start line, the separators of each field line and the blank
// line, on top of the names+values budget (see the header comment).
constexpr size_t kStartLineAllowance = 8 * 1024;
constexpr size_t kPerFieldOverhead = 4;  // ": " and CRLF
// A chunk-size line with extensions; nobody needs more, and it bounds the
// buffering of a line we otherwise ignore.
constexpr size_t kMaxChunkLine = 4 * 1024;
// Header vectors are moved out with every head; reserving once avoids the
// 1-2-4-8-16 growth reallocations of a typical request.
constexpr size_t kTypicalFieldCount = 16;

size_t SaturatingAdd(size_t a, size_t b) {
  return a > std::numeric_limits<size_t>::max() - b ? std::numeric_limits<size_t>::max() : a + b;
}

size_t RawHeadCap(const CodecLimits& limits) {
  size_t per_field = limits.max_headers > std::numeric_limits<size_t>::max() / kPerFieldOverhead
                         ? std::numeric_limits<size_t>::max()
                         : limits.max_headers * kPerFieldOverhead;
  return SaturatingAdd(SaturatingAdd(limits.max_header_bytes, per_field), kStartLineAllowance);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string LowerCopy(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) c = ToLowerAscii(c);
  return lower;
}

}  // namespace

Http1Parser::Http1Parser(Kind kind, const CodecLimits& limits)
    : kind_(kind), limits_(limits), raw_head_cap_(RawHeadCap(limits)) {}

bool Http1Parser::Fail(int http_status, const char* detail) {
  state_ = State::kError;
  error_ = ParseError{http_status, detail};
  return false;
}

void Http1Parser::ResetMessage() {
  head_ = ParsedHead{};
  trailers_.clear();
  raw_bytes_ = 0;
  field_count_ = 0;
  field_bytes_ = 0;
  has_transfer_encoding_ = false;
  chunked_seen_ = false;
  chunked_not_last_ = false;
  other_coding_ = false;
  te_trailers_added_ = false;
  connection_tokens_.clear();
  remaining_ = 0;
  body_bytes_ = 0;
  reset_pending_ = false;
}

void Http1Parser::MessageDone() {
  // The state is cleared lazily, when the next message starts, so that the
  // codec can still move head()/trailers() out after the final event.
  state_ = State::kStartLine;
  reset_pending_ = true;
}

Http1Parser::LineStatus Http1Parser::TakeLine(std::string_view& input, size_t budget,
                                              int too_long_status, std::string_view& line) {
  if (partial_is_line_) {
    partial_.clear();
    partial_is_line_ = false;
  }
  const char* nl = input.empty()
                       ? nullptr
                       : static_cast<const char*>(std::memchr(input.data(), '\n', input.size()));
  if (nl == nullptr) {
    if (input.size() > budget - partial_.size()) {
      Fail(too_long_status, "line too long");
      return LineStatus::kError;
    }
    partial_.append(input);
    input.remove_prefix(input.size());
    return LineStatus::kNeedMore;
  }
  const size_t n = static_cast<size_t>(nl - input.data()) + 1;
  if (n > budget - partial_.size()) {
    Fail(too_long_status, "line too long");
    return LineStatus::kError;
  }
  std::string_view raw;
  if (partial_.empty()) {
    raw = input.substr(0, n);
  } else {
    partial_.append(input.data(), n);
    raw = partial_;
    partial_is_line_ = true;
  }
  input.remove_prefix(n);
  if (raw.size() < 2 || raw[raw.size() - 2] != '\r') {
    Fail(400, "line not terminated by CRLF");
    return LineStatus::kError;
  }
  line = raw.substr(0, raw.size() - 2);
  return LineStatus::kLine;
}

ParseEvent Http1Parser::Next(std::string_view& input) {
  std::string_view line;
  for (;;) {
    switch (state_) {
      case State::kStartLine: {
        if (reset_pending_) ResetMessage();
        // The start line is part of the header budget (max_header_bytes,
        // plus its CRLF): a huge request-target is refused (414) before it
        // is buffered, never forwarded.
        const size_t start_line_budget =
            std::min(HeadBudget(), SaturatingAdd(limits_.max_header_bytes, 2));
        const LineStatus status =
            TakeLine(input, start_line_budget, kind_ == Kind::kRequest ? 414 : 431, line);
        if (status != LineStatus::kLine) {
          return status == LineStatus::kNeedMore ? ParseEvent::kNeedMore : ParseEvent::kError;
        }
        raw_bytes_ += line.size() + 2;
        if (line.empty()) {
          // RFC 9112 2.2: servers should skip empty lines before a request
          // line (some clients add CRLF after a POST body).
          if (kind_ == Kind::kRequest) continue;
          Fail(400, "empty status line");
          return ParseEvent::kError;
        }
        const bool ok = kind_ == Kind::kRequest ? ParseRequestLine(line) : ParseStatusLine(line);
        if (!ok) return ParseEvent::kError;
        field_bytes_ += line.size();  // what the fields may use is what is left
        state_ = State::kHeaderLine;
        continue;
      }
      case State::kHeaderLine: {
        const LineStatus status = TakeLine(input, HeadBudget(), 431, line);
        if (status != LineStatus::kLine) {
          return status == LineStatus::kNeedMore ? ParseEvent::kNeedMore : ParseEvent::kError;
        }
        raw_bytes_ += line.size() + 2;
        if (!line.empty()) {
          if (!ParseField(line, /*trailer=*/false)) return ParseEvent::kError;
          continue;
        }
        if (!FinishHead()) return ParseEvent::kError;
        state_ = State::kAwaitBody;
        return ParseEvent::kHead;
      }
      case State::kAwaitBody:
        // The codec did not choose: the head's own framing applies.
        if (!StartBody(head_.framing, head_.content_length)) return ParseEvent::kError;
        continue;
      case State::kBodyLength: {
        if (input.empty()) return ParseEvent::kNeedMore;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size()));
        data_ = input.substr(0, n);
        input.remove_prefix(n);
        remaining_ -= n;
        data_end_ = remaining_ == 0;
        if (data_end_) MessageDone();
        return ParseEvent::kData;
      }
      case State::kBodyUntilClose: {
        if (input.empty()) return ParseEvent::kNeedMore;
        size_t n = input.size();
        if (limits_.max_body_bytes != 0) {
          // Deliver up to the limit and fail on the first byte beyond it, so
          // the events do not depend on how the bytes were segmented.
          const uint64_t allowance = limits_.max_body_bytes - body_bytes_;
          if (allowance == 0) {
            Fail(413, "body too large");
            return ParseEvent::kError;
          }
          n = static_cast<size_t>(std::min<uint64_t>(allowance, n));
        }
        body_bytes_ += n;
        data_ = input.substr(0, n);
        data_end_ = false;
        input.remove_prefix(n);
        return ParseEvent::kData;
      }
      case State::kChunkSize: {
        const LineStatus status = TakeLine(input, kMaxChunkLine, 400, line);
        if (status != LineStatus::kLine) {
          return status == LineStatus::kNeedMore ? ParseEvent::kNeedMore : ParseEvent::kError;
        }
        if (!ParseChunkSize(line)) return ParseEvent::kError;
        continue;
      }
      case State::kChunkData: {
        if (input.empty()) return ParseEvent::kNeedMore;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size()));
        data_ = input.substr(0, n);
        data_end_ = false;
        input.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kChunkDataCr;
        return ParseEvent::kData;
      }
      case State::kChunkDataCr:
      case State::kChunkDataLf: {
        if (input.empty()) return ParseEvent::kNeedMore;
        const char expected = state_ == State::kChunkDataCr ? '\r' : '\n';
        if (input.front() != expected) {
          Fail(400, "chunk data not followed by CRLF");
          return ParseEvent::kError;
        }
        input.remove_prefix(1);
        state_ = state_ == State::kChunkDataCr ? State::kChunkDataLf : State::kChunkSize;
        continue;
      }
      case State::kTrailerLine: {
        const LineStatus status = TakeLine(input, HeadBudget(), 431, line);
        if (status != LineStatus::kLine) {
          return status == LineStatus::kNeedMore ? ParseEvent::kNeedMore : ParseEvent::kError;
        }
        raw_bytes_ += line.size() + 2;
        if (!line.empty()) {
          if (!ParseField(line, /*trailer=*/true)) return ParseEvent::kError;
          continue;
        }
        MessageDone();
        if (!trailers_.empty()) return ParseEvent::kTrailers;
        data_ = {};
        data_end_ = true;
        return ParseEvent::kData;
      }
      case State::kError:
        return ParseEvent::kError;
    }
  }
}

bool Http1Parser::ParseVersion(std::string_view version) {
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' ||
      version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
    return Fail(400, "malformed HTTP version");
  }
  if (version[5] != '1') return Fail(505, "unsupported HTTP version");
  head_.version_minor = version[7] == '0' ? 0 : 1;
  return true;
}

bool Http1Parser::ParseRequestLine(std::string_view line) {
  // method SP request-target SP HTTP-version, single spaces (RFC 9112 3).
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Fail(400, "malformed request line");
  const std::string_view method = line.substr(0, sp1);
  if (!IsToken(method)) return Fail(400, "invalid method");
  const std::string_view rest = line.substr(sp1 + 1);
  const size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos || sp2 == 0) return Fail(400, "malformed request line");
  const std::string_view target = rest.substr(0, sp2);
  for (char c : target) {
    if (!HasClass(c, kTargetChar)) return Fail(400, "invalid request target");
  }
  if (!ParseVersion(rest.substr(sp2 + 1))) return false;
  head_.method.assign(method);
  head_.target.assign(target);
  return true;
}

bool Http1Parser::ParseStatusLine(std::string_view line) {
  // HTTP-version SP 3DIGIT SP [reason]; a missing reason separator is
  // tolerated (seen in the wild, harmless).
  if (line.size() < 12 || line[8] != ' ') return Fail(400, "malformed status line");
  if (!ParseVersion(line.substr(0, 8))) {
    error_.http_status = 400;  // for a response every version problem is malformed
    return false;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return Fail(400, "malformed status code");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return Fail(400, "status code out of range");
  if (line.size() > 12 && (line[12] != ' ' || !IsFieldValue(line.substr(13)))) {
    return Fail(400, "malformed reason phrase");
  }
  head_.status = status;
  return true;
}

bool Http1Parser::ParseField(std::string_view line, bool trailer) {
  const size_t colon = line.find(':');
  // The name must be a token: this rejects whitespace before the colon and
  // obs-fold continuation lines (RFC 9112 5.1, 5.2), both smuggling vectors.
  if (colon == std::string_view::npos || colon == 0) return Fail(400, "malformed header field");
  const std::string_view name = line.substr(0, colon);
  // Validate and lower-case in one pass.
  std::string lower(name.size(), '\0');
  for (size_t i = 0; i < name.size(); ++i) {
    if (!HasClass(name[i], kTokenChar)) return Fail(400, "invalid header name");
    lower[i] = ToLowerAscii(name[i]);
  }
  const std::string_view value = TrimOws(line.substr(colon + 1));
  if (!IsFieldValue(value)) return Fail(400, "invalid header value");
  if (++field_count_ > limits_.max_headers) return Fail(431, "too many header fields");
  field_bytes_ += name.size() + value.size();
  if (field_bytes_ > limits_.max_header_bytes) return Fail(431, "header fields too large");

  const FieldKind kind = ClassifyLowerField(lower);
  if (trailer) {
    // Framing and connection fields cannot be trailers (RFC 9110 6.5.1).
    if (kind == FieldKind::kOrdinary) trailers_.emplace_back(std::move(lower), std::string(value));
    return true;
  }
  if (kind != FieldKind::kOrdinary) return ParseSpecialField(kind, std::move(lower), value);
  if (head_.headers.empty()) head_.headers.reserve(kTypicalFieldCount);
  head_.headers.emplace_back(std::move(lower), std::string(value));
  return true;
}

bool Http1Parser::ParseSpecialField(FieldKind kind, std::string&& name, std::string_view value) {
  switch (kind) {
    case FieldKind::kHost:
      if (kind_ == Kind::kResponse) break;  // not special in a response
      if (head_.has_host) return Fail(400, "duplicate Host");
      if (!IsValidAuthority(value)) return Fail(400, "invalid Host");
      head_.host.assign(value);
      head_.has_host = true;
      return true;
    case FieldKind::kContentLength: {
      uint64_t length = 0;
      if (!ParseContentLength(value, &length)) return Fail(400, "invalid Content-Length");
      if (head_.has_content_length) {
        if (length != head_.content_length) return Fail(400, "conflicting Content-Length");
        return true;  // an identical repeat is collapsed into the first
      }
      head_.has_content_length = true;
      head_.content_length = length;
      std::string digits;
      AppendDecimal(length, digits);
      head_.headers.emplace_back(std::move(name), std::move(digits));
      return true;
    }
    case FieldKind::kTransferEncoding:
      has_transfer_encoding_ = true;
      ForEachListElement(value, [&](std::string_view coding) {
        if (chunked_seen_) chunked_not_last_ = true;
        if (EqualsIgnoreCase(coding, "chunked")) {
          chunked_seen_ = true;
        } else {
          other_coding_ = true;
        }
      });
      return true;
    case FieldKind::kConnection:
      ForEachListElement(value, [&](std::string_view option) {
        if (EqualsIgnoreCase(option, "close")) {
          head_.connection_close = true;
        } else if (EqualsIgnoreCase(option, "keep-alive")) {
          head_.connection_keep_alive = true;
        } else if (IsToken(option) && !EqualsIgnoreCase(option, "upgrade")) {
          connection_tokens_.push_back(LowerCopy(option));
        }
      });
      return true;
    case FieldKind::kTe:
      // Only "trailers" survives the hop: gRPC needs it end to end.
      if (!te_trailers_added_ && TeAllowsTrailers(value)) {
        te_trailers_added_ = true;
        head_.headers.emplace_back(std::move(name), "trailers");
      }
      return true;
    case FieldKind::kExpect:
      if (kind_ == Kind::kResponse) break;
      if (EqualsIgnoreCase(value, "100-continue")) {
        head_.expect_continue = true;  // answered by the codec, not forwarded
        return true;
      }
      break;
    case FieldKind::kKeepAlive:
    case FieldKind::kProxyConnection:
    case FieldKind::kUpgrade:
      return true;  // hop-by-hop: dropped
    case FieldKind::kOrdinary:
      break;
  }
  head_.headers.emplace_back(std::move(name), std::string(value));
  return true;
}

bool Http1Parser::FinishHead() {
  if (!connection_tokens_.empty()) {
    // Fields named by Connection are hop-by-hop (RFC 9110 7.6.1). Never
    // content-length: removing it would change how the message is framed.
    std::erase_if(head_.headers, [&](const auto& field) {
      if (field.first == "content-length") return false;
      return std::find(connection_tokens_.begin(), connection_tokens_.end(), field.first) !=
             connection_tokens_.end();
    });
  }
  if (has_transfer_encoding_) {
    // RFC 9112 6.1-6.3: TE + CL, TE in HTTP/1.0, or chunked not being the
    // final coding make the length ambiguous; a proxy must reject them rather
    // than guess differently from the next hop (request smuggling).
    if (head_.has_content_length) return Fail(400, "both Content-Length and Transfer-Encoding");
    if (head_.version_minor == 0) return Fail(400, "Transfer-Encoding in HTTP/1.0");
    if (!chunked_seen_ || chunked_not_last_) return Fail(400, "chunked is not the final coding");
    if (other_coding_) return Fail(501, "unsupported transfer coding");
    head_.framing = Framing::kChunked;
  } else if (head_.has_content_length) {
    head_.framing = Framing::kLength;
  } else {
    head_.framing = kind_ == Kind::kRequest ? Framing::kNone : Framing::kUntilClose;
  }
  return true;
}

bool Http1Parser::StartBody(Framing framing, uint64_t length) {
  if (state_ != State::kAwaitBody) return state_ != State::kError;
  if (framing == Framing::kLength && length == 0) framing = Framing::kNone;
  body_bytes_ = 0;
  switch (framing) {
    case Framing::kNone:
      MessageDone();
      return true;
    case Framing::kLength:
      if (limits_.max_body_bytes != 0 && length > limits_.max_body_bytes) {
        return Fail(413, "body too large");
      }
      remaining_ = length;
      state_ = State::kBodyLength;
      return true;
    case Framing::kChunked:
      state_ = State::kChunkSize;
      return true;
    case Framing::kUntilClose:
      state_ = State::kBodyUntilClose;
      return true;
  }
  return true;
}

void Http1Parser::EndBodyAtEof() {
  if (state_ != State::kBodyUntilClose) return;
  MessageDone();
  data_ = {};
  data_end_ = true;
}

bool Http1Parser::ParseChunkSize(std::string_view line) {
  uint64_t size = 0;
  size_t i = 0;
  for (; i < line.size(); ++i) {
    const int digit = HexValue(line[i]);
    if (digit < 0) break;
    if (i == 16) return Fail(400, "chunk size too large");
    size = (size << 4) | static_cast<uint64_t>(digit);
  }
  if (i == 0) return Fail(400, "invalid chunk size");
  // Extensions (";name=value") are ignored, but must still be printable so
  // that nothing odd hides in them.
  const std::string_view rest = TrimOws(line.substr(i));
  if (!rest.empty() && (rest.front() != ';' || !IsFieldValue(rest))) {
    return Fail(400, "invalid chunk extension");
  }
  if (size == 0) {
    // Last chunk: the trailer section has its own field budget.
    raw_bytes_ = 0;
    field_count_ = 0;
    field_bytes_ = 0;
    trailers_.clear();
    state_ = State::kTrailerLine;
    return true;
  }
  if (limits_.max_body_bytes != 0 && size > limits_.max_body_bytes - body_bytes_) {
    return Fail(413, "body too large");
  }
  if (size > std::numeric_limits<uint64_t>::max() - body_bytes_) {
    return Fail(400, "chunked body too large");
  }
  body_bytes_ += size;
  remaining_ = size;
  state_ = State::kChunkData;
  return true;
}

}  // namespace cairn::sidecar::http1
