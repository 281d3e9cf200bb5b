// Helpers shared by the HTTP/1 parser and both HTTP/1 codecs: character
// classes, header-name classification, number parsing and the small encoders
// (fields, chunks, status lines) used in both directions.
//
// Thread-safety: stateless free functions over constant tables; safe to call
// from any thread. Ownership: nothing is retained; encoders append to a
// caller-owned std::string.
#pragma once

#include "core/http/status_text.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/codec/codec.h"

namespace cairn::sidecar::http1 {

// Character classes, one bit each, in a 256-entry table so that validating a
// header costs one load per byte.
inline constexpr uint8_t kTokenChar = 1;       // RFC 9110 tchar
inline constexpr uint8_t kFieldValueChar = 2;  // VCHAR / SP / HTAB / obs-text
inline constexpr uint8_t kTargetChar = 4;      // request-target: no CTL, no SP
inline constexpr uint8_t kAuthorityChar = 8;   // host[:port], IP literals, %-escapes

extern const std::array<uint8_t, 256> kCharClass;

inline bool HasClass(char c, uint8_t cls) {
  return (kCharClass[static_cast<unsigned char>(c)] & cls) != 0;
}
// Branch-free: header names are lower-cased byte by byte on the hot path.
inline char ToLowerAscii(char c) {
  return static_cast<char>(c + ((static_cast<unsigned char>(c - 'A') < 26) << 5));
}

bool IsToken(std::string_view s);
bool IsFieldValue(std::string_view s);
bool IsValidAuthority(std::string_view s);  // may be empty
// `lower` must already be lower-case.
bool EqualsIgnoreCase(std::string_view s, std::string_view lower);
std::string_view TrimOws(std::string_view s);

// Calls fn(element) for every non-empty, OWS-trimmed element of a
// comma-separated list (RFC 9110 5.6.1: empty elements are ignored).
template <typename Fn>
void ForEachListElement(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view element = TrimOws(list.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// 1..19 decimal digits (fits uint64 without overflow checks).
bool ParseDecimal(std::string_view s, uint64_t* value);
// A Content-Length value: one number, or a list of identical numbers
// ("5, 5"), which RFC 9112 6.3 lets a recipient collapse. Anything else fails.
bool ParseContentLength(std::string_view value, uint64_t* length);

// Fields that HTTP/1 framing or connection management owns. Everything else
// is kOrdinary and passed through end to end.
enum class FieldKind : uint8_t {
  kOrdinary,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kUpgrade,
  kTe,
  kExpect,
};
// ASCII case-insensitive (callers of the encoders may pass any case).
FieldKind ClassifyField(std::string_view name);
// Same, for a name known to be lower-case (cheaper).
FieldKind ClassifyLowerField(std::string_view name);
// True when a TE value lists the "trailers" token (possibly with parameters).
bool TeAllowsTrailers(std::string_view value);

// ---------------------------------------------------------------- encoding

void AppendDecimal(uint64_t value, std::string& out);
// Status line "HTTP/1.1 200 OK\r\n"; statuses outside 100..599 become 500.
void AppendStatusLine(int status, std::string& out);
using ::cairn::http::ReasonPhrase;
// Writes "name: value\r\n" when the name is a token and the value has no
// CR/LF/NUL; returns false (writing nothing) otherwise, so a caller's bad
// header can never split the message.
bool AppendField(std::string_view name, std::string_view value, std::string& out);
// One chunk of a chunked body (nothing for empty data: an empty chunk would
// end the body).
void AppendChunk(std::string_view data, std::string& out);
// The last chunk plus trailer section; only kOrdinary trailer fields are
// written (framing fields are not allowed in trailers).
void AppendLastChunk(const HeaderList* trailers, std::string& out);

}  // namespace cairn::sidecar::http1
