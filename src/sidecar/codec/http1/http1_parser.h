// Incremental HTTP/1.x message parser shared by the server codec (requests)
// and the client codec (responses).
//
// Pull model: the codec calls Next(input) in a loop and gets one event at a
// time (head, body data, trailers, error, need-more), so there is no virtual
// call per byte or per header and the codec keeps full control of what
// happens between messages (pipelining, close semantics). Each byte of input
// is examined once: complete lines are parsed straight out of the caller's
// buffer; only a line split across OnIngress calls is copied (into
// `partial_`), and the search for its end resumes on the new bytes only.
//
// What the parser decides (shared by both directions): line syntax (CRLF
// only; a bare LF is a 400, because accepting it where an upstream does not
// is a request-smuggling vector), field syntax (no whitespace before ':', no
// obs-fold, no CTLs), header limits, hop-by-hop stripping, Content-Length /
// Transfer-Encoding validation and chunked decoding. What the codec decides:
// request-target forms, keep-alive, stream bookkeeping, and whether a
// response has a body at all (HEAD, 1xx/204/304).
//
// Limits (CodecLimits): max_headers counts field lines of one head (or of
// one trailer section); max_header_bytes counts the bytes of their names plus
// (trimmed) values. To bound buffering before a head is complete, the raw
// head (start line, separators, whitespace, CRLFs) may additionally use
// 8 KiB + 4 bytes per allowed field; all of these give 431. The request line
// (method, target, version) counts towards max_header_bytes too: a request
// line longer than max_header_bytes gets 414 (URI Too Long) before its end
// is even buffered, and a shorter one leaves that much less for the fields
// (431). A response's status line is bounded the same way (431). max_body_bytes
// (0 = unlimited) is checked against Content-Length before the body arrives
// and against the running total of chunked / close-delimited bodies (413).
//
// Thread-safety: not thread-safe; owned by one codec on one thread.
// Ownership: data() views the input passed to the last Next() call; head()
// and trailers() are owned by the parser, valid until the next Next() call,
// and may be moved from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/codec.h"
#include "sidecar/codec/http1/http1_common.h"

namespace cairn::sidecar::http1 {

enum class Framing : uint8_t {
  kNone,        // no body
  kLength,      // Content-Length
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // responses only: the body ends when the connection closes
};

struct ParsedHead {
  // Request line (requests only).
  std::string method;
  std::string target;  // as received
  std::string host;    // the Host field (not in `headers`)
  bool has_host = false;
  // Status line (responses only).
  int status = 0;
  int version_minor = 1;  // 0 for HTTP/1.0, 1 for HTTP/1.1 (and any 1.x > 1)
  // Lower-case names, hop-by-hop fields removed; "te: trailers" kept;
  // a valid Content-Length kept once, normalized to plain digits.
  HeaderList headers;
  // The framing the head declares; the codec may override it (StartBody).
  Framing framing = Framing::kNone;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool expect_continue = false;  // requests: "Expect: 100-continue" (removed from headers)
};

struct ParseError {
  int http_status = 0;      // 400, 413, 414, 431, 501 or 505
  const char* detail = "";  // static string
};

enum class ParseEvent : uint8_t {
  kNeedMore,  // all input consumed
  kHead,      // head() is complete; call StartBody() (or Next() uses head().framing)
  kData,      // data() / data_end(); data_end() ends the message
  kTrailers,  // trailers() is complete; ends the message
  kError,     // error() is set; every later call returns kError
};

class Http1Parser {
 public:
  enum class Kind : uint8_t { kRequest, kResponse };

  Http1Parser(Kind kind, const CodecLimits& limits);

  // Consumes bytes from the front of `input` until an event is ready.
  ParseEvent Next(std::string_view& input);

  ParsedHead& head() { return head_; }
  std::string_view data() const { return data_; }
  bool data_end() const { return data_end_; }
  HeaderList& trailers() { return trailers_; }
  const ParseError& error() const { return error_; }

  // After kHead: sets how the body is delimited. kNone (or a zero length)
  // completes the message at once. Returns false (413) when a declared length
  // exceeds max_body_bytes.
  bool StartBody(Framing framing, uint64_t length);

  // A close-delimited body is being read: EOF will end it.
  bool InBodyUntilClose() const { return state_ == State::kBodyUntilClose; }
  // Ends a close-delimited body at EOF.
  void EndBodyAtEof();

  // A message head has begun (a byte of its start line, empty lines before
  // it aside, or the start line itself) and is not complete yet.
  bool InHead() const {
    return state_ == State::kHeaderLine ||
           (state_ == State::kStartLine && !partial_is_line_ && !partial_.empty());
  }

 private:
  enum class State : uint8_t {
    kStartLine,
    kHeaderLine,
    kAwaitBody,
    kBodyLength,
    kBodyUntilClose,
    kChunkSize,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerLine,
    kError,
  };
  enum class LineStatus : uint8_t { kLine, kNeedMore, kError };

  // Takes one CRLF-terminated line (returned without the CRLF) from `input`,
  // buffering a partial one. `budget` bounds the line including CRLF;
  // exceeding it fails with `too_long_status`.
  LineStatus TakeLine(std::string_view& input, size_t budget, int too_long_status,
                      std::string_view& line);
  bool ParseRequestLine(std::string_view line);
  bool ParseStatusLine(std::string_view line);
  bool ParseVersion(std::string_view version);
  bool ParseField(std::string_view line, bool trailer);
  bool ParseSpecialField(FieldKind kind, std::string&& name, std::string_view value);
  bool FinishHead();
  bool ParseChunkSize(std::string_view line);
  void ResetMessage();
  void MessageDone();
  bool Fail(int http_status, const char* detail);
  size_t HeadBudget() const { return raw_head_cap_ - raw_bytes_; }

  const Kind kind_;
  const CodecLimits limits_;
  const size_t raw_head_cap_;

  State state_ = State::kStartLine;
  bool reset_pending_ = false;    // a message completed; clear state before the next
  bool partial_is_line_ = false;  // `partial_` holds the line last returned
  std::string partial_;

  // Per head (or trailer section).
  size_t raw_bytes_ = 0;
  size_t field_count_ = 0;
  size_t field_bytes_ = 0;
  bool has_transfer_encoding_ = false;
  bool chunked_seen_ = false;
  bool chunked_not_last_ = false;
  bool other_coding_ = false;
  bool te_trailers_added_ = false;
  std::vector<std::string> connection_tokens_;  // other headers named by Connection

  // Per body.
  uint64_t remaining_ = 0;   // of the Content-Length body or current chunk
  uint64_t body_bytes_ = 0;  // chunked / close-delimited running total

  ParsedHead head_;
  HeaderList trailers_;
  std::string_view data_;
  bool data_end_ = false;
  ParseError error_;
};

}  // namespace cairn::sidecar::http1
