#include "registry/auth/authorizer.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace cairn::auth {
namespace {
// Distinct identity+rule pairs remembered for "log once"; past it denials of
// new pairs are still counted but no longer logged (a flood of identities
// cannot grow memory or the log without bound).
constexpr size_t kMaxLoggedPairs = 4096;
}  // namespace

Authorizer::Authorizer(Policy initial, prometheus::Family<prometheus::Counter>* denied)
    : denied_(denied), policy_(std::make_shared<const Policy>(std::move(initial))) {}

std::shared_ptr<const Policy> Authorizer::current() const {
  std::lock_guard lock(mu_);
  return policy_;
}

bool Authorizer::IsAdmin(const Identity& identity) const { return current()->IsAdmin(identity); }

void Authorizer::Replace(Policy policy) {
  auto next = std::make_shared<const Policy>(std::move(policy));
  std::lock_guard lock(mu_);
  policy_ = std::move(next);
  logged_.clear();  // the rules may mean something else now: log their denials again
}

absl::Status Authorizer::Check(const Identity& identity, const Action& action) {
  Decision decision = current()->Evaluate(identity, action);
  if (decision.allowed) return absl::OkStatus();
  return Refuse(identity, action.op, decision);
}

absl::Status Authorizer::Deny(const Identity& identity, Op op, std::string_view rule,
                              std::string reason) {
  return Refuse(identity, op, Decision{false, std::string(rule), std::move(reason)});
}

absl::Status Authorizer::Refuse(const Identity& identity, Op op, const Decision& decision) {
  if (denied_ != nullptr) {
    denied_->Add({{"op", std::string(OpName(op))}, {"rule", decision.rule}}).Increment();
  }
  bool log = false;
  bool first_overflow = false;
  {
    std::lock_guard lock(mu_);
    if (logged_.size() < kMaxLoggedPairs) {
      log = logged_.insert(absl::StrCat(identity.Name(), "\n", decision.rule)).second;
      first_overflow = log && logged_.size() == kMaxLoggedPairs;
    }
  }
  if (log) {
    spdlog::warn("authorization: {} (further denials of {} by this rule are only counted)",
                 decision.reason, identity.Name());
  }
  if (first_overflow) {
    spdlog::warn(
        "authorization: {} identity+rule pairs logged; denials of new pairs are only "
        "counted (cairn_registry_denied_total) until the policy is reloaded",
        kMaxLoggedPairs);
  }
  return absl::PermissionDeniedError(decision.reason);
}

}  // namespace cairn::auth
