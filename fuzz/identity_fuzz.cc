// Fuzz target for the names a TLS peer's certificate gives it
// (src/common/identity.h: ParseSpiffeId, IdentityFromCertificateNames).
//
// Input: certificate names separated by '\n'. The first name is also parsed
// on its own; the last one is taken as the subject CN, the others as URI SANs.
//
// Beyond crashes and sanitizer reports it traps when:
//  - ParseSpiffeId disagrees with a reference acceptor written here from the
//    grammar in identity.h (a different algorithm: one pass, char by char);
//  - an accepted id does not round-trip (ToString() gives the input back,
//    parsing that again gives the same parts) or holds a byte outside the
//    allowed sets, an empty, "." or ".." segment, or is over 2048 bytes;
//  - a refusal is not INVALID_ARGUMENT with a message;
//  - the identity built from the names is not the one SAN that parses (none
//    when two do), or names an app that is not exactly /app/<app> (or the
//    CN, only when no SAN starts with "spiffe:"), or an app with a '/' in it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool InTrustDomainSet(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool InSegmentSet(char c) { return InTrustDomainSet(c) || (c >= 'A' && c <= 'Z'); }

// The grammar of identity.h, as a one-pass state machine:
//   "spiffe://" TD ("/" SEGMENT)+  with TD = [a-z0-9._-]+,
//   SEGMENT = [A-Za-z0-9._-]+ other than "." and "..", at most 2048 bytes.
bool ReferenceAccepts(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.size() > 2048 || uri.size() < kScheme.size()) return false;
  if (uri.compare(0, kScheme.size(), kScheme) != 0) return false;
  enum { kDomain, kSegment } state = kDomain;
  size_t run = 0;       // bytes in the current domain or segment
  size_t dots = 0;      // of which '.'
  size_t segments = 0;  // complete segments seen
  for (size_t i = kScheme.size(); i <= uri.size(); ++i) {
    const bool end = i == uri.size();
    const char c = end ? '/' : uri[i];
    if (c == '/') {
      if (run == 0) return false;  // empty domain or segment
      if (state == kSegment) {
        if (run == dots && run <= 2) return false;  // "." or ".."
        ++segments;
      }
      state = kSegment;
      run = dots = 0;
      continue;
    }
    if (state == kDomain ? !InTrustDomainSet(c) : !InSegmentSet(c)) return false;
    ++run;
    dots += c == '.' ? 1 : 0;
  }
  return segments >= 1;
}

void CheckParse(std::string_view uri) {
  absl::StatusOr<cairn::SpiffeId> id = cairn::ParseSpiffeId(uri);
  Check(id.ok() == ReferenceAccepts(uri));
  if (!id.ok()) {
    Check(id.status().code() == absl::StatusCode::kInvalidArgument);
    Check(!id.status().message().empty());
    return;
  }
  Check(id->ToString() == uri);
  Check(!id->trust_domain.empty() && id->path.size() >= 2 && id->path[0] == '/');
  for (char c : id->trust_domain) Check(InTrustDomainSet(c));
  for (char c : id->path) Check(c == '/' || InSegmentSet(c));
  Check(id->path.back() != '/' && id->path.find("//") == std::string::npos);
  Check(id->path.find("/./") == std::string::npos && id->path.find("/../") == std::string::npos);
  absl::StatusOr<cairn::SpiffeId> again = cairn::ParseSpiffeId(id->ToString());
  Check(again.ok() && again->trust_domain == id->trust_domain && again->path == id->path);
}

void CheckIdentity(const std::vector<std::string>& sans, const std::string& cn,
                   bool authenticated) {
  cairn::Identity identity = cairn::IdentityFromCertificateNames(sans, cn, authenticated);
  Check(identity.authenticated == authenticated);
  Check(identity.common_name == cn);
  Check(!identity.Name().empty());
  const std::string* first = nullptr;
  int accepted = 0;
  bool spiffe_scheme = false;
  for (const std::string& san : sans) {
    std::string scheme = san.substr(0, 7);
    for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    spiffe_scheme |= scheme == "spiffe:";
    if (ReferenceAccepts(san) && ++accepted == 1) first = &san;
  }
  if (accepted != 1) {
    Check(identity.spiffe_id.empty() && identity.trust_domain.empty() && identity.path.empty());
    Check(identity.app == (accepted == 0 && !spiffe_scheme ? cn : ""));
    Check(identity.Name() == (cn.empty() ? "anonymous" : "cn=" + cn));
    return;
  }
  Check(identity.spiffe_id == *first && identity.Name() == *first);
  Check("spiffe://" + identity.trust_domain + identity.path == *first);
  const std::string_view path = identity.path;
  const bool app_path = path.substr(0, 5) == "/app/" && path.find('/', 5) == std::string::npos;
  if (app_path) {
    Check(identity.app == path.substr(5) && !identity.app.empty());
  } else {
    Check(identity.app.empty());
  }
  Check(identity.app.find('/') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;  // beyond the 2048-byte limit plenty of times
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> names;
  while (true) {
    size_t newline = input.find('\n');
    names.emplace_back(input.substr(0, newline));
    if (newline == std::string_view::npos) break;
    input.remove_prefix(newline + 1);
  }
  CheckParse(names.front());
  for (size_t i = 1; i + 1 < names.size() && i < 8; ++i) CheckParse(names[i]);
  std::string cn = names.back();
  names.pop_back();
  CheckIdentity(names, cn, (size & 1) != 0);
  return 0;
}
