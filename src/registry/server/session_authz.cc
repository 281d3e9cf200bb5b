#include "registry/server/session_authz.h"

#include <spdlog/spdlog.h>

#include "common/host_port.h"
#include "sidecar/server/admin_auth.h"  // header-only token file reader

namespace cairn {
namespace {
// How often the policy file is checked for a change.
constexpr std::chrono::milliseconds kPolicyPoll{1000};
}  // namespace

absl::StatusOr<SessionAuthz> SessionAuthzFrom(const RegistryConfig& config,
                                              RegistryMetrics& metrics) {
  SessionAuthz authz;
  if (!config.admin_token_file.empty()) {
    auto token = sidecar::LoadAdminToken(config.admin_token_file);
    if (!token.ok()) return token.status();
    authz.admin_token = std::move(*token);
    spdlog::info("admin HTTP: the /api/v1 queries need the bearer token of {}",
                 config.admin_token_file);
  }
  if (config.tls.ca_file.empty()) {
    if (!config.policy_file.empty()) {
      return absl::InvalidArgumentError("policy needs client certificates (tls.ca)");
    }
    if (config.tls.enabled()) {
      spdlog::warn(
          "authorization is off: TLS without a client CA (tls.ca) gives no client identities, so "
          "any client may publish anything");
    }
    return authz;
  }
  auth::Policy policy = auth::DefaultPolicy();
  // Taken before the read: a file replaced during startup is reloaded.
  const auth::PolicyReloader::FileStamp stamp = auth::PolicyReloader::Stamp(config.policy_file);
  if (!config.policy_file.empty()) {
    auto loaded = auth::LoadPolicyFile(config.policy_file);
    if (!loaded.ok()) return loaded.status();
    policy = std::move(*loaded);
  }
  spdlog::info("authorization: policy {} ({} rules, {} admin patterns)", policy.source,
               policy.rules.size(), policy.admins.size());
  authz.authorizer = std::make_unique<auth::Authorizer>(std::move(policy), &metrics.denied);
  auto admin = SplitHostPort(config.admin);
  bool loopback = admin.ok() && (admin->first.starts_with("127.") || admin->first == "::1" ||
                                 admin->first == "localhost");
  if (!loopback && authz.admin_token.empty()) {
    spdlog::warn(
        "admin HTTP on {} serves the queries (every publisher and client) to anyone who reaches "
        "it, while gRPC keeps them for admins: set admin_token_file or bind it to loopback",
        config.admin);
  }
  if (!config.policy_file.empty()) {
    authz.reloader = std::make_unique<auth::PolicyReloader>(config.policy_file, *authz.authorizer,
                                                            kPolicyPoll, stamp);
  }
  return authz;
}

}  // namespace cairn
