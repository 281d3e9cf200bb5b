// The sidecar admin API's token: mutating endpoints (the local registration
// API) require `Authorization: Bearer <token>` once admin_token_file is set.
//
// Header-only, no state: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace cairn::sidecar {

// Reads the token from `path`: the file's content without surrounding
// whitespace (a trailing newline from `echo` is fine). An unreadable file, an
// empty token, or one with inner whitespace or control bytes (it could never
// be sent in a header as written) is an error naming the file, never a
// token that nobody can match or that everybody does.
inline absl::StatusOr<std::string> LoadAdminToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("admin_token_file ", path, ": unreadable"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  const char* kSpace = " \t\r\n";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("admin_token_file ", path, ": empty"));
  }
  size_t end = text.find_last_not_of(kSpace);
  std::string token = text.substr(begin, end - begin + 1);
  for (unsigned char c : token) {
    if (c <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin_token_file ", path, ": the token has whitespace or control characters"));
    }
  }
  return token;
}

// Equality whose time depends only on the lengths, not on where the inputs
// differ, so that a client cannot find the token a byte at a time by timing.
inline bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// True when `authorization` (the Authorization header's value, if any) is
// "Bearer <token>" (scheme case-insensitive, RFC 9110 11.1) with exactly
// `token`. An empty `token` matches nothing.
inline bool BearerTokenMatches(std::optional<std::string_view> authorization,
                               std::string_view token) {
  if (token.empty() || !authorization.has_value()) return false;
  std::string_view value = *authorization;
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return ConstantTimeEquals(value, token);
}

}  // namespace cairn::sidecar
