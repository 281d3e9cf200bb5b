// The JSON the sidecar's local registration API accepts: one object whose
// members are scalars or objects of scalars, e.g.
//   {"interface":"com.example.Echo","version":"1.0","weight":100,
//    "params":{"serialization":"hessian2"}}
// The sidecar links no JSON library (Debian's would be its only user), and
// this subset is all the API needs.
//
// Thread-safety: pure function. Input is untrusted (any local process can
// call the admin port): every error is a Status, never a crash; nesting and
// sizes are bounded by the shape accepted.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cairn::sidecar::discovery {

struct JsonObject {
  // Strings unescaped (\uXXXX, surrogate pairs included, as UTF-8); numbers,
  // true and false as written; members that are null are left out.
  std::map<std::string, std::string> scalars;
  // Members that are objects, with their scalar members (one level only).
  std::map<std::string, std::map<std::string, std::string>> objects;
};

// INVALID_ARGUMENT naming the byte offset for anything else: not an object,
// arrays, deeper nesting, bad escapes, trailing bytes, a member twice.
absl::StatusOr<JsonObject> ParseJsonObject(std::string_view text);

}  // namespace cairn::sidecar::discovery
