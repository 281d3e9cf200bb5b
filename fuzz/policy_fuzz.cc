// Fuzz target for the registry's authorization policy file
// (src/registry/auth/policy.h: ParsePolicy, GlobMatch, Policy::Evaluate).
//
// Byte 0 picks the mode, the rest is the input:
//   even: a policy file's text. Parsing must not throw or crash; a refusal is
//         INVALID_ARGUMENT naming the source; an accepted policy has rule
//         names fit for a metric label ([A-Za-z0-9._-]{1,64}), rules with
//         their line, admin patterns that are not "admin", and decides every
//         request of a set of callers the way policy.h documents (admins are
//         allowed by "admin"; anything else is decided by a rule of the
//         policy for that op, or denied by "no-matching-rule", with a reason).
//   odd:  "<pattern>\n<text>": GlobMatch and SegmentGlobMatch (a `*` within
//         one '/'-separated segment) must agree with a reference matcher
//         written here (dynamic programming over pattern and text).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity.h"
#include "registry/auth/policy.h"

namespace {

using cairn::auth::Op;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// '*' matches any run of characters (with `star_crosses_slash` false: of
// characters other than '/'), everything else itself.
bool ReferenceGlob(std::string_view pattern, std::string_view text, bool star_crosses_slash) {
  // matches[j]: pattern[0, i) matches text[0, j), for the current i.
  std::vector<char> matches(text.size() + 1, 0);
  matches[0] = 1;
  for (char p : pattern) {
    std::vector<char> next(text.size() + 1, 0);
    if (p == '*') {
      // Either the star matches nothing, or one more character after what
      // it matched up to j - 1.
      for (size_t j = 0; j <= text.size(); ++j) {
        next[j] =
            matches[j] || (j > 0 && next[j - 1] && (star_crosses_slash || text[j - 1] != '/'));
      }
    } else {
      for (size_t j = 1; j <= text.size(); ++j) next[j] = matches[j - 1] && text[j - 1] == p;
    }
    matches.swap(next);
  }
  return matches[text.size()] != 0;
}

bool IsRuleName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// True if a rule of `policy` named `name` is for `op` (and allows, when
// `allowed`): the only rules that may decide such a request.
bool CanDecide(const cairn::auth::Policy& policy, const std::string& name, Op op, bool allowed) {
  for (const auto& rule : policy.rules) {
    if (rule.name == name && rule.ops[static_cast<int>(op)] && (rule.allow || !allowed)) {
      return true;
    }
  }
  return false;
}

void CheckPolicy(std::string_view text) {
  absl::StatusOr<cairn::auth::Policy> policy = cairn::auth::ParsePolicy(text, "fuzz.yaml");
  if (!policy.ok()) {
    Check(policy.status().code() == absl::StatusCode::kInvalidArgument);
    Check(policy.status().message().find("fuzz.yaml") != std::string_view::npos);
    return;
  }
  for (const auto& admin : policy->admins) {
    Check(admin.kind != cairn::auth::IdentityPattern::Kind::kAdmin);
  }
  // Data ids to ask about: each glob of the policy with '*' made concrete,
  // and a name no glob but "*" is likely to match.
  std::vector<std::string> data_ids = {"", "zz.unmatched"};
  for (const auto& rule : policy->rules) {
    Check(IsRuleName(rule.name));
    Check(rule.line >= 1);
    for (const std::string& glob : rule.data_ids) {
      if (data_ids.size() >= 16) break;
      std::string concrete;
      for (char c : glob) concrete += c == '*' ? std::string("x") : std::string(1, c);
      data_ids.push_back(concrete);
    }
  }
  const std::vector<cairn::Identity> callers = {
      cairn::IdentityFromCertificateNames({"spiffe://cairn.local/admin/cairnctl"}, "", true),
      cairn::IdentityFromCertificateNames({"spiffe://cairn.local/app/payment"}, "", true),
      cairn::IdentityFromCertificateNames({}, "legacy-app", true),
      cairn::IdentityFromCertificateNames({}, "", false),
  };
  for (const cairn::Identity& caller : callers) {
    const bool admin = policy->IsAdmin(caller);
    for (Op op : {Op::kPublish, Op::kSubscribe, Op::kQuery}) {
      for (const std::string& data_id : data_ids) {
        cairn::auth::Action action;
        action.op = op;
        action.data_id = data_id;
        action.claimed_apps = {"payment"};
        cairn::auth::Decision decision = policy->Evaluate(caller, action);
        Check(!decision.rule.empty());
        if (admin) {
          Check(decision.allowed && decision.rule == "admin");
          continue;
        }
        if (!decision.allowed) Check(!decision.reason.empty());
        if (decision.rule == "no-matching-rule") {
          Check(!decision.allowed);
          continue;
        }
        Check(CanDecide(*policy, decision.rule, op, decision.allowed));
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 16384) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    CheckPolicy(input);
    return 0;
  }
  size_t newline = input.find('\n');
  std::string_view pattern = input.substr(0, newline);
  std::string_view text = newline == std::string_view::npos ? "" : input.substr(newline + 1);
  Check(cairn::auth::GlobMatch(pattern, text) == ReferenceGlob(pattern, text, true));
  Check(cairn::auth::SegmentGlobMatch(pattern, text) == ReferenceGlob(pattern, text, false));
  return 0;
}
