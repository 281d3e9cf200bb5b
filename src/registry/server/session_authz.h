// The session role's authorization from the registry config, shared by the
// standalone registry and cluster mode's session role.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "registry/auth/authorizer.h"
#include "registry/auth/policy_reloader.h"
#include "registry/metrics.h"
#include "registry/server/registry_config.h"

namespace cairn {

struct SessionAuthz {
  // Null when client certificates are not verified (TLS off, or no tls.ca):
  // there are no identities, and every request is allowed as before.
  std::unique_ptr<auth::Authorizer> authorizer;
  // Set when a policy file is configured: reloads it on change and SIGHUP.
  // Declared after the authorizer it updates, so destroyed before it.
  std::unique_ptr<auth::PolicyReloader> reloader;
  // The admin HTTP query routes' bearer token (admin_token_file), or empty.
  std::string admin_token;
};

// The config's policy file (an error if it does not load: startup stops),
// or the built-in default when client certificates are verified. Denials are
// counted in metrics.denied. Also reads admin_token_file, and warns when
// authorization is on but the admin port serves the queries to anyone off
// loopback. REQUIRES: metrics outlives the result.
absl::StatusOr<SessionAuthz> SessionAuthzFrom(const RegistryConfig& config,
                                              RegistryMetrics& metrics);

}  // namespace cairn
