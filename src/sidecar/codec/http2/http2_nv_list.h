// Internal to the HTTP/2 codec: header fields in the form nghttp2 submits.
//
// Thread-safety and ownership: a short-lived local. NvList borrows the
// names and values it is given (nghttp2 copies them at submit time), so it
// must not outlive them; lower-cased copies of names are owned here.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/codec.h"

namespace cairn::sidecar::http2_internal {

inline bool HasUpper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// RFC 9113 section 8.2.2: fields that only make sense hop-by-hop in HTTP/1
// make an HTTP/2 message malformed, so they are dropped when encoding (the
// proxy forwards HTTP/1 heads as they are).
inline bool IsConnectionSpecific(std::string_view name, std::string_view value) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || (name == "te" && value != "trailers");
}

// Header fields as nghttp2 wants them, for one submit call.
class NvList {
 public:
  explicit NvList(size_t fields) {
    nv_.reserve(fields + 4);
    // Never reallocated afterwards: nv_ points into these strings.
    lowered_.reserve(fields);
  }

  void AddPseudo(std::string_view name, std::string_view value) {
    Push(name, value, NGHTTP2_NV_FLAG_NONE);
  }

  void AddFields(const HeaderList& fields, bool skip_host) {
    for (const auto& [raw_name, value] : fields) {
      std::string_view name = raw_name;
      if (name.empty() || name[0] == ':') continue;  // pseudo-headers come from the head
      if (HasUpper(name)) {
        std::string& lower = lowered_.emplace_back(name);
        for (char& c : lower) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        name = lower;
      }
      if (IsConnectionSpecific(name, value) || (skip_host && name == "host")) continue;
      // Credentials must not enter the HPACK dynamic table (CRIME-style
      // probing of compressed sizes).
      bool sensitive = name == "authorization" || name == "proxy-authorization";
      Push(name, value, sensitive ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
    }
  }

  const nghttp2_nv* data() const { return nv_.data(); }
  size_t size() const { return nv_.size(); }

 private:
  void Push(std::string_view name, std::string_view value, uint8_t flags) {
    nv_.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                   value.size(), flags});
  }

  std::vector<nghttp2_nv> nv_;
  std::vector<std::string> lowered_;
};

}  // namespace cairn::sidecar::http2_internal
