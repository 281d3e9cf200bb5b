#include "core/http/http_request_parser.h"

#include <charconv>

#include "absl/strings/ascii.h"

namespace cairn::http {
namespace {

constexpr int kBadRequest = 400;
constexpr int kPayloadTooLarge = 413;
constexpr int kHeaderTooLarge = 431;
constexpr int kNotImplemented = 501;
constexpr int kVersionNotSupported = 505;

// RFC 9110 tchar: the only bytes allowed in methods and header names.
bool IsTokenChar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// field-value bytes: visible ASCII, obs-text, SP and HTAB. Anything else
// (NUL, CR, other controls) is how header injection and smuggling start.
bool IsValidFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if (c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f)) continue;
    return false;
  }
  return true;
}

// Splits on every `sep`, keeping empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    size_t pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses "HTTP/d.d". Returns the minor version to use, -1 if malformed, or
// -2 if well formed but not HTTP/1.x.
int ParseVersion(std::string_view v) {
  if (v.size() != 8 || !v.starts_with("HTTP/") || v[6] != '.' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(v[5])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(v[7]))) {
    return -1;
  }
  if (v[5] != '1') return -2;
  // A higher 1.x minor is compatible with 1.1 (RFC 9110 section 2.5).
  return v[7] == '0' ? 0 : 1;
}

bool HasConnectionToken(std::string_view value, std::string_view token) {
  for (std::string_view part : Split(value, ',')) {
    if (EqualsIgnoreCase(TrimOws(part), token)) return true;
  }
  return false;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string_view> FindHeader(const Request& request, std::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string> PercentDecode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return std::nullopt;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

RequestParser::RequestParser(ParserLimits limits) : limits_(limits) {}

void RequestParser::Feed(std::string_view bytes) {
  // After an error nothing more will be parsed; do not let a peer that
  // keeps sending grow the buffer while the error response is written.
  if (state_ == State::kError) return;
  buf_.append(bytes.data(), bytes.size());
}

bool RequestParser::HasPartialRequest() const {
  return state_ == State::kBody || head_start_ != std::string::npos || buf_.size() > line_start_;
}

ParseResult RequestParser::Error(int status, std::string reason) {
  state_ = State::kError;
  error_ = ParseResult{};
  error_.kind = ParseResult::Kind::kError;
  error_.error_status = status;
  error_.error = std::move(reason);
  buf_.clear();
  buf_.shrink_to_fit();
  start_ = line_start_ = 0;
  head_start_ = std::string::npos;
  return error_;
}

void RequestParser::Compact() {
  if (start_ == 0) return;
  buf_.erase(0, start_);
  line_start_ -= start_;
  if (head_start_ != std::string::npos) head_start_ -= start_;
  if (state_ == State::kBody) body_start_ -= start_;
  start_ = 0;
}

ParseResult RequestParser::Next() {
  if (state_ == State::kError) return error_;

  if (state_ == State::kHeaders) {
    for (;;) {
      size_t nl = buf_.find('\n', line_start_);
      if (nl == std::string::npos) {
        // Refuse as soon as the limit is passed instead of waiting for the
        // blank line, which an abusive peer may never send.
        if (buf_.size() - start_ > limits_.max_header_bytes) {
          return Error(kHeaderTooLarge, "header section too large");
        }
        Compact();
        return ParseResult{};
      }
      if (nl + 1 - start_ > limits_.max_header_bytes) {
        return Error(kHeaderTooLarge, "header section too large");
      }
      size_t line_end = nl;
      if (line_end > line_start_ && buf_[line_end - 1] == '\r') --line_end;
      bool blank = line_end == line_start_;
      size_t this_line = line_start_;
      line_start_ = nl + 1;
      if (!blank) {
        if (head_start_ == std::string::npos) head_start_ = this_line;
        continue;
      }
      // Blank lines before a request line are tolerated (RFC 9112 2.2):
      // some clients send an extra CRLF after a POST body.
      if (head_start_ == std::string::npos) continue;

      if (auto error = ParseHead(this_line)) return *std::move(error);
      body_start_ = nl + 1;
      if (body_length_ == 0) break;
      state_ = State::kBody;
      continue_reported_ = false;
      break;
    }
  }

  if (state_ == State::kBody && buf_.size() - body_start_ < body_length_) {
    ParseResult more;
    if (expect_continue_ && !continue_reported_) {
      more.send_continue = true;
      continue_reported_ = true;
    }
    Compact();
    return more;
  }

  ParseResult done = std::move(pending_);
  pending_ = ParseResult{};
  done.request.body.assign(buf_, body_start_, body_length_);
  start_ = line_start_ = body_start_ + body_length_;
  head_start_ = std::string::npos;
  state_ = State::kHeaders;
  return done;
}

std::optional<ParseResult> RequestParser::ParseHead(size_t head_end) {
  std::string_view head(buf_.data() + head_start_, head_end - head_start_);
  head.remove_suffix(1);  // The '\n' ending the last header line.
  pending_ = ParseResult{};
  pending_.kind = ParseResult::Kind::kRequest;
  Request& req = pending_.request;

  bool first = true;
  int minor = 1;
  std::optional<uint64_t> content_length;
  int host_count = 0;
  bool close_requested = false;
  expect_continue_ = false;
  for (std::string_view line : Split(head, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      first = false;
      // request-line = method SP request-target SP HTTP-version, exactly one
      // SP each: lenient splitting is a classic request-smuggling vector.
      std::vector<std::string_view> parts = Split(line, ' ');
      if (parts.size() != 3 || !IsToken(parts[0]) || parts[1].empty() || parts[1][0] != '/') {
        return Error(kBadRequest, "malformed request line");
      }
      for (unsigned char c : parts[1]) {
        if (c < 0x21 || c > 0x7e) return Error(kBadRequest, "malformed request target");
      }
      minor = ParseVersion(parts[2]);
      if (minor == -1) return Error(kBadRequest, "malformed request line");
      if (minor == -2) return Error(kVersionNotSupported, "unsupported HTTP version");

      std::string_view target = parts[1];
      target = target.substr(0, target.find('#'));
      size_t q = target.find('?');
      auto path = PercentDecode(target.substr(0, q), /*plus_as_space=*/false);
      if (!path) return Error(kBadRequest, "invalid percent-encoding in path");
      req.path = *std::move(path);
      if (q != std::string_view::npos) {
        for (std::string_view pair : Split(target.substr(q + 1), '&')) {
          if (pair.empty()) continue;
          size_t eq = pair.find('=');
          auto key = PercentDecode(pair.substr(0, eq), true);
          auto value = PercentDecode(
              eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
          if (!key || !value) return Error(kBadRequest, "invalid percent-encoding in query");
          req.query.insert_or_assign(*std::move(key), *std::move(value));
        }
      }
      req.method = std::string(parts[0]);
      continue;
    }
    // Obsolete line folding (leading SP/HTAB) is rejected, as RFC 9112
    // allows; "name :" is rejected because the name would not be a token.
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Error(kBadRequest, "malformed header");
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsValidFieldValue(value)) return Error(kBadRequest, "malformed header value");

    if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return Error(kNotImplemented, "transfer-encoding not supported");
    }
    if (EqualsIgnoreCase(name, "Content-Length")) {
      uint64_t n = 0;
      if (value.empty()) return Error(kBadRequest, "invalid content-length");
      for (unsigned char c : value) {
        if (!absl::ascii_isdigit(c)) return Error(kBadRequest, "invalid content-length");
      }
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc::result_out_of_range) return Error(kPayloadTooLarge, "body too large");
      // Differing repeats make the body length ambiguous between us and any
      // proxy in front; identical repeats are harmless.
      if (content_length && *content_length != n) {
        return Error(kBadRequest, "conflicting content-length");
      }
      content_length = n;
    } else if (EqualsIgnoreCase(name, "Host")) {
      ++host_count;
    } else if (EqualsIgnoreCase(name, "Connection")) {
      if (HasConnectionToken(value, "close")) close_requested = true;
    } else if (EqualsIgnoreCase(name, "Expect")) {
      expect_continue_ = minor == 1 && EqualsIgnoreCase(value, "100-continue");
    }
    req.headers.emplace_back(std::string(name), std::string(value));
  }

  // HTTP/1.1 requires exactly one Host (RFC 9112 3.2).
  if (host_count > 1 || (minor == 1 && host_count == 0)) {
    return Error(kBadRequest, "missing or repeated host header");
  }
  if (content_length.value_or(0) > limits_.max_body_bytes) {
    return Error(kPayloadTooLarge, "body too large");
  }
  body_length_ = static_cast<size_t>(content_length.value_or(0));
  pending_.version_minor = minor;
  // HTTP/1.0 keep-alive is a non-standard extension; always close instead.
  pending_.keep_alive = minor == 1 && !close_requested;
  return std::nullopt;
}

}  // namespace cairn::http
