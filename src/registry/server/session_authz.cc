#include "registry/server/session_authz.h"

#include <spdlog/spdlog.h>

namespace cairn {
namespace {
// How often the policy file is checked for a change.
constexpr std::chrono::milliseconds kPolicyPoll{1000};
}  // namespace

absl::StatusOr<SessionAuthz> SessionAuthzFrom(const RegistryConfig& config,
                                              RegistryMetrics& metrics) {
  SessionAuthz authz;
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
  if (!config.policy_file.empty()) {
    auto loaded = auth::LoadPolicyFile(config.policy_file);
    if (!loaded.ok()) return loaded.status();
    policy = std::move(*loaded);
  }
  spdlog::info("authorization: policy {} ({} rules, {} admin patterns)", policy.source,
               policy.rules.size(), policy.admins.size());
  authz.authorizer = std::make_unique<auth::Authorizer>(std::move(policy), &metrics.denied);
  if (!config.policy_file.empty()) {
    authz.reloader =
        std::make_unique<auth::PolicyReloader>(config.policy_file, *authz.authorizer, kPolicyPoll);
  }
  return authz;
}

}  // namespace cairn
