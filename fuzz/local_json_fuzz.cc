// libFuzzer target for the sidecar's local registration API JSON subset
// (sidecar/discovery/local_json.h): any local process can send it bytes.
//
// Beyond crashes and sanitizer reports it traps when an accepted document,
// written back out with every scalar as a JSON string, does not parse to the
// same members: the parser must not accept something it cannot read back,
// and its unescaping must agree with plain escaping.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "sidecar/discovery/local_json.h"

namespace {

using cairn::sidecar::discovery::JsonObject;
using cairn::sidecar::discovery::ParseJsonObject;

void AppendQuoted(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

void AppendScalars(std::string& out, const std::map<std::string, std::string>& scalars,
                   bool& first) {
  for (const auto& [key, value] : scalars) {
    if (!first) out.push_back(',');
    first = false;
    AppendQuoted(out, key);
    out.push_back(':');
    AppendQuoted(out, value);
  }
}

std::string WriteBack(const JsonObject& object) {
  std::string out = "{";
  bool first = true;
  AppendScalars(out, object.scalars, first);
  for (const auto& [key, members] : object.objects) {
    if (!first) out.push_back(',');
    first = false;
    AppendQuoted(out, key);
    out += ":{";
    bool inner_first = true;
    AppendScalars(out, members, inner_first);
    out.push_back('}');
  }
  out.push_back('}');
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseJsonObject(text);
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) std::abort();  // errors must say what is wrong
    return 0;
  }
  std::string again = WriteBack(*parsed);
  auto reparsed = ParseJsonObject(again);
  if (!reparsed.ok() || reparsed->scalars != parsed->scalars ||
      reparsed->objects != parsed->objects) {
    std::fprintf(stderr, "round trip differs for: %s\n", again.c_str());
    std::abort();
  }
  return 0;
}
