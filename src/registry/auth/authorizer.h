// Authorizer: the registry's current policy, and what happens on a denial.
//
// Check() evaluates the current policy; a denial is counted in
// cairn_registry_denied_total{op,rule} and logged once per identity and
// rule (later denials of the same pair are only counted). Replace() swaps
// in a new policy (a reload) for every later Check().
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "registry/auth/policy.h"

namespace cairn::auth {

class Authorizer {
 public:
  // `denied` (may be null: not counted) must outlive this.
  Authorizer(Policy initial, prometheus::Family<prometheus::Counter>* denied);

  // OK, or PERMISSION_DENIED whose message names the rule and the identity.
  absl::Status Check(const Identity& identity, const Action& action);

  // A refusal decided outside the policy's rules (e.g. taking over another
  // identity's registration): counted and logged like a policy denial under
  // `rule`; returns PERMISSION_DENIED with `reason`.
  absl::Status Deny(const Identity& identity, Op op, std::string_view rule, std::string reason);

  // True when the current policy makes `identity` an admin.
  bool IsAdmin(const Identity& identity) const;

  void Replace(Policy policy);
  std::shared_ptr<const Policy> current() const;

 private:
  absl::Status Refuse(const Identity& identity, Op op, const Decision& decision);

  prometheus::Family<prometheus::Counter>* const denied_;
  mutable std::mutex mu_;
  std::shared_ptr<const Policy> policy_;  // guarded by mu_
  std::set<std::string> logged_;          // "identity\nrule"; guarded by mu_
};

}  // namespace cairn::auth
