// Workload identities: who a certificate says its holder is.
//
// Cairn names a workload with a SPIFFE-style URI in the certificate's subject
// alternative names, `spiffe://<trust-domain>/<path>`. The paths it gives
// meaning to (scripts/dev-certs makes certificates with them):
//   /app/<app>        an application instance (or the sidecar serving it)
//   /admin/<name>     an operator tool (cairnctl)
//   /registry, /etcd  servers
// A certificate without such a URI is named by its subject CN instead, and its
// CN is taken as the app name (as many existing PKIs issue them).
//
// Pure functions and plain values; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn {

struct SpiffeId {
  std::string trust_domain;  // lower-case, e.g. "cairn.local"
  std::string path;          // starts with '/', e.g. "/app/payment"
  std::string ToString() const { return "spiffe://" + trust_domain + path; }
};

// Parses "spiffe://td/path". Rejects: another scheme, an empty or upper-case
// trust domain, a port, userinfo, query or fragment, an empty path or empty,
// "." or ".." segments, and characters outside [A-Za-z0-9._-] in segments.
// At most 2048 bytes.
absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri);

struct Identity {
  bool authenticated = false;  // false: no (verified) certificate
  std::string spiffe_id;       // the URI SAN, when it parsed; else empty
  std::string trust_domain;
  std::string path;         // "/app/payment"; empty without a SPIFFE id
  std::string common_name;  // subject CN, when present
  // The app the holder may act as: the segment after /app/ (exactly two
  // segments), else, without a SPIFFE id, the CN. Empty otherwise.
  std::string app;

  // How logs and errors name it: the SPIFFE id, else "cn=<CN>", else
  // "anonymous".
  std::string Name() const;
};

// Builds an identity from what a TLS peer presented: its URI SANs and its
// subject CN. Exactly one URI SAN that parses as a SPIFFE id names it (URIs
// of other schemes are ignored); with two, or with a "spiffe:" URI that does
// not parse, it has no SPIFFE id and no app (the CN is kept for logs, never
// taken as the app). Only a certificate without any spiffe: URI takes its
// app from the CN.
// `authenticated` is set by the caller's knowledge that the chain verified.
Identity IdentityFromCertificateNames(const std::vector<std::string>& uri_sans,
                                      std::string_view common_name, bool authenticated);

}  // namespace cairn
