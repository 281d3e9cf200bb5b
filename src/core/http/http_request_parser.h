// HTTP/1.x request parsing without I/O, for the admin HTTP server.
//
// RequestParser is fed raw bytes as they arrive and hands back complete
// requests one at a time, "need more", or an HTTP error status. It does no
// I/O and keeps no global state, so it can be unit-tested and fuzzed on its
// own and the server's socket code stays small.
//
// Scope (what an operator endpoint needs, no more): origin-form targets,
// HTTP/1.0 and HTTP/1.1, Content-Length bodies. Transfer-Encoding is refused
// with 501 because supporting chunked bodies is not worth the framing
// attack surface on an admin port. Line endings may be CRLF or bare LF.
//
// Thread-safety: a RequestParser is not thread-safe; one per connection,
// used from one thread. Request/Response are plain values.
// Ownership: the parser owns a copy of all buffered bytes; callers may reuse
// their read buffers right after Feed() returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::http {

struct Request {
  std::string method;  // Case-sensitive, as sent ("GET").
  std::string path;    // Percent-decoded, without query or fragment.
  // Percent-decoded ('+' as space). A key without '=' maps to "". When a
  // key repeats, the last value wins.
  std::map<std::string, std::string> query;
  // As received (name case preserved, value trimmed), in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers. The server owns framing: Content-Length, Connection and
  // Transfer-Encoding given here are ignored, as are headers containing CR
  // or LF (they would let a handler split the response).
  std::vector<std::pair<std::string, std::string>> headers;
};

// ASCII case-insensitive equality (header names, connection tokens).
// Here rather than absl because Debian's abseil has its own string_view.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// First header named `name` (ASCII case-insensitive), if any.
std::optional<std::string_view> FindHeader(const Request& request, std::string_view name);

// Decodes %XX escapes; with plus_as_space also '+' -> ' ' (query strings).
// Returns nullopt on a truncated or non-hex escape.
std::optional<std::string> PercentDecode(std::string_view in, bool plus_as_space);

struct ParserLimits {
  // Request line + headers + the blank line ending them (including any empty
  // lines skipped before the request line). Larger -> 431.
  size_t max_header_bytes = 16 * 1024;
  // Declared Content-Length above this -> 413, before the body is read.
  size_t max_body_bytes = 1 << 20;
};

struct ParseResult {
  enum class Kind { kNeedMore, kRequest, kError };
  Kind kind = Kind::kNeedMore;

  // kRequest only.
  Request request;
  int version_minor = 1;    // HTTP/1.<minor>: 0 or 1.
  bool keep_alive = false;  // True if the connection may carry another request.

  // kNeedMore only: the headers asked for "Expect: 100-continue" and the body
  // has not arrived. Reported once per request; the caller should send an
  // interim "100 Continue" so clients waiting for it do not stall.
  bool send_continue = false;

  // kError only: the status to answer with (400, 413, 431, 501, 505) and a
  // short reason safe to echo to the client. The connection must be closed
  // after answering because the byte stream can no longer be framed.
  int error_status = 0;
  std::string error;
};

class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits);

  // Appends bytes to the internal buffer. Cheap: parsing happens in Next().
  void Feed(std::string_view bytes);

  // Extracts the next complete request from the buffered bytes. Call in a
  // loop until it stops returning kRequest, so pipelined requests are all
  // served. Once an error is returned, every later call returns it again.
  ParseResult Next();

  // True if some bytes of an unfinished request are buffered (used to tell
  // a clean end of stream from a truncated request).
  bool HasPartialRequest() const;

 private:
  enum class State { kHeaders, kBody, kError };

  ParseResult Error(int status, std::string reason);
  // Parses buf_[head_start_, head_end): the request line and header lines,
  // without the blank line. On success fills pending_, body_length_ and
  // expect_continue_ and returns nullopt; otherwise returns the error.
  std::optional<ParseResult> ParseHead(size_t head_end);
  // Drops consumed bytes so the buffer holds at most one partial request.
  void Compact();

  ParserLimits limits_;
  State state_ = State::kHeaders;
  std::string buf_;
  // Offsets into buf_. start_: first unconsumed byte (blank lines skipped
  // before a request line count against the header limit, so a peer cannot
  // stream them forever). line_start_: start of the line whose '\n' is being
  // searched for, so bytes are scanned once however they are split.
  // head_start_: the request line, npos until one is seen.
  size_t start_ = 0;
  size_t line_start_ = 0;
  size_t head_start_ = std::string::npos;

  // Valid in kBody.
  ParseResult pending_;
  size_t body_start_ = 0;
  size_t body_length_ = 0;
  bool expect_continue_ = false;
  bool continue_reported_ = false;

  ParseResult error_;  // Valid in kError.
};

}  // namespace cairn::http
