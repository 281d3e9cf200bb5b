#include "common/identity.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cairn {
namespace {

constexpr size_t kMaxSpiffeIdBytes = 2048;

// "a/b/c" -> {"a", "b", "c"}; "" -> {""}.
std::vector<std::string_view> SplitSlash(std::string_view text) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t slash = text.find('/');
    parts.push_back(text.substr(0, slash));
    if (slash == std::string_view::npos) return parts;
    text.remove_prefix(slash + 1);
  }
}

bool IsSegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

}  // namespace

absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.size() > kMaxSpiffeIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("SPIFFE id is ", uri.size(), " bytes; the limit is ", kMaxSpiffeIdBytes));
  }
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("SPIFFE id must start with spiffe://");
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view domain = rest.substr(0, slash);
  if (domain.empty()) return absl::InvalidArgumentError("SPIFFE id has an empty trust domain");
  for (char c : domain) {
    if (!IsTrustDomainChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SPIFFE trust domain may hold only lower-case letters, digits, '.', '-' and '_' (got '",
          std::string(1, c), "')"));
    }
  }
  if (slash == std::string_view::npos || slash + 1 == rest.size()) {
    return absl::InvalidArgumentError("SPIFFE id has no path");
  }
  std::string_view path = rest.substr(slash);
  for (std::string_view segment : SplitSlash(path.substr(1))) {
    if (segment.empty()) return absl::InvalidArgumentError("SPIFFE path has an empty segment");
    if (segment == "." || segment == "..") {
      return absl::InvalidArgumentError("SPIFFE path may not hold '.' or '..' segments");
    }
    for (char c : segment) {
      if (!IsSegmentChar(c)) {
        return absl::InvalidArgumentError(
            "SPIFFE path segments may hold only letters, digits, '.', '_' and '-'");
      }
    }
  }
  return SpiffeId{std::string(domain), std::string(path)};
}

std::string Identity::Name() const {
  if (!spiffe_id.empty()) return spiffe_id;
  if (!common_name.empty()) return "cn=" + common_name;
  return "anonymous";
}

Identity IdentityFromCertificateNames(const std::vector<std::string>& uri_sans,
                                      std::string_view common_name, bool authenticated) {
  Identity identity;
  identity.authenticated = authenticated;
  identity.common_name = std::string(common_name);
  // A certificate that carries a SPIFFE URI is named by it alone: if none
  // parses, or two do (a SVID has exactly one), it names no app, rather
  // than one taken from a CN that was never meant as an app name.
  bool spiffe_like = false;
  int valid = 0;
  for (const std::string& uri : uri_sans) {
    if (uri.size() >= 7 && absl::EqualsIgnoreCase(uri.substr(0, 7), "spiffe:")) {
      spiffe_like = true;
    }
    auto id = ParseSpiffeId(uri);
    if (!id.ok() || ++valid > 1) continue;
    identity.spiffe_id = id->ToString();
    identity.trust_domain = id->trust_domain;
    identity.path = id->path;
  }
  if (valid > 1) {
    identity.spiffe_id.clear();
    identity.trust_domain.clear();
    identity.path.clear();
    return identity;
  }
  if (valid == 1) {
    std::vector<std::string_view> segments = SplitSlash(std::string_view(identity.path).substr(1));
    if (segments.size() == 2 && segments[0] == "app") identity.app = std::string(segments[1]);
    return identity;
  }
  if (!spiffe_like) identity.app = identity.common_name;
  return identity;
}

}  // namespace cairn
