// libFuzzer target for cairn::http::RequestParser.
//
// The first input byte picks how the rest is split into Feed() calls, so the
// fuzzer also explores requests arriving in arbitrary fragments (the parser
// keeps scan offsets across calls, which is where split bugs would hide).
// Beyond crashes and sanitizer reports, it traps on broken invariants, and
// on any difference from parsing the same bytes fed all at once: framing
// must not depend on how TCP happened to segment the stream.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/http_request_parser.h"

namespace {

using cairn::http::ParseResult;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// Small limits so that the 413/431 paths are reachable with short inputs.
constexpr cairn::http::ParserLimits kLimits{512, 256};

// One line per request or error, enough to compare two parses.
std::string Summarize(const ParseResult& r) {
  if (r.kind == ParseResult::Kind::kError) return "E" + std::to_string(r.error_status);
  std::string s = "R" + r.request.method + " " + r.request.path + " " +
                  std::to_string(r.request.query.size()) + " " +
                  std::to_string(r.request.headers.size()) + " " + r.request.body +
                  (r.keep_alive ? " ka" : " close");
  return s;
}

void CheckResult(const ParseResult& r) {
  if (r.kind == ParseResult::Kind::kError) {
    Check(r.error_status >= 400 && r.error_status <= 599 && !r.error.empty());
    return;
  }
  Check(!r.request.method.empty());
  Check(!r.request.path.empty() && r.request.path[0] == '/');
  Check(r.request.body.size() <= kLimits.max_body_bytes);
  Check(r.version_minor == 0 || r.version_minor == 1);
  Check(!(r.version_minor == 0 && r.keep_alive));
}

// Feeds `input` in pieces of `chunk` bytes, draining requests after each.
std::vector<std::string> Parse(std::string_view input, size_t chunk) {
  cairn::http::RequestParser parser(kLimits);
  std::vector<std::string> out;
  bool errored = false;
  while (!input.empty() && !errored) {
    std::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    parser.Feed(piece);
    for (;;) {
      ParseResult r = parser.Next();
      if (r.kind == ParseResult::Kind::kNeedMore) break;
      CheckResult(r);
      out.push_back(Summarize(r));
      if (r.kind == ParseResult::Kind::kError) {
        // Errors are sticky and stable.
        ParseResult again = parser.Next();
        Check(again.kind == ParseResult::Kind::kError && again.error_status == r.error_status);
        errored = true;
        break;
      }
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = static_cast<size_t>(data[0] % 64) + 1;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Check(Parse(input, chunk) == Parse(input, input.size() + 1));
  return 0;
}
